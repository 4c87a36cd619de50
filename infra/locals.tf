locals {
  # The contract with the service, written once as literals so that readers and the test suite
  # (tests/tests/infra_static.rs) find a single source:
  #   app_port          = candidates::config::DEFAULT_PORT
  #   health_check_path = candidates::api::HEALTH_PATH (200 when serving, 503 while draining)
  #   env_file_path     = the EnvironmentFile= of the systemd unit baked into the AMI
  app_port          = 8000
  health_check_path = "/gtg"
  env_file_path     = "/etc/candidates/candidates.env"

  # How fast the load balancer notices a target. A draining instance answers 503 on the health
  # path, and is out of rotation after interval x unhealthy_threshold seconds (10 s): the
  # service's drain (var.shutdown_drain_secs) must last at least that long.
  health_check = {
    interval            = 5
    timeout             = 3
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  # TimeoutStopSec of the systemd unit baked into the AMI: past it systemd kills the service.
  systemd_stop_timeout_secs = 90

  # One Terraform workspace per environment (perf1, nonreg1, production...): every name
  # carries it, so several environments live side by side in one account.
  environment = terraform.workspace
  name        = "${var.project}-${local.environment}"
  table_name  = "${local.name}-candidates"
  # The service's log lines, shipped by the CloudWatch agent baked into the AMI.
  log_group_name = "/${var.project}/${local.environment}/candidates"

  region    = data.aws_service.dynamodb.region
  partition = data.aws_partition.current.partition

  # Zones that need no opt-in (no Local or Wavelength Zones) and offer the instance type: the
  # first var.az_count of them in name order. A precondition on the VPC says so when the
  # region has fewer.
  usable_azs = sort(setintersection(
    data.aws_availability_zones.available.names,
    data.aws_ec2_instance_type_offerings.instance_type.locations,
  ))
  azs = slice(local.usable_azs, 0, min(var.az_count, length(local.usable_azs)))

  # The instance refresh's ceiling (autoscaling_group.tf): during a rollout the group may run
  # this percentage of its desired capacity. scripts/check_env.sh reads it (terraform
  # console) to check the vCPU quota against max_size at this percentage.
  refresh_max_healthy_percentage = 150

  # Burstable families that support unlimited mode; see var.instance_type (t4g, the Graviton
  # one, is refused there).
  burstable = can(regex("^t(3|3a)\\.", var.instance_type))

  https        = var.certificate_arn != null
  step_scaling = var.scaling_mode == "step"

  # Tags the instances, their volumes and network interfaces get at launch (default_tags do not
  # reach resources that the Auto Scaling group creates).
  launch_tags = merge(var.tags, {
    Name        = local.name
    Project     = var.project
    Environment = local.environment
  })

  # The step-scaling policy's intervals: each step runs from its lower bound (relative to the
  # alarm threshold) to the next step's lower bound; the last one is open-ended.
  scale_out_intervals = [
    for index, step in var.scale_out_steps : {
      lower      = step.lower_bound
      upper      = index + 1 < length(var.scale_out_steps) ? var.scale_out_steps[index + 1].lower_bound : null
      adjustment = step.adjustment
    }
  ]

  console_host = lookup({
    aws        = "console.aws.amazon.com"
    aws-cn     = "console.amazonaws.cn"
    aws-us-gov = "console.amazonaws-us-gov.com"
  }, local.partition, "console.aws.amazon.com")
}

# The provider's region, read from the DynamoDB service's description: aws_region's `name`
# is deprecated in provider 6.x and its replacement `region` does not exist in 5.x, while
# aws_service's `region` is the same in both. Its reverse DNS name is the service name of
# the DynamoDB gateway endpoint (network.tf).
data "aws_service" "dynamodb" {
  service_id = "dynamodb"
}

data "aws_partition" "current" {}

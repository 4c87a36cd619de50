# The group: spread over the public subnets, replaced instance by instance when the launch
# template changes, and never resized by Terraform once running.

resource "aws_autoscaling_group" "this" {
  name                = local.name
  vpc_zone_identifier = [for subnet in aws_subnet.public : subnet.id]
  target_group_arns   = [aws_lb_target_group.this.arn]

  min_size = var.min_size
  max_size = var.max_size
  # desired_capacity is deliberately not set. It is optional and computed: unset, the group
  # starts at min_size and Terraform never sends a capacity again, so an apply cannot undo
  # what the scaling policies or scheduled actions chose. (Setting it and ignoring it with
  # lifecycle.ignore_changes would work too, but would still pin the capacity on creation
  # and invite someone to remove the ignore.)

  # Replace instances the load balancer finds unhealthy, once a cold boot has had time.
  health_check_type         = "ELB"
  health_check_grace_period = var.health_check_grace_period_secs
  default_instance_warmup   = var.instance_warmup_secs

  metrics_granularity = "1Minute"
  enabled_metrics = [
    "GroupMinSize",
    "GroupMaxSize",
    "GroupDesiredCapacity",
    "GroupInServiceInstances",
    "GroupPendingInstances",
    "GroupStandbyInstances",
    "GroupTerminatingInstances",
    "GroupTotalInstances",
  ]

  # latest_version (not "$Latest") makes a new template version a change of the group, and
  # that change starts the instance refresh below.
  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  # Rolling replacement that launches before it terminates: 100 % of the desired capacity
  # stays healthy and up to 150 % may run meanwhile, so a new AMI rolls out without downtime
  # or lost capacity. Each new instance must pass the load balancer's health check and warm
  # up (default_instance_warmup) before the next old one is drained and terminated.
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = local.refresh_max_healthy_percentage
      skip_matching          = true
    }
  }

  # default_tags do not reach the instances the group launches: these tags do (the same set
  # as their volumes and network interfaces, var.tags included).
  dynamic "tag" {
    for_each = local.launch_tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # The first instances start the service at boot, and it calls DynamoDB at once (and the
  # CloudWatch agent ships its first lines): their role must already hold its permissions.
  # The launch template references only the instance profile, which Terraform can create
  # before the role's policies are attached.
  depends_on = [
    aws_iam_role_policy.candidates_table,
    aws_iam_role_policy.service_logs,
    aws_iam_role_policy_attachment.session_manager,
  ]

  lifecycle {
    precondition {
      condition     = var.min_size <= var.max_size
      error_message = "min_size (${var.min_size}) must not exceed max_size (${var.max_size})."
    }
  }
}

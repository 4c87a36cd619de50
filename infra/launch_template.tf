# What every instance of the group is: the baked AMI, hardened metadata, encrypted disk, the
# instance role, and user data that configures the service and its log shipping for this
# environment.

data "aws_ami" "service" {
  filter {
    name   = "image-id"
    values = [var.ami_id]
  }
}

locals {
  # The size of the AMI's root snapshot. The launch template states the root volume's size
  # itself instead of leaving AWS to merge it from the AMI's mapping: the template then says
  # what instances get, and a root_volume_size_gib below the snapshot is caught at plan time.
  ami_root_volume_gib = try(tonumber(one([
    for mapping in data.aws_ami.service.block_device_mappings : mapping.ebs.volume_size
    if mapping.device_name == data.aws_ami.service.root_device_name
  ])), null)
  root_volume_gib = var.root_volume_size_gib != null ? var.root_volume_size_gib : local.ami_root_volume_gib
}

data "aws_ec2_instance_type" "this" {
  instance_type = var.instance_type
}

resource "aws_launch_template" "this" {
  name                   = local.name
  description            = "candidates service of ${local.name}"
  image_id               = data.aws_ami.service.id
  instance_type          = var.instance_type
  update_default_version = true
  vpc_security_group_ids = [aws_security_group.instance.id]

  user_data = base64encode(templatefile("${path.module}/templates/user_data.sh.tftpl", {
    env_file_path        = local.env_file_path
    log_group_name       = aws_cloudwatch_log_group.service.name
    table_name           = aws_dynamodb_table.candidates.name
    region               = local.region
    shutdown_drain_secs  = var.shutdown_drain_secs
    request_timeout_secs = var.request_timeout_secs
  }))

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  # IMDSv2 only; a hop limit of 1 keeps the credentials away from anything one network hop
  # further (containers, a forwarding proxy).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  # 1-minute CPU metrics: the scaling alarms evaluate 60-second periods.
  monitoring {
    enabled = true
  }

  # See var.instance_type: a throttled burstable instance reports a CPU that never crosses the
  # scale-out threshold.
  dynamic "credit_specification" {
    for_each = local.burstable ? ["unlimited"] : []

    content {
      cpu_credits = credit_specification.value
    }
  }

  block_device_mappings {
    device_name = data.aws_ami.service.root_device_name

    ebs {
      volume_type           = "gp3"
      volume_size           = local.root_volume_gib
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.launch_tags
  }

  tag_specifications {
    resource_type = "network-interface"
    tags          = local.launch_tags
  }

  lifecycle {
    precondition {
      condition     = contains(data.aws_ec2_instance_type.this.supported_architectures, data.aws_ami.service.architecture)
      error_message = "${var.ami_id} is built for ${data.aws_ami.service.architecture}, which ${var.instance_type} does not run (it supports ${join(", ", data.aws_ec2_instance_type.this.supported_architectures)})."
    }

    precondition {
      condition     = var.root_volume_size_gib == null || local.ami_root_volume_gib == null || try(var.root_volume_size_gib >= local.ami_root_volume_gib, true)
      error_message = "root_volume_size_gib (${coalesce(var.root_volume_size_gib, 0)}) is smaller than the root snapshot of ${var.ami_id} (${coalesce(local.ami_root_volume_gib, 0)} GiB): instances would fail to launch. Leave it null or raise it."
    }
  }
}

# How the group follows load, chosen by var.scaling_mode, plus scheduled actions in either mode.

################################################################################
# step: CloudWatch alarms on the group's average CPU drive step-scaling policies
################################################################################

resource "aws_autoscaling_policy" "scale_out" {
  count = local.step_scaling ? 1 : 0

  name                      = "${local.name}-cpu-scale-out"
  autoscaling_group_name    = aws_autoscaling_group.this.name
  policy_type               = "StepScaling"
  adjustment_type           = "ChangeInCapacity"
  metric_aggregation_type   = "Average"
  estimated_instance_warmup = var.instance_warmup_secs

  # Bounds are relative to the alarm's threshold: with the defaults, +1 instance from 60 % to
  # 80 % and +2 from 80 %.
  dynamic "step_adjustment" {
    for_each = local.scale_out_intervals

    content {
      metric_interval_lower_bound = step_adjustment.value.lower
      metric_interval_upper_bound = step_adjustment.value.upper
      scaling_adjustment          = step_adjustment.value.adjustment
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "cpu_high" {
  count = local.step_scaling ? 1 : 0

  alarm_name          = "${local.name}-cpu-high"
  alarm_description   = "Scale out ${local.name}: average CPU above ${var.scale_out_cpu_threshold} % for ${var.scale_out_evaluation_periods} x ${var.scale_out_period_secs} s"
  namespace           = "AWS/EC2"
  metric_name         = "CPUUtilization"
  dimensions          = { AutoScalingGroupName = aws_autoscaling_group.this.name }
  statistic           = "Average"
  period              = var.scale_out_period_secs
  evaluation_periods  = var.scale_out_evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.scale_out_cpu_threshold
  treat_missing_data  = "missing"
  alarm_actions       = [aws_autoscaling_policy.scale_out[0].arn]

  lifecycle {
    precondition {
      condition     = var.scale_out_cpu_threshold + var.scale_out_steps[length(var.scale_out_steps) - 1].lower_bound < 100
      error_message = "The last scale-out step starts at ${var.scale_out_cpu_threshold + var.scale_out_steps[length(var.scale_out_steps) - 1].lower_bound} % CPU (threshold + lower_bound), which average CPU never exceeds."
    }
  }
}

resource "aws_autoscaling_policy" "scale_in" {
  count = local.step_scaling ? 1 : 0

  name                      = "${local.name}-cpu-scale-in"
  autoscaling_group_name    = aws_autoscaling_group.this.name
  policy_type               = "StepScaling"
  adjustment_type           = "ChangeInCapacity"
  metric_aggregation_type   = "Average"
  estimated_instance_warmup = var.instance_warmup_secs

  # Anywhere below the threshold (upper bound 0, no lower bound): remove instances.
  step_adjustment {
    metric_interval_upper_bound = 0
    scaling_adjustment          = var.scale_in_adjustment
  }
}

resource "aws_cloudwatch_metric_alarm" "cpu_low" {
  count = local.step_scaling ? 1 : 0

  alarm_name          = "${local.name}-cpu-low"
  alarm_description   = "Scale in ${local.name}: average CPU below ${var.scale_in_cpu_threshold} % for ${var.scale_in_evaluation_periods} x ${var.scale_in_period_secs} s"
  namespace           = "AWS/EC2"
  metric_name         = "CPUUtilization"
  dimensions          = { AutoScalingGroupName = aws_autoscaling_group.this.name }
  statistic           = "Average"
  period              = var.scale_in_period_secs
  evaluation_periods  = var.scale_in_evaluation_periods
  comparison_operator = "LessThanThreshold"
  threshold           = var.scale_in_cpu_threshold
  treat_missing_data  = "missing"
  alarm_actions       = [aws_autoscaling_policy.scale_in[0].arn]

  lifecycle {
    # A precondition rather than a check block: a check only warns, and alarms whose bands
    # overlap would make the group flap between scale-out and scale-in.
    precondition {
      condition     = var.scale_in_cpu_threshold < var.scale_out_cpu_threshold
      error_message = "scale_in_cpu_threshold (${var.scale_in_cpu_threshold}) must be below scale_out_cpu_threshold (${var.scale_out_cpu_threshold}), or the two alarms fight."
    }
  }
}

################################################################################
# target_tracking: AWS creates and owns the alarms
################################################################################

resource "aws_autoscaling_policy" "cpu_target" {
  count = local.step_scaling ? 0 : 1

  name                   = "${local.name}-cpu-target"
  autoscaling_group_name = aws_autoscaling_group.this.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    target_value = var.target_cpu_percent

    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
  }
}

resource "aws_autoscaling_policy" "requests_target" {
  count = !local.step_scaling && var.target_requests_per_instance != null ? 1 : 0

  name                   = "${local.name}-requests-target"
  autoscaling_group_name = aws_autoscaling_group.this.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    target_value = var.target_requests_per_instance

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this.arn_suffix}"
    }
  }

  # ALBRequestCountPerTarget exists only for a target group that a listener routes to: the
  # label names the load balancer and the group, but nothing in it makes Terraform create
  # the listeners first, and PutScalingPolicy fails on a group no listener uses.
  depends_on = [aws_lb_listener.http, aws_lb_listener.https]
}

################################################################################
# Scheduled actions (either mode): see var.schedules and examples/weekly-business.tfvars
################################################################################

resource "aws_autoscaling_schedule" "this" {
  for_each = var.schedules

  scheduled_action_name  = each.key
  autoscaling_group_name = aws_autoscaling_group.this.name
  recurrence             = each.value.recurrence
  time_zone              = each.value.time_zone
  min_size               = each.value.min_size
  max_size               = each.value.max_size
  desired_capacity       = each.value.desired_capacity
}

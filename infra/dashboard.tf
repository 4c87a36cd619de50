# One dashboard to watch the group scale: capacity, CPU against the scaling thresholds,
# traffic, latency, errors and target health, all at 1-minute resolution; and, from the
# service's own log lines, its errors by route.

locals {
  asg_dimension = ["AutoScalingGroupName", aws_autoscaling_group.this.name]
  lb_dimension  = ["LoadBalancer", aws_lb.this.arn_suffix]
  tg_dimensions = ["TargetGroup", aws_lb_target_group.this.arn_suffix, "LoadBalancer", aws_lb.this.arn_suffix]

  # CloudWatch Logs Insights reads the fields of the service's JSON lines (candidates'
  # telemetry: one object a line, with route and status on every request line). 5xx answers
  # are the service's errors; a 4xx is the client's.
  errors_by_route_query = join(" | ", [
    "SOURCE '${aws_cloudwatch_log_group.service.name}'",
    "filter status >= 500",
    "stats count(*) as errors by route, status",
    "sort errors desc",
    "limit 20",
  ])

  cpu_annotations = local.step_scaling ? [
    { label = "scale out above ${var.scale_out_cpu_threshold} %", value = var.scale_out_cpu_threshold, color = "#d62728" },
    { label = "scale in below ${var.scale_in_cpu_threshold} %", value = var.scale_in_cpu_threshold, color = "#2ca02c" },
    ] : [
    { label = "target ${var.target_cpu_percent} %", value = var.target_cpu_percent, color = "#ff7f0e" },
  ]

  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title  = "Instances: desired vs in service"
        view   = "timeSeries"
        region = local.region
        period = 60
        stat   = "Average"
        metrics = [
          concat(["AWS/AutoScaling", "GroupDesiredCapacity"], local.asg_dimension, [{ label = "desired" }]),
          concat(["AWS/AutoScaling", "GroupInServiceInstances"], local.asg_dimension, [{ label = "in service" }]),
          concat(["AWS/AutoScaling", "GroupPendingInstances"], local.asg_dimension, [{ label = "pending" }]),
          concat(["AWS/AutoScaling", "GroupMaxSize"], local.asg_dimension, [{ label = "max", color = "#7f7f7f" }]),
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title       = "Average CPU of the group (%)"
        view        = "timeSeries"
        region      = local.region
        period      = 60
        stat        = "Average"
        metrics     = [concat(["AWS/EC2", "CPUUtilization"], local.asg_dimension, [{ label = "average CPU" }])]
        annotations = { horizontal = local.cpu_annotations }
        yAxis       = { left = { min = 0, max = 100 } }
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 8, height = 6
      properties = {
        title   = "Requests per minute"
        view    = "timeSeries"
        region  = local.region
        period  = 60
        stat    = "Sum"
        metrics = [concat(["AWS/ApplicationELB", "RequestCount"], local.lb_dimension, [{ label = "requests" }])]
        yAxis   = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 8, y = 6, width = 8, height = 6
      properties = {
        title  = "Target response time (s)"
        view   = "timeSeries"
        region = local.region
        period = 60
        metrics = [
          concat(["AWS/ApplicationELB", "TargetResponseTime"], local.lb_dimension, [{ stat = "p50", label = "p50" }]),
          concat(["AWS/ApplicationELB", "TargetResponseTime"], local.lb_dimension, [{ stat = "p99", label = "p99" }]),
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 16, y = 6, width = 8, height = 6
      properties = {
        title  = "5XX responses per minute"
        view   = "timeSeries"
        region = local.region
        period = 60
        stat   = "Sum"
        metrics = [
          concat(["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"], local.lb_dimension, [{ label = "from the service" }]),
          concat(["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"], local.lb_dimension, [{ label = "from the load balancer" }]),
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 24, height = 6
      properties = {
        title  = "Targets: healthy vs unhealthy"
        view   = "timeSeries"
        region = local.region
        period = 60
        stat   = "Minimum"
        metrics = [
          concat(["AWS/ApplicationELB", "HealthyHostCount"], local.tg_dimensions, [{ label = "healthy" }]),
          concat(["AWS/ApplicationELB", "UnHealthyHostCount"], local.tg_dimensions, [{ stat = "Maximum", label = "unhealthy" }]),
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "log", x = 0, y = 18, width = 24, height = 6
      properties = {
        title  = "Service errors (5xx) by route, from its logs"
        region = local.region
        view   = "table"
        query  = local.errors_by_route_query
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = local.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}

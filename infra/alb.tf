# Public Application Load Balancer -> one target group on the service port, health-checked on
# the service's shallow health path. Timings, with the defaults:
#   health check every 5 s, unhealthy after 2 failures: a draining instance (503) is out of
#   rotation within ~10 s; shutdown_drain_secs (15) keeps it serving that long.
#   deregistration delay 15 s >= request timeout 10 s: in-flight requests finish before the
#   group terminates the instance.

resource "aws_lb" "this" {
  name                       = local.name
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb.id]
  subnets                    = [for subnet in aws_subnet.public : subnet.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = 60

  dynamic "access_logs" {
    for_each = var.access_logs_bucket == null ? [] : [var.access_logs_bucket]

    content {
      bucket  = access_logs.value
      prefix  = local.name
      enabled = true
    }
  }

  tags = {
    Name = local.name
  }
}

resource "aws_lb_target_group" "this" {
  name                 = local.name
  target_type          = "instance"
  protocol             = "HTTP"
  port                 = local.app_port
  vpc_id               = aws_vpc.this.id
  deregistration_delay = var.deregistration_delay_secs

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = local.health_check_path
    matcher             = "200"
    interval            = local.health_check.interval
    timeout             = local.health_check.timeout
    healthy_threshold   = local.health_check.healthy_threshold
    unhealthy_threshold = local.health_check.unhealthy_threshold
  }

  tags = {
    Name = local.name
  }

  lifecycle {
    # Cross-variable rules as preconditions (variable validations may only reference other
    # variables from Terraform 1.9; this module supports 1.5). They stop the plan.
    precondition {
      condition     = var.shutdown_drain_secs >= local.health_check.interval * local.health_check.unhealthy_threshold
      error_message = "shutdown_drain_secs (${var.shutdown_drain_secs}) must be at least ${local.health_check.interval * local.health_check.unhealthy_threshold} s (health check interval x unhealthy threshold), so the load balancer has stopped sending traffic before the service stops accepting it."
    }

    precondition {
      condition     = var.deregistration_delay_secs >= var.request_timeout_secs
      error_message = "deregistration_delay_secs (${var.deregistration_delay_secs}) must be at least request_timeout_secs (${var.request_timeout_secs}), so requests in flight on a deregistered instance can finish."
    }

    precondition {
      condition     = var.shutdown_drain_secs + var.request_timeout_secs + 1 < local.systemd_stop_timeout_secs
      error_message = "shutdown_drain_secs + request_timeout_secs + 1 (${var.shutdown_drain_secs + var.request_timeout_secs + 1} s) must stay under the systemd unit's TimeoutStopSec (${local.systemd_stop_timeout_secs} s), or systemd kills the service mid-request."
    }
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  # Without a certificate, port 80 serves the demo; with one, it only redirects to HTTPS.
  default_action {
    type             = local.https ? "redirect" : "forward"
    target_group_arn = local.https ? null : aws_lb_target_group.this.arn

    dynamic "redirect" {
      for_each = local.https ? ["HTTPS"] : []

      content {
        protocol    = redirect.value
        port        = "443"
        status_code = "HTTP_301"
      }
    }
  }

  tags = {
    Name = "${local.name}-http"
  }
}

resource "aws_lb_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }

  tags = {
    Name = "${local.name}-https"
  }

  lifecycle {
    # No certificate covers the load balancer's own name (*.elb.amazonaws.com belongs to AWS),
    # so HTTPS is only reachable, and the deploy only testable, under a name of the user's.
    precondition {
      condition     = var.domain_name != null
      error_message = "certificate_arn is set but domain_name is not: HTTPS needs the DNS name the certificate covers (for example candidates.example.com), which you point at the load balancer (output alb_dns_name). No certificate can cover the load balancer's own *.elb.amazonaws.com name. Set domain_name, or unset certificate_arn to serve plain HTTP."
    }
  }
}

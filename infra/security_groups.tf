# Two security groups, one rule per resource (aws_vpc_security_group_*_rule), so each rule has
# its own description and changes without replacing the others:
#   internet (allowed_cidrs) --80/443--> ALB --app_port--> instances --443--> AWS APIs
# No SSH anywhere: operators use Session Manager.

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "Load balancer of ${local.name}: HTTP(S) in from the allowed CIDRs, out to the instances only"
  vpc_id      = aws_vpc.this.id

  tags = {
    Name = "${local.name}-alb"
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each = toset(var.allowed_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = local.https ? "HTTP from ${each.value} (redirected to HTTPS)" : "HTTP from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = local.https ? toset(var.allowed_cidrs) : toset([])

  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_instances" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Requests and health checks to the instances"
  ip_protocol                  = "tcp"
  from_port                    = local.app_port
  to_port                      = local.app_port
  referenced_security_group_id = aws_security_group.instance.id
}

resource "aws_security_group" "instance" {
  name        = "${local.name}-instance"
  description = "Instances of ${local.name}: the service port from the load balancer only, HTTPS out"
  vpc_id      = aws_vpc.this.id

  tags = {
    Name = "${local.name}-instance"
  }
}

resource "aws_vpc_security_group_ingress_rule" "instance_from_alb" {
  security_group_id            = aws_security_group.instance.id
  description                  = "The service port, from the load balancer only"
  ip_protocol                  = "tcp"
  from_port                    = local.app_port
  to_port                      = local.app_port
  referenced_security_group_id = aws_security_group.alb.id
}

# HTTPS out to AWS APIs: DynamoDB (through the gateway endpoint), Session Manager (ssm,
# ssmmessages, ec2messages) and the Amazon Linux package repositories. DNS, NTP and the
# instance metadata service are link-local and never filtered by security groups.
resource "aws_vpc_security_group_egress_rule" "instance_https" {
  security_group_id = aws_security_group.instance.id
  description       = "HTTPS to AWS APIs (DynamoDB, Session Manager) and package repositories"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

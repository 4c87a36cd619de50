# One VPC with a public subnet per Availability Zone. The instances sit in the public subnets
# too, with public IPv4 addresses, so they reach Session Manager and the AWS APIs through the
# internet gateway without a NAT gateway (which would cost more than the instances); nothing
# reaches them from outside: their security group admits only the load balancer's.
# DynamoDB traffic takes the gateway endpoint and never leaves the AWS network.

# No `state = "available"` filter on purpose: a zone that is briefly impaired at plan time must
# not make Terraform move a subnet. Zones are sorted and the first az_count kept, and a zone AWS
# adds later takes the next letter, so the selection of a running stack does not drift.
data "aws_availability_zones" "available" {
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

data "aws_ec2_instance_type_offerings" "instance_type" {
  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = [var.instance_type]
  }
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = {
    Name = local.name
  }

  lifecycle {
    # The VPC is the first resource of the stack: the rules about the environment's name live
    # here, so a bad workspace stops the plan before anything is created.
    precondition {
      condition     = local.environment != "default" && can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", local.environment))
      error_message = "Select a workspace named after the environment, e.g. `terraform workspace select -or-create perf1`: lowercase letters, digits and hyphens, not \"default\" (got \"${local.environment}\")."
    }

    precondition {
      condition     = length(local.name) <= 32
      error_message = "\"${local.name}\" is ${length(local.name)} characters: load balancer and target group names allow 32. Shorten the workspace name or var.project."
    }

    precondition {
      condition     = length(local.azs) == var.az_count
      error_message = "${local.region} has ${length(local.usable_azs)} available zones offering ${var.instance_type}; az_count asks for ${var.az_count}."
    }
  }
}

# Strip every rule from the VPC's default security group, so nothing that lands in it by
# mistake is reachable or can reach out.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = {
    Name = "${local.name}-default-deny"
  }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = {
    Name = local.name
  }
}

resource "aws_subnet" "public" {
  for_each = { for index, az in local.azs : az => index }

  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.key
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, each.value)
  map_public_ip_on_launch = true

  tags = {
    Name = "${local.name}-public-${each.key}"
  }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = {
    Name = "${local.name}-public"
  }
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  for_each = aws_subnet.public

  subnet_id      = each.value.id
  route_table_id = aws_route_table.public.id
}

# Gateway endpoints are free: the instances' DynamoDB calls stay on the AWS network.
resource "aws_vpc_endpoint" "dynamodb" {
  vpc_id            = aws_vpc.this.id
  service_name      = data.aws_service.dynamodb.reverse_dns_name
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.public.id]

  tags = {
    Name = "${local.name}-dynamodb"
  }
}

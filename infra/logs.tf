# The service's log lines, readable after the instance that wrote them is gone: the
# CloudWatch agent baked into the AMI (packer/files/cloudwatch-agent.json) ships the
# service's log file to this group, one stream per instance (its id). scripts/logs.sh reads
# them; validate.sh and apply.sh print an unhealthy instance's last lines; the dashboard's
# log widget counts errors by route.

resource "aws_cloudwatch_log_group" "service" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days

  tags = {
    Name = local.log_group_name
  }
}

# What the agent calls, on this group and its streams only. No logs:CreateLogGroup: Terraform
# owns the group, so an agent still running after `terraform destroy` cannot bring it back.
# The ARN has no ":*" suffix (the provider strips it); "<arn>:*" covers the streams.
data "aws_iam_policy_document" "service_logs" {
  statement {
    sid    = "ServiceLogGroup"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [
      aws_cloudwatch_log_group.service.arn,
      "${aws_cloudwatch_log_group.service.arn}:*",
    ]
  }
}

resource "aws_iam_role_policy" "service_logs" {
  name   = "service-logs"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.service_logs.json
}

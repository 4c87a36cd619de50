output "url" {
  description = "Base URL of the service: https://<domain_name> when certificate_arn is set (point that name at alb_dns_name), else http://<alb_dns_name>."
  value       = local.https ? "https://${var.domain_name}" : "http://${aws_lb.this.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "alb_arn_suffix" {
  description = "ARN suffix of the load balancer (app/<name>/<id>), the LoadBalancer dimension of its CloudWatch metrics (scripts/rehearse.sh --load-from-cloudwatch reads them)."
  value       = aws_lb.this.arn_suffix
}

output "asg_name" {
  description = "Name of the Auto Scaling group (for scripts/scale.sh and the AWS CLI)."
  value       = aws_autoscaling_group.this.name
}

output "table_name" {
  description = "Name of the DynamoDB table the service stores candidates in."
  value       = aws_dynamodb_table.candidates.name
}

output "dashboard_url" {
  description = "Console URL of the CloudWatch dashboard."
  value       = "https://${local.console_host}/cloudwatch/home?region=${local.region}#dashboards/dashboard/${aws_cloudwatch_dashboard.this.dashboard_name}"
}

output "target_group_arn" {
  description = "ARN of the target group (scripts wait on its target health)."
  value       = aws_lb_target_group.this.arn
}

output "log_group_name" {
  description = "CloudWatch Logs group of the service's log lines, one stream per instance (scripts/logs.sh reads it)."
  value       = aws_cloudwatch_log_group.service.name
}

output "ami_id" {
  description = "The AMI the launch template launches (apply.sh records it as the rollback target of the next deploy)."
  value       = aws_launch_template.this.image_id
}

output "region" {
  description = "Region the stack runs in."
  value       = local.region
}

output "environment" {
  description = "Environment, i.e. the Terraform workspace."
  value       = local.environment
}

output "project" {
  description = "Project name (var.project): the prefix of every name and the Project tag; destroy.sh removes this project's AMIs."
  value       = var.project
}

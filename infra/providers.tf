provider "aws" {
  # null: the region comes from the AWS SDK chain (AWS_REGION, the profile), like the service's.
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project     = var.project
      Environment = local.environment
      ManagedBy   = "terraform"
    })
  }
}

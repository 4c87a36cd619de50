provider "aws" {
  # null: the region comes from the AWS SDK chain (AWS_REGION, the profile), like the service's.
  region = var.region

  # Tags that scripts write on resources Terraform manages, and that an apply must leave alone:
  # PreviousAmi on the launch template (apply.sh records the AMI a deploy replaced, for
  # ./apply.sh ENV --rollback and for destroy.sh to keep it).
  ignore_tags {
    keys = ["PreviousAmi"]
  }

  default_tags {
    tags = merge(var.tags, {
      Project     = var.project
      Environment = local.environment
      ManagedBy   = "terraform"
    })
  }
}

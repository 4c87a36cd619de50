# Inputs of the AMI build. apply.sh sets them with -var; every one has a type and a
# description, and the ones without a default must come from the caller.

variable "project" {
  type        = string
  description = "Project name: the AMI's name prefix and its Project tag, which apply.sh and destroy.sh look AMIs up by. apply.sh passes the same value it gives Terraform (AXUM_ASG_PROJECT, default axum-asg)."
  default     = "axum-asg"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.project))
    error_message = "project must be 2 to 20 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "region" {
  type        = string
  description = "AWS region to build the AMI in (the region the stack runs in)."
  default     = "us-east-1"
}

variable "instance_type" {
  type        = string
  description = "Instance type of the temporary build instance: x86_64, like the image it builds."
  default     = "t3.small"

  # The same rule as infra/'s instance_type: a Graviton type cannot boot the x86_64 base image.
  validation {
    condition     = !can(regex("^(a1|[a-z]+[0-9]+[a-z]*g[a-z]*)\\.", var.instance_type))
    error_message = "The build instance must be x86_64, like the image: Graviton (arm64) types such as t4g or c7g are not supported."
  }
}

variable "subnet_id" {
  type        = string
  description = "Subnet for the build instance (apply.sh --packer-subnet); empty builds in the region's default VPC. It must route to an internet gateway: the instance gets a public address for Packer's SSH and the package repositories."
  default     = ""
}

variable "root_volume_size" {
  type        = number
  description = "Size in GiB of the AMI's encrypted gp3 root volume (Amazon Linux 2023 needs at least 8)."
  default     = 8

  validation {
    condition     = var.root_volume_size >= 8
    error_message = "The root volume must be at least 8 GiB, the size of the Amazon Linux 2023 snapshot."
  }
}

variable "binary_path" {
  type        = string
  description = "The release binary built by scripts/build_release.sh; empty means dist/candidates of this repository. Its .sha256 file must sit beside it."
  default     = ""
}

variable "git_revision" {
  type        = string
  description = "Git commit the binary was built from; tags the AMI and goes into the manifest."

  validation {
    condition     = length(var.git_revision) > 0
    error_message = "Set git_revision (apply.sh passes the current commit)."
  }
}

variable "inputs_hash" {
  type        = string
  description = "Hash of everything that goes into the AMI (binary, unit, install script, template); apply.sh reuses an AMI whose InputsHash tag matches."

  validation {
    condition     = length(var.inputs_hash) > 0
    error_message = "Set inputs_hash (apply.sh computes it from the AMI's inputs)."
  }
}

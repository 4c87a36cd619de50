terraform {
  # 1.5: `check` blocks and `import` blocks; optional object attributes with defaults (1.3).
  # Cross-variable rules are lifecycle preconditions, not 1.9-style validations, so 1.5 is enough.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

terraform {
  # 1.5: `check` blocks and `import` blocks; optional object attributes with defaults (1.3).
  # Cross-variable rules are lifecycle preconditions, not 1.9-style validations, so 1.5 is enough.
  required_version = ">= 1.5"

  # Both majors: 5.100 (the last 5.x, still common in pinned lock files and emulator setups)
  # and 6.x. The configuration uses nothing that only one of them has: tf-schema-check covers
  # 6.x names, and the test suite validates, applies and destroys it with a real 5.100.
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }
}

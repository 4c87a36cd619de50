# The AMI of the axum-asg Auto Scaling Group: Amazon Linux 2023 (x86_64), patched, with
# the candidates binary and its hardened systemd unit installed and enabled, and the
# CloudWatch agent that ships the service's log lines. The unit starts only once the
# launch template's user data has written its environment file (and started the agent).
# The image is sealed last: no machine-id, no cloud-init state of the build instance.
#
#   packer init packer/ && packer build -var git_revision=... -var inputs_hash=... packer/
#
# apply.sh runs this and reads builds[-1].artifact_id ("region:ami-id") from
# packer/manifest.json. Variables are in variables.pkr.hcl.

packer {
  required_version = ">= 1.9.0"
  required_plugins {
    amazon = {
      source = "github.com/hashicorp/amazon"
      # Any 1.x from 1.3 (imds_support, the manifest's custom_data): a major release may
      # rename or drop arguments, so it waits for a deliberate change here.
      version = "~> 1.3"
    }
  }
}

locals {
  # One timestamp for the AMI's name and its Name tag, so they always agree.
  timestamp = formatdate("YYYYMMDDhhmmss", timestamp())
  ami_name  = "${var.project}-${local.timestamp}"

  binary_path = var.binary_path != "" ? var.binary_path : "${path.root}/../dist/candidates"
  # Where the file provisioners stage the uploads for scripts/install.sh.
  staging_dir = "/tmp/candidates-staging"

  tags = {
    Project     = var.project
    GitRevision = var.git_revision
    InputsHash  = var.inputs_hash
  }
}

# The newest Amazon Linux 2023 standard image (not "minimal") for x86_64, published by
# Amazon. The service binary is built for its glibc (2.34) by scripts/build_release.sh, for
# x86_64 only: Graviton (arm64) is not offered (infra/ refuses such instance types).
data "amazon-ami" "al2023" {
  region      = var.region
  owners      = ["amazon"]
  most_recent = true
  filters = {
    name                = "al2023-ami-2023.*-x86_64"
    architecture        = "x86_64"
    virtualization-type = "hvm"
    root-device-type    = "ebs"
  }
}

source "amazon-ebs" "candidates" {
  region        = var.region
  source_ami    = data.amazon-ami.al2023.id
  instance_type = var.instance_type
  # Empty: the region's default VPC and one of its subnets. Another subnet (apply.sh
  # --packer-subnet, for accounts without a default VPC) must route to an internet gateway:
  # the build instance gets a public address, so Packer reaches it over SSH and it reaches
  # the package repositories.
  subnet_id                   = var.subnet_id
  associate_public_ip_address = true

  ami_name        = local.ami_name
  ami_description = "${var.project} candidates service on Amazon Linux 2023 (${var.git_revision})"
  # Instances launched from the AMI accept only IMDSv2 by default.
  imds_support  = "v2.0"
  tags          = merge(local.tags, { Name = local.ami_name })
  snapshot_tags = merge(local.tags, { Name = local.ami_name })
  # The temporary instance, key pair, security group and volume. Same tags as the
  # AMI: recent plugin versions copy run_tags onto the AMI, so they must agree.
  run_tags        = merge(local.tags, { Name = local.ami_name })
  run_volume_tags = merge(local.tags, { Name = local.ami_name })

  # The build instance itself uses IMDSv2 only, like the instances of the group.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  # Encrypted gp3 root volume (the region's default EBS key); encrypting at launch
  # makes the snapshot, and so the AMI, encrypted without a copy step.
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    encrypted             = true
    delete_on_termination = true
  }

  # SSH with a throwaway key pair, through a temporary security group open only to
  # the public address Packer runs from. Session Manager would also need the session
  # manager plugin where Packer runs and an instance profile; for a build instance
  # that lives ten minutes this is simpler, and the AMI keeps no key.
  communicator                              = "ssh"
  ssh_username                              = "ec2-user"
  temporary_key_pair_type                   = "ed25519"
  temporary_security_group_source_public_ip = true
  ssh_clear_authorized_keys                 = true
  ssh_timeout                               = "10m"
}

build {
  name    = "candidates"
  sources = ["source.amazon-ebs.candidates"]

  provisioner "shell" {
    inline = ["mkdir -p -m 0700 ${local.staging_dir}"]
  }

  provisioner "file" {
    source      = local.binary_path
    destination = "${local.staging_dir}/candidates"
  }

  provisioner "file" {
    source      = "${local.binary_path}.sha256"
    destination = "${local.staging_dir}/candidates.sha256"
  }

  provisioner "file" {
    source      = "${path.root}/files/candidates.service"
    destination = "${local.staging_dir}/candidates.service"
  }

  # The log shipping: the CloudWatch agent's configuration (user data fills in the log
  # group) and the rotation of the service's log file.
  provisioner "file" {
    sources = [
      "${path.root}/files/cloudwatch-agent.json",
      "${path.root}/files/candidates-logrotate.conf",
      "${path.root}/files/candidates-logrotate.service",
      "${path.root}/files/candidates-logrotate.timer",
    ]
    destination = "${local.staging_dir}/"
  }

  provisioner "shell" {
    script           = "${path.root}/scripts/install.sh"
    environment_vars = ["STAGING_DIR=${local.staging_dir}"]
    execute_command  = "sudo env {{ .Vars }} bash {{ .Path }}"
  }

  # Last: nothing may run on the build instance after its identity is cleared.
  provisioner "shell" {
    script          = "${path.root}/scripts/seal.sh"
    execute_command = "sudo env {{ .Vars }} bash {{ .Path }}"
  }

  post-processor "manifest" {
    output     = "${path.root}/manifest.json"
    strip_path = true
    custom_data = {
      inputs_hash  = var.inputs_hash
      git_revision = var.git_revision
      ami_name     = local.ami_name
    }
  }
}

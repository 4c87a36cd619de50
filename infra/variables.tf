################################################################################
# Naming and placement
################################################################################

variable "project" {
  description = "Project name: the first part of every resource name (\"<project>-<workspace>\") and the Project tag. The environment is the Terraform workspace."
  type        = string
  default     = "axum-asg"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.project))
    error_message = "project must be 2 to 20 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen (load balancer and target group names allow 32 characters in all)."
  }
}

variable "region" {
  description = "AWS region to deploy to. null takes it from the AWS SDK chain (AWS_REGION, AWS_PROFILE's region), as the service does. Keep it the same for the life of a workspace."
  type        = string
  default     = null

  validation {
    condition     = var.region == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like us-east-1 or eu-west-3."
  }
}

variable "tags" {
  description = "Extra tags for every resource (Project, Environment and ManagedBy are always set and win over these)."
  type        = map(string)
  default     = {}
}

################################################################################
# Network
################################################################################

variable "az_count" {
  description = "How many Availability Zones to spread over (one public subnet each). The load balancer needs at least 2; zones come from aws_availability_zones, never hard-coded."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number from 2 to 6."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC, /16 to /19; each zone gets a subnet 8 bits longer (/24 for a /16)."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition = (
      can(cidrhost(var.vpc_cidr, 0)) &&
      can(regex("^[0-9.]+/(16|17|18|19)$", var.vpc_cidr))
    )
    error_message = "vpc_cidr must be an IPv4 CIDR block with a prefix length from /16 to /19, such as 10.42.0.0/16."
  }
}

variable "allowed_cidrs" {
  description = "IPv4 CIDR blocks allowed to reach the load balancer on port 80 (and 443 when certificate_arn is set). The instances are never reachable from these: only from the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition = length(var.allowed_cidrs) > 0 && alltrue([
      for cidr in var.allowed_cidrs : can(cidrhost(cidr, 0)) && !strcontains(cidr, ":")
    ])
    error_message = "allowed_cidrs must hold at least one IPv4 CIDR block, such as 203.0.113.0/24."
  }
}

################################################################################
# Load balancer
################################################################################

variable "certificate_arn" {
  description = "ARN of an ACM certificate in the same region, covering domain_name (required with it). When set, the load balancer serves HTTPS on 443 and port 80 redirects to it; when null, port 80 forwards to the instances."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)."
  }
}

variable "domain_name" {
  description = "DNS name the certificate covers and that you point at alb_dns_name (a CNAME or alias you manage). Required with certificate_arn (a plan-time check): the url output and scripts/validate.sh use it, and validate.sh reaches the new load balancer under this name before the DNS record exists."
  type        = string
  default     = null

  validation {
    condition     = var.domain_name == null || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be a lowercase DNS name such as candidates.example.com."
  }
}

variable "ssl_policy" {
  description = "Security policy of the HTTPS listener (only used with certificate_arn). The default is the one AWS recommends: TLS 1.3 and 1.2 only, with hybrid post-quantum key exchange (ML-KEM) for clients that offer it and classical key exchange for the others. ELBSecurityPolicy-TLS13-1-2-2021-06 is the same without post-quantum key exchange."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"

  validation {
    condition     = startswith(var.ssl_policy, "ELBSecurityPolicy-")
    error_message = "ssl_policy must be an ELB security policy name, such as ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09."
  }
}

variable "access_logs_bucket" {
  description = "Name of an existing S3 bucket, with the bucket policy that lets Elastic Load Balancing write to it, that receives the load balancer's access logs under the <project>-<environment>/ prefix. null: no access logs (the default, to keep the demo free of a bucket to empty before destroy)."
  type        = string
  default     = null

  validation {
    condition     = var.access_logs_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.access_logs_bucket))
    error_message = "access_logs_bucket must be an S3 bucket name."
  }
}

variable "deletion_protection" {
  description = "Deletion protection on the DynamoDB table and the load balancer. Leave false for throwaway environments (./destroy.sh must be able to delete them); set true for production."
  type        = bool
  default     = false
}

################################################################################
# Instances
################################################################################

variable "ami_id" {
  description = "The AMI baked by Packer (packer/), with the candidates binary, its systemd unit and the CloudWatch agent. It is x86_64, as instance_type must be."
  type        = string

  validation {
    condition     = can(regex("^ami-([0-9a-f]{8}|[0-9a-f]{17})$", var.ami_id))
    error_message = "ami_id must be an AMI id such as ami-0123456789abcdef0."
  }
}

variable "instance_type" {
  description = <<-EOT
    EC2 instance type, x86_64: the binary, the AMI and its build are x86_64 only, so AWS
    Graviton (arm64) types such as t4g, c7g or m8g are refused. T3 and T3a run in unlimited
    credit mode: a burstable instance in standard mode that runs out of CPU credits is
    throttled to its baseline (10 % on a t3.micro), so its CPUUtilization stays pinned near the
    baseline however loaded it is: the scale-out alarm never sees the load and the group never
    grows. Unlimited mode lets it run at full speed (surplus credits are billed) so the metric
    tells the truth. T2 (and T1) are refused: previous generation, standard credits by default,
    slower and dearer than T3 per vCPU.
  EOT
  type        = string
  default     = "t3.micro"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must be an EC2 instance type such as t3.micro or c7i.large."
  }

  validation {
    condition     = !can(regex("^t[12]\\.", var.instance_type))
    error_message = "T1/T2 instances are refused: once out of CPU credits they are throttled to baseline and CPUUtilization pins there, so CPU alarms see a lie. Use t3 or t3a (unlimited mode) or a non-burstable type."
  }

  # Graviton families: a1, and every family with a "g" after its generation number (t4g, c7g,
  # c7gn, m8g, im4gn, is4gen, x2gd...). Intel and AMD families never have one there.
  validation {
    condition     = !can(regex("^(a1|[a-z]+[0-9]+[a-z]*g[a-z]*)\\.", var.instance_type))
    error_message = "AWS Graviton (arm64) instance types such as t4g, c7g or m8g are not supported: the service binary, the AMI Packer bakes and its build instance are x86_64 only. Use an x86_64 type such as t3.micro, t3a.micro, c7i.large or m7i.large."
  }
}

variable "root_volume_size_gib" {
  description = "Size of the encrypted gp3 root volume in GiB. null keeps the AMI's own size; a value must be at least that."
  type        = number
  default     = null

  validation {
    condition     = var.root_volume_size_gib == null || try(var.root_volume_size_gib >= 1 && var.root_volume_size_gib <= 16384 && floor(var.root_volume_size_gib) == var.root_volume_size_gib, false)
    error_message = "root_volume_size_gib must be null or a whole number of GiB from 1 to 16384."
  }
}

################################################################################
# Logs
################################################################################

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps the service's log lines (the log group /<project>/<environment>/candidates, one stream per instance). One of the values CloudWatch Logs accepts; 0 keeps them forever. Ingestion and storage are billed per GB."
  type        = number
  default     = 30

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the retention periods CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653 days, or 0 to keep the logs forever."
  }
}

################################################################################
# Auto Scaling group
################################################################################

variable "min_size" {
  description = "Fewest instances in the group (the group starts there; scaling and schedules move it between min_size and max_size). Two keep an instance in a second zone."
  type        = number
  default     = 2

  validation {
    condition     = var.min_size >= 1 && floor(var.min_size) == var.min_size
    error_message = "min_size must be a whole number of at least 1."
  }
}

variable "max_size" {
  description = "Most instances in the group. Must be at least min_size (a precondition checks it)."
  type        = number
  default     = 4

  validation {
    condition     = var.max_size >= 1 && var.max_size <= 100 && floor(var.max_size) == var.max_size
    error_message = "max_size must be a whole number from 1 to 100."
  }
}

variable "health_check_grace_period_secs" {
  description = "Seconds after an instance enters service before the group acts on failing load-balancer health checks: a cold boot (EC2 start, Amazon Linux boot, user data, service start) must fit."
  type        = number
  default     = 120

  validation {
    condition     = var.health_check_grace_period_secs >= 30 && var.health_check_grace_period_secs <= 900
    error_message = "health_check_grace_period_secs must be from 30 to 900."
  }
}

variable "instance_warmup_secs" {
  description = "Seconds until a new instance's CPU counts in the group's metrics and scaling decisions: the group's default_instance_warmup, the step policies' estimated_instance_warmup and the instance refresh's pace between replacements."
  type        = number
  default     = 90

  validation {
    condition     = var.instance_warmup_secs >= 0 && var.instance_warmup_secs <= 900
    error_message = "instance_warmup_secs must be from 0 to 900."
  }
}

################################################################################
# Draining: how the load balancer, the service and systemd hand an instance over
################################################################################

variable "deregistration_delay_secs" {
  description = "Seconds the load balancer lets in-flight requests finish on a target being deregistered (scale-in, instance refresh) before the instance is terminated. At least request_timeout_secs, so no request is cut."
  type        = number
  default     = 15

  validation {
    condition     = var.deregistration_delay_secs >= 0 && var.deregistration_delay_secs <= 3600
    error_message = "deregistration_delay_secs must be from 0 to 3600."
  }
}

variable "shutdown_drain_secs" {
  description = "CANDIDATES_SHUTDOWN_DRAIN_SECS: on SIGTERM the service answers 503 on the health path and keeps serving this long, so the load balancer (health check every 5 s, unhealthy after 2 failures) takes it out of rotation before it stops accepting. At least the load balancer's detection time (5 s x 2); at most what the stop rule leaves: shutdown_drain_secs + request_timeout_secs + 1 < 90, the systemd unit's TimeoutStopSec (local.systemd_stop_timeout_secs; the service refuses to start otherwise). Both bounds are plan-time preconditions on the target group."
  type        = number
  default     = 15

  validation {
    # The upper bound depends on request_timeout_secs: the stop rule's precondition (alb.tf).
    condition     = var.shutdown_drain_secs >= 0 && floor(var.shutdown_drain_secs) == var.shutdown_drain_secs
    error_message = "shutdown_drain_secs must be a whole number of seconds, 0 or more."
  }
}

variable "request_timeout_secs" {
  description = "CANDIDATES_REQUEST_TIMEOUT_SECS: the longest a request may take in the service before it answers 503. Bounds what draining and deregistration must wait for."
  type        = number
  default     = 10

  validation {
    condition     = var.request_timeout_secs >= 1 && var.request_timeout_secs <= 60 && floor(var.request_timeout_secs) == var.request_timeout_secs
    error_message = "request_timeout_secs must be a whole number from 1 to 60 (the load balancer's idle timeout is 60 s)."
  }
}

################################################################################
# Scaling
################################################################################

variable "scaling_mode" {
  description = "How the group follows load: \"step\" (CloudWatch alarms on average CPU drive step-scaling policies; thresholds and steps below) or \"target_tracking\" (AWS keeps average CPU, and optionally requests per instance, near a target)."
  type        = string
  default     = "step"

  validation {
    condition     = contains(["step", "target_tracking"], var.scaling_mode)
    error_message = "scaling_mode must be \"step\" or \"target_tracking\"."
  }
}

variable "scale_out_cpu_threshold" {
  description = "step mode: the group scales out when its average CPUUtilization is above this percentage for scale_out_evaluation_periods periods. Must stay above scale_in_cpu_threshold (a precondition checks it)."
  type        = number
  default     = 60

  validation {
    condition     = var.scale_out_cpu_threshold > 0 && var.scale_out_cpu_threshold < 100
    error_message = "scale_out_cpu_threshold must be a percentage between 0 and 100 (exclusive)."
  }
}

variable "scale_out_period_secs" {
  description = "step mode: length of one period of the scale-out alarm, in seconds: a multiple of 60 (detailed monitoring publishes CPU every minute)."
  type        = number
  default     = 60

  validation {
    condition     = var.scale_out_period_secs >= 60 && var.scale_out_period_secs % 60 == 0
    error_message = "scale_out_period_secs must be a multiple of 60, at least 60."
  }
}

variable "scale_out_evaluation_periods" {
  description = "step mode: consecutive periods above the threshold before the group scales out."
  type        = number
  default     = 2

  validation {
    condition     = var.scale_out_evaluation_periods >= 1 && var.scale_out_evaluation_periods <= 10 && floor(var.scale_out_evaluation_periods) == var.scale_out_evaluation_periods
    error_message = "scale_out_evaluation_periods must be a whole number from 1 to 10."
  }
}

variable "scale_out_steps" {
  description = "step mode: instances to add by how far average CPU is above scale_out_cpu_threshold. lower_bound is relative to the threshold (not an absolute percentage); each step lasts until the next one's lower_bound and the last one is open-ended. The default adds 1 from 60 % and 2 from 80 %."
  type = list(object({
    lower_bound = number
    adjustment  = number
  }))
  default = [
    { lower_bound = 0, adjustment = 1 },
    { lower_bound = 20, adjustment = 2 },
  ]

  validation {
    condition     = try(var.scale_out_steps[0].lower_bound == 0, false)
    error_message = "scale_out_steps must hold at least one step, and the first must start at lower_bound = 0 (the threshold itself)."
  }

  validation {
    condition = alltrue([
      for index, step in var.scale_out_steps :
      step.adjustment >= 1 && floor(step.adjustment) == step.adjustment &&
      (index == 0 || step.lower_bound > var.scale_out_steps[max(index - 1, 0)].lower_bound)
    ])
    error_message = "Each scale_out_steps adjustment must be a whole number of at least 1, and lower bounds must increase strictly."
  }
}

variable "scale_in_cpu_threshold" {
  description = "step mode: the group scales in when its average CPUUtilization is below this percentage for scale_in_evaluation_periods periods. Keep it well below scale_out_cpu_threshold: removing one instance raises the others' CPU, and the two alarms must not fight."
  type        = number
  default     = 30

  validation {
    condition     = var.scale_in_cpu_threshold > 0 && var.scale_in_cpu_threshold < 100
    error_message = "scale_in_cpu_threshold must be a percentage between 0 and 100 (exclusive)."
  }
}

variable "scale_in_period_secs" {
  description = "step mode: length of one period of the scale-in alarm, in seconds: a multiple of 60."
  type        = number
  default     = 60

  validation {
    condition     = var.scale_in_period_secs >= 60 && var.scale_in_period_secs % 60 == 0
    error_message = "scale_in_period_secs must be a multiple of 60, at least 60."
  }
}

variable "scale_in_evaluation_periods" {
  description = "step mode: consecutive periods below the threshold before the group scales in (longer than scale-out: adding capacity is urgent, removing it is not)."
  type        = number
  default     = 5

  validation {
    condition     = var.scale_in_evaluation_periods >= 1 && var.scale_in_evaluation_periods <= 30 && floor(var.scale_in_evaluation_periods) == var.scale_in_evaluation_periods
    error_message = "scale_in_evaluation_periods must be a whole number from 1 to 30."
  }
}

variable "scale_in_adjustment" {
  description = "step mode: instances to remove (a negative number) each time the scale-in alarm fires."
  type        = number
  default     = -1

  validation {
    condition     = var.scale_in_adjustment <= -1 && floor(var.scale_in_adjustment) == var.scale_in_adjustment
    error_message = "scale_in_adjustment must be a negative whole number, such as -1."
  }
}

variable "target_cpu_percent" {
  description = "target_tracking mode: the average CPUUtilization the group is kept near."
  type        = number
  default     = 50

  validation {
    condition     = var.target_cpu_percent >= 10 && var.target_cpu_percent <= 90
    error_message = "target_cpu_percent must be from 10 to 90."
  }
}

variable "target_requests_per_instance" {
  description = "target_tracking mode: when set, a second policy keeps ALBRequestCountPerTarget (requests per instance per minute) near this value; the group scales out when either policy asks and in only when both agree. null: CPU only."
  type        = number
  default     = null

  validation {
    condition     = var.target_requests_per_instance == null || try(var.target_requests_per_instance > 0, false)
    error_message = "target_requests_per_instance must be null or a positive number of requests per instance per minute."
  }
}

variable "schedules" {
  description = <<-EOT
    Recurring scheduled actions, in either scaling mode, keyed by action name. Each sets the
    group's sizes when its cron expression (minute hour day-of-month month day-of-week) fires, in
    time_zone (IANA name, default Etc/UTC); -1 (the default) leaves that size unchanged. An
    action only acts at its start time, so a calendar needs one action at every transition;
    see examples/weekly-business.tfvars. Leaving desired_capacity at -1 lets the scaling
    policies keep control: AWS only clamps the current capacity into the new [min, max].
    A later terraform apply puts min_size and max_size back to the variables until the next
    action fires.
  EOT
  type = map(object({
    recurrence       = string
    time_zone        = optional(string, "Etc/UTC")
    min_size         = optional(number, -1)
    max_size         = optional(number, -1)
    desired_capacity = optional(number, -1)
  }))
  default = {}

  validation {
    condition     = alltrue([for name, s in var.schedules : can(regex("^[A-Za-z0-9_-]{1,64}$", name))])
    error_message = "Schedule names must be 1 to 64 letters, digits, hyphens or underscores."
  }

  validation {
    condition     = alltrue([for s in var.schedules : can(regex("^[0-9*,/-]+ [0-9*,/-]+ [0-9*,/?LW-]+ [0-9A-Za-z*,/-]+ [0-9A-Za-z*,/?L#-]+$", s.recurrence))])
    error_message = "Each schedule's recurrence must be a five-field cron expression (minute hour day-of-month month day-of-week), such as \"0 7 * * 1-5\"."
  }

  validation {
    condition     = alltrue([for s in var.schedules : can(regex("^[A-Za-z]+(/[A-Za-z0-9_+-]+)*$", s.time_zone))])
    error_message = "Each schedule's time_zone must be an IANA time zone name, such as Europe/Paris or Etc/UTC."
  }

  validation {
    condition = alltrue([
      for s in var.schedules : alltrue([
        for size in [s.min_size, s.max_size, s.desired_capacity] : size >= -1 && floor(size) == size
      ]) && !(s.min_size == -1 && s.max_size == -1 && s.desired_capacity == -1)
    ])
    error_message = "Each schedule must set at least one of min_size, max_size, desired_capacity, as whole numbers (-1 leaves a size unchanged)."
  }

  validation {
    condition = alltrue([
      for s in var.schedules :
      (s.min_size == -1 || s.max_size == -1 || s.min_size <= s.max_size) &&
      (s.desired_capacity == -1 || s.min_size == -1 || s.min_size <= s.desired_capacity) &&
      (s.desired_capacity == -1 || s.max_size == -1 || s.desired_capacity <= s.max_size)
    ])
    error_message = "In each schedule, min_size <= desired_capacity <= max_size wherever both sides are set."
  }
}

# shellcheck shell=bash
# shellcheck disable=SC2154 # region, account, arn, packer_subnet, bake, tf_args: set by check_env.sh
# The account half of scripts/check_env.sh: what the AWS account must offer before apply.sh
# spends anything. Source it after common.sh. The caller sets $region, $account, $arn (the
# caller's identity), $packer_subnet, $bake (0: nothing is baked, as in apply.sh --rollback)
# and the array tf_args (the -var/-var-file arguments the apply will use), and defines
# passed/failed (one NOTE or ERROR line each, failed counts).
# preflight_account runs every check; each prints one line and nothing here creates
# anything: EC2 permissions are tried with --dry-run, the others simulated, the rest read.
#
# The values checked are the ones the apply will use: terraform console evaluates
# instance_type, max_size, az_count (with the caller's -var/-var-file and infra/'s own
# tfvars, as terraform apply would) and the instance refresh's max_healthy_percentage
# (local.refresh_max_healthy_percentage); Packer's build instance type is the default of
# packer/variables.pkr.hcl, which apply.sh does not override.

# The quota of running On-Demand instances of the standard families (A, C, D, H, I, M, R,
# T, Z), in vCPUs. Other families (F, G, Inf, P, Trn, VT, X, DL, HPC, Mac, U) have quotas
# of their own.
STANDARD_VCPU_QUOTA=L-1216C47A
# The role Auto Scaling launches instances with, in every account.
ASG_SERVICE_ROLE=AWSServiceRoleForAutoScaling
KEY_POLICY_DOC=https://docs.aws.amazon.com/autoscaling/ec2/userguide/key-policy-requirements-EBS-encryption.html
OPERATOR_POLICY_HINT="the operator's policy: docs/iam/ (scripts/render_policy.sh renders it for $PROJECT_NAME)"

# ask_aws SERVICE OPERATION ARGS...: the AWS CLI in the deploy's region; $answer holds what
# it printed (both streams), the status is its own. One retry at most (unless
# AWS_MAX_ATTEMPTS says otherwise): a check whose API fails twice is reported, not waited on.
ask_aws() {
  answer=$(AWS_MAX_ATTEMPTS=${AWS_MAX_ATTEMPTS:-2} aws "$@" --region "$region" 2>&1)
}

# error_code TEXT: the code of an AWS CLI error message ("An error occurred (CODE) when ...").
error_code() {
  sed -n 's/.*An error occurred (\([A-Za-z0-9.]*\)).*/\1/p' <<<"$1" | head -n 1
}

# is_denied CODE: whether an error code means the caller lacks a permission.
is_denied() {
  case $1 in
    # 403: the code of a denial the CLI could not parse.
    UnauthorizedOperation | AccessDenied | AccessDeniedException | UnauthorizedAccess | AuthorizationError | 403) return 0 ;;
    *) return 1 ;;
  esac
}

# last_line TEXT: why a call failed, in one short line: the error code when there is one,
# else the last non-empty line.
last_line() {
  local code
  code=$(error_code "$1")
  if [ -n "$code" ]; then
    printf '%s\n' "$code"
  elif grep -q 'Internal Server Error' <<<"$1"; then
    printf 'an internal error (HTTP 500)\n'
  else
    sed '/^[[:space:]]*$/d' <<<"$1" | tail -n 1 | cut -c1-160
  fi
}

# deploy_values: $settings = "INSTANCE_TYPE MAX_SIZE AZ_COUNT MAX_HEALTHY_PERCENTAGE" as the
# apply will see them. terraform console needs an initialized infra/ (apply.sh initializes
# it anyway).
settings=
deploy_values() {
  local log values
  log=$(tf init -input=false 2>&1) || {
    failed "cannot read the deploy's settings: terraform init in infra/ failed ($(last_line "$log")): run terraform -chdir=infra init and fix what it says"
    return 1
  }
  # shellcheck disable=SC2016 # a Terraform template, for Terraform to expand
  values=$(printf '%s\n' '"${var.instance_type} ${var.max_size} ${var.az_count} ${local.refresh_max_healthy_percentage}"' |
    tf console -input=false ${tf_args[@]+"${tf_args[@]}"} -var "ami_id=ami-00000000000000000" \
      -var "region=$region" -var "project=$PROJECT_NAME" 2>&1) || {
    failed "cannot read the deploy's settings (terraform console: $(last_line "$values")): fix the -var/-var-file values"
    return 1
  }
  values=${values//\"/}
  if ! [[ $values =~ ^[a-z0-9.-]+\ [0-9]+\ [0-9]+\ [0-9]+$ ]]; then
    failed "terraform console answered '$values' for instance_type, max_size, az_count and the refresh's max_healthy_percentage"
    return 1
  fi
  settings=$values
}

# packer_instance_type: the build instance's type, the default of packer/'s instance_type.
packer_instance_type() {
  awk '/^variable "instance_type"/ { inside = 1 } inside && /^ *default *=/ { gsub(/[" ]/, ""); sub(/default=/, ""); print; exit }' \
    "$REPO_ROOT/packer/variables.pkr.hcl"
}

# is_standard_family TYPE: whether TYPE counts against the standard On-Demand vCPU quota.
is_standard_family() {
  local family=${1%%[0-9]*}
  case $family in
    inf* | dl* | trn* | mac* | hpc*) return 1 ;;
    a* | c* | d* | h* | i* | m* | r* | t* | z*) return 0 ;;
    *) return 1 ;;
  esac
}

# The answers the checks share, filled by check_instance_types: "TYPE VCPUS ARCH" lines.
type_info=
vcpus_of() { awk -v t="$1" '$1 == t { print $2 }' <<<"$type_info"; }
arch_of() { awk -v t="$1" '$1 == t { print $3 }' <<<"$type_info"; }

# check_instance_types TYPE...: every type exists in the region; records vCPUs and the
# architecture (arm64 when supported, else x86_64) in $type_info.
check_instance_types() {
  if ! ask_aws ec2 describe-instance-types --instance-types "$@" --output json; then
    if is_denied "$(error_code "$answer")"; then
      failed "the caller may not ec2:DescribeInstanceTypes: grant $OPERATOR_POLICY_HINT"
    else
      failed "instance types $* are not all offered in $region ($(last_line "$answer")): choose another instance_type (-var instance_type=...)"
    fi
    return 1
  fi
  type_info=$(jq -r '.InstanceTypes[] | "\(.InstanceType) \(.VCpuInfo.DefaultVCpus) \(if (.ProcessorInfo.SupportedArchitectures | index("arm64")) then "arm64" else "x86_64" end)"' <<<"$answer")
  local type
  for type in "$@"; do
    if [ -z "$(vcpus_of "$type")" ]; then
      failed "instance type $type is not offered in $region: choose another instance_type (-var instance_type=...)"
      return 1
    fi
  done
  passed "instance types in $region: $(awk '{ printf "%s%s (%s vCPUs, %s)", sep, $1, $2, $3; sep = ", " }' <<<"$type_info")"
}

# check_zones TYPE AZ_COUNT: the type is offered in at least AZ_COUNT zones that need no
# opt-in (the zones infra/ chooses from).
check_zones() {
  local type=$1 wanted=$2 zones offered usable count fix
  ask_aws ec2 describe-availability-zones --filters Name=opt-in-status,Values=opt-in-not-required --output json ||
    { failed "cannot list the zones of $region ($(last_line "$answer"))"; return 0; }
  zones=$(jq -r '.AvailabilityZones[].ZoneName' <<<"$answer")
  ask_aws ec2 describe-instance-type-offerings --location-type availability-zone \
    --filters "Name=instance-type,Values=$type" --output json ||
    { failed "cannot list the zones that offer $type ($(last_line "$answer"))"; return 0; }
  offered=$(jq -r '.InstanceTypeOfferings[].Location' <<<"$answer")
  usable=$(comm -12 <(sort <<<"$zones") <(sort <<<"$offered") | sed '/^$/d' | paste -sd' ' -)
  count=$(wc -w <<<"$usable")
  if [ "$count" -lt "$wanted" ]; then
    fix="choose an instance_type offered in $wanted zones, or another region"
    [ "$count" -lt 2 ] || fix="set -var az_count=$count, or $fix"
    failed "$type is offered in $count zone(s) of $region (${usable:-none}), and az_count is $wanted: $fix"
  else
    passed "$type is offered in $count zones of $region ($usable): az_count $wanted fits"
  fi
}

# check_base_image ARCH: the newest Amazon Linux 2023 image for ARCH, found with Packer's
# filters (packer/candidates.pkr.hcl, data "amazon-ami"); $base_image is its id.
base_image=
check_base_image() {
  base_image=
  if ! ask_aws ec2 describe-images --owners amazon --filters "Name=name,Values=al2023-ami-2023.*-$1" \
    "Name=architecture,Values=$1" Name=virtualization-type,Values=hvm Name=root-device-type,Values=ebs \
    Name=state,Values=available --output json; then
    failed "cannot look for Amazon Linux 2023 images in $region ($(last_line "$answer"))"
    return 1
  fi
  base_image=$(jq -r '.Images | sort_by(.CreationDate) | last | .ImageId // empty' <<<"$answer")
  if [ -z "$base_image" ]; then
    failed "no Amazon Linux 2023 image (al2023-ami-2023.*-$1, owner amazon) for $1 in $region: deploy to another region, or choose an instance_type of another architecture"
    return 1
  fi
  passed "Amazon Linux 2023 for $1 in $region: $base_image"
}

# check_vcpu_quota NEEDED DETAIL: the standard On-Demand vCPU quota of the region covers NEEDED.
check_vcpu_quota() {
  local needed=$1 detail=$2 code quota
  if ask_aws service-quotas get-service-quota --service-code ec2 --quota-code "$STANDARD_VCPU_QUOTA" --output json; then
    quota=$(jq -r '.Quota.Value | floor' <<<"$answer")
    if [ "$quota" -lt "$needed" ]; then
      failed "the On-Demand standard vCPU quota of $region ($STANDARD_VCPU_QUOTA) is $quota, and this deploy may run $needed vCPUs ($detail): ask for more (aws service-quotas request-service-quota-increase --region $region --service-code ec2 --quota-code $STANDARD_VCPU_QUOTA --desired-value $needed) or lower max_size"
    else
      passed "On-Demand standard vCPU quota of $region: $quota, this deploy may run $needed vCPUs ($detail); other running instances of the region count against it too"
    fi
    return 0
  fi
  code=$(error_code "$answer")
  if is_denied "$code"; then
    failed "the caller may not servicequotas:GetServiceQuota, so the vCPU quota is unknown: grant $OPERATOR_POLICY_HINT"
  else
    note "UNVERIFIED: the On-Demand standard vCPU quota of $region could not be read ($(last_line "$answer")); this deploy may run $needed vCPUs ($detail): compare with the Service Quotas console (EC2, $STANDARD_VCPU_QUOTA)"
  fi
}

# check_ebs_key: the account's default EBS key, which encrypts the instances' volumes
# (the launch template asks for encryption without naming a key), is AWS managed, or its
# key policy or a grant lets the Auto Scaling service-linked role use it.
check_ebs_key() {
  local key code metadata manager key_arn role_arn
  role_arn="arn:${partition}:iam::$account:role/aws-service-role/autoscaling.amazonaws.com/$ASG_SERVICE_ROLE"
  if ! ask_aws ec2 get-ebs-default-kms-key-id --output json; then
    code=$(error_code "$answer")
    if is_denied "$code"; then
      failed "the caller may not ec2:GetEbsDefaultKmsKeyId, so the key that encrypts the instances' volumes is unknown: grant $OPERATOR_POLICY_HINT"
    else
      note "UNVERIFIED: the account's default EBS encryption key could not be read ($(last_line "$answer")); it must be AWS managed (aws/ebs), or its key policy must let $role_arn use it ($KEY_POLICY_DOC)"
    fi
    return 0
  fi
  key=$(jq -r '.KmsKeyId // empty' <<<"$answer")
  [ -n "$key" ] || key=alias/aws/ebs
  if ! ask_aws kms describe-key --key-id "$key" --output json; then
    code=$(error_code "$answer")
    if is_denied "$code"; then
      failed "the caller may not kms:DescribeKey on the default EBS key $key: grant $OPERATOR_POLICY_HINT"
    else
      failed "the default EBS key $key cannot be described ($(last_line "$answer")): instances could not use it; set a usable key or the AWS managed one (aws ec2 reset-ebs-default-kms-key-id --region $region)"
    fi
    return 0
  fi
  metadata=$answer
  manager=$(jq -r '.KeyMetadata.KeyManager // empty' <<<"$metadata")
  key_arn=$(jq -r '.KeyMetadata.Arn // empty' <<<"$metadata")
  if [ "$manager" = AWS ]; then
    passed "the default EBS key is AWS managed ($key_arn): Auto Scaling may use it"
    return 0
  fi
  # A customer managed key: Auto Scaling's role needs its key policy, or a grant.
  if ask_aws kms get-key-policy --key-id "$key_arn" --policy-name default --output json &&
    jq -e --arg role "$role_arn" '.Policy | fromjson | [.Statement[]? | select(.Effect == "Allow") | .Principal.AWS? // empty | if type == "array" then .[] else . end] | index($role)' <<<"$answer" >/dev/null; then
    passed "the default EBS key $key_arn is customer managed and its key policy names $ASG_SERVICE_ROLE"
    return 0
  fi
  if ask_aws kms list-grants --key-id "$key_arn" --output json &&
    jq -e --arg role "$role_arn" '[.Grants[]? | select(.GranteePrincipal == $role)] | length > 0' <<<"$answer" >/dev/null; then
    passed "the default EBS key $key_arn is customer managed and grants $ASG_SERVICE_ROLE its use"
    return 0
  fi
  failed "the default EBS key $key_arn is customer managed and neither its key policy nor a grant lets Auto Scaling use it, so the group's instances would fail to launch: add to its key policy a statement allowing $role_arn kms:Encrypt, kms:Decrypt, kms:ReEncrypt*, kms:GenerateDataKey* and kms:DescribeKey, and one allowing it kms:CreateGrant when kms:GrantIsForAWSResource is true ($KEY_POLICY_DOC); or make the AWS managed key the default again (aws ec2 reset-ebs-default-kms-key-id --region $region)"
}

# principal_arn: the IAM ARN to simulate policies for: the user, or the role behind an
# assumed-role session (a role with a path is not found this way: the simulation then
# reports it cannot run).
principal_arn() {
  case $arn in
    arn:*:sts::*:assumed-role/*)
      local rest=${arn#*:assumed-role/}
      printf 'arn:%s:iam::%s:role/%s\n' "$partition" "$account" "${rest%%/*}"
      ;;
    *) printf '%s\n' "$arn" ;;
  esac
}

# simulate ACTION... -- RESOURCE...: $simulated = "ACTION DECISION" lines from iam
# simulate-principal-policy for the caller, with the context the deploy's requests carry
# (or the caller's own simulate_context array, for a request that carries another);
# fails when the simulation cannot run (no permission, or no such API).
simulated=
simulate() {
  local actions=() resources=() context=(
    "ContextKeyName=aws:RequestTag/Project,ContextKeyValues=$PROJECT_NAME,ContextKeyType=string"
    "ContextKeyName=aws:ResourceTag/Project,ContextKeyValues=$PROJECT_NAME,ContextKeyType=string"
    "ContextKeyName=aws:TagKeys,ContextKeyValues=Project,ContextKeyType=stringList"
    "ContextKeyName=iam:PassedToService,ContextKeyValues=ec2.amazonaws.com,ContextKeyType=string"
    "ContextKeyName=iam:AWSServiceName,ContextKeyValues=autoscaling.amazonaws.com,ContextKeyType=string"
  )
  [ -z "${simulate_context+set}" ] || context=("${simulate_context[@]}")
  while [ "$1" != -- ]; do actions+=("$1"); shift; done
  shift
  resources=("$@")
  ask_aws iam simulate-principal-policy --policy-source-arn "$(principal_arn)" \
    --action-names "${actions[@]}" --resource-arns "${resources[@]}" \
    --context-entries "${context[@]}" --output json || return 1
  # An action is allowed when it is allowed on any of the resources.
  simulated=$(jq -r '[.EvaluationResults[]? | {action: .EvalActionName, allowed: (.EvalDecision == "allowed")}]
         | group_by(.action)[] | "\(.[0].action) \(if any(.allowed) then "allowed" else "denied" end)"' <<<"$answer")
}

# check_service_role: Auto Scaling's service-linked role exists, or the caller may create
# it (AWS creates it with the first group).
check_service_role() {
  local code decision
  if ask_aws iam get-role --role-name "$ASG_SERVICE_ROLE" --output json; then
    passed "the Auto Scaling service-linked role $ASG_SERVICE_ROLE exists"
    return 0
  fi
  code=$(error_code "$answer")
  if [ "$code" != NoSuchEntity ]; then
    if is_denied "$code"; then
      failed "the caller may not iam:GetRole on $ASG_SERVICE_ROLE: grant $OPERATOR_POLICY_HINT"
    else
      failed "cannot look for the Auto Scaling service-linked role ($(last_line "$answer"))"
    fi
    return 0
  fi
  decision=
  if simulate iam:CreateServiceLinkedRole -- \
    "arn:${partition}:iam::$account:role/aws-service-role/autoscaling.amazonaws.com/$ASG_SERVICE_ROLE"; then
    decision=$(awk '{ print $2 }' <<<"$simulated")
  fi
  if [ "$decision" = allowed ]; then
    passed "the Auto Scaling service-linked role does not exist yet; the caller may create it, and AWS does with the first group"
  else
    [ -n "$decision" ] || decision="cannot be simulated"
    failed "the Auto Scaling service-linked role $ASG_SERVICE_ROLE does not exist, and the caller may not create it (iam:CreateServiceLinkedRole: $decision): create it once with aws iam create-service-linked-role --aws-service-name autoscaling.amazonaws.com"
  fi
}

# check_bake_network: Packer's build instance needs a subnet: --packer-subnet's, or one of
# the default VPC's. Sets $bake_vpc (and keeps $packer_subnet) for the dry runs.
bake_vpc=
check_bake_network() {
  if [ -n "$packer_subnet" ]; then
    if ask_aws ec2 describe-subnets --subnet-ids "$packer_subnet" --output json; then
      bake_vpc=$(jq -r '.Subnets[0].VpcId // empty' <<<"$answer")
      passed "Packer bakes in --packer-subnet $packer_subnet (VPC $bake_vpc)"
    else
      failed "--packer-subnet $packer_subnet: no such subnet in $region ($(error_code "$answer")): pass a subnet of $region that routes to an internet gateway"
    fi
    return 0
  fi
  if ! ask_aws ec2 describe-vpcs --filters Name=is-default,Values=true --output json; then
    failed "cannot look for the default VPC ($(last_line "$answer"))"
    return 0
  fi
  bake_vpc=$(jq -r '.Vpcs[0].VpcId // empty' <<<"$answer")
  if [ -n "$bake_vpc" ]; then
    passed "Packer bakes in the default VPC of $region ($bake_vpc)"
  else
    failed "$region has no default VPC for Packer's build instance: pass --packer-subnet SUBNET (a subnet with a route to an internet gateway), or create one with 'aws ec2 create-default-vpc --region $region'"
  fi
}

# dry_run ACTION WHAT ARGS...: aws ec2 ARGS --dry-run; DryRunOperation means allowed.
dry_run() {
  local action=$1 what=$2 code
  shift 2
  if ask_aws ec2 "$@" --dry-run --output json; then
    passed "ec2:$action allowed ($what; the API ignored --dry-run)"
    return 0
  fi
  code=$(error_code "$answer")
  if [ "$code" = DryRunOperation ]; then
    passed "ec2:$action allowed (dry run: $what)"
  elif is_denied "$code"; then
    failed "the caller may not ec2:$action ($what, dry run: $code): grant $OPERATOR_POLICY_HINT"
  else
    note "UNVERIFIED: ec2:$action ($what): the dry run answered $(last_line "$answer")"
  fi
}

# check_dry_runs IMAGE TYPE BUILD_TYPE: what Packer and Terraform create in EC2, tried with
# the tags they carry (the policy's conditions look at them). No BUILD_TYPE: nothing is
# baked, Packer's calls are left out.
check_dry_runs() {
  local image=$1 type=$2 build_type=$3 tags="Tags=[{Key=Project,Value=$PROJECT_NAME}]" subnet=()
  [ -z "$packer_subnet" ] || subnet=(--subnet-id "$packer_subnet")
  if [ -n "$image" ] && [ -n "$build_type" ]; then
    dry_run RunInstances "Packer's $build_type build instance" run-instances --image-id "$image" \
      --instance-type "$build_type" ${subnet[@]+"${subnet[@]}"} --metadata-options HttpTokens=required,HttpEndpoint=enabled \
      --tag-specifications "ResourceType=instance,$tags" "ResourceType=volume,$tags"
  fi
  if [ -n "$build_type" ]; then
    dry_run CreateKeyPair "Packer's temporary key pair" create-key-pair --key-name "packer_${PROJECT_NAME}_preflight" \
      --key-type ed25519 --tag-specifications "ResourceType=key-pair,$tags"
  fi
  if [ -n "$bake_vpc" ]; then
    dry_run CreateSecurityGroup "a security group" create-security-group --group-name "$PROJECT_NAME-preflight" \
      --description "preflight" --vpc-id "$bake_vpc" --tag-specifications "ResourceType=security-group,$tags"
  fi
  dry_run CreateLaunchTemplate "the group's launch template" create-launch-template \
    --launch-template-name "$PROJECT_NAME-preflight" --launch-template-data "{\"InstanceType\":\"$type\"}" \
    --tag-specifications "ResourceType=launch-template,$tags"
}

# check_reads: one read call per service the deploy uses beyond EC2, when the caller's
# policies cannot be simulated.
check_reads() {
  local service readable=()
  for service in "autoscaling describe-auto-scaling-groups --max-items 1" \
    "elbv2 describe-load-balancers --max-items 1" "dynamodb list-tables --max-items 1" \
    "cloudwatch describe-alarms --max-items 1" "logs describe-log-groups --max-items 1"; do
    # shellcheck disable=SC2086 # the words of one command
    if ask_aws $service --output json; then
      readable+=("${service%% *}")
    elif is_denied "$(error_code "$answer")"; then
      failed "the caller may not read ${service%% *} (aws $service: $(error_code "$answer")): grant $OPERATOR_POLICY_HINT"
    else
      failed "aws $service failed ($(last_line "$answer"))"
    fi
  done
  [ "${#readable[@]}" -eq 0 ] || passed "read access: ${readable[*]}"
}

# check_permissions: what cannot be tried without creating something, and one read per
# service, simulated against the caller's policies (iam simulate-principal-policy); when
# the caller may not simulate, the reads are tried and the writes said unverified.
check_permissions() {
  local denied allowed name=$PROJECT_NAME-preflight
  local actions=(autoscaling:DescribeAutoScalingGroups elasticloadbalancing:DescribeLoadBalancers
    dynamodb:ListTables cloudwatch:DescribeAlarms logs:DescribeLogGroups
    autoscaling:CreateAutoScalingGroup elasticloadbalancing:CreateLoadBalancer
    elasticloadbalancing:CreateTargetGroup dynamodb:CreateTable iam:CreateRole iam:PassRole
    iam:CreateInstanceProfile cloudwatch:PutMetricAlarm cloudwatch:PutDashboard logs:CreateLogGroup ec2:CreateVpc
    autoscaling:StartInstanceRefresh autoscaling:DescribeInstanceRefreshes logs:PutRetentionPolicy
    logs:FilterLogEvents cloudwatch:GetMetricData)
  if ! simulate "${actions[@]}" -- "*" \
    "arn:${partition}:autoscaling:$region:$account:autoScalingGroup:*:autoScalingGroupName/$name" \
    "arn:${partition}:elasticloadbalancing:$region:$account:loadbalancer/app/$name/0123456789abcdef" \
    "arn:${partition}:elasticloadbalancing:$region:$account:targetgroup/$name/0123456789abcdef" \
    "arn:${partition}:dynamodb:$region:$account:table/$name-candidates" \
    "arn:${partition}:iam::$account:role/$name-instance" \
    "arn:${partition}:iam::$account:instance-profile/$name-instance" \
    "arn:${partition}:cloudwatch:$region:$account:alarm:$name-cpu-high" \
    "arn:${partition}:cloudwatch::$account:dashboard/$name" \
    "arn:${partition}:logs:$region:$account:log-group:/$PROJECT_NAME/preflight" \
    "arn:${partition}:ec2:$region:$account:vpc/*"; then
    note "UNVERIFIED before the apply, as the policies cannot be simulated (iam simulate-principal-policy: $(last_line "$answer")): ${actions[*]:5} ec2:CreateTags (the tag PreviousAmi); $OPERATOR_POLICY_HINT lists every permission the deploy needs"
    check_reads
    return 0
  fi
  denied=$(awk '$2 != "allowed" { print $1 }' <<<"$simulated" | paste -sd' ' -)
  allowed=$(awk '$2 == "allowed" { print $1 }' <<<"$simulated" | paste -sd' ' -)
  [ -z "$allowed" ] || passed "allowed (simulated): $allowed"
  [ -z "$denied" ] || failed "the caller may not (simulated): $denied: grant $OPERATOR_POLICY_HINT"
  check_previous_ami_tag
}

# check_previous_ami_tag: a re-deploy records the AMI it replaces on the project's launch
# template (apply.sh, tag PreviousAmi): a request that carries that tag key alone.
check_previous_ami_tag() {
  local decision simulate_context=(
    "ContextKeyName=aws:ResourceTag/Project,ContextKeyValues=$PROJECT_NAME,ContextKeyType=string"
    "ContextKeyName=aws:TagKeys,ContextKeyValues=PreviousAmi,ContextKeyType=stringList"
  )
  simulate ec2:CreateTags -- "arn:${partition}:ec2:$region:$account:launch-template/lt-0123456789abcdef0" || return 0
  decision=$(awk '{ print $2 }' <<<"$simulated")
  if [ "$decision" = allowed ]; then
    passed "ec2:CreateTags allowed (simulated: the tag PreviousAmi on the launch template, which ./apply.sh --rollback reads)"
  else
    failed "the caller may not (simulated) ec2:CreateTags with the tag PreviousAmi on the project's launch template: a re-deploy could not record the AMI it replaces for ./apply.sh --rollback; grant $OPERATOR_POLICY_HINT"
  fi
}

# preflight_account: every account check, in the order a reader follows them.
preflight_account() {
  local type max_size az_count max_healthy build_type build_image="" image="" instances needed detail
  partition=$(cut -d: -f2 <<<"$arn")
  [ -n "$partition" ] || partition=aws
  if [ "$bake" = 1 ]; then
    check_bake_network
  else
    note "nothing is baked (apply.sh --rollback): Packer's network, build instance and key pair are not checked"
  fi
  check_service_role
  check_ebs_key
  check_permissions
  if ! deploy_values; then
    note "the checks that need the deploy's settings (instance type, zones, image, quota, dry runs) were not run"
    return 0
  fi
  read -r type max_size az_count max_healthy <<<"$settings"
  if [ "$bake" = 1 ]; then
    build_type=$(packer_instance_type)
    [ -n "$build_type" ] || build_type=t3.small
    passed "the deploy's settings: instance_type $type, max_size $max_size, az_count $az_count, instance refresh up to $max_healthy %; Packer builds on a $build_type"
  else
    build_type=
    passed "the deploy's settings: instance_type $type, max_size $max_size, az_count $az_count, instance refresh up to $max_healthy %"
  fi
  if check_instance_types "$type" ${build_type:+"$build_type"}; then
    check_zones "$type" "$az_count"
    check_base_image "$(arch_of "$type")" || true
    image=$base_image
    if [ -z "$build_type" ] || [ "$(arch_of "$build_type")" = "$(arch_of "$type")" ]; then
      build_image=$image
    else
      check_base_image "$(arch_of "$build_type")" || true
      build_image=$base_image
    fi
    instances=$(((max_size * max_healthy + 99) / 100))
    needed=$((instances * $(vcpus_of "$type")))
    detail="$instances x $type during an instance refresh of max_size $max_size at $max_healthy %"
    if [ -n "$build_type" ]; then
      needed=$((needed + $(vcpus_of "$build_type")))
      detail="$detail, plus the $build_type build instance"
    fi
    if is_standard_family "$type" && { [ -z "$build_type" ] || is_standard_family "$build_type"; }; then
      check_vcpu_quota "$needed" "$detail"
    else
      note "UNVERIFIED: $type${build_type:+ or $build_type} counts against another On-Demand quota than $STANDARD_VCPU_QUOTA: check it in the Service Quotas console ($needed vCPUs: $detail)"
    fi
  fi
  check_dry_runs "$build_image" "$type" "$build_type"
}

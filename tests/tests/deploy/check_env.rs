//! `scripts/check_env.sh`: every tool and the AWS account checked, each failure said with
//! its fix. The stand-in `aws` plays the account here, for what moto cannot be made to
//! answer (a vCPU quota, the default EBS key, a simulation of the caller's policies); the
//! same preflight runs against moto with IAM enforcement in tests/tests/operator.rs.

use blackbox::standins::{REGION, Run, Stage};

fn check_env(stage: &Stage, args: &[&str]) -> Run {
    stage.run("scripts/check_env.sh", args, None)
}

#[test]
fn check_env_passes_when_everything_is_there() {
    let stage = Stage::new();
    let run = check_env(&stage, &[]);
    run.assert_success();
    for note in [
        "NOTE: aws 2.17.0",
        "NOTE: packer 1.11.2 (>= 1.9)",
        "NOTE: terraform 1.9.8 (>= 1.5)",
        "NOTE: curl ",
        "NOTE: jq ",
        "NOTE: python3 ",
        "NOTE: git ",
        "NOTE: cargo ",
        "NOTE: readelf ",
        "cargo-zigbuild and zig",
        &format!("NOTE: AWS region {REGION} (from AWS_REGION)"),
        "NOTE: AWS credentials work: account 123456789012, arn:aws:sts::123456789012:assumed-role/deployer/standin",
        &format!("NOTE: Packer bakes in the default VPC of {REGION} (vpc-0defa017)"),
        "NOTE: the Auto Scaling service-linked role AWSServiceRoleForAutoScaling exists",
        "NOTE: the default EBS key is AWS managed",
        "NOTE: allowed (simulated): autoscaling:CreateAutoScalingGroup autoscaling:DescribeAutoScalingGroups",
        "NOTE: the deploy's settings: instance_type t3.micro, max_size 4, az_count 2, instance refresh up to 150 %; Packer builds on a t3.small",
        &format!("NOTE: t3.micro is offered in 3 zones of {REGION}"),
        &format!("NOTE: Amazon Linux 2023 for x86_64 in {REGION}"),
        &format!(
            "NOTE: On-Demand standard vCPU quota of {REGION}: 64, this deploy may run 14 vCPUs (6 x t3.micro during an instance refresh of max_size 4 at 150 %, plus the t3.small build instance)"
        ),
        "NOTE: ec2:RunInstances allowed (dry run: Packer's t3.small build instance)",
        "NOTE: ec2:CreateKeyPair allowed (dry run",
        "NOTE: ec2:CreateSecurityGroup allowed (dry run",
        "NOTE: ec2:CreateLaunchTemplate allowed (dry run",
        "NOTE: this machine and the AWS account are ready to deploy",
    ] {
        assert!(run.stderr.contains(note), "{note}:\n{run}");
    }
    // --no-build leaves out the build tools.
    let run = check_env(&stage, &["--no-build"]);
    run.assert_success();
    assert!(!run.stderr.contains("NOTE: cargo "), "{run}");
}

#[test]
fn check_env_reports_a_missing_packer_and_still_checks_the_rest() {
    let stage = Stage::with_standins(&["aws", "terraform"]);
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(
            "ERROR: packer is not installed: install Packer 1.9 or newer: https://developer.hashicorp.com/packer/install"
        ),
        "{run}"
    );
    assert!(run.stderr.contains("NOTE: terraform 1.9.8"), "{run}");
    assert!(run.stderr.contains("NOTE: AWS credentials work"), "{run}");
    assert!(run.stderr.contains("ERROR: 1 check(s) failed"), "{run}");
}

#[test]
fn check_env_refuses_old_terraform_and_packer_versions() {
    let mut stage = Stage::new();
    stage.set("STANDIN_TERRAFORM_VERSION", "1.3.9");
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("ERROR: terraform 1.3.9 is too old, 1.5 or newer is needed"),
        "{run}"
    );

    stage.set("STANDIN_TERRAFORM_VERSION", "1.10.0");
    stage.set("STANDIN_PACKER_VERSION", "1.8.7");
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("ERROR: packer 1.8.7 is too old, 1.9 or newer"),
        "{run}"
    );
    // Versions compare as numbers: 1.10 is newer than 1.5.
    assert!(run.stderr.contains("NOTE: terraform 1.10.0"), "{run}");

    stage.set("STANDIN_PACKER_VERSION", "1.10.3");
    check_env(&stage, &["--no-build"]).assert_success();
}

#[test]
fn check_env_reports_credentials_that_do_not_work() {
    let mut stage = Stage::new();
    stage.set("STANDIN_FAIL", "aws sts get-caller-identity");
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("ERROR: AWS credentials do not work")
            && run.stderr.contains("aws configure"),
        "{run}"
    );
}

#[test]
fn check_env_finds_the_region_in_the_profile_or_reports_none() {
    let mut stage = Stage::new();
    stage.unset("AWS_REGION");
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("ERROR: no AWS region: export AWS_REGION"),
        "{run}"
    );

    stage.set("STANDIN_PROFILE_REGION", "ap-south-1");
    let run = check_env(&stage, &["--no-build"]);
    run.assert_success();
    assert!(
        run.stderr
            .contains("NOTE: AWS region ap-south-1 (from the AWS CLI profile default)"),
        "{run}"
    );
    assert!(
        run.calls.contains(&"aws configure get region".to_owned()),
        "{run}"
    );
}

#[test]
fn bad_usage_exits_2() {
    let stage = Stage::new();
    let run = stage.run("scripts/check_env.sh", &["--bogus"], None);
    assert_eq!(run.code, 2, "{run}");
}

/// The ERROR lines of a run.
fn errors(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|line| line.starts_with("ERROR: "))
        .collect()
}

#[test]
fn every_account_problem_is_one_error_naming_its_fix_and_every_check_runs() {
    let mut stage = Stage::new();
    stage
        .set("STANDIN_VCPU_QUOTA", "8")
        .set("STANDIN_EBS_KEY", "customer")
        .set("STANDIN_NO_SERVICE_ROLE", "1")
        .set("STANDIN_ZONES", "1")
        .set(
            "STANDIN_DENY",
            "iam:CreateServiceLinkedRole,iam:PassRole,ec2:CreateSecurityGroup,logs:DescribeLogGroups",
        );
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    let role = "arn:aws:iam::123456789012:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling";
    let expected = [
        "ERROR: the Auto Scaling service-linked role AWSServiceRoleForAutoScaling does not exist, and the caller may not create it (iam:CreateServiceLinkedRole: denied): create it once with aws iam create-service-linked-role --aws-service-name autoscaling.amazonaws.com".to_owned(),
        format!("ERROR: the default EBS key arn:aws:kms:{REGION}:123456789012:key/cccccccc-0000-0000-0000-000000000000 is customer managed and neither its key policy nor a grant lets Auto Scaling use it, so the group's instances would fail to launch: add to its key policy a statement allowing {role} kms:Encrypt, kms:Decrypt, kms:ReEncrypt*, kms:GenerateDataKey* and kms:DescribeKey, and one allowing it kms:CreateGrant when kms:GrantIsForAWSResource is true (https://docs.aws.amazon.com/autoscaling/ec2/userguide/key-policy-requirements-EBS-encryption.html); or make the AWS managed key the default again (aws ec2 reset-ebs-default-kms-key-id --region {REGION})"),
        "ERROR: the caller may not (simulated): iam:PassRole logs:DescribeLogGroups".to_owned(),
        format!("ERROR: t3.micro is offered in 1 zone(s) of {REGION} ({REGION}a), and az_count is 2: choose an instance_type offered in 2 zones, or another region"),
        format!("ERROR: the On-Demand standard vCPU quota of {REGION} (L-1216C47A) is 8, and this deploy may run 14 vCPUs (6 x t3.micro during an instance refresh of max_size 4 at 150 %, plus the t3.small build instance): ask for more (aws service-quotas request-service-quota-increase --region {REGION} --service-code ec2 --quota-code L-1216C47A --desired-value 14) or lower max_size"),
        "ERROR: the caller may not ec2:CreateSecurityGroup (a security group, dry run: UnauthorizedOperation)".to_owned(),
        "ERROR: 6 check(s) failed: fix them, then run scripts/check_env.sh again; nothing was created".to_owned(),
    ];
    let found = errors(&run);
    for line in &expected {
        assert!(
            found.iter().any(|error| error.starts_with(line.as_str())),
            "{line}:\n{run}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{run}");
    // Nothing was created: every account call read, simulated or dry-ran.
    for call in run
        .calls_to("aws ec2 create-")
        .into_iter()
        .chain(run.calls_to("aws ec2 run-"))
    {
        assert!(call.contains("--dry-run"), "{call}:\n{run}");
    }
}

#[test]
fn what_auto_scaling_may_use_or_create_passes() {
    // A customer managed key whose policy names Auto Scaling's role, and no role yet but the
    // right to create it (AWS does with the first group).
    let mut stage = Stage::new();
    stage
        .set("STANDIN_EBS_KEY", "customer-granted")
        .set("STANDIN_NO_SERVICE_ROLE", "1");
    let run = check_env(&stage, &["--no-build"]);
    run.assert_success();
    for note in [
        "is customer managed and its key policy names AWSServiceRoleForAutoScaling",
        "NOTE: the Auto Scaling service-linked role does not exist yet; the caller may create it",
    ] {
        assert!(run.stderr.contains(note), "{note}:\n{run}");
    }
}

#[test]
fn the_values_checked_are_the_ones_the_apply_will_use() {
    let stage = Stage::new();
    let var_file = stage.path("big.tfvars");
    std::fs::write(&var_file, "instance_type = \"c7i.4xlarge\"\n").expect("var file");
    let run = check_env(
        &stage,
        &[
            "--no-build",
            "-var",
            "max_size=3",
            &format!("-var-file={}", var_file.display()),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    // ceil(3 x 150 %) = 5 instances of 16 vCPUs, plus the 2 of the build instance.
    assert!(
        run.stderr.contains(&format!(
            "ERROR: the On-Demand standard vCPU quota of {REGION} (L-1216C47A) is 64, and this deploy may run 82 vCPUs (5 x c7i.4xlarge"
        )),
        "{run}"
    );
    assert!(
        run.calls.iter().any(|call| call.ends_with(&format!(
            "console -input=false -var max_size=3 -var-file=$TMP/big.tfvars -var ami_id=ami-00000000000000000 -var region={REGION} -var project=axum-asg"
        ))),
        "{run}"
    );

    // A family with a quota of its own is said to be unverified, not passed over.
    let run = check_env(&stage, &["--no-build", "-var", "instance_type=g5.xlarge"]);
    run.assert_success();
    assert!(
        run.stderr.contains("NOTE: UNVERIFIED: g5.xlarge or t3.small counts against another On-Demand quota than L-1216C47A"),
        "{run}"
    );
}

#[test]
fn tools_only_leaves_the_account_alone() {
    let stage = Stage::new();
    let run = check_env(&stage, &["--no-build", "--tools-only"]);
    run.assert_success();
    assert!(
        run.stderr
            .contains("NOTE: --tools-only: the AWS account was not checked"),
        "{run}"
    );
    assert!(
        run.stderr.contains("NOTE: this machine is ready to deploy"),
        "{run}"
    );
    let account: Vec<&String> = run
        .calls
        .iter()
        .filter(|call| {
            call.starts_with("aws ")
                && !call.starts_with("aws --version")
                && !call.starts_with("aws sts")
        })
        .collect();
    assert!(account.is_empty(), "{account:?}\n{run}");
}

#[test]
fn no_bake_leaves_packer_out_for_a_rollback() {
    // apply.sh --rollback bakes nothing: an account without a default VPC, a quota that
    // holds the group but not the build instance as well, no packer on this machine.
    let mut stage = Stage::with_standins(&["aws", "terraform"]);
    stage
        .set("STANDIN_NO_DEFAULT_VPC", "1")
        .set("STANDIN_VCPU_QUOTA", "12");
    let run = check_env(&stage, &["--no-build", "--no-bake"]);
    run.assert_success();
    for note in [
        "NOTE: --no-bake: packer is not checked",
        "NOTE: nothing is baked (apply.sh --rollback): Packer's network, build instance and key pair are not checked",
        "NOTE: the deploy's settings: instance_type t3.micro, max_size 4, az_count 2, instance refresh up to 150 %\n",
        "this deploy may run 12 vCPUs (6 x t3.micro during an instance refresh of max_size 4 at 150 %)",
        "NOTE: ec2:CreateLaunchTemplate allowed (dry run",
    ] {
        assert!(run.stderr.contains(note), "{note}:\n{run}");
    }
    for call in [
        "aws ec2 describe-vpcs",
        "aws ec2 run-instances",
        "aws ec2 create-key-pair",
    ] {
        assert!(run.calls_to(call).is_empty(), "{call}:\n{run}");
    }

    // The same account is refused for a deploy that bakes.
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        errors(&run).len(),
        4,
        "no packer, no default VPC, the quota, the summary:\n{run}"
    );
}

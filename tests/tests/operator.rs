//! The account an operator deploys from, against moto with IAM enforcement on: the
//! least-privilege policy of `docs/iam/` carries `apply.sh` → `validate.sh` → `scale.sh` →
//! `destroy.sh` through, and the preflight (`scripts/check_env.sh`) stops a misconfigured
//! account before anything is created, one ERROR per problem.
//!
//! moto evaluates the policy's actions only (`blackbox::operator_policy`); what it cannot
//! evaluate is listed in docs/TESTING.md with what covers it.

use blackbox::operator_policy::{for_moto, rendered, without_action};
use blackbox::terraform::{
    AccessKey, Deployment, Outcome, assert_nothing_left, latest_launch_template, packer_on_moto,
};
use blackbox::{ServiceBuilder, VALIDATE_CHECKS};
use serde_json::{Value, json};

#[path = "operator/observed.rs"]
mod observed;

const PROJECT: &str = "axum-asg";

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

/// PATH with the stand-in packer first (moto's EC2 takes its calls), then the deployment's.
fn path_with_packer(stack: &Deployment) -> String {
    let bin = stack.root().join("standin-bin");
    if !bin.exists() {
        std::fs::create_dir(&bin).expect("bin folder");
        std::os::unix::fs::symlink(packer_on_moto(), bin.join("packer"))
            .expect("link the stand-in packer");
    }
    let path = stack
        .env()
        .into_iter()
        .find(|(key, _)| key == "PATH")
        .expect("PATH")
        .1;
    format!("{}:{path}", bin.display())
}

/// A script run as `who`.
async fn run_as(
    stack: &Deployment,
    who: &AccessKey,
    script: &str,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Outcome {
    let path = path_with_packer(stack);
    let mut env: Vec<(&str, &str)> = who.env().to_vec();
    env.push(("PATH", &path));
    env.extend_from_slice(extra);
    stack.script(script, args, &env).await
}

#[track_caller]
fn assert_denied(outcome: &Outcome, action: &str) {
    outcome.assert_failure();
    assert!(
        outcome.output().contains(action) && outcome.output().contains("not authorized"),
        "expected moto to deny {action}:\n{outcome}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_holding_only_the_shipped_policy_deploys_validates_scales_and_destroys() {
    let mut stack = Deployment::start("us-west-2").await;
    let policies = rendered(PROJECT);
    let operator = stack.create_user("operator", &for_moto(&policies));
    // An account that has run an Auto Scaling group before has its service-linked role.
    stack.aws(&[
        "iam",
        "create-service-linked-role",
        "--aws-service-name",
        "autoscaling.amazonaws.com",
    ]);
    stack.enforce_iam().await;

    // Enforcement is on: the operator may do nothing the policy does not grant.
    let outside = stack
        .run(
            "aws",
            &["iam", "list-users"],
            stack.root(),
            &operator.env(),
            &[],
            std::time::Duration::from_secs(60),
        )
        .await;
    assert_denied(&outside, "iam:ListUsers");

    let service = ServiceBuilder::memory().start().await;
    let address = service.base_url().trim_start_matches("http://").to_owned();
    let binary = stack.root().join("candidates-fake");
    std::fs::write(&binary, b"not really an ELF binary\n").expect("fake binary");
    let dist = stack.root().join("dist-staging").display().to_string();
    let env = [
        ("CANDIDATES_LB_ADDRESS", address.as_str()),
        ("CANDIDATES_DIST_DIR", dist.as_str()),
    ];

    let applied = run_as(
        &stack,
        &operator,
        "apply.sh",
        &["--yes", "--binary", &binary.display().to_string(), "e2e"],
        &env,
    )
    .await;
    applied.assert_success();
    // The preflight ran as the operator, found the account ready, and tried EC2's dry runs.
    for line in [
        "NOTE: the Auto Scaling service-linked role AWSServiceRoleForAutoScaling exists",
        "NOTE: ec2:RunInstances allowed (dry run: Packer's t3.small build instance)",
        "NOTE: ec2:CreateLaunchTemplate allowed (dry run: the group's launch template)",
        "NOTE: t3.micro is offered in 4 zones of us-west-2",
        "NOTE: this machine and the AWS account are ready to deploy",
    ] {
        assert!(applied.stderr.contains(line), "{line}:\n{applied}");
    }
    assert!(!applied.stderr.contains("ERROR:"), "{applied}");
    for check in VALIDATE_CHECKS {
        assert!(
            applied.stdout.contains(&format!("✓ {check} passed")),
            "{applied}"
        );
    }
    let name = format!("{PROJECT}-e2e");
    let images = stack.aws(&[
        "ec2",
        "describe-images",
        "--owners",
        "self",
        "--filters",
        &format!("Name=tag:Project,Values={PROJECT}"),
    ]);
    let images = images["Images"].as_array().expect("images");
    assert_eq!(images.len(), 1, "one AMI baked: {images:?}");
    let ami = text(&images[0]["ImageId"]).to_owned();
    let snapshot = text(&images[0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]).to_owned();
    assert_eq!(latest_launch_template(&stack, &name)["ImageId"], json!(ami));
    assert!(
        applied
            .stdout
            .contains(&format!("URL:        http://{name}")),
        "{applied}"
    );
    // Packer's temporary key pair and security group are gone again.
    let groups = stack.aws(&["ec2", "describe-security-groups"]);
    assert!(!groups.to_string().contains("packer_"), "{groups}");
    let keys = stack.aws(&["ec2", "describe-key-pairs"]);
    assert_eq!(keys["KeyPairs"], json!([]), "{keys}");

    // scale.sh: the desired capacity, then a raise with its scheduled end and tag, then the
    // status and the end of the raise.
    let scale =
        |args: &'static [&'static str]| run_as(&stack, &operator, "scripts/scale.sh", args, &[]);
    scale(&["--env", "e2e", "3"]).await.assert_success();
    let group = &stack.aws(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--auto-scaling-group-names",
        &name,
    ])["AutoScalingGroups"][0];
    assert_eq!(group["DesiredCapacity"], json!(3), "{group}");
    scale(&["--env", "e2e", "--min", "3", "--for", "1h"])
        .await
        .assert_success();
    let actions = stack.aws(&[
        "autoscaling",
        "describe-scheduled-actions",
        "--auto-scaling-group-name",
        &name,
    ]);
    assert_eq!(
        actions["ScheduledUpdateGroupActions"][0]["ScheduledActionName"],
        json!("temporary-raise-end"),
        "{actions}"
    );
    let status = scale(&["--env", "e2e", "status"]).await;
    status.assert_success();
    assert!(
        status.stdout.contains("raise        min 3 until"),
        "{status}"
    );

    // A policy without the one action `--cancel` needs to remove the raise's end: moto
    // refuses the call, so a pass above means every call was granted.
    let trimmed = for_moto(&without_action(
        &policies,
        "autoscaling:DeleteScheduledAction",
    ));
    replace_policy(&stack, "operator", &trimmed);
    let refused = scale(&["--env", "e2e", "--cancel"]).await;
    assert_denied(&refused, "autoscaling:DeleteScheduledAction");
    replace_policy(&stack, "operator", &for_moto(&policies));
    scale(&["--env", "e2e", "--cancel"]).await.assert_success();

    // What the user reads when something is wrong, as the operator: the service's logs
    // (logs.sh), then validate.sh's report on instances that do not serve (stopped), and on
    // instances that run an older launch-template version than the group's.
    let path = path_with_packer(&stack);
    let mut read_env: Vec<(&str, &str)> = operator.env().to_vec();
    read_env.push(("PATH", &path));
    read_env.extend_from_slice(&env);
    observed::check_logs_sh(&stack, "e2e", &read_env);
    observed::check_unhealthy_report(&stack, &name, "e2e", &read_env).await;
    observed::check_stale_version(&stack, &name, "e2e", &read_env).await;

    let destroyed = run_as(&stack, &operator, "destroy.sh", &["--yes", "e2e"], &env).await;
    destroyed.assert_success();
    assert_nothing_left(&stack, &name);
    let images = stack.aws(&["ec2", "describe-images", "--image-ids", &ami]);
    assert_eq!(images["Images"], json!([]), "the AMI is deregistered");
    let error = stack.aws_error(&["ec2", "describe-snapshots", "--snapshot-ids", &snapshot]);
    assert!(
        error.contains("NotFound"),
        "the snapshot is deleted: {error}"
    );
    let logs = stack.aws(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        &format!("/{PROJECT}/e2e/"),
    ]);
    assert_eq!(logs["logGroups"], json!([]), "log group left: {logs}");
    let workspaces = stack.terraform(None, &["workspace", "list"]).await;
    assert!(!workspaces.stdout.contains("e2e"), "{workspaces}");
}

/// Replaces the managed policies attached to `user` by new versions of these documents.
fn replace_policy(stack: &Deployment, user: &str, policies: &[(String, Value)]) {
    for (policy, document) in policies {
        let arn = format!("arn:aws:iam::123456789012:policy/{user}-{policy}");
        let versions = stack.aws(&["iam", "list-policy-versions", "--policy-arn", &arn]);
        stack.aws(&[
            "iam",
            "create-policy-version",
            "--policy-arn",
            &arn,
            "--policy-document",
            &document.to_string(),
            "--set-as-default",
        ]);
        for version in versions["Versions"].as_array().expect("versions") {
            stack.aws(&[
                "iam",
                "delete-policy-version",
                "--policy-arn",
                &arn,
                "--version-id",
                text(&version["VersionId"]),
            ]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preflight_reports_every_problem_of_a_misconfigured_account_and_creates_nothing() {
    // us-west-1 has two zones; az_count 3 asks for a third.
    let mut stack = Deployment::start("us-west-1").await;
    let policies = without_action(&rendered(PROJECT), "ec2:CreateLaunchTemplate");
    let operator = stack.create_user("operator", &for_moto(&policies));
    // No service-linked role (moto's accounts start without one); no default VPC; no
    // Amazon Linux 2023 image for x86_64.
    remove_default_vpc(&stack);
    let al2023 = stack.aws(&[
        "ec2",
        "describe-images",
        "--owners",
        "amazon",
        "--filters",
        "Name=name,Values=al2023-ami-2023.*-x86_64",
    ]);
    for image in al2023["Images"].as_array().expect("images") {
        stack.aws(&[
            "ec2",
            "deregister-image",
            "--image-id",
            text(&image["ImageId"]),
        ]);
    }
    // A customer managed key as the default EBS key, and a vCPU quota of 8: moto can hold
    // neither, so a stand-in answers those two calls (tests/fixtures/aws-edge.py) and passes
    // every other EC2 call on to moto.
    let key = stack.aws(&["kms", "create-key"])["KeyMetadata"]["Arn"]
        .as_str()
        .expect("a key ARN")
        .to_owned();
    stack.enforce_iam().await;
    let edge = Edge::start(&stack.moto.endpoint, 8, &key).await;
    let before = account_snapshot(&stack);

    let edge_env = [
        ("AWS_ENDPOINT_URL_EC2", edge.endpoint.as_str()),
        ("AWS_ENDPOINT_URL_SERVICE_QUOTAS", edge.endpoint.as_str()),
    ];
    let checked = run_as(
        &stack,
        &operator,
        "scripts/check_env.sh",
        &["--no-build", "-var", "az_count=3"],
        &edge_env,
    )
    .await;
    assert_eq!(checked.code, 1, "{checked}");
    let errors: Vec<&str> = checked
        .stderr
        .lines()
        .filter(|line| line.starts_with("ERROR: "))
        .collect();
    let expected = [
        "ERROR: us-west-1 has no default VPC for Packer's build instance: pass --packer-subnet SUBNET".to_owned(),
        "ERROR: the Auto Scaling service-linked role AWSServiceRoleForAutoScaling does not exist, and the caller may not create it".to_owned(),
        format!("ERROR: the default EBS key {key} is customer managed and neither its key policy nor a grant lets Auto Scaling use it"),
        "ERROR: t3.micro is offered in 2 zone(s) of us-west-1 (us-west-1a us-west-1b), and az_count is 3: set -var az_count=2, or choose an instance_type offered in 3 zones".to_owned(),
        "ERROR: no Amazon Linux 2023 image (al2023-ami-2023.*-x86_64, owner amazon) for x86_64 in us-west-1".to_owned(),
        "ERROR: the On-Demand standard vCPU quota of us-west-1 (L-1216C47A) is 8, and this deploy may run 14 vCPUs".to_owned(),
        "ERROR: the caller may not ec2:CreateLaunchTemplate (the group's launch template, dry run: AccessDenied)".to_owned(),
        "ERROR: 7 check(s) failed: fix them, then run scripts/check_env.sh again; nothing was created".to_owned(),
    ];
    for line in &expected {
        assert!(
            errors.iter().any(|error| error.starts_with(line.as_str())),
            "{line}:\n{checked}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{checked}");
    // What moto cannot answer is said, not passed over.
    assert!(
        checked
            .stderr
            .contains("NOTE: UNVERIFIED before the apply, as the policies cannot be simulated"),
        "{checked}"
    );
    assert_eq!(
        account_snapshot(&stack),
        before,
        "the preflight created something"
    );

    // apply.sh stops there, before the build; --skip-preflight goes on without it.
    let binary = stack.root().join("candidates-fake");
    std::fs::write(&binary, b"not really an ELF binary\n").expect("fake binary");
    let dist = stack.root().join("dist-staging").display().to_string();
    let args = [
        "--yes",
        "--binary",
        &binary.display().to_string(),
        "-var",
        "az_count=3",
        "dev",
    ];
    let stopped = run_as(
        &stack,
        &operator,
        "apply.sh",
        &args,
        &[("CANDIDATES_DIST_DIR", &dist), edge_env[0], edge_env[1]],
    )
    .await;
    stopped.assert_failure();
    assert!(
        stopped
            .stderr
            .contains("ERROR: step 'check the environment (scripts/check_env.sh)' failed"),
        "{stopped}"
    );
    assert!(!stopped.output().contains("stand-in packer"), "{stopped}");
    assert_eq!(
        account_snapshot(&stack),
        before,
        "apply.sh created something"
    );
}

/// tests/fixtures/aws-edge.py in front of moto: the vCPU quota and the default EBS key.
struct Edge {
    endpoint: String,
    _child: tokio::process::Child,
}

impl Edge {
    async fn start(moto: &str, vcpu_quota: u32, key: &str) -> Self {
        let port = blackbox::free_port();
        let child = tokio::process::Command::new("python3")
            .arg(blackbox::repo_root().join("tests/fixtures/aws-edge.py"))
            .args([&port.to_string(), moto, &vcpu_quota.to_string(), key])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start tests/fixtures/aws-edge.py");
        let endpoint = format!("http://127.0.0.1:{port}");
        blackbox::eventually(
            "the edge stand-in to listen",
            std::time::Duration::from_secs(30),
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
            },
        )
        .await;
        Self {
            endpoint,
            _child: child,
        }
    }
}

/// What a preflight must not create: VPCs, security groups, key pairs, launch templates,
/// instances, roles.
fn account_snapshot(stack: &Deployment) -> Vec<Value> {
    vec![
        stack.aws(&["ec2", "describe-vpcs"])["Vpcs"].clone(),
        stack.aws(&["ec2", "describe-security-groups"])["SecurityGroups"].clone(),
        stack.aws(&["ec2", "describe-key-pairs"])["KeyPairs"].clone(),
        stack.aws(&["ec2", "describe-launch-templates"])["LaunchTemplates"].clone(),
        stack.aws(&["ec2", "describe-instances"])["Reservations"].clone(),
        stack.aws(&["iam", "list-roles"])["Roles"].clone(),
    ]
}

/// Deletes the region's default VPC and what it holds, as some accounts have.
fn remove_default_vpc(stack: &Deployment) {
    let vpcs = stack.aws(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=is-default,Values=true",
    ]);
    let vpc = text(&vpcs["Vpcs"][0]["VpcId"]).to_owned();
    let filter = format!("Name=vpc-id,Values={vpc}");
    let subnets = stack.aws(&["ec2", "describe-subnets", "--filters", &filter]);
    for subnet in subnets["Subnets"].as_array().expect("subnets") {
        stack.aws(&[
            "ec2",
            "delete-subnet",
            "--subnet-id",
            text(&subnet["SubnetId"]),
        ]);
    }
    let gateways = stack.aws(&[
        "ec2",
        "describe-internet-gateways",
        "--filters",
        &format!("Name=attachment.vpc-id,Values={vpc}"),
    ]);
    for gateway in gateways["InternetGateways"].as_array().expect("gateways") {
        let id = text(&gateway["InternetGatewayId"]);
        stack.aws(&[
            "ec2",
            "detach-internet-gateway",
            "--internet-gateway-id",
            id,
            "--vpc-id",
            &vpc,
        ]);
        stack.aws(&[
            "ec2",
            "delete-internet-gateway",
            "--internet-gateway-id",
            id,
        ]);
    }
    stack.aws(&["ec2", "delete-vpc", "--vpc-id", &vpc]);
}

/// What moto cannot evaluate, checked on the documents: every write is scoped by a name
/// prefix in its ARNs or by the `Project` tag, but for the statements named here (why:
/// README, "The operator's least-privilege policy"); each policy fits AWS's limit; the
/// rendering for another project leaves nothing of the default name.
#[test]
fn the_policies_are_scoped_by_the_project_and_render_for_another_one() {
    // Packer launches in the default VPC and Auto Scaling checks the caller may launch the
    // group's template; a subnet, route table or security group is created inside a VPC, and
    // a rule inside its group, which carry the scope themselves.
    let unscoped_by_design = ["LaunchWith", "CreateInsideAnyVpc", "RulesOfProjectGroups"];
    let is_read = |action: &str| {
        let name = action.split_once(':').expect("service:action").1;
        ["Describe", "Get", "List"]
            .iter()
            .any(|read| name.starts_with(read))
    };
    let policies = rendered(PROJECT);
    let mut sids = std::collections::BTreeSet::new();
    for (name, policy) in &policies {
        let size = policy
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .count();
        assert!(size <= 6144, "{name} holds {size} characters");
        for statement in policy["Statement"].as_array().expect("statements") {
            let sid = text(&statement["Sid"]);
            assert!(sids.insert(sid.to_owned()), "Sid {sid} twice");
            assert_eq!(statement["Effect"], json!("Allow"), "{sid}");
            let resources: Vec<&str> = match &statement["Resource"] {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().map(text).collect(),
                other => panic!("{sid}: resource {other}"),
            };
            let condition = statement["Condition"].to_string();
            let by_tag = condition.contains("/Project\":\"axum-asg\"")
                || condition.contains("ec2:CreateAction");
            let by_name = resources.iter().all(|arn| {
                arn.contains("/axum-asg-")
                    || arn.contains(":axum-asg-")
                    || arn.contains(":log-group:/axum-asg/")
                    || arn.ends_with("/AWSServiceRoleForAutoScaling")
                    || arn.ends_with(":user/${aws:username}")
                    || arn.ends_with(":ec2/L-1216C47A")
            });
            let reads = blackbox::operator_policy::actions_of(statement)
                .iter()
                .all(|action| is_read(action));
            assert!(
                by_tag || by_name || reads || unscoped_by_design.contains(&sid),
                "{sid} grants writes beyond the project: {statement}"
            );
        }
    }
    for sid in unscoped_by_design {
        assert!(
            sids.contains(sid),
            "no statement {sid} any more: update this test"
        );
    }

    for (name, policy) in rendered("teamb") {
        let text = policy.to_string();
        assert!(!text.contains("axum-asg"), "{name}: {text}");
        assert!(
            text.contains("autoScalingGroupName/teamb-*") || text.contains("Project\":\"teamb\""),
            "{name}: {text}"
        );
    }
}

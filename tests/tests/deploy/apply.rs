//! `apply.sh`: the environment check, the bake (or the reuse of an AMI baked from the same
//! inputs), the apply and the smoke test, in this order, each stopping what follows when it
//! fails.

use std::fs;

use blackbox::standins::{REGION, Run, Stage, add_images, image, is_sha256, strings, value_of};
use blackbox::{ServiceBuilder, VALIDATE_CHECKS};
use serde_json::{Value, json};

/// A stage whose stand-in Terraform reports a local service's URL (so validate.sh really
/// talks to one), and the fake binary to deploy. Keep the service (`_svc`) for the test's
/// length: dropping it stops it.
async fn staged() -> (Stage, String, blackbox::Service) {
    let svc = ServiceBuilder::memory().start().await;
    let mut stage = Stage::new();
    stage.set("STANDIN_URL", svc.base_url());
    let binary = stage.fake_binary();
    (stage, binary, svc)
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_deploy_bakes_the_ami_applies_it_and_validates() {
    let (stage, binary, svc) = staged().await;

    let run = stage.apply(&["--yes", "--binary", &binary, "dev"]);
    run.assert_success();

    // First the environment check: the tools, the credentials, then the account's preflight,
    // which reads, simulates and dry-runs, and creates nothing.
    for expected in [
        "aws --version",
        "packer version",
        "terraform version",
        "aws sts get-caller-identity",
        "aws iam get-role --role-name AWSServiceRoleForAutoScaling",
        "aws service-quotas get-service-quota",
        "terraform -chdir=$REPO/infra console",
        "aws ec2 run-instances",
    ] {
        assert!(
            run.preflight.iter().any(|call| call.starts_with(expected)),
            "check_env should call {expected}:\n{run}"
        );
    }
    for call in &run.preflight {
        let words: Vec<&str> = call.split(' ').collect();
        let harmless = match words[0] {
            "aws" => {
                words.contains(&"--dry-run")
                    || ["--version", "sts", "configure"].contains(&words[1])
                    || ["describe-", "get-", "list-", "simulate-"]
                        .iter()
                        .any(|read| words[2].starts_with(read))
            }
            "terraform" => {
                call.ends_with("version")
                    || call.starts_with("terraform -chdir=$REPO/infra init -input=false")
                    || call.starts_with("terraform -chdir=$REPO/infra console")
            }
            "packer" => call == "packer version",
            _ => false,
        };
        assert!(
            harmless,
            "the preflight changes nothing, but called {call}:\n{run}"
        );
    }

    // Then, in this exact order: look for an AMI, bake one, apply it.
    let hash = run.inputs_hash();
    assert!(is_sha256(&hash), "{hash}");
    let build = run.one_call("packer build");
    let revision = value_of(build, "git_revision");
    let commit = revision.strip_suffix("-dirty").unwrap_or(&revision);
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "git_revision={revision}"
    );
    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(stage.path("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    let artifact = manifest["builds"][0]["artifact_id"].as_str().expect("id");
    let ami = artifact
        .strip_prefix(&format!("{REGION}:"))
        .expect("region:ami");
    assert_eq!(manifest["builds"][0]["custom_data"]["inputs_hash"], hash);
    let infra = "terraform -chdir=$REPO/infra";
    let expected = [
        format!(
            "aws ec2 describe-images --region {REGION} --owners self --filters \
             Name=tag:Project,Values=axum-asg Name=tag:InputsHash,Values={hash} \
             Name=state,Values=available --output json"
        ),
        "packer init $REPO/packer".to_owned(),
        format!(
            "packer build -var git_revision={revision} -var inputs_hash={hash} \
             -var region={REGION} -var binary_path=$TMP/dist/candidates -var project=axum-asg \
             -var subnet_id= $REPO/packer"
        ),
        format!("{infra} init -input=false"),
        format!("{infra} workspace select -or-create=true dev"),
        // A temporary raise to keep? None on a first deploy: no outputs, no group.
        format!("{infra} output -json"),
        format!(
            "{infra} apply -input=false -auto-approve -var ami_id={ami} -var region={REGION} \
             -var project=axum-asg"
        ),
    ];
    assert_eq!(&run.calls[..expected.len()], expected, "{run}");

    // Then validate.sh waited for healthy targets and passed; then the outputs.
    let rest = &run.calls[expected.len()..];
    assert!(
        rest.iter()
            .any(|call| call.starts_with("aws elbv2 describe-target-health")),
        "validate.sh waits for healthy targets:\n{run}"
    );
    assert_eq!(
        rest[rest.len() - 2..],
        [
            format!("{infra} output -raw url"),
            format!("{infra} output -raw dashboard_url"),
        ],
        "{run}"
    );
    for check in VALIDATE_CHECKS {
        assert!(
            run.stdout.contains(&format!("✓ {check} passed")),
            "{check}:\n{run}"
        );
    }
    assert!(
        run.stdout
            .contains(&format!("URL:        {}\n", svc.base_url())),
        "{run}"
    );
    assert!(
        run.stdout.contains(&format!(
            "Dashboard:  https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards/dashboard/axum-asg-dev\n"
        )),
        "{run}"
    );
    // validate.sh really talked to the service.
    let listed: Value = svc.get("/candidates").await.json().await.expect("list");
    assert!(
        listed[0]["CandidateName"]
            .as_str()
            .is_some_and(|name| name.starts_with("validate-")),
        "{listed}"
    );

    // The binary Packer took is the one given, with a checksum install.sh accepts; the AMI
    // carries the inputs hash that a later run looks for.
    assert_eq!(
        fs::read(stage.path("dist/candidates")).expect("staged binary"),
        fs::read(&binary).expect("given binary")
    );
    let checksum = fs::read_to_string(stage.path("dist/candidates.sha256")).expect("checksum");
    assert!(checksum.ends_with("  candidates\n"), "{checksum}");
    let aws = stage.model("aws.json");
    assert_eq!(aws["images"][0]["ImageId"], ami);
    assert!(
        aws["images"][0]["Tags"]
            .as_array()
            .expect("tags")
            .contains(&json!({"Key": "InputsHash", "Value": hash})),
        "{aws}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ami_baked_from_the_same_inputs_is_reused_without_packer() {
    let (stage, binary, _svc) = staged().await;

    let first = stage.apply(&["--yes", "--binary", &binary, "dev"]);
    first.assert_success();
    let baked = first.applied_ami();
    let hash = first.inputs_hash();
    // Decoys: the same inputs but older, or not available yet; newer but other inputs.
    add_images(
        &stage,
        &[
            image(
                "ami-0000000000000000a",
                "axum-asg",
                &hash,
                "2020-01-01T00:00:00.000Z",
                "available",
            ),
            image(
                "ami-0000000000000000b",
                "axum-asg",
                &hash,
                "2099-01-01T00:00:00.000Z",
                "pending",
            ),
            image(
                "ami-0000000000000000c",
                "axum-asg",
                &"0".repeat(64),
                "2099-01-01T00:00:00.000Z",
                "available",
            ),
        ],
    );

    // The same binary again, from another path: same inputs, so no Packer at all.
    let copy = stage.write_binary("elsewhere", &fs::read(&binary).expect("binary"));
    let second = stage.apply(&["--yes", "--binary", &copy, "perf1"]);
    second.assert_success();
    assert_eq!(second.inputs_hash(), hash, "the inputs hash must be stable");
    assert!(
        second.calls_to("packer init").is_empty() && second.calls_to("packer build").is_empty(),
        "{second}"
    );
    assert_eq!(second.applied_ami(), baked, "{second}");
    assert!(
        second.stderr.contains(&format!("reusing {baked}")),
        "{second}"
    );
    for check in VALIDATE_CHECKS {
        assert!(
            second.stdout.contains(&format!("✓ {check} passed")),
            "{second}"
        );
    }

    // Another binary is another AMI.
    let other = stage.write_binary("candidates-v2", b"version 2\n");
    let third = stage.apply(&["--yes", "--binary", &other, "dev"]);
    third.assert_success();
    assert_ne!(third.inputs_hash(), hash);
    let build = third.one_call("packer build");
    assert_eq!(
        value_of(build, "inputs_hash"),
        third.inputs_hash(),
        "{third}"
    );
    assert_ne!(third.applied_ami(), baked, "{third}");
}

#[test]
fn a_failed_packer_build_stops_before_terraform() {
    let mut stage = Stage::new();
    stage.set("STANDIN_FAIL", "packer build");
    let run = stage.apply(&["--yes", "--binary", &stage.fake_binary(), "dev"]);
    run.assert_failed_at("packer build");
    assert_eq!(run.calls_to("packer build").len(), 1, "{run}");
    assert!(run.calls_to("terraform -chdir").is_empty(), "{run}");
    assert!(!run.stdout.contains("URL:"), "{run}");
}

#[test]
fn a_failed_terraform_apply_stops_before_validation() {
    let mut stage = Stage::new();
    stage.set("STANDIN_FAIL", "terraform apply");
    let run = stage.apply(&["--yes", "--binary", &stage.fake_binary(), "dev"]);
    run.assert_failed_at("terraform apply");
    assert!(
        run.calls
            .last()
            .is_some_and(|call| call.starts_with("terraform -chdir=$REPO/infra apply")),
        "nothing after the failed apply:\n{run}"
    );
    assert!(run.calls_to("aws elbv2").is_empty(), "{run}");
    assert!(!run.stdout.contains('✓'), "{run}");
    assert!(!run.stdout.contains("URL:"), "{run}");
}

#[test]
fn a_failed_environment_check_stops_before_anything_is_built() {
    let mut stage = Stage::new();
    stage.set("STANDIN_FAIL", "aws sts get-caller-identity");
    let run = stage.apply(&["--yes", "--binary", &stage.fake_binary(), "dev"]);
    run.assert_failed_at("check the environment (scripts/check_env.sh)");
    // Without credentials, the account is not looked at, and nothing follows.
    assert!(run.calls.is_empty(), "{run}");
    assert!(
        run.preflight
            .iter()
            .all(|call| !call.starts_with("aws ec2") && !call.starts_with("terraform -chdir")),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_the_preflight_refuses_stops_before_anything_is_built() {
    let (mut stage, binary, _svc) = staged().await;
    stage
        .set("STANDIN_VCPU_QUOTA", "8")
        .set("STANDIN_DENY", "ec2:RunInstances");
    let run = stage.apply(&["--yes", "--binary", &binary, "dev"]);
    run.assert_failed_at("check the environment (scripts/check_env.sh)");
    assert!(
        run.stderr.contains("ERROR: the On-Demand standard vCPU quota of eu-west-3 (L-1216C47A) is 8, and this deploy may run 14 vCPUs"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("ERROR: the caller may not ec2:RunInstances (Packer's t3.small build instance, dry run: UnauthorizedOperation)"),
        "{run}"
    );
    assert!(run.calls.is_empty(), "nothing after the preflight:\n{run}");

    // The user's own values are the ones checked: a smaller max_size fits the quota.
    stage.unset("STANDIN_DENY");
    stage.set("STANDIN_VCPU_QUOTA", "8");
    let run = stage.apply(&[
        "--yes",
        "--binary",
        &stage.fake_binary(),
        "-var",
        "max_size=2",
        "dev",
    ]);
    assert!(
        run.stderr
            .contains("NOTE: On-Demand standard vCPU quota of eu-west-3: 8, this deploy may run 8"),
        "{run}"
    );
    assert!(
        run.preflight
            .iter()
            .any(|call| call.contains("console -input=false -var max_size=2")),
        "{run}"
    );

    // --skip-preflight checks the tools only, says so, and goes on.
    stage.set("STANDIN_DENY", "ec2:RunInstances");
    let run = stage.apply(&[
        "--yes",
        "--skip-preflight",
        "--binary",
        &stage.fake_binary(),
        "dev",
    ]);
    assert!(
        run.stderr
            .contains("NOTE: --skip-preflight: the AWS account is not checked"),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("NOTE: --tools-only: the AWS account was not checked"),
        "{run}"
    );
    assert!(
        run.preflight
            .iter()
            .all(|call| !call.starts_with("aws ec2")),
        "{run}"
    );
    run.assert_success();
    assert_eq!(
        run.calls_to("terraform -chdir=$REPO/infra apply").len(),
        1,
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn yes_or_ci_approves_and_otherwise_terraform_asks() {
    let (mut stage, binary, _svc) = staged().await;
    let approves = |run: &Run| {
        run.one_call("terraform -chdir=$REPO/infra apply")
            .split(' ')
            .any(|word| word == "-auto-approve")
    };

    // --yes; extra variable files go to terraform apply, relative to the caller.
    let run = stage.apply(&[
        "--yes",
        "--binary",
        &binary,
        "dev",
        "-var-file=infra/examples/weekly-business.tfvars",
    ]);
    run.assert_success();
    assert!(approves(&run), "{run}");
    assert!(
        run.one_call("terraform -chdir=$REPO/infra apply")
            .contains(" -var-file=$REPO/infra/examples/weekly-business.tfvars -var ami_id="),
        "{run}"
    );

    // Neither --yes nor CI: Terraform asks, and a person says yes.
    let run = stage.run("apply.sh", &["--binary", &binary, "dev"], Some("yes\n"));
    run.assert_success();
    assert!(!approves(&run), "{run}");
    assert!(run.stderr.contains("Enter a value:"), "{run}");

    // ... and nobody answers: Terraform cancels, nothing is validated.
    let run = stage.apply(&["--binary", &binary, "dev"]);
    run.assert_failed_at("terraform apply");
    assert!(!approves(&run), "{run}");
    assert!(run.calls_to("aws elbv2").is_empty(), "{run}");

    // CI=true approves like --yes.
    stage.set("CI", "true");
    let run = stage.apply(&["--binary", &binary, "dev"]);
    run.assert_success();
    assert!(approves(&run), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_variable_file_cannot_replace_the_baked_ami_or_its_region() {
    let (stage, binary, _svc) = staged().await;
    let var_file = stage.path("override.tfvars");
    fs::write(
        &var_file,
        "ami_id = \"ami-0fffffffffffffff0\"\nregion = \"us-west-2\"\nmax_size = \"6\"\n",
    )
    .expect("write the variable file");
    let run = stage.apply(&[
        "--yes",
        "--binary",
        &binary,
        "dev",
        &format!("-var-file={}", var_file.display()),
    ]);
    run.assert_success();
    // Terraform keeps the last assignment: the AMI apply.sh baked and its region.
    let applied = &stage.model("terraform.json")["workspaces"]["dev"];
    assert_eq!(applied["ami_id"], run.applied_ami().as_str(), "{run}");
    assert_eq!(applied["region"], REGION, "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_project_name_reaches_packer_terraform_and_the_ami_lookup() {
    let (mut stage, binary, _svc) = staged().await;
    stage.set("AXUM_ASG_PROJECT", "teamb");
    let run = stage.apply(&["--yes", "--binary", &binary, "qa"]);
    run.assert_success();
    assert!(
        run.one_call("aws ec2 describe-images")
            .contains("Name=tag:Project,Values=teamb"),
        "{run}"
    );
    assert!(
        run.one_call("packer build").contains("-var project=teamb"),
        "{run}"
    );
    assert!(
        run.one_call("terraform -chdir=$REPO/infra apply")
            .ends_with("-var project=teamb"),
        "{run}"
    );
    let aws = stage.model("aws.json");
    assert_eq!(
        aws["images"][0]["Tags"][0],
        json!({"Key": "Project", "Value": "teamb"})
    );
    assert_eq!(
        strings(&aws["launch_templates"], "LaunchTemplateName"),
        ["teamb-qa"]
    );

    stage.set("AXUM_ASG_PROJECT", "Team_B");
    let refused = stage.apply(&["--yes", "--binary", &binary, "qa"]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(refused.calls.is_empty(), "{refused}");
    assert!(
        refused
            .stderr
            .contains("AXUM_ASG_PROJECT=Team_B is not a project name"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_default_vpc_the_bake_needs_a_subnet_and_uses_it() {
    let (mut stage, binary, _svc) = staged().await;
    stage.set("STANDIN_NO_DEFAULT_VPC", "1");

    // No default VPC, no --packer-subnet: stop before Packer, saying what to do.
    let run = stage.apply(&["--yes", "--binary", &binary, "dev"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.calls_to("packer build").is_empty(), "{run}");
    assert!(
        run.stderr.contains("has no default VPC") && run.stderr.contains("--packer-subnet"),
        "{run}"
    );

    // A subnet that does not exist is refused before Packer too.
    let run = stage.apply(&[
        "--yes",
        "--binary",
        &binary,
        "--packer-subnet",
        "subnet-0f0f0f0f",
        "dev",
    ]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.calls_to("packer build").is_empty(), "{run}");
    assert!(
        run.stderr
            .contains("--packer-subnet subnet-0f0f0f0f: no such subnet"),
        "{run}"
    );

    // The named subnet goes to Packer, and the deploy completes.
    let run = stage.apply(&[
        "--yes",
        "--binary",
        &binary,
        "--packer-subnet",
        "subnet-0a1b2c3d",
        "dev",
    ]);
    run.assert_success();
    assert!(
        run.one_call("packer build")
            .contains("-var subnet_id=subnet-0a1b2c3d"),
        "{run}"
    );
}

#[test]
fn bad_usage_exits_2_and_calls_nothing() {
    let stage = Stage::new();
    let binary = stage.fake_binary();
    for args in [
        vec!["--bogus"],
        vec!["Dev"],
        vec!["default"],
        vec!["-dev"],
        vec!["an-environment-name-too-long"],
        vec!["dev", "perf1"],
        vec!["--binary"],
        vec!["dev", "-var", "ami_id=ami-0123456789abcdef0"],
        vec!["dev", "-var=region=us-east-1"],
        vec!["dev", "-var", "project=other"],
        vec!["dev", "--packer-subnet", "sn-1"],
        vec!["dev", "--rollout-wait", "10m"],
        vec!["dev", "--rollout-wait", "0"],
        vec!["-h"],
    ] {
        let mut all = vec!["--binary", binary.as_str()];
        all.extend(&args);
        let run = stage.apply(if args == ["--binary"] { &args } else { &all });
        assert_eq!(run.code, 2, "apply.sh {args:?}:\n{run}");
        assert!(
            run.calls.is_empty() && run.preflight.is_empty(),
            "apply.sh {args:?}:\n{run}"
        );
    }
    let run = stage.apply(&["-h"]);
    assert!(
        run.stderr.contains(
            "./apply.sh [--yes] [--binary PATH] [--packer-subnet SUBNET] [--rollout-wait SECONDS]"
        ),
        "{run}"
    );
    assert!(
        run.stderr
            .contains("--rollback [--yes] [--rollout-wait SECONDS] [--skip-preflight] [ENV]"),
        "{run}"
    );
}

// ---------------------------------------------------------------------------------------
// apply.sh and a temporary raise (scripts/scale.sh --min)
// ---------------------------------------------------------------------------------------

const GROUP: &str = "axum-asg-dev";

/// A stage with dev deployed (min 2, max 4) and a local service behind its URL.
async fn deployed() -> (Stage, String, blackbox::Service) {
    let (stage, binary, svc) = staged().await;
    stage
        .apply(&["--yes", "--binary", &binary, "dev"])
        .assert_success();
    assert_eq!(stage.sizes(GROUP), (2, 2, 4));
    (stage, binary, svc)
}

/// scripts/scale.sh against the stand-ins, as an operator runs it; returns the raise's end.
#[track_caller]
fn raise(stage: &Stage, args: &[&str]) -> String {
    let mut all = vec!["--env", "dev"];
    all.extend(args);
    let run = stage.run("scripts/scale.sh", &all, None);
    run.assert_success();
    let tag = stage
        .group_tag(GROUP, "TemporaryRaise")
        .unwrap_or_else(|| panic!("no raise recorded:\n{run}"));
    tag.rsplit_once("until=").expect("until=").1.to_owned()
}

/// The calls after `terraform apply` that change something, up to the smoke test
/// (validate.sh starts with the stack's URL); the reads of the rollout's follower
/// (outputs, the group, its instance refreshes) left out.
fn calls_after_the_apply(run: &Run) -> Vec<&str> {
    run.calls
        .iter()
        .map(String::as_str)
        .skip_while(|call| !call.starts_with("terraform -chdir=$REPO/infra apply"))
        .skip(1)
        .take_while(|call| *call != "terraform -chdir=$REPO/infra output -raw url")
        .filter(|call| {
            !call.starts_with("terraform -chdir=$REPO/infra output")
                && !call.starts_with("aws autoscaling describe-")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_active_raise_outlives_an_apply_and_still_ends_when_it_was_due() {
    let (stage, binary, _svc) = deployed().await;
    let until = raise(&stage, &["--min", "3", "--for", "2h"]);
    assert_eq!(stage.sizes(GROUP), (3, 3, 4));

    let run = stage.apply(&["--yes", "--binary", &binary, "dev"]);
    run.assert_success();
    let infra = "terraform -chdir=$REPO/infra";
    let ami = run.applied_ami();
    // Terraform is asked what min_size and max_size this apply sets, then gets the raised
    // minimum last, so that it wins.
    assert_eq!(
        run.one_call(&format!("{infra} console")),
        format!(
            "{infra} console -input=false -var ami_id={ami} -var region={REGION} -var project=axum-asg"
        ),
        "{run}"
    );
    assert!(
        run.one_call(&format!("{infra} apply"))
            .ends_with("-var project=axum-asg -var min_size=3"),
        "{run}"
    );
    // Afterwards the record Terraform removed, and the end, which restores min_size.
    assert_eq!(
        calls_after_the_apply(&run),
        [
            format!(
                "aws autoscaling create-or-update-tags --region {REGION} --tags \
                 [{{\"ResourceId\":\"{GROUP}\",\"ResourceType\":\"auto-scaling-group\",\"Key\":\"TemporaryRaise\",\
                 \"Value\":\"min=3 restore=2 until={until}\",\"PropagateAtLaunch\":false}}]"
            ),
            format!(
                "aws autoscaling put-scheduled-update-group-action --region {REGION} \
                 --auto-scaling-group-name {GROUP} --scheduled-action-name temporary-raise-end \
                 --start-time {until} --min-size 2"
            ),
        ],
        "{run}"
    );
    assert_eq!(stage.sizes(GROUP), (3, 3, 4), "{run}");
    assert_eq!(
        stage.group_tag(GROUP, "TemporaryRaise"),
        Some(format!("min=3 restore=2 until={until}"))
    );
    assert_eq!(
        stage.scheduled_actions(GROUP),
        [
            json!({"AutoScalingGroupName": GROUP, "ScheduledActionName": "temporary-raise-end",
                "StartTime": until, "MinSize": 2})
        ]
    );
    for said in [
        format!(
            "NOTE: a temporary raise holds {GROUP} at min 3 until {until}: this apply keeps it (min_size 3 instead of 2"
        ),
        format!("NOTE: kept the temporary raise of {GROUP}: min 3 until {until}, then min 2"),
    ] {
        assert!(run.stderr.contains(&said), "{said}:\n{run}");
    }
    for check in VALIDATE_CHECKS {
        assert!(run.stdout.contains(&format!("✓ {check} passed")), "{run}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raise_outlives_an_apply_that_lowers_min_size_and_then_restores_the_new_one() {
    let (stage, binary, _svc) = deployed().await;
    let until = raise(&stage, &["--min", "4", "--for", "1h"]);
    let run = stage.apply(&["--yes", "--binary", &binary, "dev", "-var", "min_size=1"]);
    run.assert_success();
    let apply = run.one_call("terraform -chdir=$REPO/infra apply");
    assert!(
        apply.contains(" -var min_size=1 ") && apply.ends_with(" -var min_size=4"),
        "the user's min_size, then the raise's: {run}"
    );
    assert_eq!(stage.sizes(GROUP), (4, 4, 4), "{run}");
    assert_eq!(
        stage.group_tag(GROUP, "TemporaryRaise"),
        Some(format!("min=4 restore=1 until={until}"))
    );
    let actions = stage.scheduled_actions(GROUP);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["StartTime"], json!(until));
    assert_eq!(
        actions[0]["MinSize"],
        json!(1),
        "the end restores the new min_size"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raise_without_an_end_outlives_an_apply_without_one() {
    let (stage, binary, _svc) = deployed().await;
    assert_eq!(raise(&stage, &["--min", "3"]), "none");
    let run = stage.apply(&["--yes", "--binary", &binary, "dev"]);
    run.assert_success();
    assert_eq!(stage.sizes(GROUP), (3, 3, 4), "{run}");
    assert_eq!(
        stage.group_tag(GROUP, "TemporaryRaise").as_deref(),
        Some("min=3 restore=2 until=none")
    );
    assert!(stage.scheduled_actions(GROUP).is_empty(), "{run}");
    assert!(
        run.calls_to("aws autoscaling put-scheduled-update-group-action")
            .is_empty(),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_whose_min_size_reaches_the_raise_ends_it() {
    let (stage, binary, _svc) = deployed().await;
    raise(&stage, &["--min", "3", "--for", "1h"]);
    let run = stage.apply(&["--yes", "--binary", &binary, "dev", "-var", "min_size=3"]);
    run.assert_success();
    assert!(
        run.one_call("terraform -chdir=$REPO/infra apply")
            .ends_with("-var project=axum-asg"),
        "no raised minimum to pass: {run}"
    );
    assert!(
        run.stderr
            .contains("the min_size 3 of this apply covers it, so the raise ends with this apply"),
        "{run}"
    );
    assert_eq!(stage.sizes(GROUP), (3, 3, 4), "{run}");
    assert_eq!(stage.group_tag(GROUP, "TemporaryRaise"), None, "{run}");
    assert!(stage.scheduled_actions(GROUP).is_empty(), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_whose_max_size_is_below_a_raise_is_refused_before_terraform_applies() {
    let (stage, binary, _svc) = deployed().await;
    let until = raise(&stage, &["--min", "4", "--for", "1h"]);
    let before = stage.model("aws.json");
    let run = stage.apply(&["--yes", "--binary", &binary, "dev", "-var", "max_size=3"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "ERROR: a temporary raise holds {GROUP} at min 4 until {until}, above the max_size 3 of this apply: \
             end the raise first (scripts/scale.sh --env dev --cancel) or keep max_size at 4 or more; nothing was applied"
        )),
        "{run}"
    );
    assert_eq!(
        run.calls_to("terraform -chdir=$REPO/infra console").len(),
        1,
        "{run}"
    );
    assert!(
        run.calls_to("terraform -chdir=$REPO/infra apply")
            .is_empty(),
        "{run}"
    );
    assert_eq!(stage.model("aws.json"), before, "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raise_whose_end_has_passed_is_left_to_terraform() {
    let (stage, binary, _svc) = deployed().await;
    raise(&stage, &["--min", "3", "--for", "1h"]);
    // What AWS leaves after the end ran: the minimum restored, the action gone, the tag.
    let mut aws = stage.model("aws.json");
    let group = aws["auto_scaling_groups"]
        .as_array_mut()
        .expect("groups")
        .iter_mut()
        .find(|group| group["AutoScalingGroupName"] == GROUP)
        .expect("the group");
    group["MinSize"] = json!(2);
    for tag in group["Tags"].as_array_mut().expect("tags") {
        if tag["Key"] == "TemporaryRaise" {
            tag["Value"] = json!("min=3 restore=2 until=2020-01-01T00:00:00Z");
        }
    }
    aws["scheduled_actions"] = json!([]);
    stage.save_model("aws.json", &aws);

    let run = stage.apply(&["--yes", "--binary", &binary, "dev"]);
    run.assert_success();
    assert!(
        run.calls_to("terraform -chdir=$REPO/infra console")
            .is_empty(),
        "{run}"
    );
    assert!(
        run.one_call("terraform -chdir=$REPO/infra apply")
            .ends_with("-var project=axum-asg"),
        "{run}"
    );
    assert!(calls_after_the_apply(&run).is_empty(), "{run}");
    assert_eq!(stage.sizes(GROUP), (2, 3, 4), "{run}");
    assert_eq!(stage.group_tag(GROUP, "TemporaryRaise"), None, "{run}");
}

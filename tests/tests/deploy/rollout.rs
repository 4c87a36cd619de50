//! `apply.sh` after `terraform apply`: the instance refresh that the provider starts when the
//! launch template changes and does not wait for, followed until it ends (moto has no
//! instance refresh: the stand-in scripts it, `tests/fixtures/standin_rollout.py`); the
//! rollback to the AMI before; and what a failed rollout shows.

use blackbox::standins::{Run, Stage, add_images, image};
use blackbox::{Service, ServiceBuilder, VALIDATE_CHECKS};

const GROUP: &str = "axum-asg-dev";
const NEW_INSTANCE: &str = "i-0feedfacecafe0001";

/// A stage with dev deployed once from `candidates-v1` (launch template version 1), a
/// local service behind its URL, and a second binary ready; every pause of the refresh's
/// follower one tenth of a second.
async fn deployed_once() -> (Stage, Service, String, String) {
    let svc = ServiceBuilder::memory().start().await;
    let mut stage = Stage::new();
    stage
        .set("STANDIN_URL", svc.base_url())
        .set("CANDIDATES_ROLLOUT_POLL_SECS", "0.1");
    let first = stage.write_binary("candidates-v1", b"version 1\n");
    let second = stage.write_binary("candidates-v2", b"version 2\n");
    let run = stage.apply(&["--yes", "--binary", &first, "dev"]);
    run.assert_success();
    assert!(
        run.stderr.contains(&format!(
            "NOTE: {GROUP} is new: its instances launch from launch template version 1; no instance refresh to follow"
        )),
        "{run}"
    );
    assert!(
        run.calls_to("aws autoscaling describe-instance-refreshes")
            .is_empty(),
        "a new group has no refresh to look for:\n{run}"
    );
    let ami = run.applied_ami();
    (stage, svc, ami, second)
}

/// The lines of stderr that report the refresh's progress, in order.
fn progress(run: &Run) -> Vec<String> {
    run.stderr
        .lines()
        .filter(|line| line.starts_with("NOTE: instance refresh "))
        .map(|line| {
            line.split_once(" of axum-asg-dev: ")
                .map_or(line, |(_, rest)| rest)
                .to_owned()
        })
        .collect()
}

/// The index of the first call starting with `prefix`.
#[track_caller]
fn position(run: &Run, prefix: &str) -> usize {
    run.calls
        .iter()
        .position(|call| call.starts_with(prefix))
        .unwrap_or_else(|| panic!("no call to {prefix}:\n{run}"))
}

fn previous_ami(stage: &Stage) -> Option<String> {
    let aws = stage.model("aws.json");
    aws["launch_templates"][0]["Tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|tag| tag["Key"] == "PreviousAmi"))
        .map(|tag| tag["Value"].as_str().expect("a tag value").to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_ami_is_validated_only_after_its_instance_refresh_succeeded() {
    let (stage, _svc, first_ami, second) = deployed_once().await;
    let run = stage.apply(&["--yes", "--binary", &second, "dev"]);
    run.assert_success();
    let id = "08b91cf7-8fa6-48af-b6a6-d227f40f0000";
    assert!(
        run.stderr.contains(&format!(
            "NOTE: the launch template of {GROUP} went from version 1 to 2: following instance refresh {id} (up to 1800s)"
        )),
        "{run}"
    );
    assert_eq!(
        progress(&run),
        [
            "Pending, 0 % done, 2 instance(s) to update",
            "InProgress, 50 % done, 1 instance(s) to update",
            "Successful, 100 % done, 0 instance(s) to update",
        ],
        "{run}"
    );
    // Followed by id, after the apply and before the smoke test's first look.
    let apply = position(&run, "terraform -chdir=$REPO/infra apply");
    let followed = run
        .calls
        .iter()
        .rposition(|call| call.contains(&format!("--instance-refresh-ids {id}")))
        .expect("the refresh followed by its id");
    let validated = position(&run, "terraform -chdir=$REPO/infra output -raw url");
    assert!(apply < followed && followed < validated, "{run}");
    for check in VALIDATE_CHECKS {
        assert!(run.stdout.contains(&format!("✓ {check} passed")), "{run}");
    }
    // The AMI it replaced is recorded for a rollback.
    assert_eq!(previous_ami(&stage), Some(first_ami.clone()));
    assert!(
        run.stderr.contains(&format!(
            "NOTE: recorded {first_ami}, the AMI this deploy replaced"
        )),
        "{run}"
    );

    // The same AMI again: the template does not change, nothing to follow, the record stays.
    let again = stage.apply(&["--yes", "--binary", &second, "dev"]);
    again.assert_success();
    assert!(
        again.stderr.contains(&format!(
            "NOTE: the launch template of {GROUP} is unchanged (version 2): no instance refresh to follow"
        )),
        "{again}"
    );
    assert!(
        !again
            .calls
            .iter()
            .any(|call| call.contains("--instance-refresh-ids")),
        "{again}"
    );
    assert!(again.calls_to("aws ec2 create-tags").is_empty(), "{again}");
    assert_eq!(previous_ami(&stage), Some(first_ami));
}

/// How a refresh that does not succeed stops apply.sh before the smoke test: exit 1, its
/// progress as it went, `reason` said, the rollback command, nothing validated. The scripted
/// endings come within the default --rollout-wait whatever the machine's speed; the refresh
/// that never ends runs out of a short one.
async fn assert_the_refresh_stops_the_deploy(
    script: &str,
    wait: &str,
    expected: &[&str],
    reason: &str,
) {
    let (mut stage, _svc, first_ami, second) = deployed_once().await;
    stage.set("STANDIN_REFRESH", script);
    let run = stage.apply(&["--yes", "--rollout-wait", wait, "--binary", &second, "dev"]);
    assert_eq!(run.code, 1, "{script}:\n{run}");
    assert_eq!(progress(&run), expected, "{script}:\n{run}");
    assert!(run.stderr.contains(reason), "{script}: {reason}\n{run}");
    run.assert_failed_at("follow the rollout (instance refresh)");
    assert!(
        run.stderr.contains(&format!(
            "ERROR: to go back to {first_ami}, the AMI before this deploy: ./apply.sh dev --rollback"
        )),
        "{script}:\n{run}"
    );
    // Nothing of the smoke test ran.
    assert!(
        run.calls_to("terraform -chdir=$REPO/infra output -raw url")
            .is_empty(),
        "{script}:\n{run}"
    );
    assert!(!run.stdout.contains('✓'), "{script}:\n{run}");
    assert!(!run.stdout.contains("URL:"), "{script}:\n{run}");
    assert_eq!(previous_ami(&stage), Some(first_ami), "{script}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_refresh_stops_the_deploy_with_its_reason() {
    assert_the_refresh_stops_the_deploy(
        "failed",
        "1800",
        &[
            "InProgress, 0 % done, 2 instance(s) to update",
            "Failed, 0 % done, 2 instance(s) to update",
        ],
        "ended Failed: Instance refresh failed: instance i-0feedfacecafe0001 did not pass its Elastic Load Balancing health checks",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_refresh_stops_the_deploy() {
    assert_the_refresh_stops_the_deploy(
        "cancelled",
        "1800",
        &[
            "InProgress, 50 % done, 1 instance(s) to update",
            "Cancelling, 50 % done, 1 instance(s) to update",
            "Cancelled, 50 % done, 1 instance(s) to update",
        ],
        "ended Cancelled: Cancelled due to user request.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_rolled_back_stops_the_deploy() {
    assert_the_refresh_stops_the_deploy(
        "rollback",
        "1800",
        &[
            "InProgress, 50 % done, 1 instance(s) to update",
            "RollbackInProgress, 50 % done, 1 instance(s) to update",
            "RollbackSuccessful, 50 % done, 1 instance(s) to update",
        ],
        "ended RollbackSuccessful: The rollback completed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_that_never_ends_stops_the_deploy_after_rollout_wait() {
    assert_the_refresh_stops_the_deploy(
        "stuck",
        "2",
        &["InProgress, 50 % done, 1 instance(s) to update"],
        "is still InProgress (50 % done, 1 instance(s) to update) after 2s (--rollout-wait): it goes on in AWS",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_rollout_shows_what_the_new_instance_says() {
    let (mut stage, _svc, _first_ami, second) = deployed_once().await;
    stage.set("STANDIN_REFRESH", "failed");
    let run = stage.apply(&["--yes", "--binary", &second, "dev"]);
    assert_eq!(run.code, 1, "{run}");
    for said in [
        format!(
            "--- {NEW_INSTANCE} (eu-west-3a, launch template version 2): InService, Unhealthy; \
             load balancer: unhealthy (Target.FailedHealthChecks: Health checks failed)"
        ),
        format!(
            "aws ec2 get-console-output --region eu-west-3 --instance-id {NEW_INSTANCE} --latest"
        ),
        "  | [FAILED] Failed to start candidates.service - Candidates API (axum-asg).".to_owned(),
        format!(
            "service log, last lines (scripts/logs.sh, stream {NEW_INSTANCE} of /axum-asg/dev/candidates):"
        ),
        format!(
            "  | 2026-01-01T00:00:00Z {NEW_INSTANCE} {{\"timestamp\":\"2026-01-01T00:00:00.000000Z\",\"level\":\"ERROR\",\"message\":\"CANDIDATES_STORE: not a store URL\"}}"
        ),
    ] {
        assert!(run.stderr.contains(&said), "{said}\n{run}");
    }
    // Only the unhealthy instance is reported, not the old healthy ones.
    assert_eq!(run.stderr.matches("--- i-").count(), 1, "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_still_running_from_an_earlier_apply_is_followed_too() {
    let (mut stage, _svc, _first_ami, second) = deployed_once().await;
    stage.set("STANDIN_REFRESH", "stuck");
    let stuck = stage.apply(&["--yes", "--rollout-wait", "1", "--binary", &second, "dev"]);
    assert_eq!(stuck.code, 1, "{stuck}");
    // The same AMI again: no new version, but the refresh is still in progress.
    let again = stage.apply(&["--yes", "--rollout-wait", "1", "--binary", &second, "dev"]);
    assert_eq!(again.code, 1, "{again}");
    assert!(
        again.stderr.contains(
            "NOTE: instance refresh 08b91cf7-8fa6-48af-b6a6-d227f40f0000 of axum-asg-dev is running (not started by this apply): following it"
        ),
        "{again}"
    );
    again.assert_failed_at("follow the rollout (instance refresh)");
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_deploys_the_previous_ami_again_through_a_refresh() {
    let (mut stage, _svc, first_ami, second) = deployed_once().await;
    stage.set("STANDIN_REFRESH", "failed");
    let failed = stage.apply(&["--yes", "--binary", &second, "dev"]);
    assert_eq!(failed.code, 1, "{failed}");
    let broken_ami = failed.applied_ami();

    stage.unset("STANDIN_REFRESH");
    let run = stage.apply(&["--rollback", "--yes", "dev"]);
    run.assert_success();
    // Nothing built or baked: the recorded AMI, checked to be there, is applied.
    assert!(run.calls_to("packer build").is_empty(), "{run}");
    assert!(!run.stderr.contains("NOTE: cargo "), "--no-build:\n{run}");
    assert_eq!(run.applied_ami(), first_ami, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "NOTE: rolling axum-asg-dev back to {first_ami}, the AMI it ran before its current one"
        )),
        "{run}"
    );
    assert!(
        run.stderr.contains(&format!(
            "NOTE: the launch template of {GROUP} went from version 2 to 3"
        )),
        "{run}"
    );
    assert_eq!(
        progress(&run).last().map(String::as_str),
        Some("Successful, 100 % done, 0 instance(s) to update"),
        "{run}"
    );
    for check in VALIDATE_CHECKS {
        assert!(run.stdout.contains(&format!("✓ {check} passed")), "{run}");
    }
    // A second rollback would go back to the broken AMI: the record is "the one before".
    assert_eq!(previous_ami(&stage), Some(broken_ami));
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_is_refused_when_there_is_nothing_to_go_back_to() {
    let (stage, _svc, first_ami, _second) = deployed_once().await;
    // Deployed once: no previous AMI.
    let run = stage.apply(&["--rollback", "--yes", "dev"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(
            "ERROR: no previous AMI recorded on the launch template axum-asg-dev (tag PreviousAmi)"
        ),
        "{run}"
    );
    assert!(
        run.calls_to("terraform -chdir=$REPO/infra apply")
            .is_empty(),
        "{run}"
    );

    // Not deployed at all.
    let run = stage.apply(&["--rollback", "--yes", "perf1"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("ERROR: no launch template axum-asg-perf1 in eu-west-3"),
        "{run}"
    );
    assert!(
        run.calls_to("terraform -chdir=$REPO/infra apply")
            .is_empty(),
        "{run}"
    );

    // The previous AMI was deregistered since.
    let mut aws = stage.model("aws.json");
    aws["launch_templates"][0]["Tags"]
        .as_array_mut()
        .expect("tags")
        .push(serde_json::json!({"Key": "PreviousAmi", "Value": "ami-0000000000000dead"}));
    stage.save_model("aws.json", &aws);
    add_images(
        &stage,
        &[image(
            "ami-0000000000000beef",
            "axum-asg",
            "h",
            "2024-01-01T00:00:00.000Z",
            "available",
        )],
    );
    let run = stage.apply(&["--rollback", "--yes", "dev"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(
            "ERROR: ami-0000000000000dead, the AMI axum-asg-dev ran before, is no longer available in eu-west-3"
        ),
        "{run}"
    );
    assert!(
        run.calls_to("terraform -chdir=$REPO/infra apply")
            .is_empty(),
        "{run}"
    );
    assert_ne!(first_ami, "ami-0000000000000dead");

    // --rollback takes no binary.
    let run = stage.apply(&["--rollback", "--binary", &stage.fake_binary(), "dev"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.calls.is_empty(), "{run}");
}

//! The group read from infra/ itself: its defaults need no second copy; Terraform's own
//! checks refuse what Terraform refuses, with its messages; what Terraform accepts is
//! rehearsed, with the warnings a person can act on before any load.

mod common;

use common::{Files, repo_root, try_rehearse, validation_messages};
use rehearsal::assumptions::Assumptions;
use rehearsal::error::Error;
use rehearsal::model::{self, Scaling, TrackedMetric};
use rehearsal::variables::{self, Assignment};

fn group_with(assignments: &[Assignment]) -> Result<model::Read, Error> {
    let infra = repo_root().join("infra");
    let vars = variables::load(&infra, assignments, &[]).expect("variables");
    model::group(&vars, &Assumptions::default(), "dev", &infra)
}

/// The rehearsal's verdict on some -var values, stopping before any load is simulated.
fn check(vars: &[&str]) -> Result<(), Error> {
    let mut args: Vec<String> = vars.iter().map(|v| format!("-var={v}")).collect();
    args.extend(["--rate", "5", "--instance-rps", "100", "--check"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    try_rehearse(&args).map(|_| ())
}

#[test]
fn the_group_comes_from_the_variables_defaults() {
    let infra = repo_root().join("infra");
    let vars = variables::load(&infra, &[], &[]).expect("variables");
    let read = model::group(&vars, &Assumptions::default(), "dev", &infra).expect("group");
    let group = &read.group;
    let number = |name: &str| vars.get(name).and_then(|v| v.as_f64());
    // Whatever the defaults are today, the model holds exactly them.
    assert_eq!(Some(group.min_size as f64), number("min_size"));
    assert_eq!(Some(group.max_size as f64), number("max_size"));
    assert_eq!(Some(group.warmup_secs), number("instance_warmup_secs"));
    assert_eq!(Some(group.az_count as f64), number("az_count"));
    assert_eq!(
        Some(group.request_timeout_secs),
        number("request_timeout_secs")
    );
    assert_eq!(
        Some(group.instance_type.as_str()),
        vars.get("instance_type").and_then(|v| v.as_str())
    );
    match (
        &group.scaling,
        vars.get("scaling_mode").and_then(|v| v.as_str()),
    ) {
        (Scaling::Step { out, scale_in }, Some("step")) => {
            assert_eq!(Some(out.threshold), number("scale_out_cpu_threshold"));
            assert_eq!(Some(scale_in.threshold), number("scale_in_cpu_threshold"));
            let steps = vars
                .get("scale_out_steps")
                .and_then(|v| v.as_array())
                .expect("steps");
            assert_eq!(out.steps.len(), steps.len());
            // Each step ends where the next begins; the last is open-ended.
            assert_eq!(out.steps.last().and_then(|s| s.upper), None);
            assert_eq!(group.alarms, 2, "the step policies' two alarms");
        }
        (Scaling::TargetTracking { policies }, Some("target_tracking")) => {
            let target = |metric: TrackedMetric| {
                policies
                    .iter()
                    .find(|p| p.metric == metric)
                    .map(|p| p.target)
            };
            assert_eq!(target(TrackedMetric::Cpu), number("target_cpu_percent"));
            // The second policy exists exactly when its variable is set (null: CPU only).
            assert_eq!(
                target(TrackedMetric::RequestsPerTarget),
                number("target_requests_per_instance")
            );
            assert_eq!(
                group.alarms,
                2 * policies.len(),
                "two alarms per tracking policy"
            );
        }
        (scaling, mode) => panic!("{mode:?} read as {scaling:?}"),
    }
    // What the bill needs, read from the module too.
    assert!(
        group.detailed_monitoring,
        "the launch template's monitoring block"
    );
    assert_eq!(group.dashboards, 1);
    assert_eq!(group.table_indexes, 1, "the ByName index");
    assert!(group.root_volume_gib >= 8.0, "Packer's root_volume_size");
}

#[test]
fn target_tracking_counts_the_alarms_aws_creates() {
    let read = group_with(&[
        Assignment::Var("scaling_mode=target_tracking".into()),
        Assignment::Var("target_requests_per_instance=6000".into()),
    ])
    .expect("group");
    // No alarm of the module's (count = 0 in this mode), two per tracking policy.
    assert_eq!(read.group.alarms, 4);
}

#[test]
fn the_weekly_example_gives_its_schedules_in_paris_time() {
    let weekly = repo_root().join("infra/examples/weekly-business.tfvars");
    let read = group_with(&[Assignment::File(weekly)]).expect("group");
    let group = read.group;
    assert_eq!(group.schedules.len(), 6);
    assert!(
        group
            .schedules
            .iter()
            .all(|s| s.time_zone_name == "Europe/Paris")
    );
    let peak = group
        .schedules
        .iter()
        .find(|s| s.name == "peak-start")
        .expect("peak-start");
    assert_eq!(
        (peak.min_size, peak.max_size, peak.desired_capacity),
        (Some(4), Some(8), None)
    );
}

#[test]
fn close_thresholds_and_an_unset_warm_up_are_warned_about() {
    let files = Files::new();
    let close = files.write(
        "close.tfvars",
        "scaling_mode = \"step\"\nscale_out_cpu_threshold = 60\nscale_in_cpu_threshold = 55\n",
    );
    let warnings = group_with(&[Assignment::File(close)])
        .expect("group")
        .warnings;
    assert!(
        warnings.iter().any(|w| w
            == "scale-in alarm at 55 % is within 10 points of scale-out at 60 %: expect flapping"),
        "{warnings:?}"
    );
    // A var file can set null (a -var cannot: Terraform reads its text as a string).
    let unset = files.write("unset.tfvars", "instance_warmup_secs = null\n");
    let read = group_with(&[Assignment::File(unset)]).expect("group");
    assert_eq!(read.group.warmup_secs, 300.0);
    assert!(
        read.warnings
            .iter()
            .any(|w| w.starts_with("warm-up unset: 300 s default applies")),
        "{:?}",
        read.warnings
    );
    // Two instances at 35 %: removing one puts the other at 70 %, above 60.
    let small = [
        Assignment::Var("scaling_mode=step".into()),
        Assignment::Var("scale_out_cpu_threshold=60".into()),
        Assignment::Var("scale_in_cpu_threshold=35".into()),
    ];
    let warnings = group_with(&small).expect("group").warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("removing one puts the others at 70 %")),
        "{warnings:?}"
    );
}

#[test]
fn what_terraform_refuses_is_refused_with_terraforms_message() {
    // (variables, messages one of which it must carry: a variable's validation messages
    // read from infra/variables.tf, or a precondition's with its interpolated values)
    let validation = validation_messages;
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec!["min_size=0"], validation("min_size")),
        (vec!["az_count=1"], validation("az_count")),
        (
            vec!["target_cpu_percent=95"],
            validation("target_cpu_percent"),
        ),
        (
            vec!["request_timeout_secs=0"],
            validation("request_timeout_secs"),
        ),
        (
            vec!["scale_out_period_secs=90"],
            validation("scale_out_period_secs"),
        ),
        (vec!["scaling_mode=predictive"], validation("scaling_mode")),
        (vec!["instance_type=t2.micro"], validation("instance_type")),
        // Preconditions (alb.tf, autoscaling_group.tf), with their interpolated values.
        (
            vec!["deregistration_delay_secs=5"],
            vec!["deregistration_delay_secs (5) must be at least request_timeout_secs".to_owned()],
        ),
        (
            vec!["min_size=5"],
            vec!["min_size (5) must not exceed max_size (4).".to_owned()],
        ),
    ];
    for (vars, messages) in cases {
        assert!(!messages.is_empty(), "{vars:?}: no message to look for");
        let err = check(&vars).expect_err(&format!("{vars:?} must be refused"));
        assert!(matches!(err, Error::Usage(_)), "{vars:?}");
        let text = err.to_string();
        assert!(
            text.contains("terraform plan would refuse"),
            "{vars:?}: {text}"
        );
        assert!(
            messages.iter().any(|m| text.contains(m.as_str())),
            "{vars:?}: {text}\nwant one of: {messages:?}"
        );
    }
}

#[test]
fn what_terraform_accepts_is_rehearsed_with_a_warning() {
    // Cron features and time zones Terraform's checks let through (AWS would refuse them on
    // apply): the action is left out and said so, not refused.
    for schedule in [
        r#"schedules={ a = { recurrence = "0 7 L * *", min_size = 1 } }"#,
        r#"schedules={ a = { recurrence = "0 7 * * *", time_zone = "Mars/Olympus", min_size = 1 } }"#,
    ] {
        check(&[schedule]).unwrap_or_else(|e| panic!("{schedule}: {e}"));
        let read = group_with(&[Assignment::Var(schedule.into())]).expect("group");
        assert!(read.group.schedules.is_empty(), "{schedule}");
        assert!(
            read.warnings.iter().any(|w| w.contains("not rehearsed")),
            "{schedule}: {:?}",
            read.warnings
        );
    }
    // Target tracking ignores the step thresholds: their precondition does not apply.
    check(&["scaling_mode=target_tracking", "scale_in_cpu_threshold=70"])
        .expect("accepted in target tracking");
    // The rehearsal's own limit: an instance type it has no price for.
    let err = check(&["instance_type=x9.huge"]).expect_err("no price");
    assert!(err.to_string().contains("not in the price table"), "{err}");
}

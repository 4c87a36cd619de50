//! The group read from infra/ itself: its defaults need no second copy, and the policy
//! warnings a person can act on before any load.

mod common;

use common::{Files, repo_root};
use rehearsal::assumptions::Assumptions;
use rehearsal::model::{self, Scaling};
use rehearsal::variables::{self, Assignment};

fn group_with(
    assignments: &[Assignment],
) -> Result<(model::Group, Vec<String>), rehearsal::error::Error> {
    let vars = variables::load(&repo_root().join("infra"), assignments, &[]).expect("variables");
    model::group(&vars, &Assumptions::default())
}

#[test]
fn the_group_comes_from_the_variables_defaults() {
    let vars = variables::load(&repo_root().join("infra"), &[], &[]).expect("variables");
    let (group, _) = model::group(&vars, &Assumptions::default()).expect("group");
    // Whatever the defaults are today, the model holds exactly them.
    assert_eq!(
        Some(group.min_size as f64),
        vars.get("min_size").and_then(|v| v.as_f64())
    );
    assert_eq!(
        Some(group.max_size as f64),
        vars.get("max_size").and_then(|v| v.as_f64())
    );
    assert_eq!(
        Some(group.warmup_secs),
        vars.get("instance_warmup_secs").and_then(|v| v.as_f64())
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
            assert_eq!(
                Some(out.threshold),
                vars.get("scale_out_cpu_threshold").and_then(|v| v.as_f64())
            );
            assert_eq!(
                Some(scale_in.threshold),
                vars.get("scale_in_cpu_threshold").and_then(|v| v.as_f64())
            );
            let steps = vars
                .get("scale_out_steps")
                .and_then(|v| v.as_array())
                .expect("steps");
            assert_eq!(out.steps.len(), steps.len());
            // Each step ends where the next begins; the last is open-ended.
            assert_eq!(out.steps.last().and_then(|s| s.upper), None);
        }
        (Scaling::TargetTracking { .. }, Some("target_tracking")) => {}
        (scaling, mode) => panic!("{mode:?} read as {scaling:?}"),
    }
}

#[test]
fn the_weekly_example_gives_its_schedules_in_paris_time() {
    let weekly = repo_root().join("infra/examples/weekly-business.tfvars");
    let (group, _) = group_with(&[Assignment::File(weekly)]).expect("group");
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
    let (_, warnings) = group_with(&[Assignment::File(close)]).expect("group");
    assert!(
        warnings.iter().any(|w| w
            == "scale-in alarm at 55 % is within 10 points of scale-out at 60 %: expect flapping"),
        "{warnings:?}"
    );
    // A var file can set null (a -var cannot: Terraform reads its text as a string).
    let unset = files.write("unset.tfvars", "instance_warmup_secs = null\n");
    let (group, warnings) = group_with(&[Assignment::File(unset)]).expect("group");
    assert_eq!(group.warmup_secs, 300.0);
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("warm-up unset: 300 s default applies")),
        "{warnings:?}"
    );
    // Two instances at 35 %: removing one puts the other at 70 %, above 60.
    let small = [
        Assignment::Var("scaling_mode=step".into()),
        Assignment::Var("scale_out_cpu_threshold=60".into()),
        Assignment::Var("scale_in_cpu_threshold=35".into()),
    ];
    let (_, warnings) = group_with(&small).expect("group");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("removing one puts the others at 70 %")),
        "{warnings:?}"
    );
}

#[test]
fn values_the_model_cannot_handle_are_refused_naming_the_variable() {
    for (assignment, reason) in [
        (
            "scale_out_cpu_threshold=100",
            "scale_out_cpu_threshold = 100",
        ),
        ("scale_out_period_secs=90", "multiple of 60"),
        ("min_size=5", "must not exceed max_size"),
        (
            "scaling_mode=predictive",
            "neither \"step\" nor \"target_tracking\"",
        ),
        ("instance_type=x9.huge", "not in the price table"),
        (
            r#"schedules={ a = { recurrence = "0 7 L * *", min_size = 1 } }"#,
            "Quartz",
        ),
        (
            r#"schedules={ a = { recurrence = "0 7 * * *", time_zone = "Mars/Olympus", min_size = 1 } }"#,
            "Mars/Olympus",
        ),
    ] {
        let vars = variables::load(
            &repo_root().join("infra"),
            &[Assignment::Var(assignment.into())],
            &[],
        )
        .expect("variables");
        let err = model::group(&vars, &Assumptions::default())
            .and_then(|(g, _)| {
                rehearsal::prices::Prices::load(None)?
                    .instance(&g.instance_type)
                    .map(|_| ())
            })
            .expect_err(assignment);
        assert!(
            matches!(err, rehearsal::error::Error::Usage(_)),
            "{assignment}"
        );
        assert!(err.to_string().contains(reason), "{assignment}: {err}");
    }
}

//! `scripts/scale.sh` against moto's Auto Scaling API: a group with min 2 and max 4.
//! Imperative scaling of the desired capacity, and temporary raises of the minimum: the
//! sizes, the tag that records a raise and the scheduled action that ends it, as the API
//! holds them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blackbox::{Moto, run_script, unique};
use serde_json::{Value, json};

/// An Auto Scaling group of our own in the shared moto, driven with the real AWS CLI.
struct Group {
    name: String,
    moto: Moto,
}

impl Group {
    fn create() -> Self {
        Self::create_in(Moto::shared())
    }

    /// A group in a moto server of its own. For the tests of raises: moto keys scheduled
    /// actions by their name alone, where AWS keys them by group and name, so two groups'
    /// `temporary-raise-end` would overwrite each other in the shared server.
    async fn private() -> Self {
        Self::create_in(Moto::start_private().await)
    }

    fn create_in(moto: Moto) -> Self {
        let group = Self {
            name: unique("asg"),
            moto,
        };
        group.moto.create_auto_scaling_group(&group.name);
        group
    }

    /// The group as describe-auto-scaling-groups returns it.
    fn describe(&self) -> Value {
        let text = self.moto.aws(&[
            "autoscaling",
            "describe-auto-scaling-groups",
            "--auto-scaling-group-names",
            &self.name,
            "--output",
            "json",
        ]);
        let groups: Value = serde_json::from_str(&text).expect("JSON");
        groups["AutoScalingGroups"][0].clone()
    }

    /// (min, desired, max) as the API holds them.
    fn sizes(&self) -> (u64, u64, u64) {
        let group = self.describe();
        let size = |key: &str| {
            group[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key}: {group}"))
        };
        (size("MinSize"), size("DesiredCapacity"), size("MaxSize"))
    }

    /// The value of the group's TemporaryRaise tag, if any.
    fn raise_tag(&self) -> Option<String> {
        let group = self.describe();
        let tags = group["Tags"].as_array().cloned().unwrap_or_default();
        let found: Vec<&Value> = tags
            .iter()
            .filter(|tag| tag["Key"] == "TemporaryRaise")
            .collect();
        assert!(found.len() <= 1, "one TemporaryRaise tag at most: {tags:?}");
        found.first().map(|tag| {
            assert_eq!(tag["PropagateAtLaunch"], json!(false), "{tag}");
            tag["Value"].as_str().expect("a value").to_owned()
        })
    }

    /// Every scheduled action of the group.
    fn scheduled_actions(&self) -> Vec<Value> {
        let text = self.moto.aws(&[
            "autoscaling",
            "describe-scheduled-actions",
            "--auto-scaling-group-name",
            &self.name,
            "--output",
            "json",
        ]);
        let actions: Value = serde_json::from_str(&text).expect("JSON");
        actions["ScheduledUpdateGroupActions"]
            .as_array()
            .expect("actions")
            .clone()
    }

    /// Everything a refused command must leave as it was.
    fn snapshot(&self) -> ((u64, u64, u64), Option<String>, Vec<Value>) {
        (self.sizes(), self.raise_tag(), self.scheduled_actions())
    }

    fn desired(&self) -> u32 {
        self.moto
            .aws(&[
                "autoscaling",
                "describe-auto-scaling-groups",
                "--auto-scaling-group-names",
                &self.name,
                "--query",
                "AutoScalingGroups[0].DesiredCapacity",
                "--output",
                "text",
            ])
            .parse()
            .expect("a number")
    }

    fn scale(&self, target: &str) -> (i32, String, String) {
        self.run(&["--asg", &self.name, target])
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let env = self.moto.cli_env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_script("scripts/scale.sh", args, &env)
    }
}

#[test]
fn scale_by_count() {
    let group = Group::create();
    let (code, _, stderr) = group.scale("3");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(group.desired(), 3);
    assert!(stderr.contains("2 -> 3"), "{stderr}");
}

#[test]
fn scale_by_percentage_of_the_maximum_rounds_up() {
    let group = Group::create();
    for (percent, expected) in [("100%", 4), ("30%", 2), ("51%", 3), ("75%", 3)] {
        let (code, _, stderr) = group.scale(percent);
        assert_eq!(code, 0, "{percent}: {stderr}");
        assert_eq!(group.desired(), expected, "{percent}");
    }
}

#[test]
fn values_outside_min_and_max_are_refused_and_change_nothing() {
    let group = Group::create();
    group.scale("3");
    for refused in ["5", "1", "0", "0%", "101%", "-1", "many"] {
        let (code, _, stderr) = group.scale(refused);
        assert_ne!(code, 0, "{refused} should be refused");
        assert!(stderr.contains("ERROR:"), "{refused}: {stderr}");
        assert_eq!(group.desired(), 3, "{refused} changed the group");
    }
    let (_, _, stderr) = group.scale("5");
    assert!(
        stderr.contains("outside the group's limits 2..4"),
        "{stderr}"
    );
}

#[test]
fn status_shows_capacity_and_every_instance() {
    let group = Group::create();
    group.scale("3");
    let (code, stdout, stderr) = group.scale("status");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("desired      3 (min 2, max 4)"), "{stdout}");
    let instances = group.moto.aws(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--auto-scaling-group-names",
        &group.name,
        "--query",
        "AutoScalingGroups[0].Instances[].InstanceId",
        "--output",
        "text",
    ]);
    let ids: Vec<&str> = instances.split_whitespace().collect();
    assert_eq!(ids.len(), 3);
    assert!(stdout.contains("in service   3"), "{stdout}");
    for id in ids {
        assert!(stdout.contains(id), "{id} missing from\n{stdout}");
    }
}

#[test]
fn an_unknown_group_is_an_error() {
    let group = Group::create();
    let (code, _, stderr) = group.run(&["--asg", "no-such-group", "3"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no Auto Scaling group named 'no-such-group'"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// Temporary raises of the minimum
// ---------------------------------------------------------------------------------------

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Seconds since the epoch of an ISO 8601 UTC time such as 2026-11-29T22:37:04Z, computed
/// here (days from the civil date), independently of the script's `date`.
fn epoch_of(iso: &str) -> u64 {
    let field = |range: std::ops::Range<usize>| -> i64 {
        iso.get(range)
            .and_then(|digits| digits.parse().ok())
            .unwrap_or_else(|| panic!("not YYYY-MM-DDTHH:MM:SSZ: {iso}"))
    };
    assert!(
        iso.len() == 20 && iso.ends_with('Z') && &iso[10..11] == "T",
        "{iso}"
    );
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    let (hour, minute, second) = (field(11..13), field(14..16), field(17..19));
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3_600 + minute * 60 + second).expect("after 1970")
}

/// Asserts that `iso` is `length` after a moment between `before` and `after`.
#[track_caller]
fn assert_ends_after(iso: &str, length: Duration, before: u64, after: u64) {
    let end = epoch_of(iso);
    let length = length.as_secs();
    assert!(
        (before + length..=after + length).contains(&end),
        "{iso} is not {length} s after the raise ({before}..={after})"
    );
}

/// The one scheduled end of a raise: at `until`, the minimum back to `restore`, and no
/// other size; no recurrence.
#[track_caller]
fn assert_end_action(actions: &[Value], until: &str, restore: u64) {
    assert_eq!(actions.len(), 1, "one scheduled action: {actions:?}");
    let action = &actions[0];
    assert_eq!(action["ScheduledActionName"], json!("temporary-raise-end"));
    assert_eq!(action["StartTime"], json!(until), "{action}");
    assert_eq!(action["MinSize"], json!(restore), "{action}");
    for other in ["MaxSize", "DesiredCapacity", "Recurrence"] {
        assert!(
            action.get(other).is_none_or(Value::is_null),
            "the end restores the minimum and nothing else: {action}"
        );
    }
}

/// The "until" of a TemporaryRaise tag value "min=N restore=P until=TIME".
fn until_of(tag: &str) -> String {
    tag.rsplit_once("until=")
        .map(|(_, until)| until.to_owned())
        .unwrap_or_else(|| panic!("no until= in {tag}"))
}

#[tokio::test]
async fn a_raise_for_a_while_lifts_min_and_desired_and_schedules_its_own_end() {
    let group = Group::private().await;
    let before = now();
    let (code, _, stderr) = group.run(&["--asg", &group.name, "--min", "3", "--for", "2h"]);
    let after = now();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(group.sizes(), (3, 3, 4), "min and desired raised, max kept");

    let tag = group
        .raise_tag()
        .expect("the raise is recorded on the group");
    let until = until_of(&tag);
    assert_eq!(tag, format!("min=3 restore=2 until={until}"));
    assert_ends_after(&until, Duration::from_secs(2 * 3600), before, after);
    assert_end_action(&group.scheduled_actions(), &until, 2);
    assert!(
        stderr.contains(&format!(
            "minimum of {}: 2 -> 3 until {until} (2h): then the scheduled action temporary-raise-end sets it back to 2",
            group.name
        )),
        "{stderr}"
    );

    let (code, stdout, stderr) = group.scale("status");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("desired      3 (min 3, max 4)"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "raise        min 3 until {until} (in 1h 59m), then min 2 again"
        )) || stdout.contains(&format!(
            "raise        min 3 until {until} (in 2h 00m), then min 2 again"
        )),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_raise_keeps_a_higher_desired_capacity_and_takes_a_percentage_of_the_maximum() {
    let group = Group::private().await;
    assert_eq!(group.scale("4").0, 0);
    // 75 % of 4, rounded up.
    let (code, _, stderr) = group.run(&["--asg", &group.name, "--min", "75%", "--for", "1h30m"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        group.sizes(),
        (3, 4, 4),
        "the desired capacity is never lowered"
    );
    let tag = group.raise_tag().expect("recorded");
    assert!(tag.starts_with("min=3 restore=2 until="), "{tag}");
    assert_end_action(&group.scheduled_actions(), &until_of(&tag), 2);
}

#[tokio::test]
async fn a_raise_without_an_end_holds_until_cancelled() {
    let group = Group::private().await;
    let (code, _, stderr) = group.run(&["--asg", &group.name, "--min", "4"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(group.sizes(), (4, 4, 4));
    assert_eq!(
        group.raise_tag().as_deref(),
        Some("min=4 restore=2 until=none")
    );
    assert!(group.scheduled_actions().is_empty(), "no end to schedule");
    let (_, stdout, _) = group.scale("status");
    assert!(
        stdout.contains(&format!(
            "raise        min 4 with no end: scripts/scale.sh --asg {} --cancel sets min 2 again",
            group.name
        )),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_second_raise_replaces_the_first_and_restores_what_was_there_before_both() {
    let group = Group::private().await;
    assert_eq!(
        group
            .run(&["--asg", &group.name, "--min", "3", "--for", "2h"])
            .0,
        0
    );
    let before = now();
    let (code, _, stderr) = group.run(&["--asg", &group.name, "--min", "4", "--for", "30m"]);
    let after = now();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(group.sizes(), (4, 4, 4));
    let tag = group.raise_tag().expect("recorded");
    let until = until_of(&tag);
    assert_eq!(tag, format!("min=4 restore=2 until={until}"));
    assert_ends_after(&until, Duration::from_secs(30 * 60), before, after);
    assert_end_action(&group.scheduled_actions(), &until, 2);

    // Replaced by one without an end: its scheduled end goes.
    assert_eq!(group.run(&["--asg", &group.name, "--min", "3"]).0, 0);
    assert_eq!(
        group.raise_tag().as_deref(),
        Some("min=3 restore=2 until=none")
    );
    assert!(group.scheduled_actions().is_empty());
    assert_eq!(
        group.sizes(),
        (3, 4, 4),
        "lowering a raise keeps the desired"
    );
}

#[tokio::test]
async fn cancel_restores_the_minimum_and_removes_the_end_and_the_record() {
    let group = Group::private().await;
    assert_eq!(
        group
            .run(&["--asg", &group.name, "--min", "4", "--for", "2h"])
            .0,
        0
    );
    let (code, _, stderr) = group.run(&["--asg", &group.name, "--cancel"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        group.sizes(),
        (2, 4, 4),
        "the minimum goes back; the desired capacity is left to the policies"
    );
    assert_eq!(group.raise_tag(), None);
    assert!(group.scheduled_actions().is_empty());
    assert!(
        stderr.contains(&format!("raise ended: minimum of {}: 4 -> 2", group.name)),
        "{stderr}"
    );
    let (_, stdout, _) = group.scale("status");
    assert!(stdout.contains("raise        none"), "{stdout}");

    // Nothing left to cancel.
    let (code, _, stderr) = group.run(&["--asg", &group.name, "--cancel"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("nothing to cancel"), "{stderr}");
}

#[tokio::test]
async fn cancel_leaves_the_other_scheduled_actions_of_the_group() {
    let group = Group::private().await;
    group.moto.aws(&[
        "autoscaling",
        "put-scheduled-update-group-action",
        "--auto-scaling-group-name",
        &group.name,
        "--scheduled-action-name",
        "peak",
        "--recurrence",
        "50 6 * * 1-5",
        "--min-size",
        "3",
        "--max-size",
        "4",
    ]);
    let (code, _, stderr) = group.run(&["--asg", &group.name, "--min", "3", "--for", "1h"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("the group's scheduled actions still fire during the raise and set their own sizes: peak (50 6 * * 1-5)"),
        "{stderr}"
    );
    assert_eq!(group.scheduled_actions().len(), 2);
    assert_eq!(group.run(&["--asg", &group.name, "--cancel"]).0, 0);
    let left = group.scheduled_actions();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["ScheduledActionName"], json!("peak"));
    assert_eq!(left[0]["Recurrence"], json!("50 6 * * 1-5"));
}

#[tokio::test]
async fn raises_outside_the_limits_or_badly_said_are_refused_and_change_nothing() {
    let group = Group::private().await;
    assert_eq!(
        group
            .run(&["--asg", &group.name, "--min", "3", "--for", "1h"])
            .0,
        0
    );
    let before = group.snapshot();
    for (args, code, message) in [
        (vec!["--min", "5"], 1, "5 is above the group's maximum 4"),
        (
            vec!["--min", "5", "--for", "1h"],
            1,
            "5 is above the group's maximum 4",
        ),
        // Not above the minimum the raise restores.
        (
            vec!["--min", "2"],
            1,
            "2 is not above the group's minimum 2",
        ),
        (
            vec!["--min", "0"],
            1,
            "0 is not above the group's minimum 2",
        ),
        (
            vec!["--min", "50%"],
            1,
            "2 is not above the group's minimum 2",
        ),
        (
            vec!["--min", "101%"],
            1,
            "'101%' is not a percentage from 1% to 100%",
        ),
        (
            vec!["--min", "0%"],
            1,
            "'0%' is not a percentage from 1% to 100%",
        ),
        (
            vec!["--min", "three"],
            1,
            "'three' is not an instance count",
        ),
        (
            vec!["--min", "3", "--for", "2x"],
            1,
            "--for '2x' is not a duration",
        ),
        (
            vec!["--min", "3", "--for", "30s"],
            1,
            "--for '30s' is not a duration",
        ),
        (
            vec!["--min", "3", "--for", "0m"],
            1,
            "--for 0m: a raise lasts from 1 minute to 31 days",
        ),
        (
            vec!["--min", "3", "--for", "32d"],
            1,
            "--for 32d: a raise lasts from 1 minute to 31 days",
        ),
        (
            vec!["--for", "1h"],
            2,
            "--for is the length of a raise: it goes with --min",
        ),
        (vec!["--min", "3", "--cancel"], 2, "say one thing to do"),
        (vec!["3", "--min", "3"], 2, "say one thing to do"),
        (vec!["--min"], 2, "--min needs a value"),
        (vec!["--min", "3", "--for"], 2, "--for needs a value"),
    ] {
        let mut all = vec!["--asg", group.name.as_str()];
        all.extend(&args);
        let (actual, _, stderr) = group.run(&all);
        assert_eq!(actual, code, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("ERROR: {message}")),
            "{args:?}: {stderr}"
        );
        assert_eq!(group.snapshot(), before, "{args:?} changed the group");
    }
}

#[tokio::test]
async fn a_raise_whose_end_has_passed_is_over() {
    // What the group holds after the end action ran (AWS deletes it then): the tag only.
    let group = Group::private().await;
    let tag = serde_json::to_string(&json!([{
        "ResourceId": group.name, "ResourceType": "auto-scaling-group", "Key": "TemporaryRaise",
        "Value": "min=4 restore=2 until=2020-01-01T00:00:00Z", "PropagateAtLaunch": false,
    }]))
    .expect("JSON");
    group
        .moto
        .aws(&["autoscaling", "create-or-update-tags", "--tags", &tag]);
    let (_, stdout, _) = group.scale("status");
    assert!(stdout.contains("raise        none\n"), "{stdout}");

    // A new raise restores the minimum the group has now, and replaces the old record.
    assert_eq!(group.run(&["--asg", &group.name, "--min", "3"]).0, 0);
    assert_eq!(
        group.raise_tag().as_deref(),
        Some("min=3 restore=2 until=none")
    );
    assert_eq!(group.run(&["--asg", &group.name, "--cancel"]).0, 0);

    // --cancel clears a leftover record without touching the sizes.
    group
        .moto
        .aws(&["autoscaling", "create-or-update-tags", "--tags", &tag]);
    let sizes = group.sizes();
    let (code, _, stderr) = group.run(&["--asg", &group.name, "--cancel"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("no raise was active"), "{stderr}");
    assert_eq!(group.raise_tag(), None);
    assert_eq!(group.sizes(), sizes);
}

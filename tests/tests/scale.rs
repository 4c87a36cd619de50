//! `scripts/scale.sh` against moto's Auto Scaling API: a group with min 2 and max 4.

use blackbox::{Moto, run_script, unique};

/// An Auto Scaling group of our own in the shared moto, driven with the real AWS CLI.
struct Group {
    name: String,
    moto: Moto,
}

impl Group {
    fn create() -> Self {
        let group = Self {
            name: unique("asg"),
            moto: Moto::shared(),
        };
        group.moto.create_auto_scaling_group(&group.name);
        group
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

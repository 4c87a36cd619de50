//! `scripts/scale.sh` against moto's Auto Scaling API: a group with min 2 and max 4.

use blackbox::{Moto, run_script, tool, unique};

/// An Auto Scaling group of our own in the shared moto, driven with the real AWS CLI.
struct Group {
    name: String,
    env: Vec<(&'static str, String)>,
}

impl Group {
    fn create() -> Self {
        let moto = Moto::shared();
        let group = Self {
            name: unique("asg"),
            env: vec![
                ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
                ("AWS_REGION", blackbox::moto::REGION.to_owned()),
                ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
                ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
                ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
                ("PATH", path_with_tools()),
            ],
        };
        let template = format!("{}-lt", group.name);
        group.aws(&[
            "ec2",
            "create-launch-template",
            "--launch-template-name",
            &template,
            "--launch-template-data",
            r#"{"ImageId":"ami-12c6146b","InstanceType":"t3.micro"}"#,
        ]);
        group.aws(&[
            "autoscaling",
            "create-auto-scaling-group",
            "--auto-scaling-group-name",
            &group.name,
            "--launch-template",
            &format!("LaunchTemplateName={template}"),
            "--min-size",
            "2",
            "--max-size",
            "4",
            "--desired-capacity",
            "2",
            "--availability-zones",
            "us-east-1a",
            "us-east-1b",
        ]);
        group
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    fn aws(&self, args: &[&str]) -> String {
        let output = std::process::Command::new(tool("aws"))
            .args(args)
            .args(["--region", blackbox::moto::REGION])
            .envs(self.env())
            .output()
            .expect("run aws");
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn desired(&self) -> u32 {
        self.aws(&[
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
        let env = self.env();
        let mut env_with_path: Vec<(&str, &str)> = env.clone();
        let path = path_with_tools();
        env_with_path.push(("PATH", &path));
        run_script(
            "scripts/scale.sh",
            &["--asg", &self.name, target],
            &env_with_path,
        )
    }
}

/// The scripts call `aws` by name: make sure the one the test suite installed is found.
fn path_with_tools() -> String {
    let aws_dir = tool("aws").parent().expect("folder").to_owned();
    format!(
        "{}:{}",
        aws_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
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
    let instances = group.aws(&[
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
    let (code, _, stderr) = run_script(
        "scripts/scale.sh",
        &["--asg", "no-such-group", "3"],
        &group.env(),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no Auto Scaling group named 'no-such-group'"),
        "{stderr}"
    );
}

//! `scripts/check_env.sh`: every tool and the AWS account checked, each failure said with
//! its fix.

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

//! The stack applied for real: the real Terraform and hashicorp/aws provider against moto's
//! server, with the assertions made on what the AWS API then holds, not on the HCL.
//!
//! Each scenario applies once per workspace (moto cannot follow a second apply that changes
//! the launch template: see docs/TESTING.md) and destroys everything it made. The expected
//! values come from the variables' defaults in `infra/variables.tf` and from the values the
//! test sets, so the checks say "AWS holds what Terraform was told".

use std::collections::BTreeSet;
use std::time::Duration;

use blackbox::aws_query::text;
use blackbox::hcl_files::variable_default;
use blackbox::infra_dir;
use blackbox::terraform::{Deployment, Outcome, assert_nothing_left};
use blackbox::tls::Certificate;
use serde_json::Value;

#[path = "infra_applied/observability.rs"]
mod observability;
#[path = "infra_applied/step_scaling.rs"]
mod step_scaling;
#[path = "infra_applied/target_tracking.rs"]
mod target_tracking;

const DOMAIN: &str = "candidates.example.test";

/// The default of an infra/ variable, as JSON.
fn default_of(name: &str) -> Value {
    variable_default(&infra_dir(), name)
}

async fn apply(stack: &Deployment, workspace: &str, ami: &str, vars: &[String]) -> Outcome {
    let mut args = vec![
        "apply".to_owned(),
        "-auto-approve".to_owned(),
        "-input=false".to_owned(),
        "-no-color".to_owned(),
        format!("-var=ami_id={ami}"),
        format!("-var=region={}", stack.region),
    ];
    args.extend(vars.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stack.terraform(Some(workspace), &args).await
}

// ---------------------------------------------------------------------------------------
// Format and validity, with the real binary and the real provider
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn terraform_fmt_and_validate_pass_with_the_real_provider_and_no_warning() {
    let stack = Deployment::start("eu-west-3").await;
    let fmt = stack
        .run(
            "terraform",
            &["fmt", "-check", "-recursive", "-diff", "-no-color"],
            &infra_dir(),
            &[],
            &[],
            Duration::from_secs(60),
        )
        .await;
    fmt.assert_success();

    let validate = stack.terraform(None, &["validate", "-no-color"]).await;
    validate.assert_success();
    assert!(
        validate.stdout.contains("The configuration is valid"),
        "{validate}"
    );
    // A deprecated attribute or argument is a warning today and an error in a later major.
    assert!(!validate.output().contains("Warning"), "{validate}");

    // The provider the suite installed is one the constraint admits, so both majors of the
    // constraint are exercised: 6.x by tf-schema-check's schema, this one for real.
    let version = stack.terraform(None, &["version", "-json"]).await;
    let version: Value = serde_json::from_str(&version.stdout).expect("version JSON");
    let provider = text(&version["provider_selections"]["registry.terraform.io/hashicorp/aws"]);
    assert!(
        provider.starts_with("5.") || provider.starts_with("6."),
        "provider {provider}"
    );
}

// ---------------------------------------------------------------------------------------
// Two environments side by side: step scaling (the defaults) and target tracking with
// schedules and HTTPS
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn two_environments_apply_side_by_side_hold_what_terraform_was_told_and_destroy_to_nothing() {
    let stack = Deployment::start("eu-west-3").await;
    let ami = stack.bake_ami().await;
    let certificate = Certificate::new(DOMAIN);
    let certificate_arn = certificate.import(&stack);
    stack.new_workspace("dev").await;
    stack.new_workspace("tt").await;

    // The two applies run at once in one account and region: names carry the environment.
    tokio::join!(
        step_scaling::environment(&stack, &ami, &certificate_arn),
        target_tracking::environment(&stack, &ami, &certificate_arn, &certificate),
    );
    let groups = stack.aws(&["autoscaling", "describe-auto-scaling-groups"]);
    let names: BTreeSet<&str> = groups["AutoScalingGroups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|group| text(&group["AutoScalingGroupName"]))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["axum-asg-dev", "axum-asg-tt"]),
        "both environments live side by side"
    );

    let (dev, tt) = tokio::join!(destroy(&stack, "dev", &ami), destroy(&stack, "tt", &ami));
    dev.assert_success();
    tt.assert_success();
    for environment in ["dev", "tt"] {
        assert_nothing_left(&stack, &format!("axum-asg-{environment}"));
        observability::assert_no_log_group(&stack, environment);
    }
}

async fn destroy(stack: &Deployment, workspace: &str, ami: &str) -> Outcome {
    stack
        .terraform(
            Some(workspace),
            &[
                "destroy",
                "-auto-approve",
                "-input=false",
                "-no-color",
                &format!("-var=ami_id={ami}"),
                &format!("-var=region={}", stack.region),
            ],
        )
        .await
}

//! What the AWS API (moto's, here) and a Terraform plan hold, read back for the
//! assertions of the real-apply tests: groups, policies, load balancers, plan changes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::terraform::Deployment;

/// A JSON number, or a panic naming what it was instead.
pub fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

/// A JSON string, or a panic naming what it was instead.
pub fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

/// The outputs of a workspace, as `terraform output -json` gives them.
pub async fn outputs(stack: &Deployment, workspace: &str) -> Value {
    let outcome = stack
        .terraform(Some(workspace), &["output", "-json", "-no-color"])
        .await;
    outcome.assert_success();
    let all: Value = serde_json::from_str(&outcome.stdout).expect("outputs JSON");
    let mut values = serde_json::Map::new();
    for (name, output) in all.as_object().expect("an object") {
        values.insert(name.clone(), output["value"].clone());
    }
    Value::Object(values)
}

/// The Auto Scaling group `name`, as `describe-auto-scaling-groups` gives it.
pub fn auto_scaling_group(stack: &Deployment, name: &str) -> Value {
    stack.aws(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--auto-scaling-group-names",
        name,
    ])["AutoScalingGroups"][0]
        .clone()
}

/// The scaling policies of `group`, by name.
pub fn policies_by_name(stack: &Deployment, group: &str) -> BTreeMap<String, Value> {
    let policies = stack.aws(&[
        "autoscaling",
        "describe-policies",
        "--auto-scaling-group-name",
        group,
    ]);
    policies["ScalingPolicies"]
        .as_array()
        .expect("policies")
        .iter()
        .map(|policy| (text(&policy["PolicyName"]).to_owned(), policy.clone()))
        .collect()
}

/// A policy's step adjustments, bounds as numbers and absent bounds left out.
pub fn step_adjustments(policy: &Value) -> Vec<Value> {
    policy["StepAdjustments"]
        .as_array()
        .expect("step adjustments")
        .iter()
        .map(|step| {
            let mut clean = serde_json::Map::new();
            for key in [
                "MetricIntervalLowerBound",
                "MetricIntervalUpperBound",
                "ScalingAdjustment",
            ] {
                if let Some(value) = step.get(key).filter(|value| !value.is_null()) {
                    clean.insert(key.to_owned(), json!(number(value)));
                }
            }
            Value::Object(clean)
        })
        .collect()
}

/// The load balancer `name`, as `describe-load-balancers` gives it.
pub fn load_balancer(stack: &Deployment, name: &str) -> Value {
    stack.aws(&["elbv2", "describe-load-balancers", "--names", name])["LoadBalancers"][0].clone()
}

/// The part of an ARN after `marker` (what Terraform calls arn_suffix).
pub fn arn_suffix<'a>(arn: &'a str, marker: &str) -> &'a str {
    match marker {
        ":" => {
            // targetgroup/<name>/<id>: after the last colon.
            arn.rsplit(':').next().expect("an ARN")
        }
        _ => {
            let start = arn.find(marker).expect("the marker in the ARN") + marker.len();
            &arn[start..]
        }
    }
}

/// A policy document's `Action` or `Resource`: one string or a list, as a list.
pub fn as_list(value: &Value) -> Vec<String> {
    match value {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many.iter().map(|item| text(item).to_owned()).collect(),
        other => panic!("neither a string nor a list: {other}"),
    }
}

/// `terraform plan` of `workspace` with the AMI, the region and `vars`, as `terraform show
/// -json` gives it.
pub async fn plan_json(stack: &Deployment, workspace: &str, ami: &str, vars: &[String]) -> Value {
    let plan_file = format!("{workspace}.tfplan");
    let mut args = vec![
        "plan".to_owned(),
        "-input=false".to_owned(),
        "-no-color".to_owned(),
        format!("-out={plan_file}"),
        format!("-var=ami_id={ami}"),
        format!("-var=region={}", stack.region),
    ];
    args.extend(vars.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stack
        .terraform(Some(workspace), &args)
        .await
        .assert_success();
    let shown = stack
        .terraform(Some(workspace), &["show", "-json", "-no-color", &plan_file])
        .await;
    shown.assert_success();
    serde_json::from_str(&shown.stdout).expect("plan JSON")
}

/// The resource `address` of the plan's configuration declares `depends_on` on each of
/// `needed`.
#[track_caller]
pub fn assert_depends_on(plan: &Value, address: &str, needed: &[&str]) {
    let resource = plan["configuration"]["root_module"]["resources"]
        .as_array()
        .expect("configured resources")
        .iter()
        .find(|resource| resource["address"] == json!(address))
        .unwrap_or_else(|| panic!("no {address} in the configuration"));
    let declared: BTreeSet<&str> = resource["depends_on"]
        .as_array()
        .map(|list| list.iter().map(text).collect())
        .unwrap_or_default();
    for dependency in needed {
        assert!(
            declared.contains(dependency),
            "{address} does not depend on {dependency}: {declared:?}"
        );
    }
}

/// The change the plan makes to the resource `address`.
pub fn resource_change<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["resource_changes"]
        .as_array()
        .expect("resource changes")
        .iter()
        .find(|change| change["address"] == json!(address))
        .unwrap_or_else(|| panic!("no {address} in the plan"))
}

// ---------------------------------------------------------------------------------------
// A certificate and a TLS front for the HTTPS scenario
// ---------------------------------------------------------------------------------------

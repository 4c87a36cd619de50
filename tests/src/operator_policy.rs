//! The operator's least-privilege policies (`docs/iam/`) as the tests hand them to moto:
//! rendered by `scripts/render_policy.sh` for a project name, then rewritten into what
//! moto's IAM enforcement evaluates.
//!
//! moto 5.2.5 checks every call's action against the caller's policies, but it asks about
//! the resource `*` for every service but IAM and STS, ignores conditions whose keys the
//! request does not carry (all of them, outside trust policies), and names CloudWatch's
//! actions after its signing name, `monitoring:`. So [`as_moto_evaluates`] keeps each
//! statement's actions and effect, makes its resource `*`, and adds `monitoring:X` beside
//! each `cloudwatch:X`: the enforced run then proves that every call the scripts, Packer
//! and Terraform make is an action the policy grants, and nothing about the scoping, which
//! docs/TESTING.md covers otherwise.

use std::path::Path;

use serde_json::{Value, json};

use crate::repo_root;

/// The policies `scripts/render_policy.sh` writes for `project`: (name, document), the
/// name being the file's without the project and `.json` (`operator-ec2`...).
pub fn rendered(project: &str) -> Vec<(String, Value)> {
    let out = tempfile::tempdir().expect("temporary folder");
    let output = std::process::Command::new("bash")
        .arg(repo_root().join("scripts/render_policy.sh"))
        .args(["--out", &out.path().display().to_string()])
        .env("AXUM_ASG_PROJECT", project)
        .output()
        .expect("run scripts/render_policy.sh");
    assert!(
        output.status.success(),
        "render_policy.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut policies = Vec::new();
    for part in ["ec2", "stack"] {
        let path = out.path().join(format!("{project}-operator-{part}.json"));
        policies.push((format!("operator-{part}"), read_json(&path)));
    }
    policies
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The actions a statement names (one, or a list, in the file).
pub fn actions_of(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|action| action.as_str().expect("an action name").to_owned())
            .collect(),
        other => panic!("a statement without actions: {other}"),
    }
}

/// `policy` as moto can evaluate it (see the module's documentation).
pub fn as_moto_evaluates(policy: &Value) -> Value {
    let statements: Vec<Value> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .map(|statement| {
            let mut actions = Vec::new();
            for action in actions_of(statement) {
                if let Some(name) = action.strip_prefix("cloudwatch:") {
                    actions.push(format!("monitoring:{name}"));
                }
                actions.push(action);
            }
            let mut moto = statement.clone();
            moto["Action"] = json!(actions);
            moto["Resource"] = json!("*");
            moto
        })
        .collect();
    json!({"Version": policy["Version"], "Statement": statements})
}

/// `policies` without `action` wherever a statement grants it (the statement goes when it
/// granted nothing else).
pub fn without_action(policies: &[(String, Value)], action: &str) -> Vec<(String, Value)> {
    let mut found = false;
    let trimmed = policies
        .iter()
        .map(|(name, policy)| {
            let statements: Vec<Value> = policy["Statement"]
                .as_array()
                .expect("statements")
                .iter()
                .filter_map(|statement| {
                    let actions = actions_of(statement);
                    let kept: Vec<&String> = actions.iter().filter(|a| *a != action).collect();
                    found |= kept.len() < actions.len();
                    (!kept.is_empty()).then(|| {
                        let mut statement = statement.clone();
                        statement["Action"] = json!(kept);
                        statement
                    })
                })
                .collect();
            (
                name.clone(),
                json!({"Version": policy["Version"], "Statement": statements}),
            )
        })
        .collect();
    assert!(found, "no statement grants {action}");
    trimmed
}

/// The policies as moto evaluates them, names kept.
pub fn for_moto(policies: &[(String, Value)]) -> Vec<(String, Value)> {
    policies
        .iter()
        .map(|(name, policy)| (name.clone(), as_moto_evaluates(policy)))
        .collect()
}

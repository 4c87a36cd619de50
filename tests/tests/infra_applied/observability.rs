//! The service's logs on the stack applied to moto: the log group Terraform made (its
//! retention, the instance role's rights on it, the agent told its name, the dashboard's log
//! widget) and the values Terraform refuses. The scenarios of `infra_applied.rs` call these on
//! the stacks they apply; what `scripts/logs.sh` and `scripts/validate.sh` make of the logs
//! is checked in `operator.rs` (`operator/observed.rs`), run as the operator.

use blackbox::aws_query::text;
use blackbox::hcl_files::variable_default;
use blackbox::infra_dir;
use blackbox::terraform::Deployment;
use serde_json::{Value, json};

/// The environment `name`'s log group, its retention, the role's rights on it and nothing
/// more, the dashboard's log widget. (That user data tells the agent the group's name is
/// checked with the rest of the user data in `infra_applied.rs`.)
pub fn assert_log_group_and_its_readers(stack: &Deployment, name: &str, environment: &str) {
    let group_name = format!("/axum-asg/{environment}/candidates");
    let groups = stack.aws(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        &group_name,
    ]);
    let groups = groups["logGroups"].as_array().expect("log groups");
    assert_eq!(groups.len(), 1, "{groups:?}");
    let group = &groups[0];
    assert_eq!(group["logGroupName"], json!(group_name));
    assert_eq!(
        group["retentionInDays"],
        variable_default(&infra_dir(), "log_retention_days"),
        "the retention is log_retention_days"
    );
    let arn = text(&group["arn"]).trim_end_matches(":*").to_owned();

    // The role may write to this group's streams, and do nothing else with CloudWatch Logs.
    let document = stack.role_policy(&format!("{name}-instance"), "service-logs");
    let statements = document["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 1, "{document}");
    let statement = &statements[0];
    assert_eq!(statement["Effect"], json!("Allow"));
    let sorted = |value: &Value| {
        let mut items: Vec<String> = value
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {value}"))
            .iter()
            .map(|item| text(item).to_owned())
            .collect();
        items.sort();
        items
    };
    assert_eq!(
        sorted(&statement["Action"]),
        [
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents"
        ]
    );
    assert_eq!(
        sorted(&statement["Resource"]),
        [arn.clone(), format!("{arn}:*")]
    );

    // The dashboard counts the service's 5xx answers by route from these lines.
    let dashboard = stack.aws(&["cloudwatch", "get-dashboard", "--dashboard-name", name]);
    let body: Value =
        serde_json::from_str(text(&dashboard["DashboardBody"])).expect("dashboard JSON");
    let widgets = body["widgets"].as_array().expect("widgets");
    let logs: Vec<&Value> = widgets
        .iter()
        .filter(|widget| widget["type"] == json!("log"))
        .collect();
    assert_eq!(logs.len(), 1, "one log widget: {body}");
    let query = text(&logs[0]["properties"]["query"]);
    assert!(
        query.starts_with(&format!("SOURCE '{group_name}' | ")),
        "{query}"
    );
    for part in ["filter status >= 500", "stats count(*) as errors by route"] {
        assert!(query.contains(part), "{part}: {query}");
    }
    assert_eq!(logs[0]["properties"]["region"], json!(stack.region));
}

/// The environment's log group keeps its lines `days` days (a log_retention_days set).
pub fn assert_retention(stack: &Deployment, environment: &str, days: u64) {
    let groups = stack.aws(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        &format!("/axum-asg/{environment}/candidates"),
    ]);
    assert_eq!(
        groups["logGroups"][0]["retentionInDays"],
        json!(days),
        "{groups}"
    );
}

/// Nothing of the environment's log group is left.
pub fn assert_no_log_group(stack: &Deployment, environment: &str) {
    let groups = stack.aws(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        &format!("/axum-asg/{environment}/"),
    ]);
    assert_eq!(
        groups["logGroups"],
        json!([]),
        "{environment}: log group left"
    );
}

/// Values Terraform refuses before it creates anything: a retention CloudWatch Logs does not
/// accept, a Graviton instance type (the binary and the AMI are x86_64 only).
pub async fn assert_plan_refuses_bad_logs_and_graviton(
    stack: &Deployment,
    workspace: &str,
    ami: &str,
) {
    for (var, message) in [
        (
            "log_retention_days=8",
            "log_retention_days must be one of the retention periods CloudWatch Logs accepts",
        ),
        (
            "instance_type=t4g.micro",
            "AWS Graviton (arm64) instance types such as t4g, c7g or m8g are not supported",
        ),
        (
            "instance_type=c7gn.large",
            "AWS Graviton (arm64) instance types such as t4g, c7g or m8g are not supported",
        ),
    ] {
        let refused = stack.plan(workspace, ami, &[var]).await;
        refused.assert_failure();
        // Terraform wraps long messages in a box: compare without its rules and line breaks.
        let said = refused
            .output()
            .split_whitespace()
            .filter(|word| !["│", "╷", "╵"].contains(word))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(said.contains(message), "{var}: {refused}");
    }
}

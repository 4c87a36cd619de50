//! Static checks of the Terraform root module in `infra/`: it parses, it agrees with the
//! service it deploys (port, health path, DynamoDB schema, IAM actions, environment file),
//! with the systemd unit baked by Packer (drain and stop timeouts), and with itself (scaling
//! thresholds, security groups, schedules). Nothing here talks to AWS.
//!
//! `local.*` and `var.*` references are resolved from `locals.tf` and the variables'
//! defaults, so a test reads the values a default `terraform apply` would use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use blackbox::hcl_files::parse;
use blackbox::{repo_root, systemd_unit};
use hcl::expr::{Expression, ObjectKey, Operation, TemplateExpr, TraversalOperator, UnaryOperator};
use hcl::{Block, Body};

fn infra_dir() -> PathBuf {
    repo_root().join("infra")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// Files under `dir` (recursively) whose name ends with `suffix`, sorted.
fn files_ending_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder)
            .unwrap_or_else(|err| panic!("cannot list {}: {err}", folder.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if !name.starts_with('.') {
                    pending.push(path);
                }
            } else if name.ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The root module: every top-level block of every `.tf` file in `infra/`.
struct Infra {
    blocks: Vec<Block>,
}

impl Infra {
    fn load() -> Self {
        // Terraform reads the root module's own folder only, not its subfolders.
        Self {
            blocks: blackbox::hcl_files::blocks_in(&infra_dir(), ".tf"),
        }
    }

    /// Top-level blocks `kind "label0" "label1" {}` whose labels start with `labels`.
    fn blocks(&self, kind: &str, labels: &[&str]) -> Vec<&Block> {
        blackbox::hcl_files::select(&self.blocks, kind, labels)
    }

    fn one(&self, kind: &str, labels: &[&str]) -> &Body {
        let found = self.blocks(kind, labels);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one `{kind} {labels:?}` block in infra/"
        );
        found[0].body()
    }

    fn resource(&self, kind: &str, name: &str) -> &Body {
        self.one("resource", &[kind, name])
    }

    /// Every `resource "<kind>" "<name>"`, as (name, body).
    fn resources(&self, kind: &str) -> Vec<(&str, &Body)> {
        self.blocks("resource", &[kind])
            .into_iter()
            .map(|block| (block.labels()[1].as_str(), block.body()))
            .collect()
    }

    fn data(&self, kind: &str, name: &str) -> &Body {
        self.one("data", &[kind, name])
    }

    fn variables(&self) -> Vec<(&str, &Body)> {
        self.blocks("variable", &[])
            .into_iter()
            .map(|block| (block.labels()[0].as_str(), block.body()))
            .collect()
    }

    fn local(&self, name: &str) -> &Expression {
        self.blocks("locals", &[])
            .into_iter()
            .find_map(|block| attr(block.body(), name))
            .unwrap_or_else(|| panic!("no local `{name}` in infra/"))
    }

    fn default_of(&self, variable: &str) -> &Expression {
        let body = self.one("variable", &[variable]);
        attr(body, "default").unwrap_or_else(|| panic!("variable `{variable}` has no default"))
    }

    /// Follows `local.x.y` and `var.x` (its default) until the expression is no reference.
    fn resolve(&self, expr: &Expression) -> Expression {
        match expr {
            Expression::Parenthesis(inner) => self.resolve(inner),
            Expression::Traversal(traversal) => {
                let Expression::Variable(root) = &traversal.expr else {
                    return expr.clone();
                };
                let mut path = traversal.operators.iter();
                let Some(TraversalOperator::GetAttr(first)) = path.next() else {
                    return expr.clone();
                };
                let mut value = match root.as_str() {
                    "local" => self.resolve(self.local(first.as_str())),
                    "var" => self.resolve(self.default_of(first.as_str())),
                    _ => return expr.clone(),
                };
                for operator in path {
                    let TraversalOperator::GetAttr(key) = operator else {
                        panic!("cannot resolve {expr}: only attribute access is supported");
                    };
                    value = self.resolve(
                        object_get(&value, key.as_str())
                            .unwrap_or_else(|| panic!("{expr}: no attribute `{key}`")),
                    );
                }
                value
            }
            _ => expr.clone(),
        }
    }

    fn number(&self, expr: &Expression) -> f64 {
        number(&self.resolve(expr)).unwrap_or_else(|| panic!("{expr} is not a number"))
    }

    fn string(&self, expr: &Expression) -> String {
        match self.resolve(expr) {
            Expression::String(text) => text,
            other => panic!("{expr} is not a literal string (it is {other})"),
        }
    }

    fn default_number(&self, variable: &str) -> f64 {
        self.number(self.default_of(variable))
    }
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|attribute| attribute.key() == key)
        .map(|attribute| attribute.expr())
}

fn required<'a>(body: &'a Body, key: &str) -> &'a Expression {
    attr(body, key).unwrap_or_else(|| panic!("`{key}` is not set"))
}

fn nested<'a>(body: &'a Body, ident: &str) -> Vec<&'a Body> {
    body.blocks()
        .filter(|block| block.identifier() == ident)
        .map(|block| block.body())
        .collect()
}

fn single<'a>(body: &'a Body, ident: &str) -> &'a Body {
    let found = nested(body, ident);
    assert_eq!(found.len(), 1, "expected exactly one `{ident}` block");
    found[0]
}

fn object_get<'a>(expr: &'a Expression, key: &str) -> Option<&'a Expression> {
    let Expression::Object(object) = expr else {
        return None;
    };
    object.iter().find_map(|(object_key, value)| {
        let name = match object_key {
            ObjectKey::Identifier(ident) => ident.as_str().to_owned(),
            ObjectKey::Expression(Expression::String(text)) => text.clone(),
            ObjectKey::Expression(other) => other.to_string(),
            _ => return None,
        };
        (name == key).then_some(value)
    })
}

fn number(expr: &Expression) -> Option<f64> {
    match expr {
        Expression::Number(number) => number.as_f64(),
        Expression::Parenthesis(inner) => number(inner),
        Expression::Operation(operation) => match operation.as_ref() {
            Operation::Unary(unary) if unary.operator == UnaryOperator::Neg => {
                number(&unary.expr).map(|n| -n)
            }
            _ => None,
        },
        _ => None,
    }
}

fn boolean(expr: &Expression) -> bool {
    match expr {
        Expression::Bool(value) => *value,
        other => panic!("{other} is not a literal bool"),
    }
}

/// The raw text of a string or template (interpolations left as written).
fn template_text(expr: &Expression) -> String {
    match expr {
        Expression::String(text) => text.clone(),
        Expression::TemplateExpr(template) => match template.as_ref() {
            TemplateExpr::QuotedString(text) => text.clone(),
            TemplateExpr::Heredoc(heredoc) => heredoc.template.clone(),
        },
        other => panic!("{other} is not a string or template"),
    }
}

/// A reference such as `aws_security_group.alb.id`, as written.
fn reference(expr: &Expression) -> String {
    match expr {
        Expression::Traversal(_) => expr.to_string(),
        other => panic!("{other} is not a reference"),
    }
}

fn strings(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Array(items) => items.iter().map(template_text).collect(),
        other => panic!("{other} is not a list"),
    }
}

fn app_port() -> f64 {
    f64::from(candidates::config::DEFAULT_PORT)
}

#[test]
fn every_terraform_file_parses() {
    let dir = infra_dir();
    let files = files_ending_with(&dir, ".tf");
    let names: BTreeSet<_> = files
        .iter()
        .filter_map(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .map(str::to_owned)
        })
        .collect();
    for expected in ["versions.tf", "variables.tf", "outputs.tf", "locals.tf"] {
        assert!(
            names.contains(expected),
            "infra/{expected} is missing (found {names:?})"
        );
    }
    for path in files.iter().chain(&files_ending_with(&dir, ".tfvars")) {
        let body = parse(path);
        assert!(body.iter().next().is_some(), "{} is empty", path.display());
    }

    let infra = Infra::load();
    let terraform = infra.one("terraform", &[]);
    assert_eq!(
        infra.string(required(terraform, "required_version")),
        ">= 1.5"
    );
    let providers = single(terraform, "required_providers");
    let aws = required(providers, "aws");
    let version = object_get(aws, "version").map(template_text);
    // 5.100 and every 6.x: the suite applies with a real 5.100, tf-schema-check reads 6.x.
    assert_eq!(
        version.as_deref(),
        Some(">= 5.100, < 7.0"),
        "hashicorp/aws must admit 5.100 and 6.x, and no 7.x"
    );
}

#[test]
fn target_group_health_check_matches_the_service() {
    let infra = Infra::load();
    let group = infra.resource("aws_lb_target_group", "this");
    assert_eq!(
        infra.number(required(group, "port")),
        app_port(),
        "target group port"
    );
    assert_eq!(infra.string(required(group, "protocol")), "HTTP");

    let check = single(group, "health_check");
    assert_eq!(
        infra.string(required(check, "path")),
        candidates::api::HEALTH_PATH
    );
    assert_eq!(infra.string(required(check, "port")), "traffic-port");
    assert_eq!(infra.string(required(check, "matcher")), "200");
    assert_eq!(infra.string(required(check, "protocol")), "HTTP");
    let interval = infra.number(required(check, "interval"));
    let timeout = infra.number(required(check, "timeout"));
    assert!(
        (5.0..=10.0).contains(&interval),
        "health check interval {interval} s: keep it short"
    );
    assert!(
        timeout < interval,
        "health check timeout {timeout} s must be below the interval {interval} s"
    );
    assert_eq!(infra.number(required(check, "healthy_threshold")), 2.0);
    assert_eq!(infra.number(required(check, "unhealthy_threshold")), 2.0);

    // The group uses the load balancer's verdict, and the listener forwards to this group.
    let group_ref = "aws_lb_target_group.this.arn";
    let asg = infra.resource("aws_autoscaling_group", "this");
    assert_eq!(
        strings_of_refs(required(asg, "target_group_arns")),
        vec![group_ref.to_owned()]
    );
    assert_eq!(infra.string(required(asg, "health_check_type")), "ELB");
    for listener in ["http", "https"] {
        let action = single(
            infra.resource("aws_lb_listener", listener),
            "default_action",
        );
        let target = required(action, "target_group_arn").to_string();
        assert!(
            target.contains(group_ref),
            "listener {listener} forwards to {target}"
        );
    }
    assert!(boolean(required(
        infra.resource("aws_lb", "this"),
        "drop_invalid_header_fields"
    )));
}

fn strings_of_refs(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Array(items) => items.iter().map(reference).collect(),
        other => panic!("{other} is not a list"),
    }
}

#[test]
fn alarms_use_one_minute_periods_and_instances_report_every_minute() {
    let infra = Infra::load();
    let alarms = infra.resources("aws_cloudwatch_metric_alarm");
    assert!(
        alarms.len() >= 2,
        "expected the scale-out and scale-in alarms, found {}",
        alarms.len()
    );
    for (name, alarm) in alarms {
        let period = infra.number(required(alarm, "period"));
        assert!(
            period >= 60.0 && period % 60.0 == 0.0,
            "alarm {name}: period {period} s must be a multiple of 60"
        );
        assert_eq!(
            infra.string(required(alarm, "namespace")),
            "AWS/EC2",
            "alarm {name}"
        );
        assert_eq!(
            infra.string(required(alarm, "metric_name")),
            "CPUUtilization",
            "alarm {name}"
        );
        assert_eq!(
            infra.string(required(alarm, "statistic")),
            "Average",
            "alarm {name}"
        );
        let dimensions = required(alarm, "dimensions");
        let group = object_get(dimensions, "AutoScalingGroupName").map(reference);
        assert_eq!(
            group.as_deref(),
            Some("aws_autoscaling_group.this.name"),
            "alarm {name} dimension"
        );
    }

    let template = infra.resource("aws_launch_template", "this");
    assert!(
        boolean(required(single(template, "monitoring"), "enabled")),
        "detailed monitoring must be on"
    );
    let asg = infra.resource("aws_autoscaling_group", "this");
    assert_eq!(
        infra.string(required(asg, "metrics_granularity")),
        "1Minute"
    );
    let metrics = strings(required(asg, "enabled_metrics"));
    for metric in ["GroupDesiredCapacity", "GroupInServiceInstances"] {
        assert!(
            metrics.iter().any(|m| m == metric),
            "enabled_metrics lacks {metric}"
        );
    }
}

#[test]
fn default_scale_in_threshold_is_below_scale_out() {
    let infra = Infra::load();
    let scale_out = infra.default_number("scale_out_cpu_threshold");
    let scale_in = infra.default_number("scale_in_cpu_threshold");
    assert!(
        scale_in < scale_out,
        "scale-in threshold {scale_in} must be below scale-out {scale_out}"
    );
    assert!(
        scale_out - scale_in >= 20.0,
        "keep the thresholds well apart ({scale_in} and {scale_out})"
    );
    assert_eq!(infra.string(infra.default_of("scaling_mode")), "step");

    let high = infra.resource("aws_cloudwatch_metric_alarm", "cpu_high");
    assert_eq!(infra.number(required(high, "threshold")), scale_out);
    assert_eq!(
        infra.string(required(high, "comparison_operator")),
        "GreaterThanThreshold"
    );
    let low = infra.resource("aws_cloudwatch_metric_alarm", "cpu_low");
    assert_eq!(infra.number(required(low, "threshold")), scale_in);
    assert_eq!(
        infra.string(required(low, "comparison_operator")),
        "LessThanThreshold"
    );
    assert!(
        infra.number(required(low, "evaluation_periods"))
            > infra.number(required(high, "evaluation_periods")),
        "scale in more slowly than out"
    );
    for policy in ["scale_out", "scale_in"] {
        let body = infra.resource("aws_autoscaling_policy", policy);
        assert_eq!(infra.string(required(body, "policy_type")), "StepScaling");
        assert!(
            attr(body, "estimated_instance_warmup").is_some(),
            "{policy}: estimated_instance_warmup"
        );
    }
}

#[test]
fn instance_metadata_requires_imdsv2_with_hop_limit_one() {
    let infra = Infra::load();
    let template = infra.resource("aws_launch_template", "this");
    let metadata = single(template, "metadata_options");
    assert_eq!(infra.string(required(metadata, "http_tokens")), "required");
    assert_eq!(infra.string(required(metadata, "http_endpoint")), "enabled");
    assert_eq!(
        infra.number(required(metadata, "http_put_response_hop_limit")),
        1.0
    );
    assert!(
        attr(template, "key_name").is_none(),
        "no SSH key pair: use Session Manager"
    );

    let root = single(single(template, "block_device_mappings"), "ebs");
    assert!(
        boolean(required(root, "encrypted")),
        "the root volume must be encrypted"
    );
    assert_eq!(infra.string(required(root, "volume_type")), "gp3");
}

#[test]
fn instances_admit_only_the_load_balancer_on_the_app_port() {
    let infra = Infra::load();
    let instance_group = "aws_security_group.instance.id";
    let instance_sg = infra.resource("aws_security_group", "instance");
    assert!(
        attr(instance_sg, "ingress").is_none() && nested(instance_sg, "ingress").is_empty(),
        "rules belong in aws_vpc_security_group_ingress_rule resources"
    );
    assert!(
        infra.resources("aws_security_group_rule").is_empty(),
        "use the per-rule resources"
    );

    let rules: Vec<_> = infra
        .resources("aws_vpc_security_group_ingress_rule")
        .into_iter()
        .filter(|(_, rule)| reference(required(rule, "security_group_id")) == instance_group)
        .collect();
    assert_eq!(
        rules.len(),
        1,
        "the instances must have exactly one ingress rule"
    );
    let (name, rule) = rules[0];
    assert_eq!(
        reference(required(rule, "referenced_security_group_id")),
        "aws_security_group.alb.id",
        "{name}: only from the load balancer's security group"
    );
    for open in ["cidr_ipv4", "cidr_ipv6", "prefix_list_id"] {
        assert!(
            attr(rule, open).is_none(),
            "{name}: no {open} on the instances' ingress"
        );
    }
    assert_eq!(infra.string(required(rule, "ip_protocol")), "tcp");
    assert_eq!(infra.number(required(rule, "from_port")), app_port());
    assert_eq!(infra.number(required(rule, "to_port")), app_port());

    // Nothing opens port 22 anywhere, and the launch template uses only the instances' group.
    for (name, rule) in infra.resources("aws_vpc_security_group_ingress_rule") {
        let from = infra.number(required(rule, "from_port"));
        let to = infra.number(required(rule, "to_port"));
        assert!(!(from..=to).contains(&22.0), "{name} opens SSH");
    }
    let template = infra.resource("aws_launch_template", "this");
    assert_eq!(
        strings_of_refs(required(template, "vpc_security_group_ids")),
        vec![instance_group.to_owned()]
    );
}

#[test]
fn instance_role_grants_exactly_the_service_dynamodb_actions() {
    let infra = Infra::load();
    let document = infra.data("aws_iam_policy_document", "candidates_table");
    let statements = nested(document, "statement");
    assert!(
        !statements.is_empty(),
        "the policy document has no statement"
    );
    // The service queries only its listing index, and calls everything else on the table.
    let table = "aws_dynamodb_table.candidates.arn";
    let index = format!(
        "\"${{aws_dynamodb_table.candidates.arn}}/index/{}\"",
        candidates::store::LIST_INDEX
    );
    let mut actions = BTreeSet::new();
    for statement in &statements {
        assert_eq!(infra.string(required(statement, "effect")), "Allow");
        let granted = strings(required(statement, "actions"));
        let resources: Vec<_> = match required(statement, "resources") {
            Expression::Array(items) => items.iter().map(|item| item.to_string()).collect(),
            other => panic!("resources {other} is not a list"),
        };
        if resources == [index.as_str()] {
            assert_eq!(granted, ["dynamodb:Query"], "the index is only queried");
        } else {
            assert_eq!(resources, [table], "only the table and its listing index");
            assert!(
                !granted.iter().any(|action| action == "dynamodb:Query"),
                "the table itself is never queried"
            );
        }
        actions.extend(granted);
    }
    let expected: BTreeSet<_> = candidates::store::IAM_ACTIONS
        .iter()
        .map(|action| (*action).to_owned())
        .collect();
    assert_eq!(
        actions, expected,
        "IAM actions vs candidates::store::IAM_ACTIONS"
    );

    // No other policy document grants DynamoDB actions, and this one is the role's.
    for block in infra.blocks("data", &["aws_iam_policy_document"]) {
        if block.labels()[1].as_str() == "candidates_table" {
            continue;
        }
        for statement in nested(block.body(), "statement") {
            let extra: Vec<_> = attr(statement, "actions")
                .map(strings)
                .unwrap_or_default()
                .into_iter()
                .filter(|action| action.starts_with("dynamodb:") || action == "*")
                .collect();
            assert!(
                extra.is_empty(),
                "policy document {} grants {extra:?}",
                block.labels()[1].as_str()
            );
        }
    }
    let policy = infra.resource("aws_iam_role_policy", "candidates_table");
    assert_eq!(
        reference(required(policy, "policy")),
        "data.aws_iam_policy_document.candidates_table.json"
    );
    assert_eq!(
        reference(required(policy, "role")),
        "aws_iam_role.instance.id"
    );
    // Nothing else is granted to the role: one inline policy, and Session Manager as the only
    // managed policy (a managed DynamoDB policy would bypass the list above).
    assert_eq!(infra.resources("aws_iam_role_policy").len(), 1);
    let attachments = infra.resources("aws_iam_role_policy_attachment");
    assert_eq!(attachments.len(), 1, "only AmazonSSMManagedInstanceCore");
    assert!(
        template_text(required(attachments[0].1, "policy_arn"))
            .ends_with(":iam::aws:policy/AmazonSSMManagedInstanceCore")
    );
}

#[test]
fn dynamodb_table_matches_the_store() {
    use candidates::store::{LIST_INDEX, LIST_SHARD_ATTRIBUTE, PARTITION_KEY};

    let infra = Infra::load();
    let table = infra.resource("aws_dynamodb_table", "candidates");
    assert_eq!(infra.string(required(table, "hash_key")), PARTITION_KEY);
    assert!(
        attr(table, "range_key").is_none(),
        "the table has no sort key"
    );
    assert_eq!(
        infra.string(required(table, "billing_mode")),
        "PAY_PER_REQUEST"
    );
    assert_eq!(
        template_text(infra.local("table_name")),
        "${local.name}-candidates"
    );
    assert_eq!(reference(required(table, "name")), "local.table_name");

    let attributes: BTreeSet<_> = nested(table, "attribute")
        .into_iter()
        .map(|attribute| {
            (
                infra.string(required(attribute, "name")),
                infra.string(required(attribute, "type")),
            )
        })
        .collect();
    let expected: BTreeSet<_> = [
        (PARTITION_KEY.to_owned(), "S".to_owned()),
        (LIST_SHARD_ATTRIBUTE.to_owned(), "N".to_owned()),
    ]
    .into();
    assert_eq!(attributes, expected, "attribute definitions");

    let index = single(table, "global_secondary_index");
    assert_eq!(infra.string(required(index, "name")), LIST_INDEX);
    assert_eq!(
        infra.string(required(index, "projection_type")),
        "KEYS_ONLY"
    );
    // Either the hash_key/range_key arguments or key_schema blocks (aws >= 6.29).
    let keys: BTreeMap<String, String> = if nested(index, "key_schema").is_empty() {
        [
            ("HASH".to_owned(), infra.string(required(index, "hash_key"))),
            (
                "RANGE".to_owned(),
                infra.string(required(index, "range_key")),
            ),
        ]
        .into()
    } else {
        nested(index, "key_schema")
            .into_iter()
            .map(|key| {
                (
                    infra.string(required(key, "key_type")),
                    infra.string(required(key, "attribute_name")),
                )
            })
            .collect()
    };
    let expected: BTreeMap<_, _> = [
        ("HASH".to_owned(), LIST_SHARD_ATTRIBUTE.to_owned()),
        ("RANGE".to_owned(), PARTITION_KEY.to_owned()),
    ]
    .into();
    assert_eq!(keys, expected, "index {LIST_INDEX} key schema");

    assert!(boolean(required(
        single(table, "point_in_time_recovery"),
        "enabled"
    )));
    assert!(boolean(required(
        single(table, "server_side_encryption"),
        "enabled"
    )));
    assert_eq!(
        reference(required(table, "deletion_protection_enabled")),
        "var.deletion_protection"
    );
}

#[test]
fn every_variable_has_a_type_and_a_description() {
    let infra = Infra::load();
    let variables = infra.variables();
    assert!(
        variables.len() >= 20,
        "expected the module's variables, found {}",
        variables.len()
    );
    for (name, body) in variables {
        assert!(
            attr(body, "type").is_some(),
            "variable `{name}` has no type"
        );
        let description = attr(body, "description")
            .map(template_text)
            .unwrap_or_default();
        assert!(
            description.trim().len() >= 10,
            "variable `{name}` has no useful description"
        );
    }
}

#[test]
fn outputs_the_scripts_read_exist_and_are_described() {
    let infra = Infra::load();
    let outputs: BTreeMap<_, _> = infra
        .blocks("output", &[])
        .into_iter()
        .map(|block| (block.labels()[0].as_str(), block.body()))
        .collect();
    for output in [
        "url",
        "alb_dns_name",
        "asg_name",
        "table_name",
        "dashboard_url",
        "target_group_arn",
        "region",
        "environment",
    ] {
        let body = outputs
            .get(output)
            .unwrap_or_else(|| panic!("output `{output}` is missing"));
        assert!(
            attr(body, "description").is_some(),
            "output `{output}` has no description"
        );
    }
    let dashboard = template_text(required(outputs["dashboard_url"], "value"));
    assert!(
        dashboard.contains("region=${local.region}")
            && dashboard.contains("#dashboards/dashboard/"),
        "dashboard_url must open the dashboard in the stack's region: {dashboard}"
    );
}

/// Renders `templates/user_data.sh.tftpl` as `templatefile` would for plain `${name}`
/// interpolations, with the variables the launch template passes.
fn render_user_data(infra: &Infra) -> (String, BTreeMap<String, String>) {
    let template = infra.resource("aws_launch_template", "this");
    let Expression::FuncCall(encode) = required(template, "user_data") else {
        panic!("user_data must be base64encode(templatefile(...))");
    };
    assert_eq!(encode.name.name.as_str(), "base64encode");
    let Some(Expression::FuncCall(call)) = encode.args.first() else {
        panic!("user_data must be base64encode(templatefile(...))");
    };
    assert_eq!(call.name.name.as_str(), "templatefile");
    let path = template_text(&call.args[0]);
    assert_eq!(path, "${path.module}/templates/user_data.sh.tftpl");
    let Expression::Object(arguments) = &call.args[1] else {
        panic!("templatefile's variables must be an object");
    };

    let mut values = BTreeMap::new();
    for (key, expr) in arguments.iter() {
        let ObjectKey::Identifier(key) = key else {
            panic!("templatefile variable {key:?} must be a bare name");
        };
        let value = match infra.resolve(expr) {
            Expression::String(text) => text,
            resolved => match number(&resolved) {
                Some(n) => n.to_string(),
                // Known only at apply time (table name, region): a recognisable stand-in.
                None => format!("<{key}>"),
            },
        };
        values.insert(key.as_str().to_owned(), value);
    }

    let source = read(&infra_dir().join("templates/user_data.sh.tftpl"));
    assert!(
        !source.contains("%{"),
        "the user data template uses no directives"
    );
    let mut rendered = String::new();
    let mut used = BTreeSet::new();
    let mut rest = source.as_str();
    while let Some(start) = rest.find("${") {
        rendered.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("unterminated ${") + start;
        let name = &rest[start + 2..end];
        let value = values.get(name).unwrap_or_else(|| {
            panic!("the template uses ${{{name}}}, which the launch template does not pass")
        });
        rendered.push_str(value);
        used.insert(name.to_owned());
        rest = &rest[end + 1..];
    }
    rendered.push_str(rest);
    let passed: BTreeSet<_> = values.keys().cloned().collect();
    assert_eq!(
        used, passed,
        "every variable passed to templatefile is used, and only those"
    );
    (rendered, values)
}

#[test]
fn user_data_writes_the_service_environment_file() {
    let infra = Infra::load();
    let env_file = infra.string(infra.local("env_file_path"));
    assert_eq!(env_file, "/etc/candidates/candidates.env");
    let (script, values) = render_user_data(&infra);
    assert_eq!(values.get("env_file_path"), Some(&env_file));
    assert!(
        script.starts_with("#!/bin/bash\n"),
        "user data must be a bash script"
    );
    assert!(
        script.contains(&format!("env_file='{env_file}'")),
        "the script writes {env_file}"
    );
    assert!(
        script.contains("-g candidates"),
        "the folder belongs to group candidates"
    );
    assert!(
        script.contains("chown root:candidates") && script.contains("chmod 0640"),
        "mode 0640 root:candidates"
    );

    // The environment file's content: exactly the keys the service reads.
    let body = script
        .split("<<'ENV'\n")
        .nth(1)
        .and_then(|rest| rest.split("\nENV\n").next())
        .expect("a quoted heredoc <<'ENV' ... ENV holds the environment file");
    let env: BTreeMap<_, _> = body
        .lines()
        .map(|line| {
            line.split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {line}"))
        })
        .collect();
    let keys: Vec<_> = env.keys().copied().collect();
    assert_eq!(
        keys,
        [
            "AWS_REGION",
            "CANDIDATES_LOG_FORMAT",
            "CANDIDATES_REQUEST_TIMEOUT_SECS",
            "CANDIDATES_SHUTDOWN_DRAIN_SECS",
            "CANDIDATES_STORE"
        ]
    );
    assert_eq!(env["CANDIDATES_STORE"], "dynamodb://<table_name>");
    assert_eq!(env["AWS_REGION"], "<region>");
    assert_eq!(env["CANDIDATES_LOG_FORMAT"], "json");
    assert_eq!(
        env["CANDIDATES_SHUTDOWN_DRAIN_SECS"],
        infra.default_number("shutdown_drain_secs").to_string()
    );
    assert_eq!(
        env["CANDIDATES_REQUEST_TIMEOUT_SECS"],
        infra.default_number("request_timeout_secs").to_string()
    );
    let template = infra.resource("aws_launch_template", "this");
    let passed = required(template, "user_data").to_string();
    assert!(
        passed.contains("table_name = aws_dynamodb_table.candidates.name"),
        "the table: {passed}"
    );

    // The file is in place before the service is (re)started.
    let write = script
        .find("mv -f \"$tmp\" \"$env_file\"")
        .expect("the file is moved into place");
    let restart = script
        .find("systemctl restart candidates.service")
        .expect("the service is restarted");
    assert!(
        write < restart,
        "restart the service after writing its environment file"
    );

    let checked = Command::new("bash")
        .arg("-n")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run bash -n");
    assert!(
        checked.status.success(),
        "user data is not valid bash: {}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // The unit baked into the AMI reads this very file.
    let unit = systemd_unit::unit();
    assert_eq!(
        unit.get("Service", "EnvironmentFile"),
        env_file,
        "the unit's EnvironmentFile"
    );
    assert!(
        unit.all("Unit", "ConditionPathExists")
            .contains(&env_file.as_str()),
        "the unit's ConditionPathExists"
    );
}

/// The load balancer reuses its connections to a target for up to its idle timeout:
/// the service must keep them longer, or the load balancer sends a request on a
/// connection the service is closing and answers its client 502. And the service speaks
/// HTTP/1.1 only, which is the target group's protocol version.
#[test]
fn the_service_outlasts_the_load_balancers_idle_connections_and_speaks_its_protocol() {
    let infra = Infra::load();
    let alb = infra.resource("aws_lb", "this");
    let idle_timeout = infra.number(required(alb, "idle_timeout"));
    let keep_alive = f64::from(candidates::config::DEFAULT_KEEPALIVE_TIMEOUT_SECS);
    assert!(
        keep_alive > idle_timeout,
        "the service's keep-alive timeout {keep_alive} s must exceed the ALB's idle timeout {idle_timeout} s"
    );
    let group = infra.resource("aws_lb_target_group", "this");
    if let Some(version) = attr(group, "protocol_version") {
        assert_eq!(
            infra.string(version),
            "HTTP1",
            "the service serves HTTP/1.1 only"
        );
    }
}

#[test]
fn drain_deregistration_and_timeouts_fit_together() {
    let infra = Infra::load();
    let drain = infra.default_number("shutdown_drain_secs");
    let deregistration = infra.default_number("deregistration_delay_secs");
    let request_timeout = infra.default_number("request_timeout_secs");
    let health_check = infra.resolve(infra.local("health_check"));
    let interval =
        infra.number(object_get(&health_check, "interval").expect("health_check.interval"));
    let unhealthy = infra.number(
        object_get(&health_check, "unhealthy_threshold").expect("health_check.unhealthy_threshold"),
    );
    let stop_timeout = infra.number(infra.local("systemd_stop_timeout_secs"));

    assert!(
        drain >= interval * unhealthy,
        "drain {drain} s < {interval} s x {unhealthy}: the service would stop accepting before the load balancer stops sending"
    );
    assert!(
        deregistration >= request_timeout,
        "deregistration delay {deregistration} s < request timeout {request_timeout} s"
    );
    assert!(drain <= 60.0, "drain {drain} s: at most 60");
    assert!(
        drain + request_timeout + 1.0 < stop_timeout,
        "drain + in-flight must end before TimeoutStopSec"
    );
    assert_eq!(
        stop_timeout,
        systemd_unit::parse_timespan(systemd_unit::unit().get("Service", "TimeoutStopSec"))
            .as_secs_f64(),
        "locals.tf and the systemd unit disagree on TimeoutStopSec"
    );

    // The target group and the user data use these very variables.
    let group = infra.resource("aws_lb_target_group", "this");
    assert_eq!(
        reference(required(group, "deregistration_delay")),
        "var.deregistration_delay_secs"
    );
    let (_, values) = render_user_data(&infra);
    assert_eq!(values["shutdown_drain_secs"], drain.to_string());
    assert_eq!(values["request_timeout_secs"], request_timeout.to_string());
}

#[test]
fn the_group_keeps_the_capacity_scaling_chose_and_rolls_out_without_downtime() {
    let infra = Infra::load();
    let asg = infra.resource("aws_autoscaling_group", "this");
    if attr(asg, "desired_capacity").is_some() {
        let lifecycle = single(asg, "lifecycle");
        let ignored = required(lifecycle, "ignore_changes").to_string();
        assert!(
            ignored.contains("desired_capacity"),
            "desired_capacity is set and not ignored"
        );
    }
    assert_eq!(
        reference(required(single(asg, "launch_template"), "version")),
        "aws_launch_template.this.latest_version"
    );
    let refresh = single(asg, "instance_refresh");
    assert_eq!(infra.string(required(refresh, "strategy")), "Rolling");
    let preferences = single(refresh, "preferences");
    assert!(infra.number(required(preferences, "min_healthy_percentage")) >= 50.0);
    assert!(
        attr(asg, "default_instance_warmup").is_some(),
        "default_instance_warmup"
    );
    assert!(infra.default_number("min_size") <= infra.default_number("max_size"));
    assert!(infra.default_number("min_size") >= 1.0);

    // Instances get the launch tags (Name among them), propagated at launch.
    let tags: Vec<_> = asg
        .blocks()
        .filter(|block| block.identifier() == "dynamic" && block.labels()[0].as_str() == "tag")
        .collect();
    assert_eq!(tags.len(), 1, "one dynamic tag block");
    assert_eq!(
        reference(required(tags[0].body(), "for_each")),
        "local.launch_tags"
    );
    let content = single(tags[0].body(), "content");
    assert_eq!(reference(required(content, "key")), "tag.key");
    assert_eq!(reference(required(content, "value")), "tag.value");
    assert!(boolean(required(content, "propagate_at_launch")));
    assert!(
        infra
            .local("launch_tags")
            .to_string()
            .contains("Name = local.name"),
        "launch_tags set Name: {}",
        infra.local("launch_tags")
    );

    // Every name carries the project and the workspace.
    assert_eq!(
        template_text(infra.local("name")),
        "${var.project}-${local.environment}"
    );
    assert_eq!(
        infra.local("environment").to_string(),
        "terraform.workspace"
    );
}

/// Expands one field of a cron expression (numbers, `*`, lists, ranges, steps).
fn cron_field(field: &str, low: u32, high: u32) -> BTreeSet<u32> {
    let mut values = BTreeSet::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, step.parse().expect("cron step")),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (low, high),
            _ => match range.split_once('-') {
                Some((from, to)) => (
                    from.parse().expect("cron number"),
                    to.parse().expect("cron number"),
                ),
                None => {
                    let single: u32 = range.parse().expect("cron number");
                    (single, single)
                }
            },
        };
        values.extend((from..=to).step_by(step));
    }
    values
}

#[test]
fn weekly_business_example_sets_every_tier_at_the_right_time() {
    let path = infra_dir().join("examples/weekly-business.tfvars");
    let body = parse(&path);
    let schedules = required(&body, "schedules");
    let Expression::Object(schedules) = schedules else {
        panic!("schedules must be an object");
    };

    // (day of week 0..7 with 0 = Sunday, minute of day) -> (min, max) for each action.
    struct Action {
        name: String,
        minutes: BTreeSet<u32>,
        hours: BTreeSet<u32>,
        days: BTreeSet<u32>,
        min: Option<i64>,
        max: Option<i64>,
    }
    let mut actions = Vec::new();
    for (key, value) in schedules.iter() {
        let name = match key {
            ObjectKey::Expression(Expression::String(name)) => name.clone(),
            ObjectKey::Identifier(name) => name.as_str().to_owned(),
            other => panic!("unexpected schedule key {other:?}"),
        };
        let field = |attribute: &str| object_get(value, attribute);
        let recurrence = template_text(field("recurrence").expect("recurrence"));
        let parts: Vec<_> = recurrence.split(' ').collect();
        assert_eq!(parts.len(), 5, "{name}: five cron fields");
        assert_eq!(
            (parts[2], parts[3]),
            ("*", "*"),
            "{name}: weekly actions only"
        );
        assert_eq!(
            field("time_zone").map(template_text).as_deref(),
            Some("Europe/Paris"),
            "{name}"
        );
        assert!(
            field("desired_capacity").is_none(),
            "{name}: leave desired capacity to the policies"
        );
        let size = |attribute: &str| field(attribute).and_then(number).map(|n| n as i64);
        let days = cron_field(parts[4], 0, 6)
            .into_iter()
            .map(|day| day % 7)
            .collect();
        actions.push(Action {
            name,
            minutes: cron_field(parts[0], 0, 59),
            hours: cron_field(parts[1], 0, 23),
            days,
            min: size("min_size"),
            max: size("max_size"),
        });
    }

    let (ultra, low, normal, peak) = ((1, 2), (1, 3), (2, 4), (4, 8));
    let expected = |day: u32, minute: u32| {
        let business = matches!(day, 1 | 3 | 4 | 5);
        let in_peak =
            (6 * 60 + 50..9 * 60).contains(&minute) || (12 * 60 + 50..15 * 60).contains(&minute);
        if day == 0 || day == 2 {
            ultra
        } else if !(6 * 60..21 * 60).contains(&minute) {
            low
        } else if business && in_peak {
            peak
        } else {
            normal
        }
    };

    // Two weeks from a Monday: the first sets the state, the second must match minute by minute.
    let mut state: (Option<i64>, Option<i64>) = (None, None);
    for day_index in 0..14u32 {
        let day = (1 + day_index) % 7;
        for minute in 0..24 * 60 {
            let firing: Vec<_> = actions
                .iter()
                .filter(|a| {
                    a.days.contains(&day)
                        && a.hours.contains(&(minute / 60))
                        && a.minutes.contains(&(minute % 60))
                })
                .collect();
            assert!(
                firing.len() <= 1,
                "{:?} fire together",
                firing.iter().map(|a| &a.name).collect::<Vec<_>>()
            );
            if let Some(action) = firing.first() {
                state = (action.min.or(state.0), action.max.or(state.1));
            }
            if day_index >= 7 {
                let (min, max) = expected(day, minute);
                assert_eq!(
                    state,
                    (Some(min), Some(max)),
                    "day {day} (0 = Sunday) at {:02}:{:02}",
                    minute / 60,
                    minute % 60
                );
            }
        }
    }
}

#[test]
fn checkov_reports_no_failed_check() {
    let dir = infra_dir();
    let output = Command::new(blackbox::tool("checkov"))
        .arg("-d")
        .arg(&dir)
        .arg("--config-file")
        .arg(dir.join(".checkov.yaml"))
        .args(["--skip-download", "--output", "json"])
        .output()
        .unwrap_or_else(|err| panic!("cannot run checkov: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "checkov's output is not JSON ({err}):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let reports = match report {
        serde_json::Value::Array(reports) => reports,
        single => vec![single],
    };
    let mut passed = 0;
    for report in &reports {
        let summary = &report["summary"];
        let failed: Vec<_> = report["results"]["failed_checks"]
            .as_array()
            .map(|checks| {
                checks
                    .iter()
                    .map(|check| {
                        format!(
                            "{} {} ({})",
                            check["check_id"], check["resource"], check["file_path"]
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(summary["failed"], 0, "checkov failed checks: {failed:#?}");
        assert_eq!(
            summary["parsing_errors"], 0,
            "checkov could not parse some files"
        );
        passed += summary["passed"].as_u64().unwrap_or_default();
    }
    assert!(
        passed > 0,
        "checkov passed no check: did it scan infra/?\n{stdout}"
    );
    assert!(
        output.status.success(),
        "checkov exited with {}",
        output.status
    );
}

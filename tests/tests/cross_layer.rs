//! Where the layers meet: the service, the Terraform module, the Packer template, the
//! systemd unit and the scripts must agree on the health path and port, the environment
//! file and the settings in it, the DynamoDB table and the IAM actions on it, the drain and
//! stop timings, and the project name. Each check reads both sides from their sources (the
//! service's constants, `infra/`, `packer/`, `scripts/lib/common.sh`), so changing one side
//! alone fails here. Nothing here talks to AWS.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use blackbox::hcl_files::{
    Module, attr, boolean, expect_reference, nested, number, object_get, required, single, strings,
    template_text,
};
use blackbox::{infra_dir, repo_root, systemd_unit};
use hcl::expr::{Expression, ObjectKey};

fn app_port() -> f64 {
    f64::from(candidates::config::DEFAULT_PORT)
}

// ---------------------------------------------------------------------------------------
// Health path and port: the service, the target group, the instances' ingress
// ---------------------------------------------------------------------------------------

/// The load balancer sends traffic and health checks to the port the service listens on by
/// default (the environment file sets no other), on the service's health path, and the
/// instances admit that port.
#[test]
fn the_target_group_checks_the_service_health_path_on_its_port() {
    let infra = Module::infra();
    let group = infra.resource("aws_lb_target_group", "this");
    assert_eq!(
        infra.number(required(group, "port")),
        app_port(),
        "target group port"
    );
    let check = single(group, "health_check");
    assert_eq!(
        infra.string(required(check, "path")),
        candidates::api::HEALTH_PATH
    );
    assert_eq!(infra.string(required(check, "port")), "traffic-port");

    let rules: Vec<_> = infra
        .resources("aws_vpc_security_group_ingress_rule")
        .into_iter()
        .filter(|(_, rule)| {
            expect_reference(required(rule, "security_group_id"))
                == "aws_security_group.instance.id"
        })
        .collect();
    assert_eq!(rules.len(), 1, "the instances have one ingress rule");
    let (_, rule) = rules[0];
    assert_eq!(infra.number(required(rule, "from_port")), app_port());
    assert_eq!(infra.number(required(rule, "to_port")), app_port());
}

// ---------------------------------------------------------------------------------------
// The DynamoDB table and the IAM actions: the store, the Terraform module
// ---------------------------------------------------------------------------------------

#[test]
fn instance_role_grants_exactly_the_service_dynamodb_actions() {
    let infra = Module::infra();
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
        expect_reference(required(policy, "policy")),
        "data.aws_iam_policy_document.candidates_table.json"
    );
    assert_eq!(
        expect_reference(required(policy, "role")),
        "aws_iam_role.instance.id"
    );
    // Nothing else is granted to the role: this inline policy, the CloudWatch agent's on the
    // environment's log group and nothing else, and Session Manager as the only managed
    // policy (a managed DynamoDB policy would bypass the list above).
    let inline: BTreeSet<&str> = infra
        .resources("aws_iam_role_policy")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(inline, BTreeSet::from(["candidates_table", "service_logs"]));
    let logs = infra.resource("aws_iam_role_policy", "service_logs");
    assert_eq!(
        expect_reference(required(logs, "policy")),
        "data.aws_iam_policy_document.service_logs.json"
    );
    for statement in nested(
        infra.data("aws_iam_policy_document", "service_logs"),
        "statement",
    ) {
        let granted = strings(required(statement, "actions"));
        assert!(
            granted
                .iter()
                .all(|action| action.starts_with("logs:") && !action.contains('*')),
            "{granted:?}"
        );
        let Expression::Array(resources) = required(statement, "resources") else {
            panic!("resources must be a list");
        };
        for resource in resources {
            assert!(
                resource
                    .to_string()
                    .contains("aws_cloudwatch_log_group.service.arn"),
                "the agent writes to its environment's log group only: {resource}"
            );
        }
    }
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

    let infra = Module::infra();
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
    assert_eq!(
        expect_reference(required(table, "name")),
        "local.table_name"
    );

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
        expect_reference(required(table, "deletion_protection_enabled")),
        "var.deletion_protection"
    );
}

// ---------------------------------------------------------------------------------------
// The environment file: user data (Terraform), the systemd unit (Packer), the service
// ---------------------------------------------------------------------------------------

/// Renders `templates/user_data.sh.tftpl` as `templatefile` would for plain `${name}`
/// interpolations, with the variables the launch template passes.
fn render_user_data(infra: &Module) -> (String, BTreeMap<String, String>) {
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

    let source = std::fs::read_to_string(infra_dir().join("templates/user_data.sh.tftpl"))
        .expect("read infra/templates/user_data.sh.tftpl");
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
    let infra = Module::infra();
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

    // The unit baked into the AMI reads this very file, as the user the file is for.
    let unit = systemd_unit::unit();
    assert_eq!(
        unit.get("Service", "EnvironmentFile"),
        env_file,
        "the unit's EnvironmentFile"
    );
    // Without '-' prefix: a missing file is an error, never an empty configuration.
    assert_eq!(
        unit.all("Service", "EnvironmentFile"),
        [env_file.as_str()],
        "the unit's EnvironmentFile"
    );
    assert!(
        unit.all("Unit", "ConditionPathExists")
            .contains(&env_file.as_str()),
        "the AMI's own first boot must not start the service before user data wrote {env_file}"
    );
    assert_eq!(
        unit.get("Service", "User"),
        "candidates",
        "the service runs as its own system user"
    );
    assert_ne!(unit.get("Service", "Group"), "root");
    assert!(
        unit.all("Service", "DynamicUser")
            .iter()
            .all(|v| *v == "no"),
        "user data gives the environment file to the static group `candidates`"
    );
}

// ---------------------------------------------------------------------------------------
// The service's log lines: the unit writes them, the agent ships them, logrotate rotates
// them, user data names the log group Terraform created
// ---------------------------------------------------------------------------------------

/// One log file for the unit (which writes it), the CloudWatch agent's configuration (which
/// ships it, one stream per instance), the rotation and install.sh (which creates its
/// folder); and one placeholder between the agent's configuration, installed where user
/// data reads it, and user data, which fills in the log group Terraform creates before it
/// starts the agent, and starts the agent before the service.
#[test]
fn the_log_file_the_unit_writes_is_the_one_shipped_and_rotated_into_the_environments_group() {
    let unit = systemd_unit::unit();
    let output = unit.get("Service", "StandardOutput");
    let log_file = output
        .strip_prefix("append:")
        .unwrap_or_else(|| panic!("StandardOutput=append:PATH, not {output}"));
    assert_eq!(unit.get("Service", "StandardError"), "inherit");
    let log_dir = log_file.rsplit_once('/').expect("a folder").0;

    let packer = repo_root().join("packer");
    let read = |path: &str| {
        std::fs::read_to_string(packer.join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
    };
    let agent: serde_json::Value =
        serde_json::from_str(&read("files/cloudwatch-agent.json")).expect("the agent's JSON");
    let collected = agent["logs"]["logs_collected"]["files"]["collect_list"]
        .as_array()
        .expect("a collect_list");
    assert_eq!(collected.len(), 1, "{agent}");
    assert_eq!(collected[0]["file_path"], serde_json::json!(log_file));
    assert_eq!(
        collected[0]["log_stream_name"],
        serde_json::json!("{instance_id}")
    );
    let placeholder = collected[0]["log_group_name"]
        .as_str()
        .expect("a group name");
    assert!(
        placeholder.starts_with('@') && placeholder.ends_with('@'),
        "{placeholder}"
    );

    assert!(
        read("files/candidates-logrotate.conf").contains(&format!("{log_file} {{")),
        "the rotation rotates {log_file}"
    );
    let install = read("scripts/install.sh");
    assert!(
        install.contains(&format!("readonly LOG_DIR={log_dir}\n")),
        "install.sh makes {log_dir}"
    );
    assert!(install.contains("readonly CONFIG_DIR=/etc/candidates\n"));
    assert!(
        install
            .contains("\"$staging/cloudwatch-agent.json\" \"$CONFIG_DIR/cloudwatch-agent.json\"")
    );

    let infra = Module::infra();
    let (script, values) = render_user_data(&infra);
    assert_eq!(
        values.get("log_group_name").map(String::as_str),
        Some("<log_group_name>")
    );
    let passed = required(infra.resource("aws_launch_template", "this"), "user_data").to_string();
    assert!(
        passed.contains("log_group_name = aws_cloudwatch_log_group.service.name"),
        "the log group Terraform creates: {passed}"
    );
    assert!(
        script.contains("agent_template=/etc/candidates/cloudwatch-agent.json\n"),
        "{script}"
    );
    let fill = format!("sed 's|{placeholder}|<log_group_name>|' \"$agent_template\"");
    let start_agent = script
        .find(&fill)
        .unwrap_or_else(|| panic!("no {fill} in:\n{script}"));
    let start_service = script
        .find("systemctl restart candidates.service")
        .expect("the service is started");
    assert!(start_agent < start_service, "the agent starts first");
}

// ---------------------------------------------------------------------------------------
// Timings: the service's drain, the target group, the health check, the unit's stop
// ---------------------------------------------------------------------------------------

/// The load balancer reuses its connections to a target for up to its idle timeout:
/// the service must keep them longer, or the load balancer sends a request on a
/// connection the service is closing and answers its client 502. And the service speaks
/// HTTP/1.1 only, which is the target group's protocol version.
#[test]
fn the_service_outlasts_the_load_balancers_idle_connections_and_speaks_its_protocol() {
    let infra = Module::infra();
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
    let infra = Module::infra();
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
    // The stop rule (candidates::config::STOP_TIMEOUT_SECS): one bound, stated once in
    // the service, which the unit, Terraform's precondition and the defaults all keep.
    assert!(
        drain + request_timeout + 1.0 < stop_timeout,
        "drain + in-flight must end before TimeoutStopSec"
    );
    let unit = systemd_unit::unit();
    let unit_stop = systemd_unit::parse_timespan(unit.get("Service", "TimeoutStopSec"));
    assert_eq!(
        stop_timeout,
        unit_stop.as_secs_f64(),
        "locals.tf and the systemd unit disagree on TimeoutStopSec"
    );
    assert_eq!(
        unit_stop,
        Duration::from_secs(u64::from(candidates::config::STOP_TIMEOUT_SECS)),
        "the service's stop rule and the unit's TimeoutStopSec disagree"
    );
    assert_eq!(
        unit.get("Service", "KillSignal"),
        "SIGTERM",
        "SIGTERM starts the service's drain"
    );

    // The target group and the user data use these very variables.
    let group = infra.resource("aws_lb_target_group", "this");
    assert_eq!(
        expect_reference(required(group, "deregistration_delay")),
        "var.deregistration_delay_secs"
    );
    let (_, values) = render_user_data(&infra);
    assert_eq!(values["shutdown_drain_secs"], drain.to_string());
    assert_eq!(values["request_timeout_secs"], request_timeout.to_string());
}

// ---------------------------------------------------------------------------------------
// The project name: the scripts, Packer, Terraform
// ---------------------------------------------------------------------------------------

/// The project name has one source: scripts/lib/common.sh chooses it (AXUM_ASG_PROJECT, with
/// a default) and apply.sh passes it to Packer and Terraform, whose own defaults (for a
/// direct `packer build` or `terraform apply`) must be the same name.
#[test]
fn the_project_name_defaults_agree_across_scripts_packer_and_terraform() {
    let common =
        std::fs::read_to_string(repo_root().join("scripts/lib/common.sh")).expect("read common.sh");
    let line = common
        .lines()
        .find(|line| line.starts_with("PROJECT_NAME="))
        .expect("PROJECT_NAME= in common.sh");
    let scripts = line
        .strip_prefix("PROJECT_NAME=${AXUM_ASG_PROJECT:-")
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_else(|| panic!("PROJECT_NAME must default AXUM_ASG_PROJECT: {line}"));
    let packer = blackbox::hcl_files::variable_default_in(
        &repo_root().join("packer"),
        ".pkr.hcl",
        "project",
    );
    let terraform = blackbox::hcl_files::variable_default(&infra_dir(), "project");
    assert_eq!(
        packer,
        serde_json::json!(scripts),
        "Packer's project default"
    );
    assert_eq!(
        terraform,
        serde_json::json!(scripts),
        "Terraform's project default"
    );
}

// ---------------------------------------------------------------------------------------
// Load profiles and SLO defaults: loadtest.sh, loadreport.py, the rehearsal, the README
// ---------------------------------------------------------------------------------------

/// scripts/lib/load-profiles.env, read here independently of every reader it has.
fn load_profiles() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo_root().join("scripts/lib/load-profiles.env"))
        .expect("load-profiles.env");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once('=').expect("NAME=VALUE");
            (name.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect()
}

/// "1000" -> "1,000", as the usage texts write thousands.
fn with_separators(value: &str) -> String {
    let number: f64 = value.parse().expect("a number");
    if number < 1000.0 || number.fract() != 0.0 {
        return value.to_owned();
    }
    let digits = format!("{number:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The profiles, their requests, the mixed split and the SLO defaults have one definition:
/// loadtest.sh sources it, loadreport.py and the rehearsal read it, and the texts that
/// describe them (usage headers, README) say the same.
#[test]
fn the_load_profiles_and_slo_defaults_have_one_definition() {
    let p = load_profiles();
    let names: Vec<&str> = p["LOAD_PROFILES"].split_whitespace().collect();
    let (slo_rps, slo_mean, slo_success) =
        (&p["SLO_RPS"], &p["SLO_MEAN_MS"], &p["SLO_SUCCESS_PERCENT"]);
    let read_percent: f64 = p["MIXED_READ_PERCENT"].parse().expect("a percentage");

    // loadtest.sh: sources the file, copies none of it, and its usage says the same.
    let loadtest =
        std::fs::read_to_string(repo_root().join("scripts/loadtest.sh")).expect("loadtest.sh");
    assert!(loadtest.contains("source \"$(dirname \"${BASH_SOURCE[0]}\")/lib/load-profiles.env\""));
    for name in names.iter().filter(|n| **n != "mixed") {
        let (_, path) = p[&format!("PROFILE_{}", name.to_uppercase())]
            .split_once(' ')
            .expect("METHOD PATH");
        assert!(
            !loadtest.contains(path),
            "loadtest.sh copies {name}'s path {path}"
        );
    }
    let usage: String = loadtest
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(usage.contains(&names.join(" | ")), "{usage}");
    for (flag, value) in [
        ("--slo-rps", slo_rps),
        ("--slo-mean-ms", slo_mean),
        ("--slo-success", slo_success),
    ] {
        let line = usage.lines().find(|l| l.contains(flag)).expect(flag);
        assert!(line.contains(&format!("(default {value})")), "{line}");
    }
    let mixed = format!(
        "{read_percent:.0} % reads and {:.0} % writes",
        100.0 - read_percent
    );
    assert!(usage.contains(&mixed), "{usage}");
    assert!(
        usage.contains(&format!("over {} seeded names", p["READ_SEED_COUNT"])),
        "{usage}"
    );

    // loadreport.py: its default goals, as its verdict prints them.
    let dir = tempfile::tempdir().expect("dir");
    let csv = dir.path().join("samples.csv");
    std::fs::write(
        &csv,
        "elapsed_s,target_rps,requests,ok_2xx,failed,rps,mean_ms,p50_ms,p99_ms,desired,in_service,cpu_percent\n1,5,5,5,0,5,1,1,1,,,\n",
    )
    .expect("samples");
    let output = Command::new("python3")
        .arg(repo_root().join("scripts/python/loadreport.py"))
        .arg("verdict")
        .arg(&csv)
        .output()
        .expect("run loadreport.py");
    let verdict = String::from_utf8_lossy(&output.stdout);
    for goal in [
        format!("SLO throughput >= {slo_rps} rps"),
        format!("SLO mean latency < {slo_mean} ms"),
        format!("SLO success >= {slo_success} % 2xx"),
    ] {
        assert!(
            verdict.contains(&goal),
            "loadreport.py: {goal} not in\n{verdict}"
        );
    }

    // The rehearsal: the same definition compiled in.
    let shipped = rehearsal::profiles::Profiles::shipped();
    assert_eq!(shipped.names, names);
    assert_eq!(shipped.mixed_read_share * 100.0, read_percent);
    assert_eq!(shipped.slo_rps.to_string(), *slo_rps);
    let goals = rehearsal::cli::Goals::default();
    assert_eq!(
        (goals.mean_ms.to_string(), goals.success_percent.to_string()),
        (slo_mean.clone(), slo_success.clone())
    );
    assert_eq!(
        goals.rps, None,
        "a rehearsal's throughput goal is its load's peak"
    );

    // The README's description of loadtest.sh.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    assert!(
        readme.contains(&format!(
            "(defaults: {} rps, mean < {slo_mean} ms,",
            with_separators(slo_rps)
        )),
        "README's SLO defaults"
    );
    assert!(readme.contains(&format!("≥ {slo_success} % of requests answered 2xx")));
    assert!(readme.contains(&format!(
        "({read_percent:.0} % reads, {:.0} %",
        100.0 - read_percent
    )));
}

//! Static checks of the Terraform root module in `infra/` on its own: it parses, scales on
//! one-minute CPU with thresholds that never fight, admits only the load balancer, keeps
//! the capacity the policies chose, and its examples do what they say. Nothing here talks
//! to AWS. Where the module must agree with the service, the systemd unit or Packer, the
//! check is in `cross_layer.rs`.
//!
//! `local.*` and `var.*` references are resolved from `locals.tf` and the variables'
//! defaults, so a test reads the values a default `terraform apply` would use.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use blackbox::hcl_files::{
    Module, attr, boolean, expect_reference, files_under, nested, number, object_get, parse,
    references, required, single, strings, template_text,
};
use blackbox::infra_dir;
use hcl::expr::{Expression, ObjectKey};

#[test]
fn every_terraform_file_parses() {
    let dir = infra_dir();
    let files = files_under(&dir, ".tf");
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
    for path in files.iter().chain(&files_under(&dir, ".tfvars")) {
        let body = parse(path);
        assert!(body.iter().next().is_some(), "{} is empty", path.display());
    }

    let infra = Module::infra();
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

/// The health check is quick and decides for the group. (Its path and port are the
/// service's: `cross_layer.rs`.)
#[test]
fn target_group_health_check_is_quick_and_the_group_follows_it() {
    let infra = Module::infra();
    let group = infra.resource("aws_lb_target_group", "this");
    assert_eq!(infra.string(required(group, "protocol")), "HTTP");

    let check = single(group, "health_check");
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
        references(required(asg, "target_group_arns")),
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

#[test]
fn alarms_use_one_minute_periods_and_instances_report_every_minute() {
    let infra = Module::infra();
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
        let group = object_get(dimensions, "AutoScalingGroupName").map(expect_reference);
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
    let infra = Module::infra();
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
    let infra = Module::infra();
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
    let infra = Module::infra();
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
        .filter(|(_, rule)| expect_reference(required(rule, "security_group_id")) == instance_group)
        .collect();
    assert_eq!(
        rules.len(),
        1,
        "the instances must have exactly one ingress rule"
    );
    let (name, rule) = rules[0];
    assert_eq!(
        expect_reference(required(rule, "referenced_security_group_id")),
        "aws_security_group.alb.id",
        "{name}: only from the load balancer's security group"
    );
    for open in ["cidr_ipv4", "cidr_ipv6", "prefix_list_id"] {
        assert!(
            attr(rule, open).is_none(),
            "{name}: no {open} on the instances' ingress"
        );
    }
    // The port the load balancer sends to, and only that one (it is the service's port:
    // cross_layer.rs).
    let traffic_port = infra.number(required(
        infra.resource("aws_lb_target_group", "this"),
        "port",
    ));
    assert_eq!(infra.string(required(rule, "ip_protocol")), "tcp");
    assert_eq!(infra.number(required(rule, "from_port")), traffic_port);
    assert_eq!(infra.number(required(rule, "to_port")), traffic_port);

    // Nothing opens port 22 anywhere, and the launch template uses only the instances' group.
    for (name, rule) in infra.resources("aws_vpc_security_group_ingress_rule") {
        let from = infra.number(required(rule, "from_port"));
        let to = infra.number(required(rule, "to_port"));
        assert!(!(from..=to).contains(&22.0), "{name} opens SSH");
    }
    let template = infra.resource("aws_launch_template", "this");
    assert_eq!(
        references(required(template, "vpc_security_group_ids")),
        vec![instance_group.to_owned()]
    );
}

#[test]
fn every_variable_has_a_type_and_a_description() {
    let infra = Module::infra();
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
    let infra = Module::infra();
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
        "log_group_name",
        "ami_id",
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

#[test]
fn the_group_keeps_the_capacity_scaling_chose_and_rolls_out_without_downtime() {
    let infra = Module::infra();
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
        expect_reference(required(single(asg, "launch_template"), "version")),
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
        expect_reference(required(tags[0].body(), "for_each")),
        "local.launch_tags"
    );
    let content = single(tags[0].body(), "content");
    assert_eq!(expect_reference(required(content, "key")), "tag.key");
    assert_eq!(expect_reference(required(content, "value")), "tag.value");
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

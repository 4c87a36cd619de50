//! The `dev` workspace: the defaults (step scaling on CPU, HTTP), each part of what AWS then
//! holds checked by its own function.

use std::collections::BTreeSet;

use base64::Engine as _;
use blackbox::aws_query::{
    arn_suffix, as_list, assert_depends_on, auto_scaling_group, load_balancer, number, outputs,
    plan_json, policies_by_name, resource_change, step_adjustments, text,
};
use blackbox::terraform::{Deployment, latest_launch_template};
use serde_json::{Value, json};

use super::{DOMAIN, apply, default_of, observability};

const NAME: &str = "axum-asg-dev";

/// The defaults: step scaling on CPU, HTTP. Then scale.sh, then a plan that must leave the
/// capacity alone, and a plan that switches to HTTPS without the provider's warning.
pub(super) async fn environment(stack: &Deployment, ami: &str, certificate_arn: &str) {
    apply(stack, "dev", ami, &[]).await.assert_success();
    let out = outputs(stack, "dev").await;
    check_outputs(stack, &out);
    check_alarms_and_step_policies(stack);
    check_target_group(stack, &out);
    check_launch_template(stack, ami, &out);
    check_group_sizes_and_zones(stack);
    check_instance_role(stack, &out);
    observability::assert_log_group_and_its_readers(stack, NAME, "dev");
    observability::assert_plan_refuses_bad_logs_and_graviton(stack, "dev", ami).await;
    check_table(stack, &out);
    let plan = check_a_chosen_capacity_survives_a_plan(stack, ami).await;
    check_declared_orderings(&plan);
    check_switch_to_https(stack, ami, certificate_arn).await;
}

/// The outputs the scripts read: names, region, URL, the load balancer's metric dimension.
fn check_outputs(stack: &Deployment, out: &Value) {
    let name = NAME;
    assert_eq!(out["asg_name"], json!(name));
    assert_eq!(out["region"], json!(stack.region));
    assert_eq!(out["project"], json!("axum-asg"));
    assert_eq!(
        out["url"],
        json!(format!("http://{}", text(&out["alb_dns_name"])))
    );
    // The dimension rehearse.sh --load-from-cloudwatch reads the load balancer's metrics by.
    let balancer_arn = text(&load_balancer(stack, name)["LoadBalancerArn"]).to_owned();
    assert_eq!(
        out["alb_arn_suffix"],
        json!(arn_suffix(&balancer_arn, "loadbalancer/"))
    );
}

/// Both CPU alarms and the step policies they invoke, with the variables' defaults.
fn check_alarms_and_step_policies(stack: &Deployment) {
    let name = NAME;
    let policies = policies_by_name(stack, name);
    let scale_out = &policies[&format!("{name}-cpu-scale-out")];
    let scale_in = &policies[&format!("{name}-cpu-scale-in")];
    let alarms = stack.aws(&[
        "cloudwatch",
        "describe-alarms",
        "--alarm-name-prefix",
        &format!("{name}-cpu-"),
    ]);
    let alarms = alarms["MetricAlarms"].as_array().expect("alarms");
    assert_eq!(alarms.len(), 2, "{alarms:?}");
    for (alarm_name, direction, policy) in [
        (format!("{name}-cpu-high"), "out", scale_out),
        (format!("{name}-cpu-low"), "in", scale_in),
    ] {
        let alarm = alarms
            .iter()
            .find(|alarm| alarm["AlarmName"] == json!(alarm_name))
            .unwrap_or_else(|| panic!("no alarm {alarm_name}: {alarms:?}"));
        assert_eq!(alarm["Namespace"], json!("AWS/EC2"));
        assert_eq!(alarm["MetricName"], json!("CPUUtilization"));
        assert_eq!(
            alarm["Dimensions"],
            json!([{"Name": "AutoScalingGroupName", "Value": name}])
        );
        assert_eq!(alarm["Statistic"], json!("Average"));
        assert_eq!(
            number(&alarm["Period"]),
            number(&default_of(&format!("scale_{direction}_period_secs")))
        );
        assert_eq!(
            number(&alarm["EvaluationPeriods"]),
            number(&default_of(&format!(
                "scale_{direction}_evaluation_periods"
            )))
        );
        assert_eq!(
            number(&alarm["Threshold"]),
            number(&default_of(&format!("scale_{direction}_cpu_threshold")))
        );
        let comparison = if direction == "out" {
            "GreaterThanThreshold"
        } else {
            "LessThanThreshold"
        };
        assert_eq!(alarm["ComparisonOperator"], json!(comparison));
        assert_eq!(alarm["AlarmActions"], json!([policy["PolicyARN"]]));
    }

    // Step bounds relative to the threshold: each step to the next one's lower bound.
    let steps = default_of("scale_out_steps");
    let steps = steps.as_array().expect("steps");
    let expected: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let mut adjustment = json!({
                "MetricIntervalLowerBound": number(&step["lower_bound"]),
                "ScalingAdjustment": number(&step["adjustment"]),
            });
            if let Some(next) = steps.get(index + 1) {
                adjustment["MetricIntervalUpperBound"] = json!(number(&next["lower_bound"]));
            }
            adjustment
        })
        .collect();
    assert_eq!(step_adjustments(scale_out), expected);
    assert_eq!(
        step_adjustments(scale_in),
        vec![json!({
            "MetricIntervalUpperBound": 0.0,
            "ScalingAdjustment": number(&default_of("scale_in_adjustment")),
        })]
    );
    for policy in [scale_out, scale_in] {
        assert_eq!(policy["PolicyType"], json!("StepScaling"));
        assert_eq!(policy["AdjustmentType"], json!("ChangeInCapacity"));
    }
}

/// The target group: the service's health path and the drain timing.
fn check_target_group(stack: &Deployment, out: &Value) {
    let name = NAME;
    let group = auto_scaling_group(stack, name);
    let target_group_arn = text(&out["target_group_arn"]);
    assert_eq!(group["TargetGroupARNs"], json!([target_group_arn]));
    let target_group = &stack.aws(&[
        "elbv2",
        "describe-target-groups",
        "--target-group-arns",
        target_group_arn,
    ])["TargetGroups"][0];
    assert_eq!(target_group["HealthCheckPath"], json!("/gtg"));
    assert_eq!(target_group["HealthCheckPort"], json!("traffic-port"));
    assert_eq!(target_group["Port"], json!(8000));
    assert_eq!(target_group["HealthCheckIntervalSeconds"], json!(5));
    assert_eq!(target_group["HealthCheckTimeoutSeconds"], json!(3));
    assert_eq!(target_group["HealthyThresholdCount"], json!(2));
    assert_eq!(target_group["UnhealthyThresholdCount"], json!(2));
    assert_eq!(target_group["Matcher"]["HttpCode"], json!("200"));
    let attributes = stack.aws(&[
        "elbv2",
        "describe-target-group-attributes",
        "--target-group-arn",
        target_group_arn,
    ]);
    let delay = attributes["Attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .find(|attribute| attribute["Key"] == json!("deregistration_delay.timeout_seconds"))
        .expect("a deregistration delay");
    assert_eq!(
        text(&delay["Value"]).parse::<f64>().expect("seconds"),
        number(&default_of("deregistration_delay_secs"))
    );
}

/// The launch template: hardened metadata, 1-minute monitoring, the environment file.
fn check_launch_template(stack: &Deployment, ami: &str, out: &Value) {
    let name = NAME;
    let template = latest_launch_template(stack, name);
    assert_eq!(template["ImageId"], json!(ami));
    assert_eq!(template["InstanceType"], json!(default_of("instance_type")));
    assert_eq!(template["MetadataOptions"]["HttpTokens"], json!("required"));
    assert_eq!(
        template["MetadataOptions"]["HttpEndpoint"],
        json!("enabled")
    );
    assert_eq!(
        template["MetadataOptions"]["HttpPutResponseHopLimit"],
        json!(1)
    );
    assert_eq!(template["Monitoring"]["Enabled"], json!(true));
    assert_eq!(
        template["CreditSpecification"]["CpuCredits"],
        json!("unlimited")
    );
    let root = &template["BlockDeviceMappings"][0]["Ebs"];
    assert_eq!(root["Encrypted"], json!(true));
    assert_eq!(root["VolumeType"], json!("gp3"));
    let user_data = base64::engine::general_purpose::STANDARD
        .decode(text(&template["UserData"]))
        .expect("base64 user data");
    let user_data = String::from_utf8(user_data).expect("UTF-8 user data");
    let table = text(&out["table_name"]);
    for line in [
        format!("CANDIDATES_STORE=dynamodb://{table}"),
        format!("AWS_REGION={}", stack.region),
        format!(
            "CANDIDATES_SHUTDOWN_DRAIN_SECS={}",
            number(&default_of("shutdown_drain_secs"))
        ),
        format!(
            "CANDIDATES_REQUEST_TIMEOUT_SECS={}",
            number(&default_of("request_timeout_secs"))
        ),
    ] {
        assert!(
            user_data.lines().any(|l| l == line),
            "user data lacks {line}:\n{user_data}"
        );
    }
    // The CloudWatch agent is told the environment's log group.
    assert!(
        user_data.contains("sed 's|@LOG_GROUP_NAME@|/axum-asg/dev/candidates|'"),
        "{user_data}"
    );
}

/// The group: sizes, zones, load-balancer health.
fn check_group_sizes_and_zones(stack: &Deployment) {
    let group = auto_scaling_group(stack, NAME);
    assert_eq!(number(&group["MinSize"]), number(&default_of("min_size")));
    assert_eq!(number(&group["MaxSize"]), number(&default_of("max_size")));
    assert_eq!(group["HealthCheckType"], json!("ELB"));
    assert_eq!(
        number(&group["HealthCheckGracePeriod"]),
        number(&default_of("health_check_grace_period_secs"))
    );
    let subnets: Vec<&str> = text(&group["VPCZoneIdentifier"]).split(',').collect();
    let described = stack.aws(
        &[
            &["ec2", "describe-subnets", "--subnet-ids"][..],
            &subnets[..],
        ]
        .concat(),
    );
    let zones: BTreeSet<&str> = described["Subnets"]
        .as_array()
        .expect("subnets")
        .iter()
        .map(|subnet| text(&subnet["AvailabilityZone"]))
        .collect();
    assert!(zones.len() >= 2, "subnets in {zones:?}");
    assert_eq!(zones.len() as f64, number(&default_of("az_count")));
}

/// The instance role: the service's DynamoDB actions on its table and index, and SSM.
fn check_instance_role(stack: &Deployment, out: &Value) {
    let name = NAME;
    let table = text(&out["table_name"]);
    let role = format!("{name}-instance");
    let document = stack.role_policy(&role, "candidates-table");
    let table_arn = text(
        &stack.aws(&["dynamodb", "describe-table", "--table-name", table])["Table"]["TableArn"],
    )
    .to_owned();
    let mut granted: Vec<(String, String)> = Vec::new();
    for statement in document["Statement"].as_array().expect("statements") {
        assert_eq!(statement["Effect"], json!("Allow"));
        for action in as_list(&statement["Action"]) {
            for resource in as_list(&statement["Resource"]) {
                granted.push((action.clone(), resource.clone()));
            }
        }
    }
    granted.sort();
    let index_arn = format!("{table_arn}/index/ByName");
    let mut expected: Vec<(String, String)> = candidates::store::IAM_ACTIONS
        .iter()
        .map(|action| {
            let resource = if *action == "dynamodb:Query" {
                &index_arn
            } else {
                &table_arn
            };
            ((*action).to_owned(), resource.clone())
        })
        .collect();
    expected.sort();
    assert_eq!(granted, expected);
    let attached = stack.aws(&["iam", "list-attached-role-policies", "--role-name", &role]);
    assert_eq!(
        attached["AttachedPolicies"][0]["PolicyArn"],
        json!("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    );
}

/// The table: the key and the listing index the store reads, and point-in-time recovery.
fn check_table(stack: &Deployment, out: &Value) {
    let table = text(&out["table_name"]);
    let described = &stack.aws(&["dynamodb", "describe-table", "--table-name", table])["Table"];
    assert_eq!(
        described["KeySchema"],
        json!([{"AttributeName": "CandidateName", "KeyType": "HASH"}])
    );
    assert_eq!(
        described["BillingModeSummary"]["BillingMode"],
        json!("PAY_PER_REQUEST")
    );
    let index = &described["GlobalSecondaryIndexes"][0];
    assert_eq!(index["IndexName"], json!("ByName"));
    assert_eq!(
        index["KeySchema"],
        json!([
            {"AttributeName": "ListShard", "KeyType": "HASH"},
            {"AttributeName": "CandidateName", "KeyType": "RANGE"}
        ])
    );
    assert_eq!(index["Projection"]["ProjectionType"], json!("KEYS_ONLY"));
    let backups = stack.aws(&[
        "dynamodb",
        "describe-continuous-backups",
        "--table-name",
        table,
    ]);
    assert_eq!(
        backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"],
        json!("ENABLED")
    );
}

/// Scale out by hand with the project's script, then plan: Terraform must not touch the
/// capacity the operator (or a policy) chose. The plan, for the checks that read it.
async fn check_a_chosen_capacity_survives_a_plan(stack: &Deployment, ami: &str) -> Value {
    let name = NAME;
    let max = default_of("max_size").as_u64().expect("a whole max_size");
    let scaled = stack
        .script("scripts/scale.sh", &["--env", "dev", &max.to_string()], &[])
        .await;
    scaled.assert_success();
    assert_eq!(
        auto_scaling_group(stack, name)["DesiredCapacity"],
        json!(max)
    );
    let plan = plan_json(stack, "dev", ami, &[]).await;
    let change = resource_change(&plan, "aws_autoscaling_group.this");
    for size in ["desired_capacity", "min_size", "max_size"] {
        assert_eq!(
            change["change"]["before"][size], change["change"]["after"][size],
            "the plan changes {size}: {change}"
        );
    }
    assert_eq!(change["change"]["after"]["desired_capacity"], json!(max));
    assert_eq!(
        auto_scaling_group(stack, name)["DesiredCapacity"],
        json!(max)
    );
    plan
}

/// Orderings nothing in the references implies, as Terraform reads the configuration: the
/// first instances need their role's permissions, the requests-per-target policy a
/// listener routing to its target group.
fn check_declared_orderings(plan: &Value) {
    assert_depends_on(
        plan,
        "aws_autoscaling_group.this",
        &[
            "aws_iam_role_policy.candidates_table",
            "aws_iam_role_policy.service_logs",
            "aws_iam_role_policy_attachment.session_manager",
        ],
    );
    assert_depends_on(
        plan,
        "aws_autoscaling_policy.requests_target",
        &["aws_lb_listener.http", "aws_lb_listener.https"],
    );
}

/// Switching this HTTP stack to HTTPS: the port-80 listener becomes a redirect, without the
/// provider's "target_group_arn cannot be specified" warning.
async fn check_switch_to_https(stack: &Deployment, ami: &str, certificate_arn: &str) {
    let https = stack
        .plan(
            "dev",
            ami,
            &[
                &format!("certificate_arn={certificate_arn}"),
                &format!("domain_name={DOMAIN}"),
            ],
        )
        .await;
    https.assert_success();
    assert!(
        https
            .stdout
            .contains("aws_lb_listener.https[0] will be created"),
        "{https}"
    );
    assert!(
        !https.output().contains("cannot be specified"),
        "the provider warns about the listener: {https}"
    );
}

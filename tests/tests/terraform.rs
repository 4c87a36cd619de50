//! The stack applied for real: the real Terraform and hashicorp/aws provider against moto's
//! server, with the assertions made on what the AWS API then holds, not on the HCL.
//!
//! Each scenario applies once per workspace (moto cannot follow a second apply that changes
//! the launch template: see docs/TESTING.md) and destroys everything it made. The expected
//! values come from the variables' defaults in `infra/variables.tf` and from the values the
//! test sets, so the checks say "AWS holds what Terraform was told".

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use blackbox::hcl_files::variable_default;
use blackbox::terraform::{Deployment, Outcome, assert_nothing_left, latest_launch_template};
use blackbox::{ServiceBuilder, VALIDATE_CHECKS, infra_dir};
use serde_json::{Value, json};

#[path = "terraform/observability.rs"]
mod observability;

const DOMAIN: &str = "candidates.example.test";

/// The default of an infra/ variable, as JSON.
fn default_of(name: &str) -> Value {
    variable_default(&infra_dir(), name)
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

/// The outputs of a workspace, as `terraform output -json` gives them.
async fn outputs(stack: &Deployment, workspace: &str) -> Value {
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
        step_scaling_environment(&stack, &ami, &certificate_arn),
        target_tracking_https_environment(&stack, &ami, &certificate_arn, &certificate),
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

/// The defaults: step scaling on CPU, HTTP. Then scale.sh, then a plan that must leave the
/// capacity alone, and a plan that switches to HTTPS without the provider's warning.
async fn step_scaling_environment(stack: &Deployment, ami: &str, certificate_arn: &str) {
    apply(stack, "dev", ami, &[]).await.assert_success();
    let out = outputs(stack, "dev").await;
    let name = "axum-asg-dev";
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

    // The alarms and the policies they invoke.
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

    // The target group: the service's health path and the drain timing.
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

    // The launch template: hardened metadata, 1-minute monitoring, the environment file.
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

    // The group: sizes, zones, load-balancer health.
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

    // The instance role: the service's DynamoDB actions on its table and index, and SSM.
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
    observability::assert_log_group_and_its_readers(stack, name, "dev");
    observability::assert_plan_refuses_bad_logs_and_graviton(stack, "dev", ami).await;
    let attached = stack.aws(&["iam", "list-attached-role-policies", "--role-name", &role]);
    assert_eq!(
        attached["AttachedPolicies"][0]["PolicyArn"],
        json!("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    );

    // The table: the key and the listing index the store reads.
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

    // Scale out by hand with the project's script, then plan: Terraform must not touch the
    // capacity the operator (or a policy) chose.
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

    // Orderings nothing in the references implies, as Terraform reads the configuration: the
    // first instances need their role's permissions, the requests-per-target policy a
    // listener routing to its target group.
    assert_depends_on(
        &plan,
        "aws_autoscaling_group.this",
        &[
            "aws_iam_role_policy.candidates_table",
            "aws_iam_role_policy.service_logs",
            "aws_iam_role_policy_attachment.session_manager",
        ],
    );
    assert_depends_on(
        &plan,
        "aws_autoscaling_policy.requests_target",
        &["aws_lb_listener.http", "aws_lb_listener.https"],
    );

    // Switching this HTTP stack to HTTPS: the port-80 listener becomes a redirect, without
    // the provider's "target_group_arn cannot be specified" warning.
    let https = stack
        .terraform(
            Some("dev"),
            &[
                "plan",
                "-input=false",
                "-no-color",
                &format!("-var=ami_id={ami}"),
                &format!("-var=region={}", stack.region),
                &format!("-var=certificate_arn={certificate_arn}"),
                &format!("-var=domain_name={DOMAIN}"),
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

/// Target tracking (CPU and requests per target), the weekly schedule example, and HTTPS
/// with an imported certificate and a domain name; then validate.sh over real TLS.
async fn target_tracking_https_environment(
    stack: &Deployment,
    ami: &str,
    certificate_arn: &str,
    certificate: &Certificate,
) {
    // A certificate alone is refused at plan time: nothing could validate the deploy.
    let refused = stack
        .terraform(
            Some("tt"),
            &[
                "plan",
                "-input=false",
                "-no-color",
                &format!("-var=ami_id={ami}"),
                &format!("-var=region={}", stack.region),
                &format!("-var=certificate_arn={certificate_arn}"),
            ],
        )
        .await;
    refused.assert_failure();
    assert!(
        refused
            .output()
            .contains("certificate_arn is set but domain_name is not"),
        "{refused}"
    );

    let requests_per_instance = 1200;
    let example = infra_dir().join("examples/weekly-business.tfvars");
    apply(
        stack,
        "tt",
        ami,
        &[
            "-var=scaling_mode=target_tracking".to_owned(),
            format!("-var=target_requests_per_instance={requests_per_instance}"),
            format!("-var-file={}", example.display()),
            format!("-var=certificate_arn={certificate_arn}"),
            format!("-var=domain_name={DOMAIN}"),
            "-var=log_retention_days=7".to_owned(),
        ],
    )
    .await
    .assert_success();
    observability::assert_retention(stack, "tt", 7);
    let out = outputs(stack, "tt").await;
    let name = "axum-asg-tt";
    assert_eq!(out["url"], json!(format!("https://{DOMAIN}")));

    // Two target-tracking policies, no step policy, no alarm of ours.
    let policies = policies_by_name(stack, name);
    assert_eq!(policies.len(), 2, "{policies:?}");
    let cpu = &policies[&format!("{name}-cpu-target")];
    assert_eq!(cpu["PolicyType"], json!("TargetTrackingScaling"));
    let cpu_config = &cpu["TargetTrackingConfiguration"];
    assert_eq!(
        number(&cpu_config["TargetValue"]),
        number(&default_of("target_cpu_percent"))
    );
    assert_eq!(
        cpu_config["PredefinedMetricSpecification"]["PredefinedMetricType"],
        json!("ASGAverageCPUUtilization")
    );
    let requests = &policies[&format!("{name}-requests-target")]["TargetTrackingConfiguration"];
    assert_eq!(
        number(&requests["TargetValue"]),
        f64::from(requests_per_instance)
    );
    let metric = &requests["PredefinedMetricSpecification"];
    assert_eq!(
        metric["PredefinedMetricType"],
        json!("ALBRequestCountPerTarget")
    );
    let balancer = load_balancer(stack, name);
    let target_group_arn = text(&out["target_group_arn"]);
    let label = format!(
        "{}/{}",
        arn_suffix(text(&balancer["LoadBalancerArn"]), "loadbalancer/"),
        arn_suffix(target_group_arn, ":")
    );
    assert_eq!(metric["ResourceLabel"], json!(label));
    let step_alarms = stack.aws(&[
        "cloudwatch",
        "describe-alarms",
        "--alarm-name-prefix",
        &format!("{name}-cpu-"),
    ]);
    assert_eq!(step_alarms["MetricAlarms"], json!([]));

    // The weekly calendar, as the example file writes it, in its time zone.
    let example_body = blackbox::hcl_files::parse(&example);
    let schedules = example_body
        .attributes()
        .find(|attribute| attribute.key() == "schedules")
        .expect("schedules in the example");
    let schedules = serde_json::to_value(hcl::Value::from(schedules.expr().clone())).expect("JSON");
    let actions = stack.aws(&[
        "autoscaling",
        "describe-scheduled-actions",
        "--auto-scaling-group-name",
        name,
    ]);
    let actions = actions["ScheduledUpdateGroupActions"]
        .as_array()
        .expect("actions");
    let schedules = schedules.as_object().expect("a map of schedules");
    assert_eq!(actions.len(), schedules.len(), "{actions:?}");
    for (action_name, schedule) in schedules {
        let action = actions
            .iter()
            .find(|action| action["ScheduledActionName"] == json!(action_name))
            .unwrap_or_else(|| panic!("no scheduled action {action_name}: {actions:?}"));
        assert_eq!(
            action["Recurrence"], schedule["recurrence"],
            "{action_name}"
        );
        assert_eq!(action["TimeZone"], schedule["time_zone"], "{action_name}");
        assert_eq!(
            number(&action["MinSize"]),
            number(&schedule["min_size"]),
            "{action_name}"
        );
        assert_eq!(
            number(&action["MaxSize"]),
            number(&schedule["max_size"]),
            "{action_name}"
        );
        // desired_capacity left at -1 (unchanged) is not sent at all.
        assert!(
            action.get("DesiredCapacity").is_none_or(Value::is_null),
            "{action_name}: {action}"
        );
    }

    // HTTPS on 443 with the imported certificate; port 80 redirects there.
    let listeners = stack.aws(&[
        "elbv2",
        "describe-listeners",
        "--load-balancer-arn",
        text(&balancer["LoadBalancerArn"]),
    ]);
    let listeners = listeners["Listeners"].as_array().expect("listeners");
    assert_eq!(listeners.len(), 2, "{listeners:?}");
    let https = listeners
        .iter()
        .find(|listener| listener["Port"] == json!(443))
        .expect("an HTTPS listener");
    assert_eq!(https["Protocol"], json!("HTTPS"));
    assert_eq!(
        https["Certificates"][0]["CertificateArn"],
        json!(certificate_arn)
    );
    assert_eq!(https["SslPolicy"], default_of("ssl_policy"));
    assert_eq!(https["DefaultActions"][0]["Type"], json!("forward"));
    assert_eq!(
        https["DefaultActions"][0]["TargetGroupArn"],
        json!(target_group_arn)
    );
    let http = listeners
        .iter()
        .find(|listener| listener["Port"] == json!(80))
        .expect("an HTTP listener");
    let redirect = &http["DefaultActions"][0];
    assert_eq!(redirect["Type"], json!("redirect"));
    assert_eq!(redirect["RedirectConfig"]["Protocol"], json!("HTTPS"));
    assert_eq!(redirect["RedirectConfig"]["Port"], json!("443"));
    assert_eq!(redirect["RedirectConfig"]["StatusCode"], json!("HTTP_301"));
    assert!(
        redirect.get("TargetGroupArn").is_none_or(Value::is_null),
        "{redirect}"
    );

    // validate.sh reaches the new load balancer under the certificate's name before any DNS
    // record exists, and verifies TLS against that name. The load balancer's address is the
    // one stand-in: a TLS front on 127.0.0.1 for a local service.
    let service = ServiceBuilder::memory().start().await;
    let front = TlsFront::start(certificate, &service.base_url());
    let validated = stack
        .script(
            "scripts/validate.sh",
            &["--env", "tt", "--wait", "60"],
            &[
                ("CANDIDATES_LB_ADDRESS", &front.address),
                ("CURL_CA_BUNDLE", &certificate.pem_path()),
            ],
        )
        .await;
    validated.assert_success();
    for check in VALIDATE_CHECKS {
        assert!(
            validated.stdout.contains(&format!("✓ {check} passed")),
            "{validated}"
        );
    }
    // Verification stays on: a certificate for another name fails every check.
    let stranger = Certificate::new("stranger.example.test");
    let wrong_front = TlsFront::start(&stranger, &service.base_url());
    let refused = stack
        .script(
            "scripts/validate.sh",
            &["--env", "tt", "--wait", "10"],
            &[
                ("CANDIDATES_LB_ADDRESS", &wrong_front.address),
                ("CURL_CA_BUNDLE", &stranger.pem_path()),
            ],
        )
        .await;
    refused.assert_failure();
    assert!(
        refused.output().contains("does not answer 200"),
        "{refused}"
    );
}

// ---------------------------------------------------------------------------------------
// What the API holds
// ---------------------------------------------------------------------------------------

fn auto_scaling_group(stack: &Deployment, name: &str) -> Value {
    stack.aws(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--auto-scaling-group-names",
        name,
    ])["AutoScalingGroups"][0]
        .clone()
}

fn policies_by_name(stack: &Deployment, group: &str) -> std::collections::BTreeMap<String, Value> {
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
fn step_adjustments(policy: &Value) -> Vec<Value> {
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

fn load_balancer(stack: &Deployment, name: &str) -> Value {
    stack.aws(&["elbv2", "describe-load-balancers", "--names", name])["LoadBalancers"][0].clone()
}

/// The part of an ARN after `marker` (what Terraform calls arn_suffix).
fn arn_suffix<'a>(arn: &'a str, marker: &str) -> &'a str {
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

fn as_list(value: &Value) -> Vec<String> {
    match value {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many.iter().map(|item| text(item).to_owned()).collect(),
        other => panic!("neither a string nor a list: {other}"),
    }
}

async fn plan_json(stack: &Deployment, workspace: &str, ami: &str, vars: &[String]) -> Value {
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
fn assert_depends_on(plan: &Value, address: &str, needed: &[&str]) {
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

fn resource_change<'a>(plan: &'a Value, address: &str) -> &'a Value {
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

/// A self-signed certificate for one DNS name, made with openssl.
struct Certificate {
    dir: tempfile::TempDir,
}

impl Certificate {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let status = std::process::Command::new(blackbox::tool("openssl"))
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                &format!("subjectAltName=DNS:{name}"),
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl could not make a certificate");
        Self { dir }
    }

    fn pem_path(&self) -> String {
        self.dir.path().join("cert.pem").display().to_string()
    }

    fn key_path(&self) -> String {
        self.dir.path().join("key.pem").display().to_string()
    }

    /// Imports the certificate into ACM (moto's); its ARN.
    fn import(&self, stack: &Deployment) -> String {
        let imported = stack.aws(&[
            "acm",
            "import-certificate",
            "--certificate",
            &format!("fileb://{}", self.pem_path()),
            "--private-key",
            &format!("fileb://{}", self.key_path()),
        ]);
        text(&imported["CertificateArn"]).to_owned()
    }
}

/// socat terminating TLS with a certificate on 127.0.0.1 and forwarding to a local service:
/// what the load balancer's HTTPS listener does in front of the instances.
struct TlsFront {
    address: String,
    child: std::process::Child,
}

impl TlsFront {
    fn start(certificate: &Certificate, backend: &str) -> Self {
        let port = blackbox::free_port();
        let backend = backend.trim_start_matches("http://");
        let child = std::process::Command::new(blackbox::tool("socat"))
            .args([
                &format!(
                    "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                    certificate.pem_path(),
                    certificate.key_path()
                ),
                &format!("TCP:{backend}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        let address = format!("127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "socat does not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { address, child }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The `tt` workspace: target tracking on CPU and requests per target, the weekly schedule
//! example and HTTPS, each part of what AWS then holds checked by its own function.

use std::path::Path;

use blackbox::aws_query::{arn_suffix, load_balancer, number, outputs, policies_by_name, text};
use blackbox::terraform::Deployment;
use blackbox::tls::{Certificate, TlsFront};
use blackbox::{ServiceBuilder, VALIDATE_CHECKS, infra_dir};
use serde_json::{Value, json};

use super::{DOMAIN, apply, default_of, observability};

const NAME: &str = "axum-asg-tt";

/// The requests-per-target goal the scenario sets (not the default, so the check is real).
const REQUESTS_PER_INSTANCE: u32 = 1200;

/// Target tracking (CPU and requests per target), the weekly schedule example, and HTTPS
/// with an imported certificate and a domain name; then validate.sh over real TLS.
pub(super) async fn environment(
    stack: &Deployment,
    ami: &str,
    certificate_arn: &str,
    certificate: &Certificate,
) {
    check_a_certificate_needs_a_domain(stack, ami, certificate_arn).await;
    let example = infra_dir().join("examples/weekly-business.tfvars");
    apply(
        stack,
        "tt",
        ami,
        &[
            "-var=scaling_mode=target_tracking".to_owned(),
            format!("-var=target_requests_per_instance={REQUESTS_PER_INSTANCE}"),
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
    assert_eq!(out["url"], json!(format!("https://{DOMAIN}")));
    check_target_tracking_policies(stack, &out);
    check_weekly_schedules(stack, &example);
    check_https_listeners(stack, &out, certificate_arn);
    check_validate_over_tls(stack, certificate).await;
}

/// A certificate alone is refused at plan time: nothing could validate the deploy.
async fn check_a_certificate_needs_a_domain(stack: &Deployment, ami: &str, certificate_arn: &str) {
    let refused = stack
        .plan("tt", ami, &[&format!("certificate_arn={certificate_arn}")])
        .await;
    refused.assert_failure();
    assert!(
        refused
            .output()
            .contains("certificate_arn is set but domain_name is not"),
        "{refused}"
    );
}

/// Two target-tracking policies, no step policy, no alarm of ours.
fn check_target_tracking_policies(stack: &Deployment, out: &Value) {
    let name = NAME;
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
        f64::from(REQUESTS_PER_INSTANCE)
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
}

/// The weekly calendar, as the example file writes it, in its time zone.
fn check_weekly_schedules(stack: &Deployment, example: &Path) {
    let name = NAME;
    let example_body = blackbox::hcl_files::parse(example);
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
}

/// HTTPS on 443 with the imported certificate; port 80 redirects there.
fn check_https_listeners(stack: &Deployment, out: &Value, certificate_arn: &str) {
    let balancer = load_balancer(stack, NAME);
    let target_group_arn = text(&out["target_group_arn"]);
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
}

/// validate.sh reaches the new load balancer under the certificate's name before any DNS
/// record exists, and verifies TLS against that name. The load balancer's address is the
/// one stand-in: a TLS front on 127.0.0.1 for a local service.
async fn check_validate_over_tls(stack: &Deployment, certificate: &Certificate) {
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

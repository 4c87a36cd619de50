//! What the user reads of a deployed stack, run as the operator (`operator.rs`) on the
//! stack applied to moto: `scripts/logs.sh` reading moto's CloudWatch Logs, and what
//! `scripts/validate.sh` says when instances are unhealthy or run an older launch-template
//! version. The events and the faults are set up as the administrator; `env` carries the
//! operator's credentials to the scripts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blackbox::terraform::{Deployment, Outcome};
use serde_json::{Value, json};

/// The events `logs.sh` must page through: more than one page of its 1,000.
const EVENTS: usize = 1_200;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

/// `scripts/logs.sh` against moto's CloudWatch Logs, with events put as the agent would:
/// paging past one page, --since, --instance, --filter, --follow.
pub fn check_logs_sh(stack: &Deployment, environment: &str, env: &[(&str, &str)]) {
    let group = format!("/axum-asg/{environment}/candidates");
    let now = now_ms();
    let lines: Vec<Value> = (0..EVENTS)
        .map(|n| {
            json!({"timestamp": now - 60_000 + n as u64 * 10,
                   "message": format!(r#"{{"level":"INFO","message":"request","route":"/gtg","status":200,"n":{n}}}"#)})
        })
        .collect();
    put_events(stack, &group, "i-0aaaaaaaaaaaaaaa1", &lines);
    put_events(
        stack,
        &group,
        "i-0aaaaaaaaaaaaaaa2",
        &[
            json!({"timestamp": now - 2 * 3_600_000, "message": "two hours ago"}),
            json!({"timestamp": now - 30_000, "message": r#"{"level":"ERROR","message":"request","route":"/candidates","status":503}"#}),
        ],
    );

    let shown = run_logs(stack, &["--env", environment], env);
    let printed: Vec<&str> = shown.lines().collect();
    assert_eq!(
        printed.len(),
        EVENTS + 1,
        "the last 10 minutes, every page:\n{shown}"
    );
    let numbers: Vec<u64> = printed
        .iter()
        .filter(|line| line.contains(" i-0aaaaaaaaaaaaaaa1 "))
        .map(|line| {
            let message = line.splitn(3, ' ').nth(2).expect("TIME STREAM MESSAGE");
            serde_json::from_str::<Value>(message).expect("the JSON line")["n"]
                .as_u64()
                .expect("n")
        })
        .collect();
    assert_eq!(
        numbers,
        (0..EVENTS as u64).collect::<Vec<_>>(),
        "oldest first, none lost"
    );
    assert!(!shown.contains("two hours ago"), "--since 10m by default");

    // (moto answers stream by stream where CloudWatch Logs interleaves the streams by time.)
    let longer = run_logs(stack, &["--env", environment, "--since", "3h"], env);
    assert_eq!(longer.lines().count(), EVENTS + 2, "{longer}");
    assert!(
        longer
            .lines()
            .any(|line| line.ends_with(" i-0aaaaaaaaaaaaaaa2 two hours ago")),
        "{longer}"
    );

    let one = run_logs(
        stack,
        &[
            "--env",
            environment,
            "--instance",
            "i-0aaaaaaaaaaaaaaa2",
            "--since",
            "1h",
        ],
        env,
    );
    assert_eq!(one.lines().count(), 1, "{one}");
    assert!(one.contains(r#""status":503"#), "{one}");

    // --follow prints what arrives, once, and keeps going until stopped.
    let mut child = Command::new("bash")
        .arg(stack.root().join("scripts/logs.sh"))
        .args(["--env", environment, "--follow", "--since", "1s"])
        .current_dir(stack.root())
        .envs(stack.env())
        .envs(env.iter().copied())
        .env("CANDIDATES_LOGS_POLL_SECS", "0.5")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start logs.sh --follow");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    put_events(
        stack,
        &group,
        "i-0aaaaaaaaaaaaaaa2",
        &[json!({"timestamp": now_ms(), "message": "arrived while following"})],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut followed = Vec::new();
    while !followed
        .iter()
        .any(|line: &String| line.ends_with("arrived while following"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => followed.push(line),
            Err(_) => break,
        }
    }
    // A few more looks: the line must not come twice.
    std::thread::sleep(Duration::from_millis(1_600));
    followed.extend(received.try_iter());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        followed
            .iter()
            .filter(|line| line.ends_with("arrived while following"))
            .count(),
        1,
        "printed once: {followed:#?}"
    );
}

/// validate.sh when the load balancer finds no healthy target: each unhealthy instance's
/// console output (moto's) and last service log lines (put here), then the failure. moto
/// marks the targets of stopped instances unused (Target.InvalidState).
pub async fn check_unhealthy_report(
    stack: &Deployment,
    name: &str,
    environment: &str,
    env: &[(&str, &str)],
) {
    let group = &stack.aws(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--auto-scaling-group-names",
        name,
    ])["AutoScalingGroups"][0];
    let instances: Vec<String> = group["Instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|instance| text(&instance["InstanceId"]).to_owned())
        .collect();
    assert!(!instances.is_empty(), "{group}");
    let log_group = format!("/axum-asg/{environment}/candidates");
    for instance in &instances {
        put_events(
            stack,
            &log_group,
            instance,
            &[
                json!({"timestamp": now_ms(), "message": format!("CANDIDATES_STORE: cannot reach the table from {instance}")}),
            ],
        );
    }
    let mut stop = vec!["ec2", "stop-instances", "--instance-ids"];
    stop.extend(instances.iter().map(String::as_str));
    stack.aws(&stop);

    let validated = validate_fails(stack, environment, env).await;
    let said = validated.output();
    for instance in &instances {
        for expected in [
            format!("--- {instance} "),
            "load balancer: unused (Target.InvalidState: Target is in the stopped state)"
                .to_owned(),
            format!(
                "aws ec2 get-console-output --region {} --instance-id {instance} --latest",
                stack.region
            ),
            format!("CANDIDATES_STORE: cannot reach the table from {instance}"),
        ] {
            assert!(said.contains(&expected), "{expected}\n{validated}");
        }
    }
    // moto's console output, its last lines.
    assert!(
        said.contains("  | Kernel command line: root=/dev/sda1 ro 4"),
        "{validated}"
    );
    assert!(
        said.contains("ERROR: no healthy target behind"),
        "{validated}"
    );
    assert!(!validated.stdout.contains('✓'), "{validated}");
}

/// validate.sh when instances in service run an older launch-template version than the
/// group's (a new version the group launches, no refresh yet): it names them and fails.
pub async fn check_stale_version(
    stack: &Deployment,
    name: &str,
    environment: &str,
    env: &[(&str, &str)],
) {
    let template = stack.aws(&[
        "ec2",
        "create-launch-template-version",
        "--launch-template-name",
        name,
        "--source-version",
        "1",
        "--launch-template-data",
        "{}",
    ]);
    assert_eq!(template["LaunchTemplateVersion"]["VersionNumber"], json!(2));
    stack.aws(&[
        "autoscaling",
        "update-auto-scaling-group",
        "--auto-scaling-group-name",
        name,
        "--launch-template",
        &format!("LaunchTemplateName={name},Version=2"),
    ]);
    let validated = validate_fails(stack, environment, env).await;
    let said = validated.output();
    assert!(
        said.contains(&format!(
            "instance(s) in service still run an older launch-template version than {name}'s (ID:VERSION): i-"
        )),
        "{validated}"
    );
    assert!(said.contains(":1"), "version 1 named: {validated}");
    assert!(!validated.stdout.contains('✓'), "{validated}");
}

/// validate.sh --env with a short wait, which must fail.
async fn validate_fails(stack: &Deployment, environment: &str, env: &[(&str, &str)]) -> Outcome {
    let validated = stack
        .script(
            "scripts/validate.sh",
            &["--env", environment, "--wait", "5"],
            env,
        )
        .await;
    validated.assert_failure();
    validated
}

fn put_events(stack: &Deployment, group: &str, stream: &str, events: &[Value]) {
    let streams = stack.aws(&[
        "logs",
        "describe-log-streams",
        "--log-group-name",
        group,
        "--log-stream-name-prefix",
        stream,
    ]);
    if streams["logStreams"].as_array().is_none_or(Vec::is_empty) {
        stack.aws(&[
            "logs",
            "create-log-stream",
            "--log-group-name",
            group,
            "--log-stream-name",
            stream,
        ]);
    }
    let file = stack
        .root()
        .join(format!("events-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_string(events).expect("JSON")).expect("write the events");
    stack.aws(&[
        "logs",
        "put-log-events",
        "--log-group-name",
        group,
        "--log-stream-name",
        stream,
        "--log-events",
        &format!("file://{}", file.display()),
    ]);
}

/// The copy's scripts/logs.sh: it reads the outputs of the copy's infra/, where the stack's
/// state is.
fn run_logs(stack: &Deployment, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new("bash")
        .arg(stack.root().join("scripts/logs.sh"))
        .args(args)
        .current_dir(stack.root())
        .envs(stack.env())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run logs.sh");
    assert!(
        output.status.success(),
        "logs.sh {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

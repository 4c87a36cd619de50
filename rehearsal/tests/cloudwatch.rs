//! `scripts/rehearse.sh --load-from-cloudwatch`: a deployed environment's real traffic read
//! from CloudWatch — moto's, on 127.0.0.1, holding eight days of metrics this test puts —
//! into the load and the overlay, through the real AWS CLI. moto answers GetMetricData in one
//! page, so `tests/fixtures/aws-paging` stands in front of the CLI and hands the same answers
//! out in pages with a NextToken, as CloudWatch does with large answers.

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{repo_root, script};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

const DAYS: i64 = 8;
const MINUTES: i64 = DAYS * 24 * 60;
/// Six queries of twelve hours each per request: 16 requests for eight days.
const MAX_DATAPOINTS: i64 = 6 * 12 * 60;
/// About a third of what a request returns: three pages or more each.
const PAGE_DATAPOINTS: usize = 350;

/// A tool the suite installs (scripts/test.sh puts them on PATH, in the tools folder's bin).
fn tool(name: &str) -> PathBuf {
    let tools = std::env::var_os("CANDIDATES_TOOLS_DIR")
        .map_or_else(|| repo_root().join(".tools"), PathBuf::from)
        .join("bin");
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([tools])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: run ./scripts/test.sh"))
}

/// A moto server of this test's own (the queries below are heavy for its Python).
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The environment that points the AWS CLI at this server.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
        ]
    }

    fn aws(&self, args: &[&str]) -> Value {
        let output = Command::new(tool("aws"))
            .args(args)
            .args(["--output", "json"])
            .envs(self.env())
            .output()
            .expect("run aws");
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }

    /// The load balancer ./apply.sh ENV names `axum-asg-ENV`; its ARN suffix.
    fn create_load_balancer(&self, name: &str) -> String {
        let vpc = self.aws(&["ec2", "create-vpc", "--cidr-block", "10.0.0.0/16"]);
        let vpc = vpc["Vpc"]["VpcId"].as_str().expect("vpc id").to_owned();
        let subnets: Vec<String> = [("10.0.1.0/24", "us-east-1a"), ("10.0.2.0/24", "us-east-1b")]
            .iter()
            .map(|(cidr, zone)| {
                let subnet = self.aws(&[
                    "ec2",
                    "create-subnet",
                    "--vpc-id",
                    &vpc,
                    "--cidr-block",
                    cidr,
                    "--availability-zone",
                    zone,
                ]);
                subnet["Subnet"]["SubnetId"]
                    .as_str()
                    .expect("subnet id")
                    .to_owned()
            })
            .collect();
        let created = self.aws(&[
            "elbv2",
            "create-load-balancer",
            "--name",
            name,
            "--subnets",
            &subnets[0],
            &subnets[1],
        ]);
        let arn = created["LoadBalancers"][0]["LoadBalancerArn"]
            .as_str()
            .expect("arn");
        arn.split_once(":loadbalancer/")
            .expect("a load balancer ARN")
            .1
            .to_owned()
    }

    /// Puts one metric's datapoints (moto takes more per request than CloudWatch's 1,000).
    fn put(&self, namespace: &str, name: &str, dimension: (&str, &str), points: &[(i64, f64)]) {
        let data: Vec<Value> = points
            .iter()
            .map(|(minute, value)| {
                json!({
                    "MetricName": name,
                    "Dimensions": [{"Name": dimension.0, "Value": dimension.1}],
                    "Timestamp": at(*minute).to_string(),
                    "Value": value,
                })
            })
            .collect();
        let file = tempfile::NamedTempFile::new().expect("request file");
        std::fs::write(
            file.path(),
            json!({"Namespace": namespace, "MetricData": data}).to_string(),
        )
        .expect("write the request");
        let input = format!("file://{}", file.path().display());
        self.aws(&["cloudwatch", "put-metric-data", "--cli-input-json", &input]);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first minute of the eight days: far enough back that all of it is published, recent
/// enough that CloudWatch would still keep it at one minute.
fn origin() -> Timestamp {
    static ORIGIN: std::sync::OnceLock<Timestamp> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(|| {
        let now = Timestamp::now().as_second();
        Timestamp::from_second(now - now % 60 - (DAYS * 24 * 60 + 30) * 60).expect("a time")
    })
}

fn at(minute: i64) -> Timestamp {
    origin() + SignedDuration::from_mins(minute)
}

/// "2026-11-24T09:30Z", as the load CSV writes its times.
fn minute_text(minute: i64) -> String {
    at(minute).strftime("%Y-%m-%dT%H:%MZ").to_string()
}

/// Requests in a minute: a daily shape, none at all in one minute of eleven (the load
/// balancer publishes no datapoint then).
fn requests(minute: i64) -> Option<f64> {
    (minute % 11 != 5).then(|| (60 * (10 + (minute % 1440) / 60) + minute % 7) as f64)
}

/// The overlay's metrics, in one minute of seven (the others have no datapoint).
fn sampled(minute: i64) -> bool {
    minute % 7 == 0
}

fn series(value: impl Fn(i64) -> Option<f64>) -> Vec<(i64, f64)> {
    (0..MINUTES)
        .filter_map(|m| value(m).map(|v| (m, v)))
        .collect()
}

fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).expect("a CSV");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn number(text: &str) -> Option<f64> {
    (!text.is_empty()).then(|| text.parse().expect("a number"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

#[test]
fn a_week_of_real_traffic_is_the_load_and_the_real_group_the_overlay() {
    let moto = Moto::start();
    let balancer = moto.create_load_balancer("axum-asg-replaytest");
    let group = ("AutoScalingGroupName", "axum-asg-replaytest");
    let lb = ("LoadBalancer", balancer.as_str());
    moto.put("AWS/ApplicationELB", "RequestCount", lb, &series(requests));
    let ok = |m: i64| {
        requests(m)
            .filter(|_| sampled(m))
            .map(|r| r - (m % 3) as f64)
    };
    moto.put(
        "AWS/ApplicationELB",
        "HTTPCode_Target_2XX_Count",
        lb,
        &series(ok),
    );
    let latency = |m: i64| sampled(m).then(|| 0.004 + (m % 5) as f64 / 1000.0);
    moto.put(
        "AWS/ApplicationELB",
        "TargetResponseTime",
        lb,
        &series(latency),
    );
    let desired = |m: i64| sampled(m).then(|| (2 + (m / 60) % 3) as f64);
    moto.put(
        "AWS/AutoScaling",
        "GroupDesiredCapacity",
        group,
        &series(desired),
    );
    let in_service = |m: i64| desired(m).map(|d| d - (m % 2) as f64);
    moto.put(
        "AWS/AutoScaling",
        "GroupInServiceInstances",
        group,
        &series(in_service),
    );
    let cpu = |m: i64| sampled(m).then(|| 20.0 + (m % 50) as f64 / 2.0);
    moto.put("AWS/EC2", "CPUUtilization", group, &series(cpu));

    let stage = tempfile::tempdir().expect("stage");
    let bin = stage.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    std::os::unix::fs::symlink(
        repo_root().join("rehearsal/tests/fixtures/aws-paging"),
        bin.join("aws"),
    )
    .expect("link the stand-in");
    let pages = stage.path().join("pages");
    std::fs::create_dir(&pages).expect("pages");
    let log = stage.path().join("pages.log");
    let out = stage.path().join("out");
    let mut env = moto.env();
    env.extend([
        (
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        ("REAL_AWS", tool("aws").display().to_string()),
        ("PAGES_DIR", pages.display().to_string()),
        ("PAGES_LOG", log.display().to_string()),
        ("PAGE_DATAPOINTS", PAGE_DATAPOINTS.to_string()),
        (
            "REHEARSAL_CLOUDWATCH_MAX_DATAPOINTS",
            MAX_DATAPOINTS.to_string(),
        ),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (from, to) = (minute_text(0), minute_text(MINUTES));
    let out_arg = out.display().to_string();
    let args = [
        "--load-from-cloudwatch",
        "replaytest",
        "--from",
        &from,
        "--to",
        &to,
        "--instance-rps",
        "150",
        "--out",
        &out_arg,
    ];
    let (code, stdout, stderr) = script(&args, &env);
    assert!(code == 0 || code == 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("SLO verdict"), "{stdout}");

    // The load: every minute of the window, a minute without a datapoint at zero.
    let load = csv_rows(&out.join("cloudwatch-load.csv"));
    assert_eq!(load.len(), MINUTES as usize);
    for (m, row) in (0..MINUTES).zip(&load) {
        assert_eq!(row["time"], minute_text(m));
        let expected = requests(m).unwrap_or(0.0);
        let read = number(&row["rps"]).expect("rps");
        assert!(
            close(read, expected / 60.0),
            "minute {m}: {read} rps, put {expected} requests"
        );
    }
    // ... and what the rehearsal replayed.
    let timeline = csv_rows(&out.join("timeline.csv"));
    assert_eq!(timeline.len(), MINUTES as usize);
    for (m, row) in (0..MINUTES).zip(&timeline) {
        let offered = number(&row["offered_rps"]).expect("offered");
        let expected = requests(m).unwrap_or(0.0) / 60.0;
        assert!(
            (offered - expected).abs() < 0.001,
            "minute {m}: {offered} vs {expected}"
        );
    }
    // The real run: the group's capacity and CPU where CloudWatch has them, blank elsewhere.
    let real = csv_rows(&out.join("cloudwatch-real.csv"));
    assert_eq!(real.len(), MINUTES as usize);
    for (m, row) in (0..MINUTES).zip(&real) {
        assert_eq!(number(&row["elapsed_s"]), Some(((m + 1) * 60) as f64));
        for (column, put) in [
            ("desired", desired(m)),
            ("in_service", in_service(m)),
            ("cpu_percent", cpu(m)),
            ("mean_ms", latency(m).map(|s| s * 1000.0)),
        ] {
            let read = number(&row[column]);
            assert!(
                read.zip(put)
                    .map_or(read.is_none() && put.is_none(), |(r, p)| close(r, p)),
                "minute {m} {column}: read {read:?}, put {put:?}"
            );
        }
        let ok_read = number(&row["ok_2xx"]).expect("ok_2xx");
        assert!(
            close(ok_read, ok(m).unwrap_or(0.0)),
            "minute {m}: ok {ok_read}"
        );
    }
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary.json"),
    )
    .expect("JSON");
    // The prediction compared with the real group, minute by minute.
    assert_eq!(summary["compare"]["windows"], MINUTES);
    let compared = summary["compare"]["minutes"].as_array().expect("minutes");
    assert_eq!(compared.len(), MINUTES as usize);
    for (m, minute) in (0..MINUTES).zip(compared) {
        for (quantity, put) in [
            ("desired", desired(m)),
            ("in_service", in_service(m)),
            ("cpu_percent", cpu(m)),
        ] {
            let real = minute[quantity]["real"].as_f64();
            assert!(
                real.zip(put)
                    .map_or(real.is_none() && put.is_none(), |(r, p)| close(r, p)),
                "minute {m} {quantity}: compared with {real:?}, put {put:?}"
            );
        }
    }
    assert!(out.join("compare.csv").is_file());
    // Real traffic is judged against its own peak.
    let peak = (0..MINUTES).filter_map(requests).fold(0.0, f64::max) / 60.0;
    let goal = summary["slo"]["goals"]["rps"]
        .as_f64()
        .expect("a throughput goal");
    assert!(
        (goal - peak).abs() < 0.01,
        "the traffic's peak, {peak} rps: {goal}"
    );
    assert!(
        summary["start"]
            .as_str()
            .is_some_and(|s| s.starts_with(&at(0).strftime("%Y-%m-%dT%H:%M").to_string())),
        "{}",
        summary["start"]
    );
    assert!(out.join("chart.png").is_file());

    // The window went out in twelve-hour requests, each read to its last page.
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{}: {e}\n{stderr}", log.display()));
    let calls: Vec<Vec<&str>> = calls.lines().map(|l| l.split(' ').collect()).collect();
    let requests_made: Vec<&Vec<&str>> = calls.iter().filter(|c| c[2] == "-").collect();
    assert_eq!(requests_made.len(), (MINUTES / 720) as usize, "{calls:?}");
    assert_eq!(requests_made[0][0], from);
    assert_eq!(requests_made.last().expect("a request")[1], to);
    assert!(
        calls.len() >= 3 * requests_made.len(),
        "each twelve hours holds over 1,100 datapoints, pages of {PAGE_DATAPOINTS}: {calls:?}"
    );
    assert!(
        stderr.contains(&format!(
            "in {} GetMetricData request(s), {} page(s)",
            requests_made.len(),
            calls.len()
        )),
        "{stderr}"
    );

    // An environment that is not deployed, and a window without traffic, stop with exit 3.
    let quiet_from = minute_text(-600);
    let quiet_to = minute_text(-60);
    for (extra, message) in [
        (
            vec!["--load-from-cloudwatch", "replaytest-absent"],
            "no load balancer named axum-asg-replaytest-absent in us-east-1",
        ),
        (
            vec![
                "--load-from-cloudwatch",
                "replaytest",
                "--from",
                &quiet_from,
                "--to",
                &quiet_to,
            ],
            "no RequestCount datapoint for load balancer",
        ),
    ] {
        let mut args = extra.clone();
        args.extend(["--instance-rps", "150", "--out", &out_arg]);
        let (code, stdout, stderr) = script(&args, &env);
        assert_eq!(code, 3, "{extra:?}\n{stdout}\n{stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
    }
}

#[test]
fn cloudwatch_windows_that_cannot_be_read_are_bad_usage() {
    let files = common::Files::new();
    let csv = files.write("load.csv", "minute,rps\n0,1\n");
    let csv = csv.to_str().expect("utf-8");
    for (args, message) in [
        (
            vec!["--load-from-cloudwatch", "prod", "--rate", "5"],
            "give --load-from-cloudwatch or --rate, not both",
        ),
        (
            vec!["--load-from-cloudwatch", "prod", "--load-csv", csv],
            "not both",
        ),
        (
            vec!["--load-from-cloudwatch", "prod", "--compare", csv],
            "give it or --compare, not both",
        ),
        (
            vec!["--load-from-cloudwatch", "prod", "--since", "3x"],
            "--since '3x' is not a span",
        ),
        (
            vec![
                "--load-from-cloudwatch",
                "prod",
                "--since",
                "2d",
                "--from",
                "2026-11-30",
            ],
            "give --since or --from, not both",
        ),
        (
            vec!["--load-from-cloudwatch", "prod", "--from", "2020-01-01"],
            "CloudWatch keeps metrics for 455 days",
        ),
        (
            vec!["--load-from-cloudwatch", "prod", "--from", "yesterday"],
            "--from 'yesterday' is not a date and time",
        ),
        (
            vec!["--load-from-cloudwatch", "Prod_1"],
            "is not an environment name",
        ),
        (
            vec!["--rate", "5", "--since", "7d"],
            "choose the window of --load-from-cloudwatch",
        ),
    ] {
        let out = tempfile::tempdir().expect("out");
        let mut all = args.clone();
        let path = out.path().display().to_string();
        all.extend(["--instance-rps", "150", "--out", &path]);
        // No AWS at all: nothing may be read before the usage is checked.
        let (code, stdout, stderr) = script(&all, &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")]);
        assert_eq!(code, 2, "{args:?}\n{stdout}\n{stderr}");
        assert!(
            stderr.contains("ERROR: ") && stderr.contains(message),
            "{args:?}: {stderr}"
        );
        assert!(!out.path().join("timeline.csv").exists());
    }
}

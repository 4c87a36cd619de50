//! `scripts/loadtest.sh` for real, at low rates and for a few seconds, against a local
//! service (all traffic to 127.0.0.1), and its chart on a recorded run.

use std::path::Path;
use std::process::Command;

use blackbox::{Moto, ServiceBuilder, free_port, repo_root, run_script, unique};

/// Runs a short load test; returns (exit code, stdout, stderr, results folder).
fn loadtest(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String, tempfile::TempDir) {
    loadtest_into(tempfile::tempdir().expect("results folder"), args, env)
}

fn loadtest_into(
    out: tempfile::TempDir,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String, tempfile::TempDir) {
    let mut all: Vec<&str> = args.to_vec();
    let out_path = out.path().to_str().expect("utf-8 path").to_owned();
    all.extend(["--out", &out_path]);
    let (code, stdout, stderr) = run_script("scripts/loadtest.sh", &all, env);
    (code, stdout, stderr, out)
}

fn samples(out: &Path) -> Vec<Vec<String>> {
    let csv = out.join("samples.csv");
    assert!(csv.is_file(), "no samples.csv in {}", out.display());
    samples_in(&csv)
}

/// The rows written so far (none while the file does not exist yet).
fn samples_in(csv: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(csv).unwrap_or_default();
    text.lines()
        .skip(1)
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn loadtest_meets_a_reachable_slo_and_exits_zero() {
    let svc = ServiceBuilder::memory().start().await;
    let url = svc.base_url();
    let (code, stdout, stderr, out) = loadtest(
        &[
            "--url",
            &url,
            "--profile",
            "gtg",
            "--rate",
            "20",
            "--duration",
            "3",
            "--window",
            "1",
            "--concurrency",
            "4",
            // Far from the 20 rps offered and /gtg's milliseconds: a machine busy with
            // other work may stall a window, and the SLO's verdict, not speed, is the point.
            "--slo-rps",
            "5",
            "--slo-mean-ms",
            "2000",
            "--slo-success",
            "99.99",
        ],
        &[],
    );
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("SLO verdict: PASS"), "{stdout}");
    let rows = samples(out.path());
    assert_eq!(rows.len(), 3, "one row per one-second window");
    for row in &rows {
        assert_eq!(row[1], "20", "target rate");
        assert_eq!(row[4], "0", "no failed request: {row:?}");
        assert!(row[5].parse::<f64>().expect("rps") > 5.0, "{row:?}");
    }
    assert!(out.path().join("summary.txt").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_profile_sends_its_requests() {
    // Short chains: this test is about the traffic, not about hashing speed.
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_COMPUTATION_ITERATIONS", 100)
        .start()
        .await;
    let url = svc.base_url();
    for profile in ["read", "write", "mixed", "computation"] {
        let (code, stdout, stderr, _) = loadtest(
            &[
                "--url",
                &url,
                "--profile",
                profile,
                "--rate",
                "10",
                "--duration",
                "2",
                "--window",
                "2",
                "--concurrency",
                "2",
                "--slo-rps",
                "5",
            ],
            &[],
        );
        assert_eq!(code, 0, "{profile}:\n{stdout}\n{stderr}");
    }
    // The write and mixed profiles created candidates; the read profile seeded its own.
    let metrics = svc.get("/metrics").await.text().await.expect("metrics");
    for expected in [
        r#"http_requests_total{method="POST",route="/candidate/{name}",status="200"}"#,
        r#"http_requests_total{method="GET",route="/candidate/{name}",status="200"}"#,
        r#"http_requests_total{method="GET",route="/computation",status="200"}"#,
    ] {
        assert!(metrics.contains(expected), "missing {expected}");
    }
    assert!(
        !metrics.contains(r#"route="/candidate/{name}",status="404""#),
        "reads found their names"
    );
}

#[test]
fn loadtest_fails_when_nothing_listens() {
    // oha itself exits 0 here and calls every refused connection a "request".
    let url = format!("http://127.0.0.1:{}", free_port());
    let (code, stdout, _, _) = loadtest(
        &[
            "--url",
            &url,
            "--rate",
            "20",
            "--duration",
            "2",
            "--concurrency",
            "2",
            "--slo-rps",
            "1",
        ],
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("success         0.000 %"), "{stdout}");
    assert!(stdout.contains("SLO verdict: FAIL"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_that_are_not_2xx_count_as_failures() {
    // The process answers, quickly, but every write is a 503: the store is unreachable.
    let svc = ServiceBuilder::dynamodb_at(&format!("http://127.0.0.1:{}", free_port()), "absent")
        .env("CANDIDATES_REQUEST_TIMEOUT_SECS", 1)
        .start()
        .await;
    let (code, stdout, _, out) = loadtest(
        &[
            "--url",
            &svc.base_url(),
            "--profile",
            "write",
            "--rate",
            "5",
            "--duration",
            "2",
            "--concurrency",
            "5",
            "--slo-rps",
            "1",
            "--slo-success",
            "50",
        ],
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("✗ SLO success"), "{stdout}");
    let rows = samples(out.path());
    assert_eq!(rows[0][3], "0", "no 2xx at all: {rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_impossible_goal_fails() {
    let svc = ServiceBuilder::memory().start().await;
    let (code, stdout, _, _) = loadtest(
        &[
            "--url",
            &svc.base_url(),
            "--rate",
            "10",
            "--duration",
            "1",
            "--concurrency",
            "2",
            "--slo-rps",
            "5",
            "--slo-mean-ms",
            "0.0001",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        stdout.contains("✗ SLO mean latency < 0.0001 ms missed"),
        "{stdout}"
    );
}

#[test]
fn bad_usage_is_refused() {
    for args in [
        &["--url", "http://127.0.0.1:1", "--profile", "nope"][..],
        &["--url", "http://127.0.0.1:1", "--rate", "fast"],
        &["--url", "http://127.0.0.1:1", "--duration", "99999"],
        &["--url", "http://127.0.0.1:1", "--ramp", "10,x"],
        &["--profile", "gtg"],
        &[
            "--url",
            "http://127.0.0.1:1",
            "--load-csv",
            "tests/fixtures/loadtest-recorded.csv",
            "--rate",
            "5",
        ],
        &[
            "--url",
            "http://127.0.0.1:1",
            "--load-csv",
            "no-such-load.csv",
        ],
    ] {
        let (code, _, stderr, _) = loadtest(args, &[]);
        assert_ne!(code, 0, "{args:?}");
        assert!(stderr.contains("ERROR:"), "{args:?}: {stderr}");
    }
}

/// A real Auto Scaling group (moto's) sampled every window while the capacity and the
/// group's CPU metric change during the run.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployed_run_samples_capacity_and_cpu_and_draws_the_chart() {
    let svc = ServiceBuilder::memory().start().await;
    let moto = Moto::shared();
    let group = unique("loadtest-asg");
    moto.create_auto_scaling_group(&group);
    moto.put_group_cpu(&group, "42.5");

    let url = svc.base_url();
    let script_env = moto.cli_env();
    let out = tempfile::tempdir().expect("results folder");
    let csv = out.path().join("samples.csv");
    let run = std::thread::spawn({
        let (url, group) = (url.clone(), group.clone());
        move || {
            let env: Vec<(&str, &str)> = script_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            loadtest_into(
                out,
                &[
                    "--url",
                    &url,
                    "--asg",
                    &group,
                    "--rate",
                    "10",
                    "--duration",
                    "8",
                    "--window",
                    "2",
                    "--concurrency",
                    "2",
                    "--slo-rps",
                    "5",
                ],
                &env,
            )
        }
    });
    // Scale out in the middle of the run, as a policy would: once the first window has
    // been sampled at the old capacity.
    blackbox::eventually(
        "the first window in samples.csv",
        std::time::Duration::from_secs(30),
        || async { (!samples_in(&csv).is_empty()).then_some(()) },
    )
    .await;
    moto.aws(&[
        "autoscaling",
        "set-desired-capacity",
        "--auto-scaling-group-name",
        &group,
        "--desired-capacity",
        "3",
    ]);
    let (code, stdout, stderr, out) = run.join().expect("load test thread");
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");

    let rows = samples(out.path());
    let desired: Vec<&str> = rows.iter().map(|r| r[9].as_str()).collect();
    assert_eq!(desired.first(), Some(&"2"), "{rows:?}");
    assert_eq!(desired.last(), Some(&"3"), "{rows:?}");
    assert!(
        rows.iter().all(|r| r[11] == "42.5"),
        "CPU sampled each window: {rows:?}"
    );
    let chart = std::fs::read(out.path().join("chart.png")).expect("chart.png");
    assert!(chart.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
}

fn chart(csv: &Path, png: &Path) -> std::process::Output {
    let python = blackbox::tools_dir().join("venvs/plot/bin/python");
    assert!(
        python.is_file(),
        "matplotlib is not installed: run ./scripts/test.sh"
    );
    Command::new(python)
        .arg(repo_root().join("scripts/python/loadreport.py"))
        .args(["chart"])
        .arg(csv)
        .arg(png)
        .output()
        .expect("run the chart")
}

/// `tests/fixtures/loadtest-recorded.csv` was recorded by loadtest.sh on this project's
/// development machine: a mixed-profile ramp (50, 150, 300, 100 rps) against a local
/// service while a moto Auto Scaling group was scaled 2 -> 3 -> 4 and the machine's CPU
/// was published as the group's CPUUtilization.
#[test]
fn the_chart_draws_a_recorded_run() {
    let dir = tempfile::tempdir().expect("dir");
    let png = dir.path().join("chart.png");
    let output = chart(
        &repo_root().join("tests/fixtures/loadtest-recorded.csv"),
        &png,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&png).expect("png");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    // Three panels with lines, legends and axes: far more than an empty canvas.
    assert!(
        bytes.len() > 30_000,
        "suspiciously small chart: {} bytes",
        bytes.len()
    );
}

#[test]
fn the_chart_refuses_a_csv_without_the_expected_columns() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "time,value\n1,2\n").expect("csv");
    let output = chart(&csv, &dir.path().join("chart.png"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("lacks columns"));
    assert!(!dir.path().join("chart.png").exists());
}

/// The service's CPU as an instance's CPUUtilization: its CPU time over the wall time of
/// every core of this machine (the machine stands for the instance), in percent.
struct CpuMeter {
    pid: u32,
    cores: f64,
    ticks: f64,
    last: (f64, std::time::Instant),
}

impl CpuMeter {
    fn new(pid: u32) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let mut meter = Self {
            pid,
            cores,
            ticks: 100.0,
            last: (0.0, std::time::Instant::now()),
        };
        meter.last = (meter.cpu_secs(), std::time::Instant::now());
        meter
    }

    fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let fields: Vec<f64> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // After the command: state is not numeric, so utime and stime are the 11th and 12th
        // numbers (fields 14 and 15 of proc(5)).
        fields
            .get(10)
            .zip(fields.get(11))
            .map_or(0.0, |(u, s)| (u + s) / self.ticks)
    }

    /// Percent of all cores used since the last reading.
    fn percent(&mut self) -> f64 {
        let (now_cpu, now) = (self.cpu_secs(), std::time::Instant::now());
        let (cpu, at) = std::mem::replace(&mut self.last, (now_cpu, now));
        let wall = now.duration_since(at).as_secs_f64().max(1e-3);
        (100.0 * (now_cpu - cpu) / (wall * self.cores)).clamp(0.0, 100.0)
    }
}

/// A real load test against the local service, whose CPU is published as a one-instance
/// group's CPUUtilization while loadtest.sh samples the group, then a rehearsal of the same
/// load: `--compare` turns the two into errors minute by minute, and `--calibrate-from`
/// fits the per-instance throughput from the real run, which brings the predicted CPU
/// closer to the real one than a throughput ten times off.
#[tokio::test(flavor = "multi_thread")]
async fn a_rehearsal_of_a_real_run_reports_its_error_and_calibrates_from_it() {
    // Requests of a few milliseconds of CPU each, whatever the build: enough CPU to measure,
    // far from saturating the machine at these rates.
    let svc = ServiceBuilder::memory()
        .env("CANDIDATES_COMPUTATION_ITERATIONS", 2000)
        .start()
        .await;
    let moto = Moto::shared();
    let group = unique("compare-asg");
    moto.create_auto_scaling_group(&group);
    moto.aws(&[
        "autoscaling",
        "update-auto-scaling-group",
        "--auto-scaling-group-name",
        &group,
        "--min-size",
        "1",
        "--desired-capacity",
        "1",
    ]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = std::thread::spawn({
        let (stop, group, pid) = (stop.clone(), group.clone(), svc.pid());
        move || {
            let moto = Moto::shared();
            let mut meter = CpuMeter::new(pid);
            // Bounded: the load test below lasts 80 s.
            for _ in 0..200 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1000));
                moto.put_group_cpu(&group, &format!("{:.2}", meter.percent()));
            }
        }
    });
    let env = moto.cli_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, stdout, stderr, out) = loadtest(
        &[
            "--url",
            &svc.base_url(),
            "--asg",
            &group,
            "--profile",
            "computation",
            "--ramp",
            "10,30",
            "--duration",
            "40",
            "--window",
            "8",
            "--concurrency",
            "8",
            "--slo-rps",
            "1",
        ],
        &env,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.join().expect("CPU publisher");
    assert!(
        code == 0 || code == 1,
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let samples = out.path().join("samples.csv");
    let samples_arg = samples.display().to_string();
    let rehearse = |workload: &[&str]| {
        let dir = tempfile::tempdir().expect("results");
        let mut args: Vec<String> = [
            "-var",
            "min_size=1",
            "-var",
            "max_size=1",
            "--profile",
            "computation",
            "--load-csv",
            &samples_arg,
            "--compare",
            &samples_arg,
            "--start",
            "2026-12-07T10:00Z",
            "--out",
            dir.path().to_str().expect("utf-8"),
            "--infra",
            blackbox::infra_dir().to_str().expect("utf-8"),
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(workload.iter().map(|a| (*a).to_owned()));
        let options = rehearsal::cli::parse(&args).expect("arguments");
        let report = rehearsal::run::rehearse(&options, &[]).expect("rehearsal");
        let summary = report.summary.expect("a summary");
        let compare_csv =
            std::fs::read_to_string(dir.path().join("compare.csv")).expect("compare.csv");
        (summary, compare_csv)
    };
    let (fitted, compare_csv) = rehearse(&["--calibrate-from", &samples_arg]);
    let fit = fitted.calibration_fit.clone().expect("a fit");
    assert!(fit.windows >= 3 && fit.instance_rps > 0.0, "{fit:?}");
    let comparison = fitted.compare.clone().expect("a comparison");
    // 80 s of load: two minutes compared, one row each in compare.csv.
    assert_eq!(comparison.minutes.len(), 2, "{comparison:?}");
    assert_eq!(compare_csv.lines().count(), 1 + 2, "{compare_csv}");
    let mae = comparison.mean_absolute_error;
    assert_eq!(mae.desired, Some(0.0), "one instance, predicted and real");
    assert_eq!(mae.in_service, Some(0.0));
    // The mean absolute error is the mean of compare.csv's absolute errors.
    let header: Vec<&str> = compare_csv
        .lines()
        .next()
        .expect("header")
        .split(',')
        .collect();
    let column = header
        .iter()
        .position(|h| *h == "cpu_percent_error")
        .expect("cpu error column");
    let errors: Vec<f64> = compare_csv
        .lines()
        .skip(1)
        .filter_map(|line| {
            line.split(',')
                .nth(column)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .collect();
    let mean = errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64;
    let cpu_mae = mae.cpu_percent.expect("CPU compared");
    assert!((mean - cpu_mae).abs() < 0.01, "{mean} vs {cpu_mae}");
    // A throughput ten times the fitted one predicts a tenth of the CPU: a larger error.
    let wrong = format!("{}", fit.instance_rps * 10.0);
    let (miscalibrated, _) = rehearse(&["--instance-rps", &wrong]);
    let wrong_mae = miscalibrated
        .compare
        .expect("a comparison")
        .mean_absolute_error
        .cpu_percent
        .expect("CPU compared");
    assert!(
        cpu_mae < wrong_mae,
        "fitted {cpu_mae} vs ten times off {wrong_mae}"
    );
    eprintln!(
        "local run: fitted {:.1} rps per instance on {} windows (RMS {:.1} points); per-minute MAE: CPU {cpu_mae:.2} points (ten times off: {wrong_mae:.2}), p99 {:?} ms",
        fit.instance_rps, fit.windows, fit.rms_cpu_error, mae.p99_ms
    );
}

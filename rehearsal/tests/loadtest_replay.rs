//! A rehearsed load run for real: `scripts/rehearse.sh --print-loadtest` prints the
//! `scripts/loadtest.sh` command that offers the same load, and loadtest.sh's `--load-csv`
//! reads the rehearsal's load CSVs with the same meaning (scripts/python/loadplan.py).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Files, repo_root, script};
use rehearsal::error::Error;
use rehearsal::load;

/// The per-minute rates loadtest.sh would play from a CSV, or its ERROR.
fn played(csv: &Path) -> Result<Vec<f64>, String> {
    let output = Command::new("python3")
        .arg(repo_root().join("scripts/python/loadplan.py"))
        .arg("minutes")
        .arg(csv)
        .output()
        .expect("run loadplan.py");
    if !output.status.success() {
        assert_eq!(output.status.code(), Some(2), "bad input is bad usage");
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.parse().expect("a rate"))
        .collect())
}

#[test]
fn loadtest_plays_every_csv_the_rehearsal_reads_minute_for_minute() {
    let files = Files::new();
    let cases = [
        ("minutes.csv", "minute,rps\n0,100\n2,300\n3,50\n"),
        ("clock.csv", "time,rps\n23:58,10\n23:59,20\n00:00,30\n"),
        (
            "dates.csv",
            "time,rps\n2026-12-07T06:30,10\n2026-12-07T06:32,20.5\n",
        ),
        (
            "instants.csv",
            "time,rps\n2026-12-07T06:30Z,1.5\n2026-12-07T08:31:30+01:00,2.25\n",
        ),
        (
            "timeline.csv",
            "minute,time,offered_rps,desired\n0,x,5,2\n1,x,7.25,2\n3,x,1,3\n",
        ),
        (
            "unlimited.csv",
            "elapsed_s,target_rps,requests\n30,50,1500\n60,0,3000\n95,20,700\n",
        ),
    ];
    let mut paths: Vec<PathBuf> = cases
        .iter()
        .map(|(name, text)| files.write(name, text))
        .collect();
    paths.push(repo_root().join("tests/fixtures/loadtest-recorded.csv"));
    for path in &paths {
        let rehearsed = load::from_csv(path).expect("the rehearsal reads it").rps;
        let played = played(path).expect("loadtest.sh plays it");
        assert_eq!(rehearsed.len(), played.len(), "{}", path.display());
        for (minute, (r, p)) in rehearsed.iter().zip(&played).enumerate() {
            assert!(
                (r - p).abs() < 1e-5,
                "{} minute {minute}: rehearsed {r}, played {p}",
                path.display()
            );
        }
    }
    // What one refuses, the other refuses, for the same reason (the rehearsal: a usage
    // error, exit 2; loadplan.py: exit 2).
    for (text, reason) in [
        ("when,how_many\n0,1\n", "expected the columns minute,rps"),
        ("minute,rps\n0,-5\n", "must be a number >= 0"),
        ("minute,rps\n0,lots\n", "is not a number"),
        ("minute,rps\n", "no data rows"),
        ("minute,rps\n2,1\n1,1\n", "must increase"),
        ("time,rps\nnoon,1\n", "neither HH:MM"),
        (
            "time,rps\n2026-12-07T06:30Z,1\n2026-12-07T06:31,1\n",
            "mixes times",
        ),
    ] {
        let path = files.write("bad.csv", text);
        let rehearsal = load::from_csv(&path).expect_err(text);
        let loadtest = played(&path).expect_err(text);
        assert!(
            matches!(rehearsal, Error::Usage(_)) && rehearsal.to_string().contains(reason),
            "{text}: {rehearsal}"
        );
        assert!(loadtest.contains(reason), "{text}: {loadtest}");
    }
}

/// The service, on a port of its own, with an in-memory store.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start() -> Service {
        let binary = std::env::var_os("CANDIDATES_BIN").map_or_else(
            || repo_root().join("target/debug/candidates"),
            PathBuf::from,
        );
        assert!(
            binary.is_file(),
            "{} does not exist: cargo build -p candidates (./scripts/test.sh does)",
            binary.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--store", "sqlite::memory:"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the service");
        let service = Service { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !service.answers() {
            assert!(Instant::now() < deadline, "the service did not answer /gtg");
            std::thread::sleep(Duration::from_millis(100));
        }
        service
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let request = "GET /gtg HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// Two minutes of the mixed profile at a few requests per second: the rehearsal prints the
/// command, and that command, pointed at a local service instead of the environment, sends
/// each minute exactly the requests the rehearsal modelled (counts, not timings: a slow
/// machine stretches a window, it does not change what the window sends).
#[test]
fn the_printed_loadtest_offers_the_rehearsed_load_minute_by_minute() {
    let files = Files::new();
    let csv = files.write("load.csv", "minute,rps\n0,1.5\n1,4.25\n");
    let csv_arg = csv.display().to_string();
    let out = tempfile::tempdir().expect("out");
    let out_arg = out.path().display().to_string();
    let args = [
        "perf1",
        "--profile",
        "mixed",
        "--load-csv",
        &csv_arg,
        "--window",
        "20",
        "--concurrency",
        "4",
        "--slo-rps",
        "2",
        "--instance-rps",
        "150",
        "--print-loadtest",
        "--out",
        &out_arg,
    ];
    let (code, stdout, stderr) = script(&args, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let command = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  scripts/loadtest.sh "))
        .unwrap_or_else(|| panic!("no loadtest.sh command printed:\n{stdout}"));
    assert_eq!(
        command,
        format!(
            "--env perf1 --profile mixed --load-csv {csv_arg} --window 20 --concurrency 4 \
             --slo-rps 2 --slo-mean-ms 400 --slo-success 99.99"
        )
    );
    let modelled: Vec<f64> = rows(&out.path().join("timeline.csv"))
        .iter()
        .map(|r| r[2].parse().expect("offered_rps"))
        .collect();
    assert_eq!(modelled, vec![1.5, 4.25]);

    // The same command against a service here: only the target changes.
    let service = Service::start();
    let url = format!("http://127.0.0.1:{}", service.port);
    let command = command.replacen("--env perf1", &format!("--url {url}"), 1);
    assert!(!command.contains("--env"), "{command}");
    let run = tempfile::tempdir().expect("run");
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "scripts/loadtest.sh {command} --out {}",
            run.path().display()
        ))
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .expect("run loadtest.sh");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr),
    );
    assert_eq!(status.status.code(), Some(0), "{stdout}\n{stderr}");
    let samples = rows(&run.path().join("samples.csv"));
    assert_eq!(
        samples.len(),
        6,
        "three 20-second windows a minute: {samples:?}"
    );
    for (minute, windows) in samples.chunks(3).enumerate() {
        let sent: f64 = windows
            .iter()
            .map(|w| w[2].parse::<f64>().expect("requests"))
            .sum();
        let ok: f64 = windows
            .iter()
            .map(|w| w[3].parse::<f64>().expect("2xx"))
            .sum();
        assert_eq!(
            sent,
            modelled[minute] * 60.0,
            "minute {minute}: {windows:?}"
        );
        assert_eq!(ok, sent, "every request answered 2xx: {windows:?}");
        for w in windows {
            let target: f64 = w[1].parse().expect("target_rps");
            let requests: f64 = w[2].parse().expect("requests");
            assert!((target * 20.0 - requests).abs() < 1e-3, "{w:?}");
        }
    }
}

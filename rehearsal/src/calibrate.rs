//! Per-request CPU cost of each load profile, measured on the real release binary.
//!
//! The service runs on 127.0.0.1, pinned with `taskset` to one core (oha, the load, on
//! another when there is one), with an in-memory SQLite store. For each profile oha sends
//! as many requests as the core takes, in `SAMPLES` samples of a few seconds after a short
//! warm-up, and the server's CPU time (user + system, all threads) comes from
//! `/proc/<pid>/stat`. The profile's cost is its CPU time / 2xx answers over all samples, in
//! microseconds of one core of this machine, reported with the spread of the samples' own
//! costs, and the machine's load average before and after is recorded (another process on
//! the core inflates the cost). The profiles' requests and the mixed split come from
//! scripts/lib/load-profiles.env, as loadtest.sh sends them: mixed is the read share times
//! the read cost plus the rest times the write cost. Results are cached per binary (its
//! SHA-256), so a rebuilt binary is measured again.
//! What this is not: an EC2 vCPU (see docs/REHEARSAL.md, "Calibration", for the factor and
//! how to measure on an instance), nor DynamoDB's SDK cost (the store here is SQLite).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::profiles::Profiles;

/// Samples per profile: their spread says how steady the machine was.
pub const SAMPLES: usize = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileCost {
    /// CPU time over 2xx answers, all samples together.
    pub cpu_us_per_request: f64,
    /// Each sample's cost.
    pub samples: Vec<f64>,
    /// (max - min) / median of the samples, in percent.
    pub spread_percent: f64,
    pub requests: u64,
    pub cpu_secs: f64,
    pub rps: f64,
}

/// The machine's load average (1, 5, 15 minutes), from /proc/loadavg.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub binary: String,
    pub binary_sha256: String,
    pub measured_at: String,
    pub machine: String,
    pub cpus: usize,
    pub load_before: Option<LoadAverage>,
    pub load_after: Option<LoadAverage>,
    /// Seconds of load per sample.
    pub seconds_per_sample: f64,
    pub server_pinned_to_one_core: bool,
    pub profiles: BTreeMap<String, ProfileCost>,
}

/// A calibration, and whether it was measured now (else read from the cache).
#[derive(Debug, Clone)]
pub struct Calibrated {
    pub calibration: Calibration,
    pub measured: bool,
}

/// The median of `values` (not empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// (max - min) / median, in percent.
pub fn spread_percent(values: &[f64]) -> f64 {
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    let mid = median(values);
    if mid > 0.0 {
        100.0 * (max - min) / mid
    } else {
        0.0
    }
}

fn load_average() -> Option<LoadAverage> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some(LoadAverage {
        one: fields.next()??,
        five: fields.next()??,
        fifteen: fields.next()??,
    })
}

/// The SHA-256 of a file, hex.
pub fn sha256_of(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::failed(format!("cannot read {}: {e}", path.display())))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Where the calibration of a binary with this hash is cached.
pub fn cache_file(cache_dir: &Path, sha256: &str) -> PathBuf {
    cache_dir.join(format!("calibration-{sha256}.json"))
}

/// The cached calibration of `binary`, or a fresh measurement (then cached).
pub fn load_or_measure(
    binary: &Path,
    cache_dir: &Path,
    seconds: f64,
    force: bool,
) -> Result<Calibrated, Error> {
    let sha = sha256_of(binary)?;
    let file = cache_file(cache_dir, &sha);
    if !force
        && let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(cached) = serde_json::from_str::<Calibration>(&text)
    {
        return Ok(Calibrated {
            calibration: cached,
            measured: false,
        });
    }
    let calibration = measure(binary, &sha, seconds)?;
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| Error::failed(format!("cannot create {}: {e}", cache_dir.display())))?;
    let text =
        serde_json::to_string_pretty(&calibration).map_err(|e| Error::failed(e.to_string()))?;
    std::fs::write(&file, text)
        .map_err(|e| Error::failed(format!("cannot write {}: {e}", file.display())))?;
    Ok(Calibrated {
        calibration,
        measured: true,
    })
}

/// Stops the server however the measurement ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn has(command: &str) -> bool {
    Command::new(command)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process, all its threads.
fn cpu_secs(pid: u32, ticks: f64) -> Result<f64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| Error::failed(format!("cannot read /proc/{pid}/stat: {e}")))?;
    // Fields after the command name, which is in parentheses and may hold spaces: the
    // state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (tick(11), tick(12)) {
        (Some(user), Some(system)) => Ok((user + system) / ticks),
        _ => Err(Error::failed(format!(
            "unexpected /proc/{pid}/stat: {stat}"
        ))),
    }
}

fn http(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

fn free_port() -> Result<u16, Error> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::failed(format!("no free port on 127.0.0.1: {e}")))
}

/// oha's arguments for one single profile, as loadtest.sh sends it; a path with a class is
/// a regular expression for `--rand-regex-url`, which reads the whole URL as one, so the
/// host's dots are quoted as one-character classes.
fn oha_target(profile: &str, port: u16) -> Result<Vec<String>, Error> {
    let request = Profiles::shipped().requests.get(profile).ok_or_else(|| {
        Error::failed(format!("profile {profile} sends no single kind of request"))
    })?;
    let mut args = Vec::new();
    if request.method != "GET" {
        args.extend(["-m".to_owned(), request.method.clone()]);
    }
    if request.path.contains('[') {
        args.push("--rand-regex-url".to_owned());
        args.push(format!("http://127[.]0[.]0[.]1:{port}{}", request.path));
    } else {
        args.push(format!("http://127.0.0.1:{port}{}", request.path));
    }
    Ok(args)
}

/// Runs oha for `seconds`; returns the 2xx answers.
fn oha(profile: &str, port: u16, seconds: f64, pin: bool) -> Result<u64, Error> {
    let connections = if profile == "computation" { "2" } else { "16" };
    let mut command = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "1", "oha"]);
        c
    } else {
        Command::new("oha")
    };
    command.args([
        "--no-tui",
        "--output-format",
        "json",
        "-c",
        connections,
        "-t",
        "10s",
        "--wait-ongoing-requests-after-deadline",
    ]);
    command
        .arg("-z")
        .arg(format!("{}ms", (seconds * 1000.0) as u64));
    command.args(oha_target(profile, port)?);
    let output = command.stdin(Stdio::null()).output().map_err(|e| {
        Error::failed(format!(
            "cannot run oha (install it: cargo install oha): {e}"
        ))
    })?;
    if !output.status.success() {
        return Err(Error::failed(format!(
            "oha failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| Error::failed(format!("oha's JSON: {e}")))?;
    Ok(report
        .get("statusCodeDistribution")
        .and_then(|d| d.as_object())
        .map_or(0, |d| {
            d.iter()
                .filter(|(code, _)| code.starts_with('2'))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        }))
}

fn machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn measure(binary: &Path, sha: &str, seconds: f64) -> Result<Calibration, Error> {
    if !has("oha") {
        return Err(Error::failed(
            "calibration needs oha (cargo install oha), or give --instance-rps",
        ));
    }
    let pin = cpus() >= 2 && has("taskset");
    let port = free_port()?;
    let mut command = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(binary);
        c
    } else {
        Command::new(binary)
    };
    command
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--store",
            "sqlite::memory:",
        ])
        .env("CANDIDATES_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Server(
        command
            .spawn()
            .map_err(|e| Error::failed(format!("cannot start {}: {e}", binary.display())))?,
    );
    let pid = server.0.id();
    let deadline = Instant::now() + Duration::from_secs(15);
    while http(port, "GET", "/gtg") != Some(200) {
        if Instant::now() > deadline {
            return Err(Error::failed(format!(
                "{} did not answer /gtg on 127.0.0.1:{port} within 15 s",
                binary.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let profiles = Profiles::shipped();
    for i in 0..profiles.read_seed_count {
        let name = format!("{}{i:03}", profiles.read_seed_prefix);
        if http(port, "POST", &format!("/candidate/{name}")) != Some(200) {
            return Err(Error::failed(
                "cannot seed the candidates the read profile reads",
            ));
        }
    }
    let ticks = clock_ticks();
    let load_before = load_average();
    let mut costs = BTreeMap::new();
    for profile in profiles.requests.keys() {
        oha(profile, port, seconds.min(1.0), pin)?; // warm-up, not measured
        let (mut requests, mut used, mut elapsed, mut samples) = (0, 0.0, 0.0, Vec::new());
        for _ in 0..SAMPLES {
            let before = cpu_secs(pid, ticks)?;
            let started = Instant::now();
            let answered = oha(profile, port, seconds, pin)?;
            elapsed += started.elapsed().as_secs_f64();
            let cpu = cpu_secs(pid, ticks)? - before;
            if answered == 0 {
                return Err(Error::failed(format!(
                    "calibration of {profile}: no 2xx answer"
                )));
            }
            samples.push(cpu * 1e6 / answered as f64);
            requests += answered;
            used += cpu;
        }
        costs.insert(
            profile.clone(),
            ProfileCost {
                cpu_us_per_request: used * 1e6 / requests as f64,
                spread_percent: spread_percent(&samples),
                samples,
                requests,
                cpu_secs: used,
                rps: requests as f64 / elapsed,
            },
        );
    }
    let (read, write) = (&costs["read"], &costs["write"]);
    let share = profiles.mixed_read_share;
    let blend = |r: f64, w: f64| share * r + (1.0 - share) * w;
    let samples: Vec<f64> = read
        .samples
        .iter()
        .zip(&write.samples)
        .map(|(r, w)| blend(*r, *w))
        .collect();
    let mixed = ProfileCost {
        cpu_us_per_request: blend(read.cpu_us_per_request, write.cpu_us_per_request),
        spread_percent: spread_percent(&samples),
        samples,
        requests: read.requests + write.requests,
        cpu_secs: read.cpu_secs + write.cpu_secs,
        rps: 1.0 / (share / read.rps + (1.0 - share) / write.rps),
    };
    costs.insert("mixed".to_owned(), mixed);
    drop(server);
    Ok(Calibration {
        binary: binary.display().to_string(),
        binary_sha256: sha.to_owned(),
        measured_at: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map_or_else(|_| String::new(), |t| t.to_string()),
        machine: machine(),
        cpus: cpus(),
        load_before,
        load_after: load_average(),
        seconds_per_sample: seconds,
        server_pinned_to_one_core: pin,
        profiles: costs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_keyed_by_the_binary_hash() {
        let dir = tempfile::tempdir().expect("dir");
        let binary = dir.path().join("bin");
        std::fs::write(&binary, b"one").expect("write");
        let first = sha256_of(&binary).expect("hash");
        std::fs::write(&binary, b"two").expect("write");
        let second = sha256_of(&binary).expect("hash");
        assert_ne!(first, second);
        assert_eq!(
            first,
            "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
        );
        assert_ne!(
            cache_file(dir.path(), &first),
            cache_file(dir.path(), &second)
        );
    }

    #[test]
    fn a_cached_calibration_is_used_without_measuring() {
        let dir = tempfile::tempdir().expect("dir");
        let binary = dir.path().join("bin");
        std::fs::write(&binary, b"not a server").expect("write");
        let sha = sha256_of(&binary).expect("hash");
        let cached = Calibration {
            binary: "bin".into(),
            binary_sha256: sha.clone(),
            measured_at: "then".into(),
            machine: "here".into(),
            cpus: 2,
            load_before: None,
            load_after: None,
            seconds_per_sample: 2.0,
            server_pinned_to_one_core: true,
            profiles: BTreeMap::new(),
        };
        std::fs::write(
            cache_file(dir.path(), &sha),
            serde_json::to_string(&cached).expect("json"),
        )
        .expect("write");
        let got = load_or_measure(&binary, dir.path(), 3.0, false).expect("cached");
        assert!(!got.measured);
        assert_eq!(got.calibration, cached);
    }

    #[test]
    fn a_profile_costs_its_samples_median_with_their_spread() {
        // (samples, median, spread %)
        for (samples, mid, spread) in [
            (vec![10.0, 12.0, 11.0], 11.0, 200.0 / 11.0),
            (vec![5.0, 5.0, 5.0], 5.0, 0.0),
            (vec![1.0, 3.0], 2.0, 100.0),
        ] {
            assert_eq!(median(&samples), mid, "{samples:?}");
            assert!(
                (spread_percent(&samples) - spread).abs() < 1e-9,
                "{samples:?}"
            );
        }
    }

    #[test]
    fn oha_sends_what_loadtest_sends() {
        let read = oha_target("read", 8000).expect("read");
        assert_eq!(read[0], "--rand-regex-url");
        assert!(
            read[1].starts_with("http://127[.]0[.]0[.]1:8000/candidate/"),
            "{read:?}"
        );
        let write = oha_target("write", 8000).expect("write");
        assert_eq!(&write[..2], ["-m", "POST"]);
        assert_eq!(
            oha_target("gtg", 8000).expect("gtg"),
            ["http://127.0.0.1:8000/gtg"]
        );
        assert!(
            oha_target("mixed", 8000).is_err(),
            "mixed is two kinds side by side"
        );
    }

    #[test]
    fn proc_stat_is_read_for_this_process() {
        let secs = cpu_secs(std::process::id(), clock_ticks()).expect("own stat");
        assert!(secs >= 0.0);
    }
}

//! The real `candidates` binary, started on a free port of 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

use crate::Moto;

/// The binary under test: `$CANDIDATES_BIN`, or the workspace's debug build (which
/// `./scripts/test.sh` builds before running the tests).
pub fn binary() -> PathBuf {
    let path = std::env::var_os("CANDIDATES_BIN").map_or_else(
        || crate::repo_root().join("target/debug/candidates"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} does not exist: build it with `cargo build -p candidates` (./scripts/test.sh does)",
        path.display()
    );
    path
}

/// The request timeout of [`ServiceBuilder::patient`]: six times the default, and room
/// for a drain of up to 28 s under the stop rule (drain + timeout + 1 s < 90 s).
pub const PATIENT_REQUEST_TIMEOUT_SECS: u64 = 60;

/// How long a start may take before the test gives up: a debug build starting on a
/// machine busy with other work is slow, and a start that fails says so at once.
const START_LIMIT: Duration = Duration::from_secs(60);

/// How to start the service: environment and arguments, reusable for a restart.
#[derive(Debug, Clone)]
pub struct ServiceBuilder {
    env: BTreeMap<String, String>,
    max_open_files: Option<u32>,
}

impl ServiceBuilder {
    /// A service whose process environment holds nothing but what the test sets: no
    /// AWS profile, no proxy, and no request to the real instance metadata service.
    fn base(store: String) -> Self {
        let mut env = BTreeMap::new();
        for (key, value) in [
            ("CANDIDATES_LISTEN", "127.0.0.1:0"),
            ("CANDIDATES_LOG_FORMAT", "json"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            ),
        ] {
            env.insert(key.to_owned(), value.to_owned());
        }
        env.insert("CANDIDATES_STORE".to_owned(), store);
        Self {
            env,
            max_open_files: None,
        }
    }

    pub fn sqlite(path: &Path) -> Self {
        Self::base(format!("sqlite://{}", path.display()))
    }

    pub fn memory() -> Self {
        Self::base("sqlite::memory:".to_owned())
    }

    pub fn dynamodb(moto: &Moto, table: &str) -> Self {
        Self::dynamodb_at(&moto.endpoint, table)
    }

    /// DynamoDB at any endpoint, reachable or not.
    pub fn dynamodb_at(endpoint: &str, table: &str) -> Self {
        Self::base(format!("dynamodb://{table}"))
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", crate::moto::REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
    }

    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.insert(key.to_owned(), value.to_string());
        self
    }

    /// A long request timeout ([`PATIENT_REQUEST_TIMEOUT_SECS`]), for a test whose point
    /// is not how fast the store answers: many requests at once against moto or SQLite, on
    /// a machine busy with other work (a shared CI runner), may take seconds where they
    /// normally take milliseconds, and must not then be answered 503 for running out of
    /// time. The DynamoDB client's attempts lengthen with it (a third of the store's time
    /// each). Tests of the timeout itself set their own.
    pub fn patient(self) -> Self {
        self.env(
            "CANDIDATES_REQUEST_TIMEOUT_SECS",
            PATIENT_REQUEST_TIMEOUT_SECS,
        )
    }

    pub fn without_env(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Runs the service with at most `limit` open file descriptors (with util-linux's
    /// `prlimit`, which then runs the binary itself: the process id stays the same).
    pub fn max_open_files(mut self, limit: u32) -> Self {
        self.max_open_files = Some(limit);
        self
    }

    fn command(&self) -> Command {
        let mut command = match self.max_open_files {
            None => Command::new(binary()),
            Some(limit) => {
                let mut prlimit = Command::new("prlimit");
                prlimit
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(binary());
                prlimit
            }
        };
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Starts the service and waits for its "listening" log line.
    pub async fn start(&self) -> Service {
        let mut child = self.command().spawn().expect("spawn candidates");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = oneshot::channel();
        let (reading, read_gate) = watch::channel(true);
        let stdout = child.stdout.take().expect("piped stdout");
        tokio::spawn(collect_logs(
            stdout,
            Arc::clone(&logs),
            Some(addr_tx),
            read_gate.clone(),
        ));
        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(collect_logs(stderr, Arc::clone(&logs), None, read_gate));

        let addr = match tokio::time::timeout(START_LIMIT, addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let exited = child.try_wait().ok().flatten();
                panic!(
                    "the service did not report a listening address (exit: {exited:?}); logs:\n{}",
                    logs.lock().expect("logs").join("\n")
                );
            }
        };
        Service {
            child,
            addr,
            logs,
            reading,
            client: client(),
        }
    }

    /// Runs the binary expecting it to refuse to start: (exit status, stderr + stdout).
    pub async fn start_and_fail(&self) -> (ExitStatus, String) {
        let output = tokio::time::timeout(Duration::from_secs(30), self.command().output())
            .await
            .expect("the service should have exited")
            .expect("run candidates");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        (output.status, text)
    }
}

/// Reads the service's output line by line while `reading` is `true` (a paused reader
/// is a log consumer that fell behind: the pipe fills and the service's writes block).
async fn collect_logs(
    stream: impl tokio::io::AsyncRead + Unpin,
    logs: Arc<Mutex<Vec<String>>>,
    mut addr_tx: Option<oneshot::Sender<SocketAddr>>,
    mut reading: watch::Receiver<bool>,
) {
    let mut lines = BufReader::new(stream).lines();
    loop {
        if reading.wait_for(|reading| *reading).await.is_err() {
            return;
        }
        let Ok(Some(line)) = lines.next_line().await else {
            return;
        };
        if let Some(addr) = listening_addr(&line)
            && let Some(tx) = addr_tx.take()
        {
            let _ = tx.send(addr);
        }
        logs.lock().expect("logs").push(line);
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let entry: Value = serde_json::from_str(line).ok()?;
    if entry["message"] != "listening" {
        return None;
    }
    entry["addr"].as_str()?.parse().ok()
}

/// An HTTP client that never goes through a proxy (all traffic is to 127.0.0.1).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

/// A running service; killed when dropped.
#[derive(Debug)]
pub struct Service {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    /// Whether its output is being read (see [`Service::pause_log_reader`]).
    reading: watch::Sender<bool>,
    client: reqwest::Client,
}

impl Service {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.client
            .get(self.url(path_and_query))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path_and_query}: {err}"))
    }

    pub async fn post(&self, path_and_query: &str) -> reqwest::Response {
        self.client
            .post(self.url(path_and_query))
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path_and_query}: {err}"))
    }

    /// The status of one request that owns its path: many of them can be in flight
    /// at once.
    pub async fn status_of(
        &self,
        method: reqwest::Method,
        path_and_query: String,
    ) -> reqwest::StatusCode {
        self.client
            .request(method.clone(), self.url(&path_and_query))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path_and_query}: {err}"))
            .status()
    }

    /// A value from `/metrics`: the first line that starts with `series` (a name, with its
    /// labels if it has any), as a whole number; 0 when the series does not exist yet.
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self.get("/metrics").await.text().await.expect("metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
            .map_or(0, |value| value as u64)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the service is running")
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self, limit: Duration) -> ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the service did not exit within {limit:?}"))
            .expect("wait for the service")
    }

    /// Waits until the log holds the lines of every request answered before this call.
    /// The service writes its log in batches, a few milliseconds after the requests; a
    /// request of its own (`GET /gtg` with a unique request id) marks the point, and
    /// lines keep their order.
    pub async fn settle_logs(&self) {
        let marker = crate::unique("log-barrier");
        self.client
            .get(self.url("/gtg"))
            .header("x-request-id", &marker)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET /gtg (log barrier): {err}"));
        crate::eventually(
            "the service's log to catch up",
            Duration::from_secs(10),
            || async {
                self.logs()
                    .iter()
                    .any(|line| line["request_id"] == marker.as_str())
                    .then_some(())
            },
        )
        .await;
    }

    /// Every line the service printed so far, parsed as JSON where possible.
    pub fn logs(&self) -> Vec<Value> {
        self.logs
            .lock()
            .expect("logs")
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Stops reading the service's output, as a log consumer that fell behind would:
    /// once the pipe is full, every write the service makes to standard output blocks.
    pub fn pause_log_reader(&self) {
        self.reading.send_replace(false);
    }

    /// Reads the service's output again.
    pub fn resume_log_reader(&self) {
        self.reading.send_replace(true);
    }

    /// The resident memory of the service's process, in KiB (Linux: /proc).
    pub fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the service's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }

    pub fn raw_logs(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }
}

//! Harness for the black-box tests: starts the real `candidates` binary on a free port,
//! a real DynamoDB-compatible server (moto) on 127.0.0.1, and the project's scripts.
//!
//! Tools the tests need (moto_server, checkov, newman, oha...) are installed by
//! `./scripts/test.sh` into `.tools/bin`, which it puts on `PATH`. A missing tool fails
//! the test with that instruction: nothing is skipped.

pub mod aws_query;
pub mod hcl_files;
pub mod imds;
pub mod moto;
pub mod operator_policy;
pub mod raw;
pub mod service;
pub mod standins;
pub mod systemd_unit;
pub mod terraform;
pub mod tls;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use moto::Moto;
pub use service::{Service, ServiceBuilder};

/// The repository's root folder.
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The Terraform root module's folder, `infra/`.
pub fn infra_dir() -> PathBuf {
    repo_root().join("infra")
}

/// The project-local tools folder that `./scripts/test.sh` fills: `CANDIDATES_TOOLS_DIR`,
/// else `.tools` in the repository (as `scripts/lib/common.sh` chooses it).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CANDIDATES_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools"))
}

/// The path of a command-line tool, or a panic that says how to get it.
pub fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is not on PATH: run ./scripts/test.sh, which installs the test tools")
    })
}

/// A TCP port that was free a moment ago (for servers that cannot be told to pick one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free local port")
}

/// A name no other test uses, for tables and candidates.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` until it returns `Some`, failing the test after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The MD5 chain of `/computation`, written independently of the service (another MD5
/// crate, string formatting instead of a lookup table).
pub fn reference_chain(seed: &str, iterations: u32) -> String {
    let mut hash = seed.to_owned();
    for _ in 0..iterations {
        hash = format!("{:x}", md5::compute(format!("{hash}{seed}")));
    }
    hash
}

/// Percent-encodes a path segment (everything but unreserved characters).
pub fn encode_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Makes sure this test process may open `want` file descriptors (sockets), raising its
/// soft limit up to the hard one with util-linux's `prlimit` when needed. Services the
/// test starts afterwards inherit the limit.
pub fn allow_open_files(want: u64) {
    let pid = std::process::id().to_string();
    let read = |which: &str| -> u64 {
        let output = std::process::Command::new("prlimit")
            .args(["--pid", &pid, "--nofile", "--noheadings", "--output", which])
            .output()
            .expect("prlimit (util-linux)");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or(u64::MAX)
    };
    let (soft, hard) = (read("SOFT"), read("HARD"));
    if soft >= want {
        return;
    }
    assert!(
        hard >= want,
        "this test needs {want} open files; the hard limit is {hard}"
    );
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={want}:{hard}")])
        .status()
        .expect("prlimit (util-linux)");
    assert!(
        status.success(),
        "prlimit could not raise the open-file limit"
    );
}

/// Writes `count` candidates straight into a service's SQLite database, in one
/// transaction (with Python's sqlite3: a hundred thousand rows take a second, where as
/// many POSTs take minutes). The service must have opened the database first (any store
/// call does), which creates its table. The names are `<prefix><number, 7 digits>`
/// padded with `x` to `length` characters, so a listing's size is easy to reason about.
pub fn seed_sqlite(db: &Path, prefix: &str, count: usize, length: usize) {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             db, prefix, count, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])\n\
             c = sqlite3.connect(db, timeout=30)\n\
             rows = ((f'{prefix}{i:07d}'.ljust(length, 'x'),) for i in range(count))\n\
             c.executemany('INSERT OR IGNORE INTO candidates (name) VALUES (?)', rows)\n\
             c.commit()\n",
        )
        .arg(db)
        .arg(prefix)
        .arg(count.to_string())
        .arg(length.to_string())
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "seeding {}: {}",
        db.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The checks `scripts/validate.sh` prints, in order, as `✓ <check> passed`.
pub const VALIDATE_CHECKS: [&str; 5] = [
    "Good to go",
    "Insert",
    "Verification",
    "Candidate list",
    "Computation",
];

/// Runs a project script with `args`, returning (exit code, stdout, stderr).
pub fn run_script(script: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = std::process::Command::new("bash")
        .arg(repo_root().join(script))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {script}: {err}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

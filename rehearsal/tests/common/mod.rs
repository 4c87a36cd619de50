//! What the rehearsal's integration tests share: the repository, variable files written for
//! a scenario, and a rehearsal run in-process or through scripts/rehearse.sh.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;

use rehearsal::cli;
use rehearsal::run::{self, Report};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the repository")
        .to_path_buf()
}

/// The project's default step policy, written out so that a hand derivation does not change
/// when someone changes a default in infra/variables.tf (the tests that need the defaults
/// read them from there instead).
pub const STEP_POLICY: &str = r#"
scaling_mode                 = "step"
instance_type                = "t3.micro"
instance_warmup_secs         = 90
scale_out_cpu_threshold      = 60
scale_out_period_secs        = 60
scale_out_evaluation_periods = 2
scale_out_steps = [
  { lower_bound = 0, adjustment = 1 },
  { lower_bound = 20, adjustment = 2 },
]
scale_in_cpu_threshold      = 30
scale_in_period_secs        = 60
scale_in_evaluation_periods = 5
scale_in_adjustment         = -1
deregistration_delay_secs   = 15
shutdown_drain_secs         = 15
request_timeout_secs        = 10
"#;

/// A temporary folder holding variable files.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Files {
        Files {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

/// Runs a rehearsal in-process with these command-line arguments (against infra/).
pub fn rehearse(args: &[&str]) -> Report {
    try_rehearse(args).unwrap_or_else(|e| panic!("rehearsal {args:?}: {e}"))
}

/// The same, keeping its error.
pub fn try_rehearse(args: &[&str]) -> Result<Report, rehearsal::error::Error> {
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    all.extend([
        "--infra".to_owned(),
        repo_root().join("infra").display().to_string(),
    ]);
    let options = cli::parse(&all).unwrap_or_else(|e| panic!("arguments {args:?}: {e}"));
    run::rehearse(&options, &[])
}

/// A report's summary as summary.json holds it.
pub fn summary(report: &Report) -> serde_json::Value {
    serde_json::to_value(report.summary.as_ref().expect("a summary")).expect("summary JSON")
}

/// The `error_message`s of a variable's validation blocks in infra/variables.tf, read from
/// the file so that a test follows the module.
pub fn validation_messages(variable: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(repo_root().join("infra/variables.tf")).expect("variables.tf");
    let body = hcl::parse(&text).expect("variables.tf is HCL");
    body.blocks()
        .filter(|b| b.identifier() == "variable" && b.labels()[0].as_str() == variable)
        .flat_map(|b| b.body().blocks().filter(|v| v.identifier() == "validation"))
        .filter_map(|v| {
            v.body()
                .attributes()
                .find(|a| a.key() == "error_message")
                .and_then(|a| match a.expr() {
                    hcl::Expression::String(s) => Some(s.clone()),
                    _ => None,
                })
        })
        .collect()
}

/// Runs scripts/rehearse.sh; returns (exit code, stdout, stderr).
pub fn script(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/rehearse.sh"))
        .args(args)
        .env("REHEARSE_BIN", env!("CARGO_BIN_EXE_rehearse"))
        .envs(env.iter().copied())
        .current_dir(repo_root())
        .output()
        .expect("run scripts/rehearse.sh");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

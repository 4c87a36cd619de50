//! Every script a user runs explains itself: `--help` prints exactly its header comment
//! (the usage text at the top of the file, nothing of the code after it) and exits 2.

use blackbox::{repo_root, run_script};

const USER_SCRIPTS: [&str; 10] = [
    "apply.sh",
    "destroy.sh",
    "scripts/bench.sh",
    "scripts/check_env.sh",
    "scripts/loadtest.sh",
    "scripts/logs.sh",
    "scripts/rehearse.sh",
    "scripts/render_policy.sh",
    "scripts/scale.sh",
    "scripts/validate.sh",
];

/// The comment block after the shebang, without its `# ` markers.
fn header_of(script: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join(script)).expect("script");
    text.lines()
        .skip(1)
        .take_while(|line| line.starts_with('#'))
        .map(|line| {
            let body = &line[1..];
            body.strip_prefix(' ').unwrap_or(body)
        })
        .fold(String::new(), |mut acc, line| {
            acc.push_str(line);
            acc.push('\n');
            acc
        })
}

#[test]
fn help_prints_the_header_of_every_script_and_nothing_else() {
    for script in USER_SCRIPTS {
        let header = header_of(script);
        assert!(header.lines().count() >= 3, "{script} has no usage header");
        let (code, stdout, stderr) = run_script(script, &["--help"], &[]);
        assert_eq!(code, 2, "{script} --help:\n{stderr}");
        assert_eq!(stdout, "", "{script} --help writes its usage to stderr");
        assert_eq!(stderr, header, "{script} --help");
    }
}

#[test]
fn rehearse_help_lists_the_failure_and_retry_options() {
    let header = header_of("scripts/rehearse.sh");
    for option in [
        "--fail instance@MINUTE[xN]",
        "--fail-az ZONE@FROM[-TO]",
        "--retries N",
        "--backoff KIND",
        "--retry-base-ms MS",
    ] {
        assert!(
            header
                .lines()
                .any(|line| line.trim_start().starts_with(option)),
            "rehearse.sh --help does not list {option}:\n{header}"
        );
    }
}

#[test]
fn rehearse_help_lists_the_optimizer() {
    let header = header_of("scripts/rehearse.sh");
    for option in ["--optimize", "--bound NAME=LO..HI"] {
        assert!(
            header
                .lines()
                .any(|line| line.trim_start().starts_with(option)),
            "rehearse.sh --help does not list {option}:\n{header}"
        );
    }
}

#[test]
fn an_unknown_option_is_refused_with_the_usage() {
    for script in USER_SCRIPTS {
        let (code, _, stderr) = run_script(script, &["--no-such-option"], &[]);
        assert_eq!(code, 2, "{script}:\n{stderr}");
        assert!(stderr.starts_with("ERROR: "), "{script}:\n{stderr}");
        assert!(stderr.ends_with(&header_of(script)), "{script}:\n{stderr}");
    }
}

/// One way to refuse an option whose value is missing (common.sh's need_value): an ERROR
/// naming the option, then the usage, exit 2, for the option given last or empty.
#[test]
fn a_missing_option_value_is_refused_with_the_usage() {
    for (script, option) in [
        ("apply.sh", "--binary"),
        ("apply.sh", "--packer-subnet"),
        ("apply.sh", "--rollout-wait"),
        ("scripts/logs.sh", "--env"),
        ("scripts/logs.sh", "--since"),
        ("apply.sh", "-var"),
        ("apply.sh", "-var-file"),
        ("scripts/bench.sh", "--duration"),
        ("scripts/check_env.sh", "--packer-subnet"),
        ("scripts/check_env.sh", "-var"),
        ("scripts/render_policy.sh", "--out"),
        ("scripts/loadtest.sh", "--url"),
        ("scripts/loadtest.sh", "--rate"),
        ("scripts/loadtest.sh", "--load-csv"),
        ("scripts/rehearse.sh", "--load-from-cloudwatch"),
        ("scripts/rehearse.sh", "--since"),
        ("scripts/rehearse.sh", "--fail"),
        ("scripts/rehearse.sh", "--fail-az"),
        ("scripts/rehearse.sh", "--retries"),
        ("scripts/rehearse.sh", "--backoff"),
        ("scripts/rehearse.sh", "--retry-base-ms"),
        ("scripts/rehearse.sh", "--bound"),
        ("scripts/scale.sh", "--env"),
        ("scripts/scale.sh", "--min"),
        ("scripts/scale.sh", "--for"),
        ("scripts/validate.sh", "--env"),
        ("scripts/validate.sh", "--wait"),
    ] {
        for args in [vec![option], vec![option, ""]] {
            let (code, _, stderr) = run_script(script, &args, &[]);
            assert_eq!(code, 2, "{script} {args:?}:\n{stderr}");
            assert!(
                stderr.starts_with(&format!("ERROR: {option} needs a value\n")),
                "{script} {args:?}:\n{stderr}"
            );
            assert!(
                stderr.ends_with(&header_of(script)),
                "{script} {args:?}:\n{stderr}"
            );
        }
    }
    let (code, _, stderr) = run_script("apply.sh", &["--binary="], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("ERROR: --binary needs a value\n"),
        "{stderr}"
    );
}

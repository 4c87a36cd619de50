//! The README tells the truth: its tables are checked against the code they describe.

use std::collections::BTreeSet;

use blackbox::repo_root;
use clap::CommandFactory;

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("README.md")
}

/// The rows of the table between `<!-- BEGIN name -->` and `<!-- END name -->`, as cells.
fn table(name: &str) -> Vec<Vec<String>> {
    let text = readme();
    let begin = format!("<!-- BEGIN {name} -->");
    let end = format!("<!-- END {name} -->");
    let start = text
        .find(&begin)
        .unwrap_or_else(|| panic!("no {begin} in README.md"));
    let stop = text
        .find(&end)
        .unwrap_or_else(|| panic!("no {end} in README.md"));
    text[start + begin.len()..stop]
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2) // header and separator
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn the_configuration_table_lists_every_setting_with_its_default() {
    let command = candidates::config::Config::command();
    let mut documented: Vec<Vec<String>> = table("config");
    documented.sort();
    let mut actual: Vec<(String, String, Option<String>)> = command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_str()?.to_owned();
            let flag = format!("--{}", arg.get_long()?);
            let default = arg
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            Some((env, flag, default))
        })
        .collect();
    actual.sort();
    assert_eq!(
        documented.len(),
        actual.len(),
        "README config rows vs settings"
    );
    for (row, (env, flag, default)) in documented.iter().zip(&actual) {
        assert_eq!(row[0], *env);
        assert_eq!(row[1], *flag, "{env}");
        if let Some(default) = default {
            assert_eq!(row[2], *default, "default of {env}");
        }
    }
}

#[test]
fn the_api_table_lists_every_route() {
    let documented: BTreeSet<String> = table("api")
        .into_iter()
        .map(|row| row[0].split('?').next().unwrap_or_default().to_owned())
        .collect();
    let served: BTreeSet<String> = candidates::api::endpoints()
        .into_iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert_eq!(documented, served);
}

fn hcl_blocks(kind: &str) -> Vec<(String, hcl::Block)> {
    let blocks = blackbox::hcl_files::blocks_in(&blackbox::infra_dir(), ".tf");
    blackbox::hcl_files::select(&blocks, kind, &[])
        .into_iter()
        .map(|block| (block.labels()[0].as_str().to_owned(), block.clone()))
        .collect()
}

#[test]
fn the_variables_table_lists_every_terraform_variable() {
    let documented: Vec<Vec<String>> = table("infra-variables");
    let names: BTreeSet<&str> = documented.iter().map(|row| row[0].as_str()).collect();
    let variables = hcl_blocks("variable");
    let declared: BTreeSet<&str> = variables.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, declared);
    for (name, block) in &variables {
        let row = documented.iter().find(|row| row[0] == *name).expect("row");
        let required = !block.body().attributes().any(|a| a.key() == "default");
        assert_eq!(row[2] == "required", required, "{name}: default column");
    }
}

#[test]
fn the_outputs_table_lists_every_terraform_output() {
    let names: BTreeSet<String> = table("infra-outputs")
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    let declared: BTreeSet<String> = hcl_blocks("output")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, declared);
}

/// `cargo run --release` at the root builds and runs what the workspace's default members
/// hold: the service alone (one binary to run, none of the test crate's or the rehearsal's
/// dependencies to compile first).
#[test]
fn the_readme_run_command_builds_the_service_alone() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    let defaults: Vec<&str> = metadata["workspace_default_members"]
        .as_array()
        .expect("workspace_default_members (cargo 1.71+)")
        .iter()
        .map(|id| id.as_str().expect("a package id"))
        .collect();
    let packages = metadata["packages"].as_array().expect("packages");
    let default_packages: Vec<&serde_json::Value> = packages
        .iter()
        .filter(|package| defaults.contains(&package["id"].as_str().expect("an id")))
        .collect();
    let names: Vec<&str> = default_packages
        .iter()
        .map(|package| package["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["candidates"], "the workspace's default members");
    let binaries: Vec<&str> = default_packages[0]["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter(|target| target["kind"] == serde_json::json!(["bin"]))
        .map(|target| target["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(binaries, ["candidates"], "one binary for cargo run to pick");
    assert!(
        packages.len() > 1,
        "the workspace has more members than its default one"
    );
}

#[test]
fn the_readme_gives_the_one_run_and_the_one_test_command() {
    let text = readme();
    assert!(text.contains("```sh\ncargo run --release\n```"));
    assert!(text.contains("```sh\n./scripts/test.sh\n```"));
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.contains("./scripts/test.sh"),
        "CI must run the README's test command"
    );
}

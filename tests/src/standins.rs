//! The recording stand-ins for `aws`, `terraform` and `packer` (`tests/fixtures/standin`,
//! one program linked under the three names) and the harness that runs the project's
//! scripts with them: `apply.sh`, `destroy.sh`, `scripts/check_env.sh` and, through them,
//! `scripts/validate.sh` and `scripts/scale.sh`. The stand-in logs every call and keeps a
//! small model of what the real tools would change (AMIs, snapshots, launch templates,
//! Auto Scaling groups, workspaces and their state), so a test checks both the calls and
//! their effect. `scripts/validate.sh` runs for real against a local service, whose URL
//! the stand-in Terraform reports as the stack's.
//!
//! Each [`Stage`] works in its own temporary folder: the stand-ins' model and log, the
//! staged binary (`CANDIDATES_DIST_DIR`) and Packer's manifest
//! (`CANDIDATES_PACKER_MANIFEST`) all live there, so tests run in parallel and leave
//! nothing in the repository.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::repo_root;
use serde_json::{Value, json};

/// The region the stage's AWS_REGION names.
pub const REGION: &str = "eu-west-3";
pub const STANDINS: [&str; 3] = ["aws", "terraform", "packer"];
/// Variables of the caller's environment that would change what the scripts do.
const SCRUBBED: [&str; 14] = [
    "CI",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "TF_WORKSPACE",
    "TF_CLI_ARGS",
    "TF_CLI_ARGS_apply",
    "TF_CLI_ARGS_destroy",
    "TF_DATA_DIR",
    "STANDIN_FAIL",
    "STANDIN_URL",
    "STANDIN_REFRESH",
    "CANDIDATES_DIST_DIR",
    "CANDIDATES_ROLLOUT_POLL_SECS",
];

/// A private world for one test: a bin folder with the stand-ins first on `PATH`, the
/// stand-ins' model, and the environment the scripts run with.
#[derive(Debug)]
pub struct Stage {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
    removed: Vec<String>,
}

/// What a script run did: exit code, output, and the stand-in calls it made. For apply.sh,
/// the calls of its environment check (`scripts/check_env.sh`: tools, then the account's
/// preflight) are apart, in `preflight`, and `calls` starts with its own first one, the
/// lookup of an AMI baked from the same inputs.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub preflight: Vec<String>,
    pub calls: Vec<String>,
}

/// The prefix of apply.sh's first call after its environment check.
const FIRST_DEPLOY_CALL: &str = "aws ec2 describe-images --region";

impl Stage {
    /// All three stand-ins present.
    pub fn new() -> Self {
        Self::with_standins(&STANDINS)
    }

    /// Only the named stand-ins: the others are missing, as if not installed.
    pub fn with_standins(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).expect("bin folder");
        let standin = repo_root().join("tests/fixtures/standin");
        for name in names {
            std::os::unix::fs::symlink(&standin, bin.join(name)).expect("link a stand-in");
        }
        let path = std::env::join_paths(
            std::iter::once(bin).chain(rest_of_path_without_standins(dir.path())),
        )
        .expect("PATH");
        let mut stage = Self {
            env: BTreeMap::new(),
            removed: SCRUBBED.iter().map(|&name| name.to_owned()).collect(),
            dir,
        };
        let root = stage.dir.path().to_owned();
        stage
            .set("PATH", path.to_string_lossy())
            .set("STANDIN_DIR", root.join("state").display())
            .set("CANDIDATES_DIST_DIR", root.join("dist").display())
            .set(
                "CANDIDATES_PACKER_MANIFEST",
                root.join("manifest.json").display(),
            )
            .set("AWS_REGION", REGION)
            .set("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .set(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .set("CHECKPOINT_DISABLE", "1");
        fs::create_dir(root.join("state")).expect("state folder");
        stage.write_binary("candidates-fake", b"not really an ELF binary\n");
        stage
    }

    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.removed.retain(|name| name != key);
        self.env.insert(key.to_owned(), value.to_string());
        self
    }

    pub fn unset(&mut self, key: &str) -> &mut Self {
        self.env.remove(key);
        self.removed.push(key.to_owned());
        self
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A small file standing in for the release binary; returns its path.
    pub fn write_binary(&self, name: &str, content: &[u8]) -> String {
        let path = self.path(name);
        fs::write(&path, content).expect("write the fake binary");
        path.display().to_string()
    }

    pub fn fake_binary(&self) -> String {
        self.path("candidates-fake").display().to_string()
    }

    /// Runs a script of the repository from the repository's root; `stdin` is what a person
    /// would type (none: stdin is closed, as in CI).
    pub fn run(&self, script: &str, args: &[&str], stdin: Option<&str>) -> Run {
        let _ = fs::remove_file(self.path("state/calls.log"));
        let mut command = Command::new("bash");
        command
            .arg(repo_root().join(script))
            .args(args)
            .current_dir(repo_root())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in &self.removed {
            command.env_remove(name);
        }
        command.envs(&self.env);
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {script}: {err}"));
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
        }
        let output = child.wait_with_output().expect("wait for the script");
        let mut calls = self.calls();
        let preflight = if script == "apply.sh" {
            let first = calls
                .iter()
                .position(|call| call.starts_with(FIRST_DEPLOY_CALL))
                .unwrap_or(calls.len());
            calls.drain(..first).collect()
        } else {
            Vec::new()
        };
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            preflight,
            calls,
        }
    }

    pub fn apply(&self, args: &[&str]) -> Run {
        self.run("apply.sh", args, None)
    }

    /// The stand-ins' log, with the repository's and this stage's folders written as `$REPO`
    /// and `$TMP` so expectations do not depend on where they are.
    pub fn calls(&self) -> Vec<String> {
        let repo = canonical(repo_root());
        let tmp = canonical(self.dir.path());
        fs::read_to_string(self.path("state/calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| line.replace(&tmp, "$TMP").replace(&repo, "$REPO"))
            .collect()
    }

    pub fn model(&self, name: &str) -> Value {
        let text = fs::read_to_string(self.path(&format!("state/{name}")))
            .unwrap_or_else(|err| panic!("read the stand-ins' {name}: {err}"));
        serde_json::from_str(&text).expect("the stand-ins' model is JSON")
    }

    pub fn save_model(&self, name: &str, value: &Value) {
        fs::write(
            self.path(&format!("state/{name}")),
            serde_json::to_string_pretty(value).expect("JSON"),
        )
        .expect("write the stand-ins' model");
    }

    /// The Auto Scaling group `name` of the model (what `terraform apply` created).
    #[track_caller]
    pub fn group(&self, name: &str) -> Value {
        let aws = self.model("aws.json");
        aws["auto_scaling_groups"]
            .as_array()
            .and_then(|groups| {
                groups
                    .iter()
                    .find(|group| group["AutoScalingGroupName"] == name)
            })
            .cloned()
            .unwrap_or_else(|| panic!("no group {name} in the model: {aws}"))
    }

    /// (min, desired, max) of the group `name`.
    #[track_caller]
    pub fn sizes(&self, name: &str) -> (u64, u64, u64) {
        let group = self.group(name);
        let size = |key: &str| {
            group[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key} of {group}"))
        };
        (size("MinSize"), size("DesiredCapacity"), size("MaxSize"))
    }

    /// The value of the group's tag `key`, if it has one.
    pub fn group_tag(&self, name: &str, key: &str) -> Option<String> {
        self.group(name)["Tags"]
            .as_array()
            .and_then(|tags| tags.iter().find(|tag| tag["Key"] == key))
            .map(|tag| tag["Value"].as_str().expect("a tag value").to_owned())
    }

    /// The scheduled actions of the group `name`.
    pub fn scheduled_actions(&self, name: &str) -> Vec<Value> {
        let aws = self.model("aws.json");
        aws["scheduled_actions"]
            .as_array()
            .map(|actions| {
                actions
                    .iter()
                    .filter(|action| action["AutoScalingGroupName"] == name)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn image_ids(&self) -> Vec<String> {
        let aws = self.model("aws.json");
        strings(&aws["images"], "ImageId")
    }
}

impl Default for Stage {
    fn default() -> Self {
        Self::new()
    }
}

impl Run {
    #[track_caller]
    pub fn assert_success(&self) {
        assert_eq!(self.code, 0, "{self}");
        assert!(!self.stderr.contains("ERROR:"), "{self}");
    }

    #[track_caller]
    pub fn assert_failed_at(&self, step: &str) {
        assert_ne!(self.code, 0, "{self}");
        assert!(
            self.stderr
                .contains(&format!("ERROR: step '{step}' failed")),
            "expected an ERROR naming the step '{step}':\n{self}"
        );
    }

    /// The calls starting with `prefix`.
    pub fn calls_to(&self, prefix: &str) -> Vec<&str> {
        self.calls
            .iter()
            .map(String::as_str)
            .filter(|call| call.starts_with(prefix))
            .collect()
    }

    #[track_caller]
    pub fn one_call(&self, prefix: &str) -> &str {
        let found = self.calls_to(prefix);
        assert_eq!(found.len(), 1, "one call to {prefix}:\n{self}");
        found[0]
    }

    /// The AMI `terraform apply` was given.
    #[track_caller]
    pub fn applied_ami(&self) -> String {
        value_of(
            self.one_call("terraform -chdir=$REPO/infra apply"),
            "ami_id",
        )
    }

    /// The inputs hash apply.sh looked AMIs up with.
    #[track_caller]
    pub fn inputs_hash(&self) -> String {
        value_of(
            self.one_call(FIRST_DEPLOY_CALL),
            "Name=tag:InputsHash,Values",
        )
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- preflight calls\n{}\n--- calls\n{}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.preflight.join("\n"),
            self.calls.join("\n"),
            self.stdout,
            self.stderr
        )
    }
}

/// PATH after the stand-ins' folder: the caller's, where every folder that holds a real
/// `aws`, `terraform` or `packer` is replaced by a copy (symbolic links) without them, so
/// the real tools never run and "not installed" means not installed.
fn rest_of_path_without_standins(scratch: &Path) -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .enumerate()
        .filter(|(_, dir)| dir.is_dir())
        .map(|(index, dir)| {
            if !STANDINS.iter().any(|name| dir.join(name).exists()) {
                return dir;
            }
            let shadow = scratch.join(format!("path-{index}"));
            fs::create_dir(&shadow).expect("shadow folder");
            for entry in fs::read_dir(&dir).expect("read a PATH folder").flatten() {
                let name = entry.file_name();
                if !STANDINS.iter().any(|standin| name == *standin) {
                    let _ = std::os::unix::fs::symlink(entry.path(), shadow.join(&name));
                }
            }
            shadow
        })
        .collect()
}

fn canonical(path: &Path) -> String {
    fs::canonicalize(path)
        .expect("canonical path")
        .display()
        .to_string()
}

/// The value of `NAME=VALUE` (or `NAME,Values=VALUE` for a filter) among a call's words.
#[track_caller]
pub fn value_of(call: &str, name: &str) -> String {
    call.split(' ')
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {call}"))
        .to_owned()
}

pub fn strings(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|item| item[key].as_str().expect("a string").to_owned())
        .collect()
}

pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An AMI of the model, as `aws ec2 describe-images` returns it.
pub fn image(id: &str, project: &str, inputs_hash: &str, created: &str, state: &str) -> Value {
    json!({
        "ImageId": id,
        "Name": format!("{project}-{id}"),
        "State": state,
        "CreationDate": created,
        "OwnerId": "123456789012",
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_of(id)}}
        ],
        "Tags": [
            {"Key": "Project", "Value": project},
            {"Key": "InputsHash", "Value": inputs_hash}
        ],
    })
}

pub fn snapshot_of(ami: &str) -> String {
    ami.replace("ami-", "snap-")
}

pub fn add_images(stage: &Stage, images: &[Value]) {
    let mut aws = stage.model("aws.json");
    for image in images {
        let snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"].clone();
        aws["images"]
            .as_array_mut()
            .expect("images")
            .push(image.clone());
        aws["snapshots"]
            .as_array_mut()
            .expect("snapshots")
            .push(snapshot);
    }
    stage.save_model("aws.json", &aws);
}

// ---------------------------------------------------------------------------------------
// A fixture: two environments deployed side by side
// ---------------------------------------------------------------------------------------

pub const AMI_DEV: &str = "ami-0000000000000dee1";
pub const AMI_PERF1_LATEST: &str = "ami-00000000000000f13";
pub const AMI_PERF1_DEFAULT: &str = "ami-00000000000000f12";
pub const AMI_PERF1_OLD: &str = "ami-00000000000000f11";
pub const AMI_UNUSED: &str = "ami-0000000000000a0a0";
pub const AMI_OTHER_PROJECT: &str = "ami-0000000000000b0b0";
pub const DEPLOYED_REGION: &str = "us-west-2";

/// Two environments deployed in us-west-2: dev (to destroy) and perf1, whose launch template
/// has three versions: 1 (old), 2 (default), 3 (latest). Plus an AMI nothing uses and
/// another project's.
pub fn two_environments() -> Stage {
    let stage = Stage::new();
    let state = |ami: &str, template: &str| {
        json!({"ami_id": ami, "region": DEPLOYED_REGION, "launch_template_id": template,
               "url": "http://127.0.0.1:9"})
    };
    stage.save_model(
        "terraform.json",
        &json!({
            "initialized": false,
            "current": "dev",
            "workspaces": {
                "default": null,
                "dev": state(AMI_DEV, "lt-0dev"),
                "perf1": state(AMI_PERF1_LATEST, "lt-0perf1"),
            }
        }),
    );
    let template = |id: &str, name: &str, default: u32, versions: &[&str]| {
        json!({
            "LaunchTemplateId": id,
            "LaunchTemplateName": name,
            "Tags": [{"Key": "Project", "Value": "axum-asg"}],
            "DefaultVersionNumber": default,
            "Versions": versions.iter().enumerate()
                .map(|(i, ami)| json!({"VersionNumber": i + 1, "ImageId": ami}))
                .collect::<Vec<_>>(),
        })
    };
    stage.save_model(
        "aws.json",
        &json!({
            "images": [],
            "snapshots": [],
            "launch_templates": [
                template("lt-0dev", "axum-asg-dev", 1, &[AMI_DEV]),
                template("lt-0perf1", "axum-asg-perf1", 2,
                         &[AMI_PERF1_OLD, AMI_PERF1_DEFAULT, AMI_PERF1_LATEST]),
            ],
        }),
    );
    let created = "2024-05-01T00:00:00.000Z";
    add_images(
        &stage,
        &[
            AMI_DEV,
            AMI_PERF1_OLD,
            AMI_PERF1_DEFAULT,
            AMI_PERF1_LATEST,
            AMI_UNUSED,
        ]
        .map(|ami| image(ami, "axum-asg", "h", created, "available")),
    );
    add_images(
        &stage,
        &[image(
            AMI_OTHER_PROJECT,
            "other-project",
            "h",
            created,
            "available",
        )],
    );
    stage
}

pub fn workspaces(stage: &Stage) -> Vec<String> {
    let terraform = stage.model("terraform.json");
    terraform["workspaces"]
        .as_object()
        .expect("workspaces")
        .keys()
        .cloned()
        .collect()
}

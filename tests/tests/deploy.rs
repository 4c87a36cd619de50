//! `apply.sh`, `destroy.sh` and `scripts/check_env.sh`, run for real with stand-ins for
//! `aws`, `terraform` and `packer` (`tests/fixtures/standin`, one program linked under the
//! three names). The stand-in logs every call and keeps a small model of what the real tools
//! would change (AMIs, snapshots, launch templates, workspaces and their state), so a test
//! checks both the calls and their effect. `scripts/validate.sh` runs for real against a
//! local service, whose URL the stand-in Terraform reports as the stack's.
//!
//! Each test works in its own temporary folder: the stand-ins' model and log, the staged
//! binary (`CANDIDATES_DIST_DIR`) and Packer's manifest (`CANDIDATES_PACKER_MANIFEST`) all
//! live there, so tests run in parallel and leave nothing in the repository.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use blackbox::{ServiceBuilder, VALIDATE_CHECKS, repo_root};
use serde_json::{Value, json};

const REGION: &str = "eu-west-3";
const STANDINS: [&str; 3] = ["aws", "terraform", "packer"];
/// Variables of the caller's environment that would change what the scripts do.
const SCRUBBED: [&str; 12] = [
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
    "CANDIDATES_DIST_DIR",
];

/// A private world for one test: a bin folder with the stand-ins first on `PATH`, the
/// stand-ins' model, and the environment the scripts run with.
struct Stage {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
    removed: Vec<String>,
}

/// What a script run did: exit code, output, and the stand-in calls it made.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    calls: Vec<String>,
}

impl Stage {
    /// All three stand-ins present.
    fn new() -> Self {
        Self::with_standins(&STANDINS)
    }

    /// Only the named stand-ins: the others are missing, as if not installed.
    fn with_standins(names: &[&str]) -> Self {
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

    fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.removed.retain(|name| name != key);
        self.env.insert(key.to_owned(), value.to_string());
        self
    }

    fn unset(&mut self, key: &str) -> &mut Self {
        self.env.remove(key);
        self.removed.push(key.to_owned());
        self
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A small file standing in for the release binary; returns its path.
    fn write_binary(&self, name: &str, content: &[u8]) -> String {
        let path = self.path(name);
        fs::write(&path, content).expect("write the fake binary");
        path.display().to_string()
    }

    fn fake_binary(&self) -> String {
        self.path("candidates-fake").display().to_string()
    }

    /// Runs a script of the repository from the repository's root; `stdin` is what a person
    /// would type (none: stdin is closed, as in CI).
    fn run(&self, script: &str, args: &[&str], stdin: Option<&str>) -> Run {
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
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            calls: self.calls(),
        }
    }

    fn apply(&self, args: &[&str]) -> Run {
        self.run("apply.sh", args, None)
    }

    /// The stand-ins' log, with the repository's and this stage's folders written as `$REPO`
    /// and `$TMP` so expectations do not depend on where they are.
    fn calls(&self) -> Vec<String> {
        let repo = canonical(repo_root());
        let tmp = canonical(self.dir.path());
        fs::read_to_string(self.path("state/calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| line.replace(&tmp, "$TMP").replace(&repo, "$REPO"))
            .collect()
    }

    fn model(&self, name: &str) -> Value {
        let text = fs::read_to_string(self.path(&format!("state/{name}")))
            .unwrap_or_else(|err| panic!("read the stand-ins' {name}: {err}"));
        serde_json::from_str(&text).expect("the stand-ins' model is JSON")
    }

    fn save_model(&self, name: &str, value: &Value) {
        fs::write(
            self.path(&format!("state/{name}")),
            serde_json::to_string_pretty(value).expect("JSON"),
        )
        .expect("write the stand-ins' model");
    }

    fn image_ids(&self) -> Vec<String> {
        let aws = self.model("aws.json");
        strings(&aws["images"], "ImageId")
    }
}

impl Run {
    #[track_caller]
    fn assert_success(&self) {
        assert_eq!(self.code, 0, "{self}");
        assert!(!self.stderr.contains("ERROR:"), "{self}");
    }

    #[track_caller]
    fn assert_failed_at(&self, step: &str) {
        assert_ne!(self.code, 0, "{self}");
        assert!(
            self.stderr
                .contains(&format!("ERROR: step '{step}' failed")),
            "expected an ERROR naming the step '{step}':\n{self}"
        );
    }

    /// The calls starting with `prefix`.
    fn calls_to(&self, prefix: &str) -> Vec<&str> {
        self.calls
            .iter()
            .map(String::as_str)
            .filter(|call| call.starts_with(prefix))
            .collect()
    }

    #[track_caller]
    fn one_call(&self, prefix: &str) -> &str {
        let found = self.calls_to(prefix);
        assert_eq!(found.len(), 1, "one call to {prefix}:\n{self}");
        found[0]
    }

    /// The AMI `terraform apply` was given.
    #[track_caller]
    fn applied_ami(&self) -> String {
        value_of(
            self.one_call("terraform -chdir=$REPO/infra apply"),
            "ami_id",
        )
    }

    /// The inputs hash apply.sh looked AMIs up with.
    #[track_caller]
    fn inputs_hash(&self) -> String {
        value_of(
            self.one_call("aws ec2 describe-images"),
            "Name=tag:InputsHash,Values",
        )
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- calls\n{}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
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
fn value_of(call: &str, name: &str) -> String {
    call.split(' ')
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {call}"))
        .to_owned()
}

fn strings(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|item| item[key].as_str().expect("a string").to_owned())
        .collect()
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An AMI of the model, as `aws ec2 describe-images` returns it.
fn image(id: &str, project: &str, inputs_hash: &str, created: &str, state: &str) -> Value {
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

fn snapshot_of(ami: &str) -> String {
    ami.replace("ami-", "snap-")
}

fn add_images(stage: &Stage, images: &[Value]) {
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
// apply.sh
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn fresh_deploy_bakes_the_ami_applies_it_and_validates() {
    let svc = ServiceBuilder::memory().start().await;
    let mut stage = Stage::new();
    stage.set("STANDIN_URL", svc.base_url());
    let binary = stage.fake_binary();

    let run = stage.apply(&["--yes", "--binary", &binary, "dev"]);
    run.assert_success();

    // First the environment check (versions and credentials), and nothing else.
    let first_deploy_call = run
        .calls
        .iter()
        .position(|call| call.starts_with("aws ec2 describe-images"))
        .unwrap_or_else(|| panic!("no AMI lookup:\n{run}"));
    let checks = &run.calls[..first_deploy_call];
    for expected in [
        "aws --version",
        "packer version",
        "terraform version",
        "aws sts get-caller-identity",
    ] {
        assert!(
            checks.iter().any(|call| call.starts_with(expected)),
            "check_env should call {expected}:\n{run}"
        );
    }
    assert!(
        checks
            .iter()
            .all(|call| call.ends_with("version") || call.contains("sts get-caller-identity")),
        "only checks before the deployment:\n{run}"
    );

    // Then, in this exact order: look for an AMI, bake one, apply it.
    let hash = run.inputs_hash();
    assert!(is_sha256(&hash), "{hash}");
    let build = run.one_call("packer build");
    let revision = value_of(build, "git_revision");
    let commit = revision.strip_suffix("-dirty").unwrap_or(&revision);
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "git_revision={revision}"
    );
    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(stage.path("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    let artifact = manifest["builds"][0]["artifact_id"].as_str().expect("id");
    let ami = artifact
        .strip_prefix(&format!("{REGION}:"))
        .expect("region:ami");
    assert_eq!(manifest["builds"][0]["custom_data"]["inputs_hash"], hash);
    let infra = "terraform -chdir=$REPO/infra";
    let expected = [
        format!(
            "aws ec2 describe-images --region {REGION} --owners self --filters \
             Name=tag:Project,Values=axum-asg Name=tag:InputsHash,Values={hash} \
             Name=state,Values=available --output json"
        ),
        // Packer's build instance needs a subnet: the default VPC's, checked first.
        format!(
            "aws ec2 describe-vpcs --region {REGION} --filters Name=is-default,Values=true \
             --output json"
        ),
        "packer init $REPO/packer".to_owned(),
        format!(
            "packer build -var git_revision={revision} -var inputs_hash={hash} \
             -var region={REGION} -var binary_path=$TMP/dist/candidates -var project=axum-asg \
             -var subnet_id= $REPO/packer"
        ),
        format!("{infra} init -input=false"),
        format!("{infra} workspace select -or-create=true dev"),
        format!(
            "{infra} apply -input=false -auto-approve -var ami_id={ami} -var region={REGION} \
             -var project=axum-asg"
        ),
    ];
    assert_eq!(
        &run.calls[first_deploy_call..first_deploy_call + expected.len()],
        expected,
        "{run}"
    );

    // Then validate.sh waited for healthy targets and passed; then the outputs.
    let rest = &run.calls[first_deploy_call + expected.len()..];
    assert!(
        rest.iter()
            .any(|call| call.starts_with("aws elbv2 describe-target-health")),
        "validate.sh waits for healthy targets:\n{run}"
    );
    assert_eq!(
        rest[rest.len() - 2..],
        [
            format!("{infra} output -raw url"),
            format!("{infra} output -raw dashboard_url"),
        ],
        "{run}"
    );
    for check in VALIDATE_CHECKS {
        assert!(
            run.stdout.contains(&format!("✓ {check} passed")),
            "{check}:\n{run}"
        );
    }
    assert!(
        run.stdout
            .contains(&format!("URL:        {}\n", svc.base_url())),
        "{run}"
    );
    assert!(
        run.stdout.contains(&format!(
            "Dashboard:  https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#dashboards/dashboard/axum-asg-dev\n"
        )),
        "{run}"
    );
    // validate.sh really talked to the service.
    let listed: Value = svc.get("/candidates").await.json().await.expect("list");
    assert!(
        listed[0]["CandidateName"]
            .as_str()
            .is_some_and(|name| name.starts_with("validate-")),
        "{listed}"
    );

    // The binary Packer took is the one given, with a checksum install.sh accepts; the AMI
    // carries the inputs hash that a later run looks for.
    assert_eq!(
        fs::read(stage.path("dist/candidates")).expect("staged binary"),
        fs::read(&binary).expect("given binary")
    );
    let checksum = fs::read_to_string(stage.path("dist/candidates.sha256")).expect("checksum");
    assert!(checksum.ends_with("  candidates\n"), "{checksum}");
    let aws = stage.model("aws.json");
    assert_eq!(aws["images"][0]["ImageId"], ami);
    assert!(
        aws["images"][0]["Tags"]
            .as_array()
            .expect("tags")
            .contains(&json!({"Key": "InputsHash", "Value": hash})),
        "{aws}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ami_baked_from_the_same_inputs_is_reused_without_packer() {
    let svc = ServiceBuilder::memory().start().await;
    let mut stage = Stage::new();
    stage.set("STANDIN_URL", svc.base_url());
    let binary = stage.fake_binary();

    let first = stage.apply(&["--yes", "--binary", &binary, "dev"]);
    first.assert_success();
    let baked = first.applied_ami();
    let hash = first.inputs_hash();
    // Decoys: the same inputs but older, or not available yet; newer but other inputs.
    add_images(
        &stage,
        &[
            image(
                "ami-0000000000000000a",
                "axum-asg",
                &hash,
                "2020-01-01T00:00:00.000Z",
                "available",
            ),
            image(
                "ami-0000000000000000b",
                "axum-asg",
                &hash,
                "2099-01-01T00:00:00.000Z",
                "pending",
            ),
            image(
                "ami-0000000000000000c",
                "axum-asg",
                &"0".repeat(64),
                "2099-01-01T00:00:00.000Z",
                "available",
            ),
        ],
    );

    // The same binary again, from another path: same inputs, so no Packer at all.
    let copy = stage.write_binary("elsewhere", &fs::read(&binary).expect("binary"));
    let second = stage.apply(&["--yes", "--binary", &copy, "perf1"]);
    second.assert_success();
    assert_eq!(second.inputs_hash(), hash, "the inputs hash must be stable");
    assert!(
        second.calls_to("packer init").is_empty() && second.calls_to("packer build").is_empty(),
        "{second}"
    );
    assert_eq!(second.applied_ami(), baked, "{second}");
    assert!(
        second.stderr.contains(&format!("reusing {baked}")),
        "{second}"
    );
    for check in VALIDATE_CHECKS {
        assert!(
            second.stdout.contains(&format!("✓ {check} passed")),
            "{second}"
        );
    }

    // Another binary is another AMI.
    let other = stage.write_binary("candidates-v2", b"version 2\n");
    let third = stage.apply(&["--yes", "--binary", &other, "dev"]);
    third.assert_success();
    assert_ne!(third.inputs_hash(), hash);
    let build = third.one_call("packer build");
    assert_eq!(
        value_of(build, "inputs_hash"),
        third.inputs_hash(),
        "{third}"
    );
    assert_ne!(third.applied_ami(), baked, "{third}");
}

#[test]
fn a_failed_packer_build_stops_before_terraform() {
    let mut stage = Stage::new();
    stage.set("STANDIN_FAIL", "packer build");
    let run = stage.apply(&["--yes", "--binary", &stage.fake_binary(), "dev"]);
    run.assert_failed_at("packer build");
    assert_eq!(run.calls_to("packer build").len(), 1, "{run}");
    assert!(run.calls_to("terraform -chdir").is_empty(), "{run}");
    assert!(!run.stdout.contains("URL:"), "{run}");
}

#[test]
fn a_failed_terraform_apply_stops_before_validation() {
    let mut stage = Stage::new();
    stage.set("STANDIN_FAIL", "terraform apply");
    let run = stage.apply(&["--yes", "--binary", &stage.fake_binary(), "dev"]);
    run.assert_failed_at("terraform apply");
    assert!(
        run.calls
            .last()
            .is_some_and(|call| call.starts_with("terraform -chdir=$REPO/infra apply")),
        "nothing after the failed apply:\n{run}"
    );
    assert!(run.calls_to("aws elbv2").is_empty(), "{run}");
    assert!(!run.stdout.contains('✓'), "{run}");
    assert!(!run.stdout.contains("URL:"), "{run}");
}

#[test]
fn a_failed_environment_check_stops_before_anything_is_built() {
    let mut stage = Stage::new();
    stage.set("STANDIN_FAIL", "aws sts get-caller-identity");
    let run = stage.apply(&["--yes", "--binary", &stage.fake_binary(), "dev"]);
    run.assert_failed_at("check the environment (scripts/check_env.sh)");
    assert!(run.calls_to("aws ec2").is_empty(), "{run}");
    assert!(run.calls_to("packer init").is_empty(), "{run}");
    assert!(run.calls_to("terraform -chdir").is_empty(), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn yes_or_ci_approves_and_otherwise_terraform_asks() {
    let svc = ServiceBuilder::memory().start().await;
    let mut stage = Stage::new();
    stage.set("STANDIN_URL", svc.base_url());
    let binary = stage.fake_binary();
    let approves = |run: &Run| {
        run.one_call("terraform -chdir=$REPO/infra apply")
            .split(' ')
            .any(|word| word == "-auto-approve")
    };

    // --yes; extra variable files go to terraform apply, relative to the caller.
    let run = stage.apply(&[
        "--yes",
        "--binary",
        &binary,
        "dev",
        "-var-file=infra/examples/weekly-business.tfvars",
    ]);
    run.assert_success();
    assert!(approves(&run), "{run}");
    assert!(
        run.one_call("terraform -chdir=$REPO/infra apply")
            .contains(" -var-file=$REPO/infra/examples/weekly-business.tfvars -var ami_id="),
        "{run}"
    );

    // Neither --yes nor CI: Terraform asks, and a person says yes.
    let run = stage.run("apply.sh", &["--binary", &binary, "dev"], Some("yes\n"));
    run.assert_success();
    assert!(!approves(&run), "{run}");
    assert!(run.stderr.contains("Enter a value:"), "{run}");

    // ... and nobody answers: Terraform cancels, nothing is validated.
    let run = stage.apply(&["--binary", &binary, "dev"]);
    run.assert_failed_at("terraform apply");
    assert!(!approves(&run), "{run}");
    assert!(run.calls_to("aws elbv2").is_empty(), "{run}");

    // CI=true approves like --yes.
    stage.set("CI", "true");
    let run = stage.apply(&["--binary", &binary, "dev"]);
    run.assert_success();
    assert!(approves(&run), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_variable_file_cannot_replace_the_baked_ami_or_its_region() {
    let svc = ServiceBuilder::memory().start().await;
    let mut stage = Stage::new();
    stage.set("STANDIN_URL", svc.base_url());
    let binary = stage.fake_binary();
    let var_file = stage.path("override.tfvars");
    fs::write(
        &var_file,
        "ami_id = \"ami-0fffffffffffffff0\"\nregion = \"us-west-2\"\nmax_size = \"6\"\n",
    )
    .expect("write the variable file");
    let run = stage.apply(&[
        "--yes",
        "--binary",
        &binary,
        "dev",
        &format!("-var-file={}", var_file.display()),
    ]);
    run.assert_success();
    // Terraform keeps the last assignment: the AMI apply.sh baked and its region.
    let applied = &stage.model("terraform.json")["workspaces"]["dev"];
    assert_eq!(applied["ami_id"], run.applied_ami().as_str(), "{run}");
    assert_eq!(applied["region"], REGION, "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_project_name_reaches_packer_terraform_and_the_ami_lookup() {
    let svc = ServiceBuilder::memory().start().await;
    let mut stage = Stage::new();
    stage
        .set("STANDIN_URL", svc.base_url())
        .set("AXUM_ASG_PROJECT", "teamb");
    let binary = stage.fake_binary();
    let run = stage.apply(&["--yes", "--binary", &binary, "qa"]);
    run.assert_success();
    assert!(
        run.one_call("aws ec2 describe-images")
            .contains("Name=tag:Project,Values=teamb"),
        "{run}"
    );
    assert!(
        run.one_call("packer build").contains("-var project=teamb"),
        "{run}"
    );
    assert!(
        run.one_call("terraform -chdir=$REPO/infra apply")
            .ends_with("-var project=teamb"),
        "{run}"
    );
    let aws = stage.model("aws.json");
    assert_eq!(
        aws["images"][0]["Tags"][0],
        json!({"Key": "Project", "Value": "teamb"})
    );
    assert_eq!(
        strings(&aws["launch_templates"], "LaunchTemplateName"),
        ["teamb-qa"]
    );

    stage.set("AXUM_ASG_PROJECT", "Team_B");
    let refused = stage.apply(&["--yes", "--binary", &binary, "qa"]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(refused.calls.is_empty(), "{refused}");
    assert!(
        refused
            .stderr
            .contains("AXUM_ASG_PROJECT=Team_B is not a project name"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_default_vpc_the_bake_needs_a_subnet_and_uses_it() {
    let svc = ServiceBuilder::memory().start().await;
    let mut stage = Stage::new();
    stage
        .set("STANDIN_URL", svc.base_url())
        .set("STANDIN_NO_DEFAULT_VPC", "1");
    let binary = stage.fake_binary();

    // No default VPC, no --packer-subnet: stop before Packer, saying what to do.
    let run = stage.apply(&["--yes", "--binary", &binary, "dev"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.calls_to("packer build").is_empty(), "{run}");
    assert!(
        run.stderr.contains("has no default VPC") && run.stderr.contains("--packer-subnet"),
        "{run}"
    );

    // A subnet that does not exist is refused before Packer too.
    let run = stage.apply(&[
        "--yes",
        "--binary",
        &binary,
        "--packer-subnet",
        "subnet-0f0f0f0f",
        "dev",
    ]);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.calls_to("packer build").is_empty(), "{run}");
    assert!(
        run.stderr
            .contains("--packer-subnet subnet-0f0f0f0f: no such subnet"),
        "{run}"
    );

    // The named subnet goes to Packer, and the deploy completes.
    let run = stage.apply(&[
        "--yes",
        "--binary",
        &binary,
        "--packer-subnet",
        "subnet-0a1b2c3d",
        "dev",
    ]);
    run.assert_success();
    assert!(
        run.one_call("packer build")
            .contains("-var subnet_id=subnet-0a1b2c3d"),
        "{run}"
    );
}

#[test]
fn bad_usage_exits_2_and_calls_nothing() {
    let stage = Stage::new();
    let binary = stage.fake_binary();
    for args in [
        vec!["--bogus"],
        vec!["Dev"],
        vec!["default"],
        vec!["-dev"],
        vec!["an-environment-name-too-long"],
        vec!["dev", "perf1"],
        vec!["--binary"],
        vec!["dev", "-var", "ami_id=ami-0123456789abcdef0"],
        vec!["dev", "-var=region=us-east-1"],
        vec!["dev", "-var", "project=other"],
        vec!["dev", "--packer-subnet", "sn-1"],
        vec!["-h"],
    ] {
        let mut all = vec!["--binary", binary.as_str()];
        all.extend(&args);
        let run = stage.apply(if args == ["--binary"] { &args } else { &all });
        assert_eq!(run.code, 2, "apply.sh {args:?}:\n{run}");
        assert!(run.calls.is_empty(), "apply.sh {args:?}:\n{run}");
    }
    let run = stage.apply(&["-h"]);
    assert!(
        run.stderr
            .contains("./apply.sh [--yes] [--binary PATH] [--packer-subnet SUBNET] [ENV]"),
        "{run}"
    );
    for args in [vec!["--bogus"], vec!["Dev"], vec!["dev", "perf1"]] {
        let run = stage.run("destroy.sh", &args, None);
        assert_eq!(run.code, 2, "destroy.sh {args:?}:\n{run}");
        assert!(run.calls.is_empty(), "destroy.sh {args:?}:\n{run}");
    }
    let run = stage.run("scripts/check_env.sh", &["--bogus"], None);
    assert_eq!(run.code, 2, "{run}");
}

// ---------------------------------------------------------------------------------------
// destroy.sh
// ---------------------------------------------------------------------------------------

const AMI_DEV: &str = "ami-0000000000000dee1";
const AMI_PERF1_LATEST: &str = "ami-00000000000000f13";
const AMI_PERF1_DEFAULT: &str = "ami-00000000000000f12";
const AMI_PERF1_OLD: &str = "ami-00000000000000f11";
const AMI_UNUSED: &str = "ami-0000000000000a0a0";
const AMI_OTHER_PROJECT: &str = "ami-0000000000000b0b0";
const DEPLOYED_REGION: &str = "us-west-2";

/// Two environments deployed in us-west-2: dev (to destroy) and perf1, whose launch template
/// has three versions: 1 (old), 2 (default), 3 (latest). Plus an AMI nothing uses and
/// another project's.
fn two_environments() -> Stage {
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

fn workspaces(stage: &Stage) -> Vec<String> {
    let terraform = stage.model("terraform.json");
    terraform["workspaces"]
        .as_object()
        .expect("workspaces")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn destroy_removes_the_stack_its_workspace_and_the_amis_nobody_uses() {
    let stage = two_environments();
    let run = stage.run("destroy.sh", &["--yes", "dev"], None);
    run.assert_success();

    let infra = "terraform -chdir=$REPO/infra";
    let r = DEPLOYED_REGION;
    let (dev, old, unused) = (AMI_DEV, AMI_PERF1_OLD, AMI_UNUSED);
    let expected = [
        format!("{infra} init -input=false"),
        format!("{infra} workspace list"),
        format!("{infra} workspace select dev"),
        format!("{infra} state pull"),
        // The AMI and region of the state, not AWS_REGION's.
        format!(
            "{infra} destroy -input=false -auto-approve -var ami_id={dev} -var region={r} \
             -var project=axum-asg"
        ),
        format!("{infra} workspace select default"),
        format!("{infra} workspace delete dev"),
        format!(
            "aws ec2 describe-images --region {r} --owners self \
             --filters Name=tag:Project,Values=axum-asg --output json"
        ),
        // Every launch template of the region, whoever made it.
        format!("aws ec2 describe-launch-templates --region {r} --output json"),
        format!(
            "aws ec2 describe-launch-template-versions --region {r} \
             --launch-template-id lt-0perf1 --versions $Latest $Default --output json"
        ),
        format!("aws ec2 deregister-image --region {r} --image-id {dev}"),
        format!(
            "aws ec2 delete-snapshot --region {r} --snapshot-id {}",
            snapshot_of(dev)
        ),
        format!("aws ec2 deregister-image --region {r} --image-id {old}"),
        format!(
            "aws ec2 delete-snapshot --region {r} --snapshot-id {}",
            snapshot_of(old)
        ),
        format!("aws ec2 deregister-image --region {r} --image-id {unused}"),
        format!(
            "aws ec2 delete-snapshot --region {r} --snapshot-id {}",
            snapshot_of(unused)
        ),
    ];
    assert_eq!(run.calls, expected, "{run}");

    // What is left: perf1's workspace and the AMIs its launch template launches, with their
    // snapshots; another project's AMI.
    assert_eq!(workspaces(&stage), ["default", "perf1"]);
    let mut left = stage.image_ids();
    left.sort();
    assert_eq!(
        left,
        [AMI_PERF1_DEFAULT, AMI_PERF1_LATEST, AMI_OTHER_PROJECT],
        "{run}"
    );
    let aws = stage.model("aws.json");
    let mut snapshots: Vec<String> = aws["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| s.as_str().expect("id").to_owned())
        .collect();
    snapshots.sort();
    assert_eq!(
        snapshots,
        [AMI_PERF1_DEFAULT, AMI_PERF1_LATEST, AMI_OTHER_PROJECT].map(snapshot_of)
    );
    assert_eq!(
        strings(&aws["launch_templates"], "LaunchTemplateName"),
        ["axum-asg-perf1"]
    );
    for kept in [AMI_PERF1_DEFAULT, AMI_PERF1_LATEST] {
        assert!(
            run.stderr.contains(&format!(
                "NOTE: keeping {kept} (axum-asg-{kept}): launch template axum-asg-perf1"
            )),
            "{run}"
        );
    }
    for removed in [AMI_DEV, AMI_PERF1_OLD, AMI_UNUSED] {
        assert!(
            run.stderr
                .contains(&format!("NOTE: deregistered {removed}")),
            "{run}"
        );
        assert!(
            run.stderr.contains(&format!(
                "NOTE: deleted snapshot {} of {removed}",
                snapshot_of(removed)
            )),
            "{run}"
        );
    }
}

#[test]
fn destroy_keeps_an_ami_that_a_launch_template_of_another_project_launches() {
    // Another copy of the stack (AXUM_ASG_PROJECT=teamb), or anything else, launches the
    // unused AMI: its template carries another Project tag, or none.
    let stage = two_environments();
    let mut aws = stage.model("aws.json");
    aws["launch_templates"]
        .as_array_mut()
        .expect("templates")
        .push(json!({
            "LaunchTemplateId": "lt-0teamb",
            "LaunchTemplateName": "teamb-qa",
            "Tags": [{"Key": "Project", "Value": "teamb"}],
            "DefaultVersionNumber": 1,
            "Versions": [{"VersionNumber": 1, "ImageId": AMI_UNUSED}],
        }));
    stage.save_model("aws.json", &aws);

    let run = stage.run("destroy.sh", &["--yes", "dev"], None);
    run.assert_success();
    assert!(stage.image_ids().contains(&AMI_UNUSED.to_owned()), "{run}");
    assert!(
        run.stderr.contains(&format!(
            "NOTE: keeping {AMI_UNUSED} (axum-asg-{AMI_UNUSED}): launch template teamb-qa"
        )),
        "{run}"
    );
    assert!(!stage.image_ids().contains(&AMI_DEV.to_owned()), "{run}");
}

#[test]
fn destroy_cleans_the_amis_of_the_project_the_environment_was_deployed_as() {
    // qa was deployed with AXUM_ASG_PROJECT=teamb: its state says so, and destroy.sh removes
    // teamb's AMIs even when run without the variable, never axum-asg's.
    let stage = two_environments();
    let mut terraform = stage.model("terraform.json");
    terraform["workspaces"]["qa"] = json!({"ami_id": AMI_OTHER_PROJECT, "region": DEPLOYED_REGION,
        "launch_template_id": "lt-0qa", "url": "http://127.0.0.1:9", "project": "other-project"});
    stage.save_model("terraform.json", &terraform);
    let run = stage.run("destroy.sh", &["--yes", "qa"], None);
    run.assert_success();
    assert!(
        run.stderr
            .contains("'qa' was deployed as project other-project"),
        "{run}"
    );
    let lookup = run.one_call("aws ec2 describe-images");
    assert!(
        lookup.contains("Name=tag:Project,Values=other-project"),
        "{run}"
    );
    assert!(
        !stage.image_ids().contains(&AMI_OTHER_PROJECT.to_owned()),
        "{run}"
    );
    assert!(stage.image_ids().contains(&AMI_UNUSED.to_owned()), "{run}");
}

#[test]
fn keep_amis_touches_no_ami_and_without_yes_terraform_asks() {
    let stage = two_environments();
    let before = stage.model("aws.json");
    let run = stage.run("destroy.sh", &["--keep-amis", "dev"], Some("yes\n"));
    run.assert_success();
    let destroy = run.one_call("terraform -chdir=$REPO/infra destroy");
    assert!(!destroy.contains("-auto-approve"), "{run}");
    assert!(run.stderr.contains("Enter a value:"), "{run}");
    assert!(run.calls_to("aws").is_empty(), "{run}");
    assert_eq!(workspaces(&stage), ["default", "perf1"]);
    let after = stage.model("aws.json");
    assert_eq!(after["images"], before["images"]);
    assert_eq!(after["snapshots"], before["snapshots"]);
}

#[test]
fn a_failed_terraform_destroy_keeps_the_workspace_and_every_ami() {
    let mut stage = two_environments();
    stage.set("STANDIN_FAIL", "terraform destroy");
    let before = stage.model("aws.json");
    let run = stage.run("destroy.sh", &["--yes", "dev"], None);
    run.assert_failed_at("terraform destroy");
    assert!(
        run.calls_to("terraform -chdir=$REPO/infra workspace delete")
            .is_empty(),
        "{run}"
    );
    assert!(run.calls_to("aws").is_empty(), "{run}");
    assert_eq!(workspaces(&stage), ["default", "dev", "perf1"]);
    assert_eq!(stage.model("aws.json"), before);
}

#[test]
fn destroying_an_environment_that_was_never_deployed_still_cleans_the_amis() {
    let stage = two_environments();
    let run = stage.run("destroy.sh", &["--yes", "nonreg1"], None);
    run.assert_success();
    assert!(
        run.stderr.contains("no Terraform workspace 'nonreg1'"),
        "{run}"
    );
    assert!(
        run.calls_to("terraform -chdir=$REPO/infra destroy")
            .is_empty(),
        "{run}"
    );
    // Without a state, the region is AWS_REGION's.
    assert!(
        run.calls_to("aws ec2 describe-images")
            .iter()
            .all(|call| call.contains(&format!("--region {REGION} "))),
        "{run}"
    );
    assert_eq!(workspaces(&stage), ["default", "dev", "perf1"]);
}

// ---------------------------------------------------------------------------------------
// scripts/check_env.sh
// ---------------------------------------------------------------------------------------

fn check_env(stage: &Stage, args: &[&str]) -> Run {
    stage.run("scripts/check_env.sh", args, None)
}

#[test]
fn check_env_passes_when_everything_is_there() {
    let stage = Stage::new();
    let run = check_env(&stage, &[]);
    run.assert_success();
    for note in [
        "NOTE: aws 2.17.0",
        "NOTE: packer 1.11.2 (>= 1.9)",
        "NOTE: terraform 1.9.8 (>= 1.5)",
        "NOTE: curl ",
        "NOTE: jq ",
        "NOTE: python3 ",
        "NOTE: git ",
        "NOTE: cargo ",
        "NOTE: readelf ",
        "cargo-zigbuild and zig",
        &format!("NOTE: AWS region {REGION} (from AWS_REGION)"),
        "NOTE: AWS credentials work: account 123456789012, arn:aws:sts::123456789012:assumed-role/deployer/standin",
    ] {
        assert!(run.stderr.contains(note), "{note}:\n{run}");
    }
    // --no-build leaves out the build tools.
    let run = check_env(&stage, &["--no-build"]);
    run.assert_success();
    assert!(!run.stderr.contains("NOTE: cargo "), "{run}");
}

#[test]
fn check_env_reports_a_missing_packer_and_still_checks_the_rest() {
    let stage = Stage::with_standins(&["aws", "terraform"]);
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(
            "ERROR: packer is not installed: install Packer 1.9 or newer: https://developer.hashicorp.com/packer/install"
        ),
        "{run}"
    );
    assert!(run.stderr.contains("NOTE: terraform 1.9.8"), "{run}");
    assert!(run.stderr.contains("NOTE: AWS credentials work"), "{run}");
    assert!(run.stderr.contains("ERROR: 1 check(s) failed"), "{run}");
}

#[test]
fn check_env_refuses_old_terraform_and_packer_versions() {
    let mut stage = Stage::new();
    stage.set("STANDIN_TERRAFORM_VERSION", "1.3.9");
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("ERROR: terraform 1.3.9 is too old, 1.5 or newer is needed"),
        "{run}"
    );

    stage.set("STANDIN_TERRAFORM_VERSION", "1.10.0");
    stage.set("STANDIN_PACKER_VERSION", "1.8.7");
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("ERROR: packer 1.8.7 is too old, 1.9 or newer"),
        "{run}"
    );
    // Versions compare as numbers: 1.10 is newer than 1.5.
    assert!(run.stderr.contains("NOTE: terraform 1.10.0"), "{run}");

    stage.set("STANDIN_PACKER_VERSION", "1.10.3");
    check_env(&stage, &["--no-build"]).assert_success();
}

#[test]
fn check_env_reports_credentials_that_do_not_work() {
    let mut stage = Stage::new();
    stage.set("STANDIN_FAIL", "aws sts get-caller-identity");
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("ERROR: AWS credentials do not work")
            && run.stderr.contains("aws configure"),
        "{run}"
    );
}

#[test]
fn check_env_finds_the_region_in_the_profile_or_reports_none() {
    let mut stage = Stage::new();
    stage.unset("AWS_REGION");
    let run = check_env(&stage, &["--no-build"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("ERROR: no AWS region: export AWS_REGION"),
        "{run}"
    );

    stage.set("STANDIN_PROFILE_REGION", "ap-south-1");
    let run = check_env(&stage, &["--no-build"]);
    run.assert_success();
    assert!(
        run.stderr
            .contains("NOTE: AWS region ap-south-1 (from the AWS CLI profile default)"),
        "{run}"
    );
    assert!(
        run.calls.contains(&"aws configure get region".to_owned()),
        "{run}"
    );
}

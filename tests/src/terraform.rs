//! The real Terraform and hashicorp/aws provider, applying the project's stack to moto.
//!
//! `./scripts/test.sh` writes a Terraform CLI configuration that installs the provider from
//! a local filesystem mirror when the machine has one (else from the registry) and exports
//! it as `TF_CLI_CONFIG_FILE`. A [`Deployment`] is a temporary copy of the repository's
//! tracked files, as a fresh clone holds them, beside a private moto server with AWS's
//! managed IAM policies. Its `infra/` gains exactly one file, [`OVERRIDE_FILE`], which points
//! the provider at moto; nothing of the repository is edited. Every command runs with the
//! deployment's credentials: moto's test ones, or, once [`Deployment::enforce_iam`] has
//! turned moto's IAM enforcement on, those of an administrator it created.
//!
//! Every command is bounded in time: moto does not implement everything Terraform may wait
//! for (an instance refresh, for one), and a test must fail rather than hang.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::{Moto, repo_root, tool};

/// The one file a test adds to its copy of `infra/`.
pub const OVERRIDE_FILE: &str = "moto_override.tf";

/// How long one Terraform command may take: an apply of the whole stack takes one to two
/// minutes against moto (the load balancer's waiter polls for about a minute).
pub const TERRAFORM_LIMIT: Duration = Duration::from_secs(480);

/// The AWS services the stack's Terraform calls.
const SERVICES: [&str; 10] = [
    "acm",
    "autoscaling",
    "cloudwatch",
    "dynamodb",
    "ec2",
    "elbv2",
    "iam",
    "logs",
    "ssm",
    "sts",
];

/// An access key of moto's.
#[derive(Debug, Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

impl AccessKey {
    /// The key moto accepts while it does not enforce IAM.
    pub fn testing() -> Self {
        Self {
            id: "testing".to_owned(),
            secret: "testing".to_owned(),
        }
    }

    /// The environment that makes the AWS CLI, the SDKs and Terraform sign with this key.
    pub fn env(&self) -> [(&'static str, &str); 2] {
        [
            ("AWS_ACCESS_KEY_ID", self.id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.as_str()),
        ]
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Outcome {
    pub what: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code, 0, "{self}");
        self
    }

    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert_ne!(self.code, 0, "{self}");
        self
    }

    /// Both output streams, for looking up messages wherever a tool printed them.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} exited {}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

/// A copy of the repository and a moto of its own, ready for `terraform` in `infra/`.
#[derive(Debug)]
pub struct Deployment {
    pub moto: Moto,
    pub region: String,
    /// Who the deployment's own commands sign as.
    credentials: AccessKey,
    checkout: tempfile::TempDir,
}

impl Deployment {
    /// Starts moto, copies the repository, adds the provider override and runs
    /// `terraform init`.
    pub async fn start(region: &str) -> Self {
        let moto = Moto::start_for_terraform().await;
        let checkout = tempfile::tempdir().expect("temporary folder");
        copy_tracked_files(repo_root(), checkout.path());
        let deployment = Self {
            moto,
            region: region.to_owned(),
            credentials: AccessKey::testing(),
            checkout,
        };
        std::fs::write(
            deployment.infra().join(OVERRIDE_FILE),
            provider_override(&deployment.moto.endpoint),
        )
        .expect("write the provider override");
        deployment
            .terraform(None, &["init", "-input=false", "-no-color"])
            .await
            .assert_success();
        deployment
    }

    /// The copy of the repository.
    pub fn root(&self) -> &Path {
        self.checkout.path()
    }

    /// The copy's Terraform root module.
    pub fn infra(&self) -> PathBuf {
        self.root().join("infra")
    }

    /// The environment every command runs with: the AWS CLI and SDKs pointed at moto with
    /// test credentials (no profile or config file of the machine's), Terraform's CLI
    /// configuration from the test script, and the test tools first on PATH.
    pub fn env(&self) -> Vec<(String, String)> {
        let tools = tool("aws")
            .parent()
            .expect("a folder")
            .display()
            .to_string();
        let cli_config = std::env::var("TF_CLI_CONFIG_FILE").unwrap_or_default();
        assert!(
            Path::new(&cli_config).is_file(),
            "TF_CLI_CONFIG_FILE does not name a file ({cli_config:?}): run the tests through ./scripts/test.sh, which writes it"
        );
        [
            ("AWS_ENDPOINT_URL", self.moto.endpoint.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("AWS_ACCESS_KEY_ID", self.credentials.id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.credentials.secret.clone()),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config".to_owned()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials".to_owned(),
            ),
            ("AWS_PAGER", String::new()),
            ("TF_CLI_CONFIG_FILE", cli_config),
            ("TF_IN_AUTOMATION", "1".to_owned()),
            ("CHECKPOINT_DISABLE", "1".to_owned()),
            (
                "PATH",
                format!("{tools}:{}", std::env::var("PATH").unwrap_or_default()),
            ),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// `terraform ARGS` in the copy's `infra/`, in `workspace` (through TF_WORKSPACE, so
    /// several workspaces can run at once; None: the default one).
    pub async fn terraform(&self, workspace: Option<&str>, args: &[&str]) -> Outcome {
        let mut env = Vec::new();
        if let Some(workspace) = workspace {
            env.push(("TF_WORKSPACE", workspace));
        }
        self.run(
            "terraform",
            args,
            &self.infra(),
            &env,
            &["TF_WORKSPACE"],
            TERRAFORM_LIMIT,
        )
        .await
    }

    /// `terraform plan` in `workspace` with the AMI, the region and `vars` (NAME=VALUE each),
    /// as apply.sh would plan it.
    pub async fn plan(&self, workspace: &str, ami: &str, vars: &[&str]) -> Outcome {
        let mut args = vec![
            "plan".to_owned(),
            "-input=false".to_owned(),
            "-no-color".to_owned(),
            format!("-var=ami_id={ami}"),
            format!("-var=region={}", self.region),
        ];
        args.extend(vars.iter().map(|var| format!("-var={var}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.terraform(Some(workspace), &args).await
    }

    /// Creates a workspace (without selecting it for anybody else: commands name theirs).
    pub async fn new_workspace(&self, name: &str) {
        self.terraform(None, &["workspace", "new", "-no-color", name])
            .await
            .assert_success();
    }

    /// Runs one of the copy's scripts (`apply.sh`, `scripts/scale.sh`...) with bash.
    pub async fn script(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let path = self.root().join(script).display().to_string();
        let mut all = vec![path.as_str()];
        all.extend_from_slice(args);
        self.run("bash", &all, self.root(), env, &[], TERRAFORM_LIMIT * 2)
            .await
    }

    /// Runs `program` with the deployment's environment plus `env`, minus `unset`, for at
    /// most `limit`.
    pub async fn run(
        &self,
        program: &str,
        args: &[&str],
        dir: &Path,
        env: &[(&str, &str)],
        unset: &[&str],
        limit: Duration,
    ) -> Outcome {
        let what = format!("{program} {}", args.join(" "));
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .envs(self.env())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The caller's own settings must not steer the tools.
        for name in [
            "TF_WORKSPACE",
            "TF_CLI_ARGS",
            "TF_DATA_DIR",
            "AWS_PROFILE",
            "CI",
        ] {
            if !env.iter().any(|(key, _)| *key == name) {
                command.env_remove(name);
            }
        }
        for name in unset {
            if !env.iter().any(|(key, _)| key == name) {
                command.env_remove(name);
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {what}: {err}"));
        let output = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        Outcome {
            what,
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The AWS CLI against moto, in the deployment's region; its JSON answer.
    #[track_caller]
    pub fn aws(&self, args: &[&str]) -> Value {
        let output = self.aws_command(args);
        assert!(
            output.status.success(),
            "aws {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        if text.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("aws {}: not JSON ({err}): {text}", args.join(" ")))
    }

    /// The document of a role's inline policy (moto answers it as JSON or as a JSON string).
    #[track_caller]
    pub fn role_policy(&self, role: &str, policy: &str) -> Value {
        let answer = self.aws(&[
            "iam",
            "get-role-policy",
            "--role-name",
            role,
            "--policy-name",
            policy,
        ]);
        match &answer["PolicyDocument"] {
            Value::String(encoded) => serde_json::from_str(encoded).expect("policy JSON"),
            document => document.clone(),
        }
    }

    /// The AWS CLI's error for a call that must fail (a resource that is gone).
    #[track_caller]
    pub fn aws_error(&self, args: &[&str]) -> String {
        let output = self.aws_command(args);
        assert!(
            !output.status.success(),
            "aws {} succeeded: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    fn aws_command(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(tool("aws"))
            .args(args)
            .args(["--output", "json"])
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .expect("run aws")
    }

    /// An IAM user holding exactly `policies` (name, document), each as a customer managed
    /// policy attached to it, as an administrator would set up an operator; its access key.
    pub fn create_user(&self, name: &str, policies: &[(String, Value)]) -> AccessKey {
        self.aws(&["iam", "create-user", "--user-name", name]);
        for (policy, document) in policies {
            let created = self.aws(&[
                "iam",
                "create-policy",
                "--policy-name",
                &format!("{name}-{policy}"),
                "--policy-document",
                &document.to_string(),
            ]);
            let arn = created["Policy"]["Arn"].as_str().expect("a policy ARN");
            self.aws(&[
                "iam",
                "attach-user-policy",
                "--user-name",
                name,
                "--policy-arn",
                arn,
            ]);
        }
        let key = self.aws(&["iam", "create-access-key", "--user-name", name]);
        AccessKey {
            id: key["AccessKey"]["AccessKeyId"]
                .as_str()
                .expect("an access key id")
                .to_owned(),
            secret: key["AccessKey"]["SecretAccessKey"]
                .as_str()
                .expect("a secret key")
                .to_owned(),
        }
    }

    /// Turns moto's IAM enforcement on: from now on every call must be signed by a user of
    /// moto's IAM and be allowed by its policies (moto's `INITIAL_NO_AUTH_ACTION_COUNT`, set
    /// to 0 through `/moto-api/reset-auth` once the setup's calls are made). The deployment's
    /// own commands then sign as an administrator created here.
    pub async fn enforce_iam(&mut self) {
        let everything = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        });
        let admin = self.create_user("administrator", &[("all".to_owned(), everything)]);
        crate::service::client()
            .post(format!("{}/moto-api/reset-auth", self.moto.endpoint))
            .header("Content-Type", "text/plain")
            .body("0")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("turn moto's IAM enforcement on");
        self.credentials = admin;
    }

    /// An AMI baked as apply.sh would have Packer bake it, through the stand-in packer
    /// (`tests/fixtures/packer-on-moto.sh`): its id.
    pub async fn bake_ami(&self) -> String {
        let manifest = self.root().join("bake-manifest.json");
        let manifest_text = manifest.display().to_string();
        let packer = self.root().join("packer").display().to_string();
        let region = format!("region={}", self.region);
        self.run(
            &packer_on_moto().display().to_string(),
            &[
                "build",
                "-var",
                &region,
                "-var",
                "git_revision=test",
                "-var",
                "inputs_hash=test",
                &packer,
            ],
            self.root(),
            &[("CANDIDATES_PACKER_MANIFEST", &manifest_text)],
            &[],
            Duration::from_secs(120),
        )
        .await
        .assert_success();
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(&manifest).expect("the stand-in wrote its manifest"),
        )
        .expect("manifest JSON");
        let artifact = manifest["builds"][0]["artifact_id"]
            .as_str()
            .expect("an artifact");
        artifact
            .split_once(':')
            .expect("region:ami-id")
            .1
            .to_owned()
    }
}

/// The data of the latest version of the launch template `name`.
pub fn latest_launch_template(stack: &Deployment, name: &str) -> Value {
    stack.aws(&[
        "ec2",
        "describe-launch-template-versions",
        "--launch-template-name",
        name,
        "--versions",
        "$Latest",
    ])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        .clone()
}

/// Nothing of the environment `name` is left: group, load balancer, target group, alarms,
/// table, launch template, role.
#[track_caller]
pub fn assert_nothing_left(stack: &Deployment, name: &str) {
    let groups = stack.aws(&[
        "autoscaling",
        "describe-auto-scaling-groups",
        "--auto-scaling-group-names",
        name,
    ]);
    assert_eq!(
        groups["AutoScalingGroups"],
        serde_json::json!([]),
        "{name}: group left"
    );
    let balancers = stack.aws(&["elbv2", "describe-load-balancers"]);
    assert!(
        !balancers.to_string().contains(&format!("\"{name}\"")),
        "{name}: load balancer left: {balancers}"
    );
    let target_groups = stack.aws(&["elbv2", "describe-target-groups"]);
    assert!(
        !target_groups.to_string().contains(&format!("\"{name}\"")),
        "{name}: target group left: {target_groups}"
    );
    let alarms = stack.aws(&["cloudwatch", "describe-alarms", "--alarm-name-prefix", name]);
    assert_eq!(
        alarms["MetricAlarms"],
        serde_json::json!([]),
        "{name}: alarms left"
    );
    let tables = stack.aws(&["dynamodb", "list-tables"]);
    assert!(
        !tables.to_string().contains(name),
        "{name}: table left: {tables}"
    );
    let templates = stack.aws(&["ec2", "describe-launch-templates"]);
    assert!(
        !templates.to_string().contains(&format!("\"{name}\"")),
        "{name}: launch template left: {templates}"
    );
    let error = stack.aws_error(&[
        "iam",
        "get-role",
        "--role-name",
        &format!("{name}-instance"),
    ]);
    assert!(error.contains("NoSuchEntity"), "{name}: role left: {error}");
}

/// The stand-in for Packer that registers its AMI in moto.
pub fn packer_on_moto() -> PathBuf {
    repo_root().join("tests/fixtures/packer-on-moto.sh")
}

/// The provider configuration a test adds to its copy of `infra/`: Terraform merges an
/// `*_override.tf` file's provider block into the module's, so the module keeps its region
/// and default tags and gains moto's endpoints. The credentials come from the environment
/// (the deployment's, or those a test runs a script with).
fn provider_override(endpoint: &str) -> String {
    let endpoints: String = SERVICES
        .iter()
        .map(|service| format!("    {service:<11} = \"{endpoint}\"\n"))
        .collect();
    format!(
        "# Added by the test suite to its temporary copy: every AWS call goes to moto.\n\
         provider \"aws\" {{\n\
        \x20 skip_credentials_validation = true\n\
        \x20 skip_metadata_api_check     = true\n\
        \x20 skip_region_validation      = true\n\
        \n\
        \x20 endpoints {{\n{endpoints}  }}\n\
         }}\n"
    )
}

/// Copies the repository's files (tracked ones with the working tree's changes, and new ones
/// git does not ignore) from `from` to `to`, keeping their modes: what the next commit's
/// clone would hold. A user's own Terraform files stay behind: state, and the variable files
/// Terraform loads by itself (`infra/terraform.tfvars`, `infra/*.auto.tfvars`), which would
/// change what the tests apply.
fn copy_tracked_files(from: &Path, to: &Path) {
    let output = std::process::Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(from)
        .output()
        .expect("run git ls-files");
    assert!(output.status.success(), "git ls-files failed");
    for name in output
        .stdout
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
    {
        let name = std::str::from_utf8(name).expect("a UTF-8 path");
        let users_own = name.contains(".terraform")
            || name.contains("tfstate")
            || (name.starts_with("infra/")
                && name.matches('/').count() == 1
                && name.ends_with(".tfvars"));
        if users_own {
            continue;
        }
        let source = from.join(name);
        if !source.is_file() {
            continue; // deleted in the working tree
        }
        let target = to.join(name);
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("create a folder");
        std::fs::copy(&source, &target)
            .unwrap_or_else(|err| panic!("copy {}: {err}", source.display()));
    }
}

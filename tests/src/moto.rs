//! moto's server: a real DynamoDB (and Auto Scaling) API on 127.0.0.1.
//!
//! `./scripts/test.sh` starts one shared server and exports `MOTO_ENDPOINT`; tests
//! isolate themselves with a table of their own. Tests that stop and restart the server
//! start a private one with `moto_server` from `.tools/bin`.

use std::process::Stdio;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use candidates::store::create_table_request;
use tokio::process::{Child, Command};

pub const REGION: &str = "us-east-1";

#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    /// The port of a private server; the shared one is not this process's to restart.
    port: Option<u16>,
    child: Option<Child>,
    /// Where a recording server writes every request it receives.
    recording: Option<tempfile::TempDir>,
    /// Settings of a private server (moto reads them from its environment).
    settings: Vec<(&'static str, &'static str)>,
}

impl Moto {
    /// The server `./scripts/test.sh` started for the whole run.
    pub fn shared() -> Self {
        let endpoint = std::env::var("MOTO_ENDPOINT").unwrap_or_else(|_| {
            panic!("MOTO_ENDPOINT is not set: run the tests through ./scripts/test.sh, which starts moto")
        });
        Self {
            endpoint,
            port: None,
            child: None,
            recording: None,
            settings: Vec::new(),
        }
    }

    /// A server of this test's own, which it may stop and start again.
    pub async fn start_private() -> Self {
        Self::start_on(crate::free_port()).await
    }

    /// A private server on a given port (for example one a service was told about
    /// before anything listened there).
    pub async fn start_on(port: u16) -> Self {
        Self::start_private_on(port, None).await
    }

    /// A private server that records every request it receives (moto's recorder), to
    /// observe which API calls a client really makes.
    pub async fn start_recording() -> Self {
        let recording = tempfile::tempdir().expect("recording folder");
        Self::start_private_on(crate::free_port(), Some(recording)).await
    }

    /// A private server for the stack itself, applied by Terraform: with AWS's managed IAM
    /// policies loaded, as the instance role attaches AmazonSSMManagedInstanceCore.
    pub async fn start_for_terraform() -> Self {
        Self::start_private_with(
            crate::free_port(),
            None,
            vec![("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")],
        )
        .await
    }

    async fn start_private_on(port: u16, recording: Option<tempfile::TempDir>) -> Self {
        Self::start_private_with(port, recording, Vec::new()).await
    }

    async fn start_private_with(
        port: u16,
        recording: Option<tempfile::TempDir>,
        settings: Vec<(&'static str, &'static str)>,
    ) -> Self {
        let mut moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port: Some(port),
            child: None,
            recording,
            settings,
        };
        moto.start_again().await;
        moto
    }

    /// The DynamoDB operations (`GetItem`, ...) recorded so far that were signed with
    /// `access_key`, i.e. sent by that client and no other.
    pub async fn recorded_operations(
        &self,
        access_key: &str,
    ) -> std::collections::BTreeSet<String> {
        assert!(
            self.recording.is_some(),
            "start the server with start_recording()"
        );
        let text = crate::service::client()
            .get(format!(
                "{}/moto-api/recorder/download-recording",
                self.endpoint
            ))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("download the recording")
            .text()
            .await
            .expect("recording");
        let credential = format!("Credential={access_key}/");
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|entry| {
                entry["headers"]["Authorization"]
                    .as_str()
                    .is_some_and(|auth| auth.contains(&credential))
            })
            .filter_map(|entry| {
                let target = entry["headers"]["X-Amz-Target"].as_str()?;
                Some(target.strip_prefix("DynamoDB_20120810.")?.to_owned())
            })
            .collect()
    }

    /// Stops a private server (its data is lost, as with a real outage of a fresh store).
    pub async fn stop(&mut self) {
        let mut child = self
            .child
            .take()
            .expect("only a private moto can be stopped");
        child.kill().await.expect("kill moto");
    }

    /// (Re)starts a private server on its port and waits until it answers.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "moto is already running");
        let port = self.port.expect("only a private moto can be started again");
        let mut command = Command::new(crate::tool("moto_server"));
        command.envs(self.settings.iter().copied());
        if let Some(dir) = &self.recording {
            command
                .env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"));
        }
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start moto_server");
        self.child = Some(child);
        let client = self.dynamodb();
        crate::eventually("moto to answer", Duration::from_secs(30), || async {
            client.list_tables().send().await.ok()
        })
        .await;
        if self.recording.is_some() {
            crate::service::client()
                .post(format!(
                    "{}/moto-api/recorder/start-recording",
                    self.endpoint
                ))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .expect("start moto's recorder");
        }
    }

    /// The environment that points the AWS CLI (v1 reads AWS_DEFAULT_REGION) and the
    /// project's scripts at this server, with the test suite's CLI first on PATH.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        let aws_dir = crate::tool("aws")
            .parent()
            .expect("a folder")
            .display()
            .to_string();
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
            (
                "PATH",
                format!("{aws_dir}:{}", std::env::var("PATH").unwrap_or_default()),
            ),
        ]
    }

    /// Runs the AWS CLI against this server and returns its trimmed standard output.
    pub fn aws(&self, args: &[&str]) -> String {
        let output = std::process::Command::new(crate::tool("aws"))
            .args(args)
            .envs(self.cli_env())
            .output()
            .expect("run aws");
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A launch template and an Auto Scaling group (min 2, max 4, desired 2) named
    /// `name`, as the stack's own group would be.
    pub fn create_auto_scaling_group(&self, name: &str) {
        let template = format!("{name}-lt");
        self.aws(&[
            "ec2",
            "create-launch-template",
            "--launch-template-name",
            &template,
            "--launch-template-data",
            r#"{"ImageId":"ami-12c6146b","InstanceType":"t3.micro"}"#,
        ]);
        self.aws(&[
            "autoscaling",
            "create-auto-scaling-group",
            "--auto-scaling-group-name",
            name,
            "--launch-template",
            &format!("LaunchTemplateName={template}"),
            "--min-size",
            "2",
            "--max-size",
            "4",
            "--desired-capacity",
            "2",
            "--availability-zones",
            "us-east-1a",
            "us-east-1b",
        ]);
    }

    /// Publishes one datapoint of the group's CPUUtilization (AWS/EC2, by
    /// AutoScalingGroupName), as detailed monitoring would.
    pub fn put_group_cpu(&self, group: &str, percent: &str) {
        self.aws(&[
            "cloudwatch",
            "put-metric-data",
            "--namespace",
            "AWS/EC2",
            "--metric-name",
            "CPUUtilization",
            "--dimensions",
            &format!("AutoScalingGroupName={group}"),
            "--value",
            percent,
        ]);
    }

    /// An SDK client for setting up and inspecting what the service did.
    pub fn dynamodb(&self) -> Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .build_https(),
            )
            .build();
        Client::from_conf(config)
    }

    /// Creates the candidates table as `infra/` declares it: partition key, sorted index.
    pub async fn create_table(&self, table: &str) {
        create_table_request(&self.dynamodb(), table)
            .send()
            .await
            .unwrap_or_else(|err| panic!("create table {table}: {err:?}"));
    }

    /// A fresh table with a unique name.
    pub async fn new_table(&self) -> String {
        let table = crate::unique("candidates");
        self.create_table(&table).await;
        table
    }
}

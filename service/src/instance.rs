//! Which machine is answering: the EC2 instance id, found once in the background.
//!
//! Order: `CANDIDATES_INSTANCE_ID` when set (no network call at all), then IMDSv2
//! through aws-config's client with short timeouts and a single attempt, then the host
//! name. Resolution starts with the process but nothing waits for it except the
//! responses that print the id, so start-up never pays for an IMDS that is not there.

use std::sync::Arc;
use std::time::Duration;

use aws_config::imds;
use aws_config::provider_config::ProviderConfig;
use tokio::sync::OnceCell;

const IMDS_INSTANCE_ID_PATH: &str = "/latest/meta-data/instance-id";
const IMDS_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
const IMDS_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// The instance id, shared by every request; cheap to clone.
#[derive(Clone, Debug)]
pub struct InstanceIdentity {
    id: Arc<OnceCell<String>>,
    override_id: Option<String>,
}

/// Where the id came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Configured,
    Imds,
    Hostname,
}

impl InstanceIdentity {
    /// Starts resolving in the background and returns at once.
    pub fn resolve_in_background(override_id: Option<String>) -> Self {
        let identity = Self {
            id: Arc::new(OnceCell::new()),
            override_id,
        };
        let background = identity.clone();
        tokio::spawn(async move {
            background.get().await;
        });
        identity
    }

    /// The id, waiting for the first resolution if it is still under way.
    pub async fn get(&self) -> &str {
        self.id
            .get_or_init(|| async {
                let (id, source) = resolve(self.override_id.clone()).await;
                tracing::info!(instance_id = %id, source = ?source, "instance identity resolved");
                id
            })
            .await
    }
}

async fn resolve(override_id: Option<String>) -> (String, Source) {
    if let Some(id) = override_id.filter(|id| !id.trim().is_empty()) {
        return (id, Source::Configured);
    }
    if !imds_disabled() {
        match from_imds().await {
            Ok(id) => return (id, Source::Imds),
            Err(err) => {
                tracing::debug!(error = %err, "no instance id from IMDS; using the host name")
            }
        }
    }
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    (host, Source::Hostname)
}

/// Honours the SDK's own switch, so a laptop can skip the probe entirely.
fn imds_disabled() -> bool {
    std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

async fn from_imds() -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let client = imds::Client::builder()
        .configure(&ProviderConfig::default().with_http_client(crate::aws::http_client()))
        .connect_timeout(IMDS_CONNECT_TIMEOUT)
        .read_timeout(IMDS_READ_TIMEOUT)
        .operation_timeout(IMDS_CONNECT_TIMEOUT + IMDS_READ_TIMEOUT)
        .max_attempts(1)
        .build();
    let id = client.get(IMDS_INSTANCE_ID_PATH).await?;
    let id = id.as_ref().trim();
    if id.is_empty() {
        return Err("IMDS returned an empty instance id".into());
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_configured_id_wins_without_any_network_call() {
        let identity = InstanceIdentity::resolve_in_background(Some("i-0123456789abcdef0".into()));
        assert_eq!(identity.get().await, "i-0123456789abcdef0");
    }

    // The IMDS and host-name paths are exercised by the black-box tests against a fake
    // IMDS on 127.0.0.1: a unit test here would send packets to 169.254.169.254.
}

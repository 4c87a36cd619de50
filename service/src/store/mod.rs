//! Where candidates live: one trait, two backends, chosen by `CANDIDATES_STORE`.
//!
//! Both backends list candidates in ascending UTF-8 byte order of the name and resume
//! strictly after a cursor's name, so a cursor issued on one page (or by one instance)
//! means the same thing everywhere.

mod dynamodb;
mod dynamodb_table;
mod instrumented;
mod sqlite;

/// The most inserts one SQLite transaction takes (group commit).
pub(crate) use sqlite::MAX_BATCH as SQLITE_MAX_BATCH;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::candidate::{Candidate, CandidateName, Page, PageLimit};

pub use dynamodb::{
    DynamoDbStore, IAM_ACTIONS, LIST_INDEX, LIST_SHARD_ATTRIBUTE, PARTITION_KEY, get_request,
    list_shard, put_request, sdk_config,
};
pub use dynamodb_table::create_table_request;
pub use instrumented::{Instrumented, flush_store_error_log, note_failure};
pub use sqlite::SqliteStore;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time. Transient by nature:
    /// the same call may succeed once the store is back.
    #[error("store unavailable during {operation}: {source}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    pub fn unavailable(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            operation,
            source: source.into(),
        }
    }
}

#[async_trait]
pub trait CandidateStore: Send + Sync + fmt::Debug {
    /// Inserts the candidate; inserting an existing one changes nothing (idempotent).
    async fn put(&self, name: &CandidateName) -> Result<(), StoreError>;

    /// A read that follows an acknowledged `put` sees it.
    async fn get(&self, name: &CandidateName) -> Result<Option<Candidate>, StoreError>;

    /// Up to `limit` candidates in ascending order, strictly after `after` when given.
    async fn list(
        &self,
        limit: PageLimit,
        after: Option<&CandidateName>,
    ) -> Result<Page, StoreError>;

    /// Cheap round trip proving the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Cheap check that a write would be accepted now by a store that answers `ping`
    /// (the health check asks `ping` first). Where answering means accepting writes
    /// (DynamoDB), there is nothing more to know. It reports its own failures (the
    /// wrapper that counts the other calls' does not see it: see `Instrumented`).
    async fn ping_write(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Sets the store's gauges from its current state; called when metrics are scraped.
    fn record_gauges(&self) {}

    /// A short name for logs and metric labels.
    fn backend(&self) -> &'static str;
}

/// Turns a name read back from a store into a `CandidateName`, as it is stored (names
/// written before the Unicode rule included: see `CandidateName::stored`). Only this
/// service writes the stores, so an invalid one means someone edited the data by hand:
/// it is skipped with a warning rather than failing every listing that would include it.
fn parse_stored_name(backend: &'static str, raw: String) -> Option<CandidateName> {
    match CandidateName::stored(raw) {
        Ok(name) => Some(name),
        Err(err) => {
            tracing::warn!(backend, error = %err, "skipping an invalid name found in the store");
            None
        }
    }
}

/// The parsed `CANDIDATES_STORE` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite://<path>`: a file, created with its folder on first run.
    SqliteFile(std::path::PathBuf),
    /// `sqlite::memory:`: lost when the process exits; handy for demos and tests.
    SqliteMemory,
    /// `dynamodb://<table>`: region, credentials and endpoint from the AWS SDK chain.
    DynamoDb { table: String },
}

impl FromStr for StoreUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        const HINT: &str = "expected sqlite://<path>, sqlite::memory: or dynamodb://<table>";
        if raw == "sqlite::memory:" {
            return Ok(Self::SqliteMemory);
        }
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(format!("'{raw}' has no file path; {HINT}"));
            }
            return Ok(Self::SqliteFile(path.into()));
        }
        if let Some(table) = raw.strip_prefix("dynamodb://") {
            return validate_table_name(table)
                .map(|()| Self::DynamoDb {
                    table: table.to_owned(),
                })
                .map_err(|why| format!("'{raw}': {why}"));
        }
        Err(format!("'{raw}' is not a store URL; {HINT}"))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SqliteFile(path) => write!(f, "sqlite://{}", path.display()),
            Self::SqliteMemory => f.write_str("sqlite::memory:"),
            Self::DynamoDb { table } => write!(f, "dynamodb://{table}"),
        }
    }
}

/// DynamoDB's own rule: 3 to 255 characters of `[a-zA-Z0-9_.-]`.
fn validate_table_name(table: &str) -> Result<(), &'static str> {
    let valid_chars = table
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if (3..=255).contains(&table.len()) && valid_chars {
        Ok(())
    } else {
        Err("a DynamoDB table name is 3 to 255 characters of letters, digits, '_', '-' and '.'")
    }
}

/// Settings every backend honours so a store call can never outlive the request.
#[derive(Debug, Clone, Copy)]
pub struct StoreTimeouts {
    /// The whole call, retries included.
    pub operation: Duration,
    /// Establishing a connection.
    pub connect: Duration,
}

impl StoreTimeouts {
    /// Leaves a margin under the request timeout so the store's own error (and its
    /// 503) wins the race against the request timeout.
    pub fn within(request_timeout: Duration) -> Self {
        let operation = request_timeout
            .saturating_sub(Duration::from_millis(500))
            .max(Duration::from_millis(500));
        Self {
            operation,
            connect: operation.min(Duration::from_secs(2)),
        }
    }
}

/// Opens the configured store. Never fails because the store is down: that is reported
/// by `ping` and recovered from on the next call. It fails only for a configuration the
/// process can never work with (for example DynamoDB without a region).
pub async fn open(
    url: &StoreUrl,
    timeouts: StoreTimeouts,
) -> Result<Arc<dyn CandidateStore>, String> {
    let store: Arc<dyn CandidateStore> = match url {
        StoreUrl::SqliteFile(path) => {
            Arc::new(Instrumented::new(SqliteStore::file(path.clone(), timeouts)))
        }
        StoreUrl::SqliteMemory => Arc::new(Instrumented::new(SqliteStore::memory(timeouts))),
        StoreUrl::DynamoDb { table } => Arc::new(Instrumented::new(
            DynamoDbStore::from_environment(table.clone(), timeouts).await?,
        )),
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse() {
        assert_eq!(
            "sqlite://data/candidates.db".parse(),
            Ok(StoreUrl::SqliteFile("data/candidates.db".into()))
        );
        assert_eq!(
            "sqlite:///var/lib/candidates/c.db".parse(),
            Ok(StoreUrl::SqliteFile("/var/lib/candidates/c.db".into()))
        );
        assert_eq!("sqlite::memory:".parse(), Ok(StoreUrl::SqliteMemory));
        assert_eq!(
            "dynamodb://axum-asg-dev-candidates".parse(),
            Ok(StoreUrl::DynamoDb {
                table: "axum-asg-dev-candidates".into()
            })
        );
    }

    #[test]
    fn bad_store_urls_say_what_is_expected() {
        for bad in [
            "",
            "postgres://x",
            "sqlite://",
            "dynamodb://",
            "dynamodb://ab",
            "dynamodb://has space",
            "dynamodb://slash/table",
        ] {
            let err = bad.parse::<StoreUrl>().expect_err(bad);
            assert!(
                err.contains("sqlite") || err.contains("DynamoDB"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn store_urls_display_as_they_parse() {
        for raw in ["sqlite://data/c.db", "sqlite::memory:", "dynamodb://tbl"] {
            let url: StoreUrl = raw.parse().expect("valid");
            assert_eq!(url.to_string(), raw);
        }
    }

    #[test]
    fn store_calls_finish_before_the_request_times_out() {
        let t = StoreTimeouts::within(Duration::from_secs(10));
        assert_eq!(t.operation, Duration::from_millis(9500));
        assert_eq!(t.connect, Duration::from_secs(2));
        let tiny = StoreTimeouts::within(Duration::from_millis(600));
        assert!(tiny.operation >= Duration::from_millis(500));
    }
}

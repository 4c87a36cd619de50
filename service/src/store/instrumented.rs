//! Logs and counts store failures in one place, for every backend.
//!
//! Every failure is counted; the log has at most one line a second per backend and
//! operation, with the count and one failure's cause (`telemetry::aggregate`). A store
//! that is down fails every request that needs it, and its SDK's error chains are long:
//! a warning per failure was 19 MB of log in ten seconds at 50 connections.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use metrics::{counter, gauge};

use super::{CandidateStore, StoreError};
use crate::candidate::{Candidate, CandidateName, Page, PageLimit};
use crate::telemetry::aggregate::{self, Line, Sampled};

/// Wraps a store: each failure is counted in `store_errors_total{backend, operation}`
/// and logged in aggregate; `store_up` follows the latest outcome.
#[derive(Debug)]
pub struct Instrumented<S> {
    inner: S,
}

impl<S: CandidateStore> Instrumented<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    fn observe<T>(
        &self,
        operation: &'static str,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let backend = self.inner.backend();
        match &result {
            Ok(_) => gauge!("store_up", "backend" => backend).set(1.0),
            Err(err) => {
                gauge!("store_up", "backend" => backend).set(0.0);
                counter!("store_errors_total", "backend" => backend, "operation" => operation)
                    .increment(1);
                note_failure(backend, operation, err);
            }
        }
        result
    }
}

#[async_trait]
impl<S: CandidateStore> CandidateStore for Instrumented<S> {
    async fn put(&self, name: &CandidateName) -> Result<(), StoreError> {
        let result = self.inner.put(name).await;
        self.observe("put", result)
    }

    async fn get(&self, name: &CandidateName) -> Result<Option<Candidate>, StoreError> {
        let result = self.inner.get(name).await;
        self.observe("get", result)
    }

    async fn list(
        &self,
        limit: PageLimit,
        after: Option<&CandidateName>,
    ) -> Result<Page, StoreError> {
        let result = self.inner.list(limit, after).await;
        self.observe("list", result)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let result = self.inner.ping().await;
        self.observe("ping", result)
    }

    /// Not observed here: a backend answers it from what it already knows (its own
    /// writes, a recent probe), and a probe that fails is reported by the backend, once
    /// per probe rather than once per health check.
    async fn ping_write(&self) -> Result<(), StoreError> {
        self.inner.ping_write().await
    }

    fn record_gauges(&self) {
        self.inner.record_gauges();
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

type FailureKey = (&'static str, &'static str);

/// The failures not logged yet, by backend and operation (a handful of each).
static FAILURES: LazyLock<Mutex<HashMap<FailureKey, Arc<Sampled>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn window(key: FailureKey) -> Arc<Sampled> {
    let mut windows = FAILURES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Arc::clone(windows.entry(key).or_default())
}

/// Counts a failure for the log: the first after a quiet second is written at once,
/// with its cause; the rest when their second is over.
pub fn note_failure(backend: &'static str, operation: &'static str, err: &StoreError) {
    let now = aggregate::now_ms();
    if let Some(line) = window((backend, operation)).note_at(now, || err.to_string()) {
        write_failures(backend, operation, &line);
    }
}

/// Writes the store failures not logged yet, if their second is over. Called once a
/// second, so the last failures of an outage are logged even when none follow.
pub fn flush_store_error_log() {
    let now = aggregate::now_ms();
    let windows: Vec<(FailureKey, Arc<Sampled>)> = FAILURES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .map(|(key, window)| (*key, Arc::clone(window)))
        .collect();
    for ((backend, operation), window) in windows {
        if let Some(line) = window.flush_at(now) {
            write_failures(backend, operation, &line);
        }
    }
}

fn write_failures(backend: &str, operation: &str, line: &Line) {
    tracing::warn!(
        backend,
        operation,
        failed = line.count,
        error = %line.sample,
        window_ms = aggregate::WINDOW_MS,
        "store calls failed"
    );
}

//! Logs and counts store failures in one place, for every backend.

use async_trait::async_trait;
use metrics::{counter, gauge};

use super::{CandidateStore, StoreError};
use crate::candidate::{Candidate, CandidateName, Page, PageLimit};

/// Wraps a store: each failure is logged with its cause and counted in
/// `store_errors_total{backend, operation}`; `store_up` follows the latest outcome.
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
                tracing::warn!(backend, operation, error = %err, "store call failed");
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

    async fn ping_write(&self) -> Result<(), StoreError> {
        let result = self.inner.ping_write().await;
        self.observe("ping_write", result)
    }

    fn record_gauges(&self) {
        self.inner.record_gauges();
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

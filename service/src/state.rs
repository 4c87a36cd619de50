//! What every handler is given: the application's shared parts and the per-request
//! limits taken from the configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::api::{FullListings, StoreHealth};
use crate::computation::ComputationPool;
use crate::instance::InstanceIdentity;
use crate::lifecycle::Lifecycle;
use crate::store::CandidateStore;

/// Everything a handler may need. The router shares one behind an `Arc`, so a
/// handler's `State` costs one reference count rather than one per part.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn CandidateStore>,
    pub pool: ComputationPool,
    /// The bound on `GET /candidates` without `limit` streaming at once.
    pub full_listings: FullListings,
    pub instance: InstanceIdentity,
    /// The last look at the store, shared by the `?details` of the next second.
    pub store_health: Arc<StoreHealth>,
    pub lifecycle: Lifecycle,
    pub metrics: PrometheusHandle,
    pub limits: Limits,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.backend())
            .field("pool", &self.pool)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Per-request bounds taken from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub default_iterations: u32,
    pub max_iterations: u32,
    pub request_timeout: Duration,
    /// How long a refused computation waits before its 503 is sent.
    pub refusal_delay: Duration,
}

//! `candidates`: read the configuration, start logging, open the store, serve until a
//! signal, drain, exit.

use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use candidates::api::{FullListings, StoreHealth};
use candidates::computation::ComputationPool;
use candidates::config::Config;
use candidates::connection::{self, Registry};
use candidates::instance::InstanceIdentity;
use candidates::lifecycle::{self, Lifecycle, ShutdownPolicy, Signals};
use candidates::memory::Trimmer;
use candidates::store::{self, StoreTimeouts};
use candidates::{AppState, Limits, api, telemetry};

// The system's malloc by default: once the request path stopped allocating much, mimalloc
// bought no CPU per request on one core and half the idle memory (README, tuning choices);
// `--features mimalloc` brings it back.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::load();
    // Dropped last, as main returns: the lines still buffered are written then.
    let _logs = telemetry::init_tracing(config.log_format, config.log_buffer_bytes());
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let signals = Signals::register().map_err(|err| format!("cannot handle signals: {err}"))?;
    let metrics = telemetry::metrics_handle();
    let instance = InstanceIdentity::resolve_in_background(config.instance_id.clone());
    let store = store::open(
        &config.store,
        StoreTimeouts::within(config.request_timeout()),
    )
    .await?;
    let pool = ComputationPool::start(config.workers(), config.computation_queue as usize);
    let connections = Registry::new(connection::fitted_connection_limit(
        config.max_connections as usize,
        connection::descriptor_limit(),
    ));
    if connections.max() < config.max_connections as usize {
        tracing::warn!(
            configured = config.max_connections,
            max_connections = connections.max(),
            "CANDIDATES_MAX_CONNECTIONS lowered to fit the open-file limit (ulimit -n)"
        );
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| {
            format!(
                "cannot listen on {} (CANDIDATES_LISTEN): {err}",
                config.listen
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|err| format!("cannot read the listening address: {err}"))?;
    tracing::info!(
        %addr,
        store = %config.store,
        computation_workers = pool.workers(),
        computation_queue = pool.queue_capacity(),
        full_listings = config.full_listings,
        max_connections = connections.max(),
        "listening"
    );

    // Report the store's state without delaying the first request; a store that is
    // down is retried on every call and recovers by itself.
    let probe = store.clone();
    tokio::spawn(async move {
        match probe.ping().await {
            Ok(()) => tracing::info!(backend = probe.backend(), "store connected"),
            Err(err) => tracing::warn!(error = %err, "store not reachable yet; serving anyway"),
        }
    });
    tokio::spawn(upkeep(metrics.clone(), Arc::clone(&connections)));

    let lifecycle = Lifecycle::default();
    let state = AppState {
        store,
        pool,
        full_listings: FullListings::new(config.full_listings as usize),
        instance,
        store_health: Arc::new(StoreHealth::default()),
        lifecycle: lifecycle.clone(),
        metrics,
        limits: Limits {
            default_iterations: config.computation_iterations,
            max_iterations: config.computation_max_iterations,
            request_timeout: config.request_timeout(),
            refusal_delay: config.computation_refusal_delay(),
        },
    };
    let policy = ShutdownPolicy {
        drain: config.shutdown_drain(),
        in_flight_limit: config.in_flight_limit(),
    };
    lifecycle::serve(
        listener,
        candidates::app(state),
        lifecycle,
        signals,
        policy,
        config.connection_limits(),
        connections,
    )
    .await;
    Ok(())
}

/// Every second: writes the summaries of refused requests and store failures not yet
/// logged, and hands memory back once a burst of connections is over; every five:
/// keeps the metrics recorder's memory bounded between scrapes.
async fn upkeep(
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    connections: Arc<Registry>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut trimmer = Trimmer::default();
    for second in 0u64.. {
        tick.tick().await;
        api::flush_refusal_log();
        store::flush_store_error_log();
        let (open, peak) = connections.open_and_peak();
        trimmer.observe(open, peak);
        if second % 5 == 0 {
            metrics.run_upkeep();
        }
    }
}

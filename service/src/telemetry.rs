//! Logs (tracing) and metrics (Prometheus) set-up.
//!
//! Log lines (JSON by default: `json_lines`) are copied into a buffer that a thread of
//! its own writes to standard output in batches (`log_writer`), so that serving a
//! request never waits for a `write(2)`, nor for a log reader that fell behind. Events
//! that repeat are logged in aggregate (`aggregate`).

pub mod aggregate;
mod json_lines;
mod log_writer;

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use self::json_lines::JsonLines;
use self::log_writer::LogWriter;
pub use self::log_writer::{DEFAULT_MAX_BUFFERED, LogGuard};
use crate::config::LogFormat;
use crate::store::SQLITE_MAX_BATCH;

/// `RUST_LOG` overrides this. The AWS SDK is chatty at info level about credentials.
const DEFAULT_LOG_FILTER: &str = "info,aws_config=warn,aws_smithy_runtime=warn";

/// Latency buckets in seconds, from a health check (~100 µs) to the request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Inserts per SQLite transaction (group commit): the powers of two from one to its
/// maximum.
const BATCH_SIZE_BUCKETS: [f64; SQLITE_MAX_BATCH.ilog2() as usize + 1] = powers_of_two();

// The last bucket is the maximum itself.
const _: () = assert!(SQLITE_MAX_BATCH.is_power_of_two());

const fn powers_of_two<const N: usize>() -> [f64; N] {
    let mut buckets = [0.0; N];
    let mut i = 0;
    while i < N {
        buckets[i] = (1u64 << i) as f64;
        i += 1;
    }
    buckets
}

/// JSON lines when asked, or when nobody is watching a terminal (systemd's journal,
/// a pipe, a file); human-readable lines otherwise; at most `buffer_bytes` of them
/// waiting for standard output. Keep the guard until the process exits: dropping it
/// writes the lines still buffered.
pub fn init_tracing(format: LogFormat, buffer_bytes: usize) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let (writer, guard) = LogWriter::spawn(std::io::stdout(), buffer_bytes)
        .unwrap_or_else(|err| panic!("cannot start the log writer thread: {err}"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    if json {
        builder.json().event_format(JsonLines::new()).init();
    } else {
        builder.init();
    }
    guard
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".to_owned()),
                    LATENCY_BUCKETS,
                )
                .expect("latency buckets are not empty")
                .set_buckets_for_metric(
                    Matcher::Full("sqlite_write_batch_size".to_owned()),
                    &BATCH_SIZE_BUCKETS,
                )
                .expect("batch size buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests build several apps):
            // this handle then renders only what it recorded, which is fine for them.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

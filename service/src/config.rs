//! The service's whole configuration: one typed struct, from flags or `CANDIDATES_*`
//! environment variables, with defaults that run on a laptop.
//!
//! A bad value stops the start with a message that names the variable, so a typo in a
//! systemd environment file is found at boot rather than at the first request.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::connection::ConnectionLimits;
use crate::store::StoreUrl;

/// The port the service listens on by default; the load balancer's target group uses
/// the same one.
pub const DEFAULT_PORT: u16 = 8000;

/// How long an idle keep-alive connection is kept by default: longer than the load
/// balancer's idle timeout (60 s), so the load balancer is the side that closes it and
/// never sends a request on a connection this side is closing (which it answers 502).
pub const DEFAULT_KEEPALIVE_TIMEOUT_SECS: u32 = 75;

/// The stop rule, the one bound of every shutdown setting: from SIGTERM to exit, a stop
/// (the drain, then the requests in flight, each done within the request timeout plus a
/// second) takes less than this. It is the systemd unit's `TimeoutStopSec`, past which
/// systemd kills the process mid-request:
///
/// `CANDIDATES_SHUTDOWN_DRAIN_SECS + CANDIDATES_REQUEST_TIMEOUT_SECS + 1 < STOP_TIMEOUT_SECS`
///
/// The service refuses to start with settings that break it; Terraform's plan checks the
/// same sum (a precondition on the target group, `local.systemd_stop_timeout_secs`).
pub const STOP_TIMEOUT_SECS: u32 = 90;
/// The longest drain the stop rule allows (with the shortest request timeout, 1 s).
pub const MAX_SHUTDOWN_DRAIN_SECS: u32 = STOP_TIMEOUT_SECS - 3;
/// The longest request timeout the stop rule allows (with no drain).
pub const MAX_REQUEST_TIMEOUT_SECS: u32 = STOP_TIMEOUT_SECS - 2;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "candidates",
    version,
    about = "Candidates API: axum on SQLite or DynamoDB, built to scale in an EC2 Auto Scaling Group",
    long_about = "Candidates API: axum on SQLite or DynamoDB, built to scale in an EC2 Auto Scaling \
                  Group.\n\nEvery option can also be set through the environment variable shown \
                  with it. AWS region, credentials and endpoint come from the AWS SDK's standard \
                  chain (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, the instance role)."
)]
pub struct Config {
    /// Address and port to listen on (port 0 picks a free one and logs it).
    #[arg(long, env = "CANDIDATES_LISTEN", value_name = "ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
          value_parser = named::<SocketAddr>("CANDIDATES_LISTEN", "an address and port such as 0.0.0.0:8000"))]
    pub listen: SocketAddr,

    /// Where candidates are stored: sqlite://<path> (created on first run),
    /// sqlite::memory: or dynamodb://<table>.
    #[arg(long, env = "CANDIDATES_STORE", value_name = "URL", default_value = "sqlite://data/candidates.db",
          value_parser = store_url)]
    pub store: StoreUrl,

    /// Chain length of /computation when the request gives no ?iterations=.
    #[arg(long, env = "CANDIDATES_COMPUTATION_ITERATIONS", value_name = "N", default_value_t = 50_000,
          value_parser = bounded("CANDIDATES_COMPUTATION_ITERATIONS", 1, MAX_ITERATIONS_LIMIT))]
    pub computation_iterations: u32,

    /// The largest ?iterations= a request may ask for.
    #[arg(long, env = "CANDIDATES_COMPUTATION_MAX_ITERATIONS", value_name = "N", default_value_t = 1_000_000,
          value_parser = bounded("CANDIDATES_COMPUTATION_MAX_ITERATIONS", 1, MAX_ITERATIONS_LIMIT))]
    pub computation_max_iterations: u32,

    /// Threads that run /computation [default: the number of CPU cores].
    #[arg(long, env = "CANDIDATES_COMPUTATION_WORKERS", value_name = "N",
          value_parser = bounded("CANDIDATES_COMPUTATION_WORKERS", 1, 1024))]
    pub computation_workers: Option<u32>,

    /// Computations that may wait for a free worker; beyond that /computation answers
    /// 503 with Retry-After. 0 accepts work only when a worker is idle.
    #[arg(long, env = "CANDIDATES_COMPUTATION_QUEUE", value_name = "N", default_value_t = 64,
          value_parser = bounded("CANDIDATES_COMPUTATION_QUEUE", 0, 100_000))]
    pub computation_queue: u32,

    /// A refused /computation (queue full) waits this long before its 503 is sent: a
    /// client refused at once comes straight back, and a flood of such clients would
    /// take the CPU the computations need. 0 answers at once.
    #[arg(long, env = "CANDIDATES_COMPUTATION_REFUSAL_DELAY_MS", value_name = "MS", default_value_t = 100,
          value_parser = bounded("CANDIDATES_COMPUTATION_REFUSAL_DELAY_MS", 0, 10_000))]
    pub computation_refusal_delay_ms: u32,

    /// Longest time a request may take; past it the client gets 503. Store calls give
    /// up a little earlier so their own 503 wins.
    #[arg(long, env = "CANDIDATES_REQUEST_TIMEOUT_SECS", value_name = "SECS", default_value_t = 10,
          value_parser = bounded("CANDIDATES_REQUEST_TIMEOUT_SECS", 1, MAX_REQUEST_TIMEOUT_SECS))]
    pub request_timeout_secs: u32,

    /// Longest a client may take to send a request head (request line and headers),
    /// counted from the connection's start or from the first byte after an idle spell;
    /// then the connection is closed.
    #[arg(long, env = "CANDIDATES_HEADER_READ_TIMEOUT_SECS", value_name = "SECS", default_value_t = 10,
          value_parser = bounded("CANDIDATES_HEADER_READ_TIMEOUT_SECS", 1, 300))]
    pub header_read_timeout_secs: u32,

    /// Longest a keep-alive connection may wait idle for its next request. Keep it above
    /// the load balancer's idle timeout (60 s), so that the load balancer closes first.
    #[arg(long, env = "CANDIDATES_KEEPALIVE_TIMEOUT_SECS", value_name = "SECS", default_value_t = DEFAULT_KEEPALIVE_TIMEOUT_SECS,
          value_parser = bounded("CANDIDATES_KEEPALIVE_TIMEOUT_SECS", 1, 3600))]
    pub keepalive_timeout_secs: u32,

    /// On SIGTERM or Ctrl-C, keep serving this long with /gtg answering 503 so a load
    /// balancer stops sending traffic, then stop accepting and finish in-flight requests
    /// (each bounded by the request timeout). A second signal skips the wait. The drain
    /// plus the request timeout plus 1 s must stay under 90 s, systemd's stop timeout.
    #[arg(long, env = "CANDIDATES_SHUTDOWN_DRAIN_SECS", value_name = "SECS", default_value_t = 0,
          value_parser = bounded("CANDIDATES_SHUTDOWN_DRAIN_SECS", 0, MAX_SHUTDOWN_DRAIN_SECS))]
    pub shutdown_drain_secs: u32,

    /// Full listings (GET /candidates without limit) that may stream at once; beyond
    /// them one is refused at once with 503 and Retry-After, so that the admitted ones
    /// finish in time and other requests keep their latency. A listing of 100,000
    /// candidates takes about a fifth of a second of CPU.
    #[arg(long, env = "CANDIDATES_FULL_LISTINGS", value_name = "N", default_value_t = 4,
          value_parser = bounded("CANDIDATES_FULL_LISTINGS", 1, 10_000))]
    pub full_listings: u32,

    /// Connections that may be open at once. At the limit a new connection closes the
    /// one waiting longest without a request in flight (idle, or still sending its
    /// request head), or is refused if every connection has a request in flight.
    /// Lowered at start to leave 64 descriptors under the open-file limit.
    #[arg(long, env = "CANDIDATES_MAX_CONNECTIONS", value_name = "N", default_value_t = 10_000,
          value_parser = bounded("CANDIDATES_MAX_CONNECTIONS", 1, 1_000_000))]
    pub max_connections: u32,

    /// Log lines (in KiB) that may wait for standard output. Beyond that new lines are
    /// dropped and counted (log_lines_dropped_total) rather than making requests and
    /// the health check wait for a log reader that fell behind.
    #[arg(long, env = "CANDIDATES_LOG_BUFFER_KIB", value_name = "KIB", default_value_t = 4096,
          value_parser = bounded("CANDIDATES_LOG_BUFFER_KIB", 64, 1_048_576))]
    pub log_buffer_kib: u32,

    /// Instance id to report instead of asking EC2's metadata service (IMDSv2).
    #[arg(long, env = "CANDIDATES_INSTANCE_ID", value_name = "ID")]
    pub instance_id: Option<String>,

    /// Log format: json, pretty, or auto (JSON unless standard output is a terminal).
    #[arg(long, env = "CANDIDATES_LOG_FORMAT", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
}

/// The hard ceiling on any iteration setting: about two seconds of hashing per request.
const MAX_ITERATIONS_LIMIT: u32 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

impl Config {
    /// Reads flags and environment; prints the problem (or `--help`) and exits when the
    /// configuration cannot be used.
    pub fn load() -> Self {
        let config = Self::try_parse().unwrap_or_else(|err| err.exit());
        config.validated().unwrap_or_else(|message| {
            eprintln!("error: {message}");
            std::process::exit(2);
        })
    }

    /// Checks that the options agree with each other.
    pub fn validated(self) -> Result<Self, String> {
        if self.computation_iterations > self.computation_max_iterations {
            return Err(format!(
                "CANDIDATES_COMPUTATION_ITERATIONS ({}) must not exceed \
                 CANDIDATES_COMPUTATION_MAX_ITERATIONS ({})",
                self.computation_iterations, self.computation_max_iterations
            ));
        }
        if self.computation_refusal_delay() >= self.request_timeout() {
            return Err(format!(
                "CANDIDATES_COMPUTATION_REFUSAL_DELAY_MS ({}) must be shorter than \
                 CANDIDATES_REQUEST_TIMEOUT_SECS ({} s)",
                self.computation_refusal_delay_ms, self.request_timeout_secs
            ));
        }
        if self.longest_stop() >= Duration::from_secs(u64::from(STOP_TIMEOUT_SECS)) {
            return Err(format!(
                "CANDIDATES_SHUTDOWN_DRAIN_SECS ({}) + CANDIDATES_REQUEST_TIMEOUT_SECS ({}) + 1 s \
                 must stay under {STOP_TIMEOUT_SECS} s, the systemd unit's stop timeout, or a \
                 stop would be killed mid-request",
                self.shutdown_drain_secs, self.request_timeout_secs
            ));
        }
        Ok(self)
    }

    /// The longest a stop may take from SIGTERM to exit: the drain, then the requests
    /// in flight (see [`STOP_TIMEOUT_SECS`]).
    pub fn longest_stop(&self) -> Duration {
        self.shutdown_drain() + self.in_flight_limit()
    }

    pub fn log_buffer_bytes(&self) -> usize {
        self.log_buffer_kib as usize * 1024
    }

    pub fn computation_refusal_delay(&self) -> Duration {
        Duration::from_millis(u64::from(self.computation_refusal_delay_ms))
    }

    /// The time limits of every connection (see `connection`).
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read: Duration::from_secs(u64::from(self.header_read_timeout_secs)),
            keep_alive: Duration::from_secs(u64::from(self.keepalive_timeout_secs)),
            response: self.in_flight_limit(),
        }
    }

    /// Handlers are cut off at the request timeout; a second more covers sending the
    /// response. Past it a connection is closed, and shutdown stops waiting for it.
    pub fn in_flight_limit(&self) -> Duration {
        self.request_timeout() + Duration::from_secs(1)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.request_timeout_secs))
    }

    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_secs(u64::from(self.shutdown_drain_secs))
    }

    pub fn workers(&self) -> NonZeroUsize {
        self.computation_workers
            .and_then(|n| NonZeroUsize::new(n as usize))
            .or_else(|| std::thread::available_parallelism().ok())
            .unwrap_or(NonZeroUsize::MIN)
    }
}

/// A parser for `T` whose error names the variable and says what is expected.
fn named<T: FromStr>(
    variable: &'static str,
    expected: &'static str,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |raw| {
        raw.trim()
            .parse()
            .map_err(|_| format!("{variable} must be {expected}"))
    }
}

/// A whole number in `min..=max`, with an error that names the variable.
fn bounded(
    variable: &'static str,
    min: u32,
    max: u32,
) -> impl Fn(&str) -> Result<u32, String> + Clone + Send + Sync + 'static {
    move |raw| match raw.trim().parse::<u32>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => Err(format!(
            "{variable} must be a whole number from {min} to {max}"
        )),
    }
}

fn store_url(raw: &str) -> Result<StoreUrl, String> {
    raw.trim()
        .parse()
        .map_err(|why| format!("CANDIDATES_STORE: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::try_parse_from(std::iter::once("candidates").chain(args.iter().copied()))
            .map_err(|err| err.to_string())
            .and_then(Config::validated)
    }

    #[test]
    fn defaults_run_locally() {
        // clap also reads CANDIDATES_* here: run the unit tests without them set.
        let config = parse(&[]).expect("defaults are valid");
        assert_eq!(config.listen, "0.0.0.0:8000".parse().expect("addr"));
        assert_eq!(config.listen.port(), DEFAULT_PORT);
        assert_eq!(
            config.store,
            StoreUrl::SqliteFile("data/candidates.db".into())
        );
        assert_eq!(config.computation_iterations, 50_000);
        assert_eq!(config.computation_queue, 64);
        assert_eq!(config.request_timeout(), Duration::from_secs(10));
        assert_eq!(
            config.computation_refusal_delay(),
            Duration::from_millis(100)
        );
        assert_eq!(
            config.connection_limits(),
            ConnectionLimits {
                header_read: Duration::from_secs(10),
                keep_alive: Duration::from_secs(75),
                response: Duration::from_secs(11),
            }
        );
        assert_eq!(config.shutdown_drain(), Duration::ZERO);
        assert_eq!(config.full_listings, 4);
        assert_eq!(config.max_connections, 10_000);
        assert_eq!(config.log_buffer_bytes(), 4 << 20);
        assert_eq!(config.log_format, LogFormat::Auto);
        assert!(config.workers().get() >= 1);
    }

    #[test]
    fn flags_override_defaults() {
        let config = parse(&[
            "--listen=127.0.0.1:0",
            "--store=dynamodb://my-table",
            "--computation-workers=3",
            "--computation-queue=0",
            "--shutdown-drain-secs=15",
            "--instance-id=i-123",
            "--log-format=json",
        ])
        .expect("valid");
        assert_eq!(config.listen.port(), 0);
        assert_eq!(
            config.store,
            StoreUrl::DynamoDb {
                table: "my-table".into()
            }
        );
        assert_eq!(config.workers().get(), 3);
        assert_eq!(config.computation_queue, 0);
        assert_eq!(config.shutdown_drain(), Duration::from_secs(15));
        assert_eq!(config.instance_id.as_deref(), Some("i-123"));
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("--listen=nowhere", "CANDIDATES_LISTEN"),
            ("--store=mysql://x", "CANDIDATES_STORE"),
            ("--computation-workers=0", "CANDIDATES_COMPUTATION_WORKERS"),
            ("--computation-queue=-1", "CANDIDATES_COMPUTATION_QUEUE"),
            (
                "--computation-iterations=abc",
                "CANDIDATES_COMPUTATION_ITERATIONS",
            ),
            (
                "--request-timeout-secs=0",
                "CANDIDATES_REQUEST_TIMEOUT_SECS",
            ),
            (
                "--shutdown-drain-secs=9999",
                "CANDIDATES_SHUTDOWN_DRAIN_SECS",
            ),
            (
                "--header-read-timeout-secs=0",
                "CANDIDATES_HEADER_READ_TIMEOUT_SECS",
            ),
            (
                "--keepalive-timeout-secs=x",
                "CANDIDATES_KEEPALIVE_TIMEOUT_SECS",
            ),
            (
                "--computation-refusal-delay-ms=-1",
                "CANDIDATES_COMPUTATION_REFUSAL_DELAY_MS",
            ),
            ("--full-listings=0", "CANDIDATES_FULL_LISTINGS"),
            ("--max-connections=0", "CANDIDATES_MAX_CONNECTIONS"),
            ("--log-buffer-kib=1", "CANDIDATES_LOG_BUFFER_KIB"),
        ];
        for (flag, variable) in cases {
            let err = parse(&[flag]).expect_err(flag);
            assert!(err.contains(variable), "{flag}: {err}");
        }
    }

    #[test]
    fn options_must_agree_with_each_other() {
        let err = parse(&[
            "--computation-iterations=2000",
            "--computation-max-iterations=1000",
        ])
        .expect_err("iterations above the maximum");
        assert!(
            err.contains("CANDIDATES_COMPUTATION_MAX_ITERATIONS"),
            "{err}"
        );
        let err = parse(&[
            "--request-timeout-secs=1",
            "--computation-refusal-delay-ms=1000",
        ])
        .expect_err("a refusal delay as long as the request timeout");
        assert!(
            err.contains("CANDIDATES_COMPUTATION_REFUSAL_DELAY_MS"),
            "{err}"
        );
    }

    #[test]
    fn a_stop_fits_in_the_units_stop_timeout() {
        // At the rule's edge: 60 + 28 + 1 = 89 < 90.
        let config = parse(&["--shutdown-drain-secs=60", "--request-timeout-secs=28"])
            .expect("a stop of 89 s");
        assert_eq!(config.longest_stop(), Duration::from_secs(89));
        for (drain, timeout) in [(60, 29), (MAX_SHUTDOWN_DRAIN_SECS, 2), (1, 88)] {
            let err = parse(&[
                &format!("--shutdown-drain-secs={drain}"),
                &format!("--request-timeout-secs={timeout}"),
            ])
            .expect_err("a stop of 90 s or more");
            assert!(
                err.contains("CANDIDATES_SHUTDOWN_DRAIN_SECS")
                    && err.contains("CANDIDATES_REQUEST_TIMEOUT_SECS")
                    && err.contains("90 s"),
                "{drain} + {timeout}: {err}"
            );
        }
        // Each bound alone is the rule with the other setting at its least.
        let longest_drain = parse(&[
            &format!("--shutdown-drain-secs={MAX_SHUTDOWN_DRAIN_SECS}"),
            "--request-timeout-secs=1",
        ])
        .expect("the longest drain");
        assert_eq!(
            longest_drain.longest_stop(),
            Duration::from_secs(u64::from(STOP_TIMEOUT_SECS) - 1)
        );
        let longest_timeout = parse(&[&format!(
            "--request-timeout-secs={MAX_REQUEST_TIMEOUT_SECS}"
        )])
        .expect("the longest request timeout");
        assert_eq!(
            longest_timeout.longest_stop(),
            Duration::from_secs(u64::from(STOP_TIMEOUT_SECS) - 1)
        );
        for flag in [
            format!("--shutdown-drain-secs={}", MAX_SHUTDOWN_DRAIN_SECS + 1),
            format!("--request-timeout-secs={}", MAX_REQUEST_TIMEOUT_SECS + 1),
        ] {
            assert!(parse(&[&flag]).is_err(), "{flag}");
        }
    }
}

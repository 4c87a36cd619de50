//! Start-to-stop of the HTTP server: serving, draining on a signal, bounded shutdown.
//!
//! On SIGTERM or Ctrl-C: `/gtg` turns 503 at once so the load balancer marks this target
//! unhealthy, the server keeps serving for the drain period (traffic already routed here
//! still succeeds), then it stops accepting connections and waits for in-flight
//! requests, at most `in_flight_limit`, and returns. A second signal ends the drain early.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::oneshot;

/// Whether the process is on its way out; shared by the server and the health check.
#[derive(Clone, Debug, Default)]
pub struct Lifecycle {
    draining: Arc<AtomicBool>,
}

impl Lifecycle {
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// SIGTERM (systemd, the ASG terminating the instance) and SIGINT (Ctrl-C), registered
/// before serving so a signal that arrives during start-up is not lost.
#[derive(Debug)]
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    pub fn register() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ShutdownPolicy {
    /// How long to keep serving after the first signal.
    pub drain: Duration,
    /// How long in-flight requests may still run once the listener is closed.
    pub in_flight_limit: Duration,
}

/// Serves `app` until a signal, then drains and stops as described above.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    lifecycle: Lifecycle,
    mut signals: Signals,
    policy: ShutdownPolicy,
) -> std::io::Result<()> {
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    let drain = policy.drain;
    let shutdown = async move {
        let first = signals.recv().await;
        lifecycle.start_draining();
        tracing::info!(
            signal = first,
            drain_secs = drain.as_secs(),
            "shutdown requested; draining"
        );
        tokio::select! {
            () = tokio::time::sleep(drain) => {}
            second = signals.recv() => {
                tracing::info!(signal = second, "second signal; ending the drain early");
            }
        }
        tracing::info!("listener closed; finishing in-flight requests");
        let _ = closed_tx.send(());
    };

    // Small responses must leave at once, not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .into_future();
    let in_flight_deadline = async {
        match closed_rx.await {
            Ok(()) => tokio::time::sleep(policy.in_flight_limit).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server => {
            tracing::info!("stopped");
            result
        }
        () = in_flight_deadline => {
            tracing::warn!(
                limit_secs = policy.in_flight_limit.as_secs(),
                "in-flight requests did not finish in time; stopping anyway"
            );
            Ok(())
        }
    }
}

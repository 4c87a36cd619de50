//! Start-to-stop of the HTTP server: serving, draining on a signal, bounded shutdown.
//!
//! On SIGTERM or Ctrl-C: `/gtg` turns 503 at once so the load balancer marks this target
//! unhealthy, the server keeps serving for the drain period (traffic already routed here
//! still succeeds), then it stops accepting connections, closes those with no request in
//! flight, waits for the requests in flight, at most `in_flight_limit`, and returns. A
//! second signal ends the drain early.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::serve::{Listener, ListenerExt};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::connection::{self, ConnectionLimits, Registry};

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
    limits: ConnectionLimits,
    connections: Arc<Registry>,
) {
    let drain = policy.drain;
    let shutdown_requested = async move {
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
    };
    tokio::pin!(shutdown_requested);

    // Small responses must leave at once, not wait for Nagle's algorithm.
    let mut listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
    });
    let (stop, stopping) = watch::channel(false);
    // Every connection holds a receiver; `closed()` resolves once all have ended.
    let (all_closed, open_connection) = watch::channel(());
    loop {
        tokio::select! {
            (stream, _peer) = listener.accept() => {
                let app = app.clone();
                let stopping = stopping.clone();
                let open = open_connection.clone();
                let connections = Arc::clone(&connections);
                tokio::spawn(async move {
                    connection::serve(stream, app, limits, connections, stopping).await;
                    drop(open);
                });
            }
            () = &mut shutdown_requested => break,
        }
    }
    drop(listener);
    drop(open_connection);
    tracing::info!("listener closed; finishing in-flight requests");
    // Idle connections close now; busy ones after their response.
    let _ = stop.send(true);
    match tokio::time::timeout(policy.in_flight_limit, all_closed.closed()).await {
        Ok(()) => tracing::info!("stopped"),
        Err(_) => tracing::warn!(
            limit_secs = policy.in_flight_limit.as_secs(),
            "in-flight requests did not finish in time; stopping anyway"
        ),
    }
}

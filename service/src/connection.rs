//! One accepted TCP connection: HTTP/1.1 served by hyper, timed by this module.
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive connection waits for
//! its next request, so it cannot tell a client stuck half-way through a request head
//! (close it soon) from an idle load-balancer connection (keep it: an ALB that reuses a
//! connection the target is closing answers its client 502). Each connection therefore
//! carries a [`Clock`] that knows which of three phases it is in, and a watchdog closes
//! it when its phase lasts too long:
//!
//! - **waiting for a request head**, from the accept or from the first byte after an
//!   idle spell: at most `header_read` (slowloris, half request lines, silent sockets);
//! - **idle** between requests: at most `keep_alive`, longer than the load balancer's
//!   own idle timeout, so that the load balancer is always the side that closes;
//! - **busy**, from a request head to the last byte of its response: at most
//!   `response`. Handlers are cut off at the request timeout, so only a client that
//!   does not read its response meets this one.
//!
//! On shutdown, a connection with no request in flight closes at once; one with a
//! request finishes it and then closes.
//!
//! The number of open connections is bounded (`registry`): at the bound a new connection
//! closes the one waiting longest without a request in flight.
//!
//! Only HTTP/1.1 (and 1.0) is served. The load balancer speaks HTTP/1.1 to its targets,
//! every rule above is defined on HTTP/1.1's one-request-at-a-time exchange, and a
//! protocol that is not offered cannot be abused.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::future::RouteFuture;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use metrics::counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::Service;

mod registry;

pub use registry::{Registry, descriptor_limit, fitted as fitted_connection_limit};

/// The most bytes a request head (request line and header fields) may take. The same
/// as the load balancer's own limit on a whole header; beyond it hyper answers 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header fields a request may carry; beyond it hyper answers 431.
pub const MAX_HEADER_FIELDS: usize = 100;

/// How long each phase of a connection may last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read: Duration,
    pub keep_alive: Duration,
    pub response: Duration,
}

/// Serves one connection until the client closes it, a phase runs out of time, shutdown
/// closes it, or `registry` makes room with it. `shutdown` turning `true` starts the
/// shutdown described above.
pub async fn serve(
    stream: TcpStream,
    router: Router,
    limits: ConnectionLimits,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let clock = Arc::new(Clock::new());
    // Refused (every connection busy): dropping the stream closes it.
    let Some(place) = registry.admit(Arc::clone(&clock)) else {
        return;
    };
    let io = TokioIo::new(ClockedStream {
        stream,
        clock: Arc::clone(&clock),
    });
    let service = RequestService {
        router,
        clock: Arc::clone(&clock),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADER_FIELDS);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);

    let mut stopping = *shutdown.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        // A phase that starts between two looks is seen at the next one, which comes at
        // most `header_read` later: early enough for even the shortest limit to be kept
        // exactly, and rare enough to cost nothing on an idle connection.
        let wake = clock
            .deadline(&limits)
            .0
            .min(Instant::now() + limits.header_read);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            () = place.evicted(), if !clock.is_busy() => {
                return close("evicted");
            }
            _ = shutdown.changed(), if !stopping => {
                // A closed channel means the server is gone: shut down all the same.
                stopping = true;
                if !clock.is_busy() {
                    return close("shutdown");
                }
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(wake) => {
                let (deadline, phase) = clock.deadline(&limits);
                if Instant::now() >= deadline {
                    return close(phase.timeout_reason());
                }
                if stopping && !clock.is_busy() {
                    return close("shutdown");
                }
            }
        }
    }
}

/// Dropping the connection closes its socket; the reason is counted.
fn close(reason: &'static str) {
    counter!("http_connections_closed_total", "reason" => reason).increment(1);
    tracing::debug!(reason, "closing connection");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHead,
    Idle,
    Busy,
}

impl Phase {
    fn timeout_reason(self) -> &'static str {
        match self {
            Self::AwaitingHead => "header_timeout",
            Self::Idle => "idle_timeout",
            Self::Busy => "response_timeout",
        }
    }
}

/// What a connection is doing and since when, kept in atomics so the hot paths (every
/// read, every request) pay a load or two and no lock.
#[derive(Debug)]
struct Clock {
    origin: Instant,
    /// Requests whose response has not been fully sent (at most one in HTTP/1.1).
    in_flight: AtomicU32,
    /// While nothing is in flight: bytes of the next request head have arrived.
    head_started: AtomicBool,
    /// When the current phase began, in milliseconds after `origin`.
    since_ms: AtomicU64,
}

impl Clock {
    /// A new connection waits for its first request head.
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            in_flight: AtomicU32::new(0),
            head_started: AtomicBool::new(true),
            since_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn phase(&self) -> (Phase, Instant) {
        let since = self.origin + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        let phase = if self.in_flight.load(Ordering::Acquire) > 0 {
            Phase::Busy
        } else if self.head_started.load(Ordering::Acquire) {
            Phase::AwaitingHead
        } else {
            Phase::Idle
        };
        (phase, since)
    }

    fn deadline(&self, limits: &ConnectionLimits) -> (Instant, Phase) {
        let (phase, since) = self.phase();
        let limit = match phase {
            Phase::AwaitingHead => limits.header_read,
            Phase::Idle => limits.keep_alive,
            Phase::Busy => limits.response,
        };
        (since + limit, phase)
    }

    fn is_busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Bytes were read from the socket.
    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && !self.head_started.load(Ordering::Acquire)
        {
            self.since_ms.store(self.now_ms(), Ordering::Release);
            self.head_started.store(true, Ordering::Release);
        }
    }

    /// hyper parsed a request head and calls the service.
    fn request_started(self: &Arc<Self>) -> InFlight {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.since_ms.store(self.now_ms(), Ordering::Release);
            self.head_started.store(false, Ordering::Release);
        }
        InFlight(Arc::clone(self))
    }
}

/// A request in flight; dropped when its response has been sent, or abandoned.
#[derive(Debug)]
struct InFlight(Arc<Clock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let clock = &self.0;
        if clock.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            clock.since_ms.store(clock.now_ms(), Ordering::Release);
        }
    }
}

/// The socket, telling the clock when bytes arrive.
#[derive(Debug)]
struct ClockedStream {
    stream: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for ClockedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for ClockedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The router as hyper's per-connection service, marking each request busy until its
/// response body has been sent.
#[derive(Debug, Clone)]
struct RequestService {
    router: Router,
    clock: Arc<Clock>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for RequestService {
    type Response = hyper::Response<ClockedBody>;
    type Error = Infallible;
    type Future = ClockedResponse;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = self.clock.request_started();
        ClockedResponse {
            response: self.router.clone().call(request.map(Body::new)),
            in_flight: Some(in_flight),
        }
    }
}

pin_project_lite::pin_project! {
    /// The router's response future, handing the request's in-flight mark to the body.
    struct ClockedResponse {
        #[pin]
        response: RouteFuture<Infallible>,
        in_flight: Option<InFlight>,
    }
}

impl Future for ClockedResponse {
    type Output = Result<hyper::Response<ClockedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.response.poll(cx))?;
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|body| ClockedBody {
            body,
            _in_flight: in_flight,
        })))
    }
}

/// A response body that keeps its request in flight until hyper has sent it all (or
/// given up on it) and dropped it.
#[derive(Debug)]
struct ClockedBody {
    body: Body,
    _in_flight: Option<InFlight>,
}

impl HttpBody for ClockedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        header_read: Duration::from_secs(10),
        keep_alive: Duration::from_secs(75),
        response: Duration::from_secs(11),
    };

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_waits_for_its_first_head() {
        let clock = Arc::new(Clock::new());
        let (deadline, phase) = clock.deadline(&LIMITS);
        assert_eq!(phase, Phase::AwaitingHead);
        assert_eq!(deadline, clock.origin + LIMITS.header_read);
        // Bytes of that head do not restart its clock.
        tokio::time::advance(Duration::from_secs(3)).await;
        clock.bytes_arrived();
        assert_eq!(clock.deadline(&LIMITS).0, clock.origin + LIMITS.header_read);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_is_busy_until_its_response_is_sent_then_idle() {
        let clock = Arc::new(Clock::new());
        tokio::time::advance(Duration::from_secs(1)).await;
        let request = clock.request_started();
        assert_eq!(clock.deadline(&LIMITS).1, Phase::Busy);
        // The request's own body arriving does not start a new head.
        clock.bytes_arrived();
        assert_eq!(clock.deadline(&LIMITS).1, Phase::Busy);
        tokio::time::advance(Duration::from_secs(2)).await;
        drop(request);
        let (deadline, phase) = clock.deadline(&LIMITS);
        assert_eq!(phase, Phase::Idle);
        assert_eq!(
            deadline,
            clock.origin + Duration::from_secs(3) + LIMITS.keep_alive
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_byte_after_an_idle_spell_starts_the_head_clock() {
        let clock = Arc::new(Clock::new());
        drop(clock.request_started());
        tokio::time::advance(Duration::from_secs(30)).await;
        clock.bytes_arrived();
        let (deadline, phase) = clock.deadline(&LIMITS);
        assert_eq!(phase, Phase::AwaitingHead);
        assert_eq!(
            deadline,
            clock.origin + Duration::from_secs(30) + LIMITS.header_read
        );
        assert!(!clock.is_busy());
    }
}

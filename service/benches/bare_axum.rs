//! The floor of every request: a bare axum server answering `GET /gtg` with an empty
//! 200, on the same runtime, allocator and socket options as the service, and nothing
//! else (no middleware, no logs, no metrics). `scripts/bench.sh` pins it to the
//! service's core and compares its CPU per request with the service's `/gtg`.
//!
//!     bare_axum ADDR        serve on ADDR (127.0.0.1:PORT) until killed

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // `cargo bench` appends `--bench`; only an address makes this serve.
    let Some(addr) = std::env::args().skip(1).find(|arg| arg != "--bench") else {
        eprintln!("bare_axum: run by scripts/bench.sh (see its header)");
        return;
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|err| panic!("cannot listen on {addr}: {err}"))
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    let app = Router::new().route("/gtg", get(|| async {}));
    axum::serve(listener, app).await.expect("serve");
}

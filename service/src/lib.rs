//! The candidates service as a library: `main.rs` wires it up, and the in-process tests
//! (`tests/router.rs`) drive the same router without a socket.

pub mod api;
mod aws;
pub mod candidate;
pub mod computation;
pub mod config;
pub mod connection;
pub mod error;
pub mod instance;
pub mod lifecycle;
pub mod memory;
pub mod state;
pub mod store;
pub mod telemetry;

pub use state::{AppState, Limits};

/// The application router with all its middleware.
pub fn app(state: AppState) -> axum::Router {
    api::router(state)
}

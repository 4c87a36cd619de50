//! A stand-in for EC2's instance metadata service (IMDSv2) on 127.0.0.1: the one part
//! of AWS the identity code talks to that cannot run here. It follows the IMDSv2
//! protocol strictly (token first, then reads with the token) so a client that skipped
//! the token would get 401 as on EC2.

use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};

const TOKEN: &str = "imds-test-token";

#[derive(Debug)]
pub struct FakeImds {
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl FakeImds {
    pub async fn start(instance_id: &'static str) -> Self {
        let app = Router::new()
            .route("/latest/api/token", put(issue_token))
            .route(
                "/latest/meta-data/instance-id",
                get(move |headers: HeaderMap| async move {
                    if headers
                        .get("x-aws-ec2-metadata-token")
                        .is_some_and(|t| t == TOKEN)
                    {
                        (StatusCode::OK, instance_id)
                    } else {
                        (StatusCode::UNAUTHORIZED, "")
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake IMDS");
        let addr = listener.local_addr().expect("fake IMDS address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake IMDS");
        });
        Self { addr, server }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The token's lifetime travels back in a header, as on EC2 (the SDK requires it).
async fn issue_token(
    headers: HeaderMap,
) -> (StatusCode, [(&'static str, String); 1], &'static str) {
    match headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
        Some(ttl) => {
            let ttl = ttl.to_str().unwrap_or("21600").to_owned();
            (
                StatusCode::OK,
                [("x-aws-ec2-metadata-token-ttl-seconds", ttl)],
                TOKEN,
            )
        }
        None => (
            StatusCode::BAD_REQUEST,
            [("x-aws-ec2-metadata-token-ttl-seconds", String::new())],
            "",
        ),
    }
}

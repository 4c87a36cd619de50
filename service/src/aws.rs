//! How the service's AWS clients (DynamoDB and IMDS) make HTTP connections.
//!
//! rustls with ring keeps the build free of C toolchains beyond a plain `cc`, which is
//! what lets the release binary be cross-linked for Amazon Linux 2023's glibc.

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

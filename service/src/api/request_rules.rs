//! The rules every request is held to besides the access log: its request id, the
//! checks of its head (the `Host` rule of HTTP/1.1, the body size limit), and what a
//! panic becomes. `envelope` applies them, with the request timeout, in one layer.

use std::any::Any;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Version, header};
use axum::response::{IntoResponse, Response};

use super::body::BODY_LIMIT_BYTES;
use crate::error::ApiError;

/// The header that carries a request's id, in the request and in its response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The longest request id taken from a client; a longer one is replaced.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// The id of a request, logged and echoed in its response: the client's own when it is
/// 1 to 128 printable ASCII characters without spaces, otherwise (absent, empty, too
/// long, other bytes) a new UUID. A client's id ends up in logs and in responses, so
/// neither can be made to carry kilobytes or control sequences.
pub fn request_id(request: &Request) -> HeaderValue {
    match request.headers().get(REQUEST_ID_HEADER) {
        Some(id) if is_acceptable_request_id(id.as_bytes()) => id.clone(),
        _ => new_request_id(),
    }
}

fn is_acceptable_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_BYTES).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

fn new_request_id() -> HeaderValue {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    HeaderValue::from_str(id).expect("a UUID is a valid header value")
}

/// RFC 9112, section 3.2: an HTTP/1.1 request without `Host`, or any request with more
/// than one `Host` or an invalid one, is answered 400.
fn host_problem(request: &Request) -> Option<&'static str> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if request.version() == Version::HTTP_11 => {
            Some("an HTTP/1.1 request must have a Host header")
        }
        (Some(_), Some(_)) => Some("a request must have at most one Host header"),
        (Some(host), None) if !is_valid_host(host) => Some("the Host header is not a valid host"),
        _ => None,
    }
}

/// `host[:port]` as RFC 3986 spells a URI's host (a registered name, an IPv4 address or
/// a bracketed IPv6 literal) and port (digits), checked byte by byte without allocating.
fn is_valid_host(value: &HeaderValue) -> bool {
    let value = value.as_bytes();
    let (host, port) = match value.strip_prefix(b"[") {
        Some(literal) => match literal.iter().position(|&b| b == b']') {
            Some(end) => {
                let address = &literal[..end];
                let valid = !address.is_empty()
                    && address
                        .iter()
                        .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
                if !valid {
                    return false;
                }
                (&b"ipv6"[..], &literal[end + 1..])
            }
            None => return false,
        },
        None => match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &b""[..]),
        },
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(b":").is_some_and(|digits| {
            (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
        });
    let host_ok = !host.is_empty()
        && host.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b'%'
                )
        });
    host_ok && port_ok
}

/// Why a request is refused before any handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadRefusal {
    /// A `Host` that breaks RFC 9112: 400.
    BadHost(&'static str),
    /// A body declared larger than the limit: 413, once the body has been drained (a
    /// client that waits for `100 Continue` has sent none and is answered at once).
    /// Bodies of unknown length are cut off by the handlers that read them
    /// (`body::discard`).
    TooLarge { waits_for_continue: bool },
}

/// Checks a request's head: `None` when a handler may see it.
pub fn check_request_head(request: &Request) -> Option<HeadRefusal> {
    if let Some(problem) = host_problem(request) {
        return Some(HeadRefusal::BadHost(problem));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > BODY_LIMIT_BYTES as u64 => Some(HeadRefusal::TooLarge {
            waits_for_continue: request
                .headers()
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
        }),
        _ => None,
    }
}

/// A panic in a handler becomes a 500 for that request only, logged with its message.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    ApiError::Internal.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, hosts: &[&str]) -> Request {
        let mut builder = Request::builder().uri("/gtg").version(version);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(axum::body::Body::empty()).expect("request")
    }

    #[test]
    fn request_ids_are_short_printable_ascii() {
        assert!(is_acceptable_request_id(b"trace-me-42"));
        assert!(is_acceptable_request_id(&[b'a'; MAX_REQUEST_ID_BYTES]));
        assert!(is_acceptable_request_id(
            b"Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8"
        ));
        for bad in [
            &b""[..],
            &[b'a'; MAX_REQUEST_ID_BYTES + 1],
            b"has space",
            b"tab\there",
            "é".as_bytes(),
            b"\x1b[31mred",
        ] {
            assert!(!is_acceptable_request_id(bad), "{bad:?}");
        }
        assert_eq!(new_request_id().len(), 36);
    }

    #[test]
    fn host_follows_rfc_9112() {
        assert_eq!(
            host_problem(&request(Version::HTTP_11, &["example.com"])),
            None
        );
        assert_eq!(
            host_problem(&request(Version::HTTP_11, &["127.0.0.1:8000"])),
            None
        );
        for good in [
            "[::1]:8000",
            "[::1]",
            "10.0.0.1:80",
            "my-alb-123.eu-west-1.elb.amazonaws.com",
        ] {
            assert_eq!(
                host_problem(&request(Version::HTTP_11, &[good])),
                None,
                "{good}"
            );
        }
        // HTTP/1.0 may leave it out.
        assert_eq!(host_problem(&request(Version::HTTP_10, &[])), None);
        assert!(host_problem(&request(Version::HTTP_11, &[])).is_some());
        assert!(host_problem(&request(Version::HTTP_10, &["a", "b"])).is_some());
        for bad in [
            "",
            "user@host",
            "a b",
            "host:port",
            "/path",
            "host:",
            ":80",
            "[::1",
            "[]:80",
            "[::1]x",
            "a:123456",
            "é.example",
        ] {
            assert!(
                host_problem(&request(Version::HTTP_11, &[bad])).is_some(),
                "{bad:?}"
            );
        }
    }
}

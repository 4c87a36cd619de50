//! HTTP/1.1 by hand over a TCP socket, for what an HTTP client library will not send:
//! half request lines, made-up methods, requests without `Host`, oversized heads.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

/// One client connection.
#[derive(Debug)]
pub struct RawConnection {
    reader: OwnedReadHalf,
    /// Taken by [`RawConnection::split`].
    writer: Option<OwnedWriteHalf>,
    /// Bytes read past the end of the last response.
    pending: Vec<u8>,
}

/// The sending half of a split connection.
#[derive(Debug)]
pub struct RawWriter(OwnedWriteHalf);

impl RawWriter {
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes).await
    }
}

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "status {} body is not JSON ({err}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

impl RawConnection {
    pub async fn open(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).await.expect("connect"))
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        let (reader, writer) = stream.into_split();
        Self {
            reader,
            writer: Some(writer),
            pending: Vec::new(),
        }
    }

    /// Splits off the sending half, so one task can send while another reads.
    pub fn split(mut self) -> (Self, RawWriter) {
        let writer = self.writer.take().expect("a connection not split yet");
        (self, RawWriter(writer))
    }

    /// Connects with a small receive buffer, as a client that reads slowly: the server
    /// can only send a little more than this client has read.
    pub async fn open_small_window(addr: SocketAddr) -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        Self::from_stream(socket.connect(addr).await.expect("connect"))
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer
            .as_mut()
            .expect("the sending half, not split off")
            .write_all(bytes)
            .await
    }

    /// Reads one response, failing the test if none is complete within `limit`.
    pub async fn response(&mut self, limit: Duration) -> RawResponse {
        tokio::time::timeout(limit, self.read_response())
            .await
            .unwrap_or_else(|_| panic!("no complete response within {limit:?}"))
    }

    /// Whether the server closes the connection within `limit` (whatever it sends
    /// first): end of stream or a reset.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut buffer = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.reader.read(&mut buffer)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    async fn fill(&mut self) -> usize {
        let mut buffer = [0u8; 16 * 1024];
        let read = self.reader.read(&mut buffer).await.unwrap_or(0);
        self.pending.extend_from_slice(&buffer[..read]);
        read
    }

    /// Reads one response's head and leaves its body unread, failing the test if none
    /// is complete within `limit`.
    pub async fn head(&mut self, limit: Duration) -> RawResponse {
        tokio::time::timeout(limit, self.read_head())
            .await
            .unwrap_or_else(|_| panic!("no response head within {limit:?}"))
    }

    async fn read_response(&mut self) -> RawResponse {
        let mut response = self.read_head().await;
        // An interim answer (`100 Continue`) has no body: the final one follows.
        if (100..200).contains(&response.status) {
            return response;
        }
        if response
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            response.body = self.read_chunked().await;
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().expect("content-length");
            while self.pending.len() < length {
                assert!(self.fill().await > 0, "body cut short");
            }
            response.body = self.pending.drain(..length).collect();
        } else {
            while self.fill().await > 0 {}
            response.body = std::mem::take(&mut self.pending);
        }
        response
    }

    async fn read_head(&mut self) -> RawResponse {
        let head_end = loop {
            if let Some(at) = find(&self.pending, b"\r\n\r\n") {
                break at;
            }
            assert!(
                self.fill().await > 0,
                "connection closed before a response head: {:?}",
                String::from_utf8_lossy(&self.pending)
            );
        };
        let head = String::from_utf8_lossy(&self.pending[..head_end]).into_owned();
        self.pending.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        RawResponse {
            status,
            headers,
            body: Vec::new(),
        }
    }

    async fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = find(&self.pending, b"\r\n") {
                    break at;
                }
                assert!(self.fill().await > 0, "chunked body cut short");
            };
            let size_line = String::from_utf8_lossy(&self.pending[..line_end]).into_owned();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
            self.pending.drain(..line_end + 2);
            while self.pending.len() < size + 2 {
                assert!(self.fill().await > 0, "chunk cut short");
            }
            body.extend(self.pending.drain(..size));
            self.pending.drain(..2);
            if size == 0 {
                return body;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` on a new connection and reads one response.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut connection = RawConnection::open(addr).await;
    connection.send(request).await.expect("send");
    connection.response(Duration::from_secs(30)).await
}

//! `GET /candidates` without `limit`: every candidate, as one JSON array streamed page
//! by page, the way the original service answered it.
//!
//! Memory stays bounded: one page (at most `PageLimit::MAX` names) is held at a time,
//! and the next is fetched only once the previous one has been handed to the
//! connection, so a slow reader slows the fetching down instead of piling pages up.
//! Time is bounded too: the whole listing must be sent before `deadline` (the request
//! timeout after the request arrived). A listing that runs out of time, or whose store
//! fails part-way, ends its body with an error: the connection is then closed without
//! the chunked encoding's last chunk, so the client sees a failed response, never a
//! shorter list that looks whole.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics::counter;
use tokio::time::Instant;

use crate::candidate::{Candidate, CandidateName, Cursor, Page, PageLimit};
use crate::error::ApiError;
use crate::store::{CandidateStore, StoreError};

/// Why a listing stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("the listing did not finish within the request timeout")]
    OutOfTime,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ListingError> for ApiError {
    fn from(err: ListingError) -> Self {
        match err {
            ListingError::OutOfTime => ApiError::retry_later("request timed out", 1),
            ListingError::Store(err) => ApiError::from(err),
        }
    }
}

/// Every candidate after `cursor` (from the start without one), streamed. The first
/// page is read before answering, so a store that is down is still a clean 503 and an
/// empty store the original's 404.
pub async fn everything(
    store: Arc<dyn CandidateStore>,
    cursor: Option<Cursor>,
    deadline: Instant,
) -> Result<Response, ApiError> {
    let first = fetch(&*store, cursor.as_ref().map(Cursor::last_seen), deadline).await?;
    if first.candidates.is_empty() && cursor.is_none() {
        return Err(ApiError::not_found("no candidates"));
    }
    let body = Body::from_stream(chunks(store, first, deadline));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// What the stream does next.
enum Next {
    Send { page: Page, first: bool },
    FetchAfter(Cursor),
    Done,
}

fn chunks(
    store: Arc<dyn CandidateStore>,
    first: Page,
    deadline: Instant,
) -> impl futures_util::Stream<Item = Result<Bytes, ListingError>> + Send + 'static {
    let start = Next::Send {
        page: first,
        first: true,
    };
    futures_util::stream::try_unfold(start, move |next| {
        let store = Arc::clone(&store);
        async move {
            let (page, first) = match next {
                Next::Done => return Ok(None),
                Next::Send { page, first } => (page, first),
                Next::FetchAfter(cursor) => {
                    match fetch(&*store, Some(cursor.last_seen()), deadline).await {
                        Ok(page) => (page, false),
                        Err(err) => {
                            counter!("candidates_listing_cut_off_total").increment(1);
                            tracing::warn!(error = %err, "listing cut off before its end");
                            return Err(err);
                        }
                    }
                }
            };
            let chunk = encode(&page.candidates, first, page.next.is_none());
            let next = page.next.map_or(Next::Done, Next::FetchAfter);
            Ok(Some((chunk, next)))
        }
    })
}

async fn fetch(
    store: &dyn CandidateStore,
    after: Option<&CandidateName>,
    deadline: Instant,
) -> Result<Page, ListingError> {
    match tokio::time::timeout_at(deadline, store.list(PageLimit::MAX_PAGE, after)).await {
        Ok(page) => Ok(page?),
        Err(_) => Err(ListingError::OutOfTime),
    }
}

/// One page as a piece of the JSON array: `[` before the first page, a comma before
/// every element but the array's first, `]` after the last page.
fn encode(candidates: &[Candidate], first: bool, last: bool) -> Bytes {
    let mut out = Vec::with_capacity(2 + candidates.len() * 32);
    if first {
        out.push(b'[');
    }
    for (index, candidate) in candidates.iter().enumerate() {
        if !(first && index == 0) {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, candidate).expect("a candidate always serialises");
    }
    if last {
        out.push(b']');
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use axum::http::StatusCode;
    use http_body_util::BodyExt;

    use super::*;

    /// A store holding sorted names; its `nth` listing call can fail or hang.
    #[derive(Debug, Default)]
    struct FakeStore {
        names: Vec<CandidateName>,
        calls: AtomicUsize,
        fail_call: Option<usize>,
        hang_call: Option<usize>,
        largest_page: Mutex<usize>,
    }

    impl FakeStore {
        fn with(count: usize) -> Self {
            let mut names: Vec<CandidateName> = (0..count)
                .map(|i| CandidateName::parse(format!("name {i:05}")).expect("valid"))
                .collect();
            names.sort();
            Self {
                names,
                ..Self::default()
            }
        }
    }

    #[async_trait]
    impl CandidateStore for FakeStore {
        async fn put(&self, _: &CandidateName) -> Result<(), StoreError> {
            unreachable!("listing never writes")
        }

        async fn get(&self, _: &CandidateName) -> Result<Option<Candidate>, StoreError> {
            unreachable!("listing never reads one")
        }

        async fn list(
            &self,
            limit: PageLimit,
            after: Option<&CandidateName>,
        ) -> Result<Page, StoreError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail_call == Some(call) {
                return Err(StoreError::unavailable("list", "store went away"));
            }
            if self.hang_call == Some(call) {
                std::future::pending::<()>().await;
            }
            let mut largest = self.largest_page.lock().expect("lock");
            *largest = (*largest).max(limit.get());
            let names = self
                .names
                .iter()
                .filter(|n| after.is_none_or(|a| *n > a))
                .take(limit.get() + 1)
                .cloned()
                .collect();
            Ok(Page::from_sorted(names, limit))
        }

        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }

        fn backend(&self) -> &'static str {
            "fake"
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// Reads the body until it ends or fails: (bytes read, whether it failed).
    async fn read_all(response: Response) -> (Vec<u8>, bool) {
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => bytes.extend_from_slice(&frame.into_data().expect("data")),
                Err(_) => return (bytes, true),
            }
        }
        (bytes, false)
    }

    #[tokio::test]
    async fn every_candidate_is_streamed_in_order_across_pages() {
        let store = Arc::new(FakeStore::with(2_500));
        let response = everything(store.clone(), None, later())
            .await
            .expect("listing");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let (bytes, failed) = read_all(response).await;
        assert!(!failed);
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&bytes).expect("JSON array");
        let names: Vec<&str> = listed
            .iter()
            .map(|c| c["CandidateName"].as_str().expect("name"))
            .collect();
        let expected: Vec<&str> = store.names.iter().map(CandidateName::as_str).collect();
        assert_eq!(names, expected);
        assert_eq!(store.calls.load(Ordering::SeqCst), 3, "pages of 1000");
        assert_eq!(*store.largest_page.lock().expect("lock"), 1000);
    }

    #[tokio::test]
    async fn one_page_is_held_at_a_time() {
        let store = Arc::new(FakeStore::with(3_500));
        let response = everything(store.clone(), None, later())
            .await
            .expect("listing");
        let mut body = response.into_body();
        body.frame().await.expect("first chunk").expect("data");
        // The second page is fetched only when the connection asks for more.
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
        body.frame().await.expect("second chunk").expect("data");
        assert_eq!(store.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn after_a_cursor_and_at_the_edges() {
        let store = Arc::new(FakeStore::with(1_500));
        let cursor = Cursor::after(store.names[1_200].clone());
        let (bytes, _) = read_all(
            everything(store.clone(), Some(cursor), later())
                .await
                .expect("listing"),
        )
        .await;
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(listed.len(), 299);
        assert_eq!(listed[0]["CandidateName"], "name 01201");

        // Exactly one full page: the array still closes.
        let (bytes, _) = read_all(
            everything(Arc::new(FakeStore::with(1_000)), None, later())
                .await
                .expect("listing"),
        )
        .await;
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(listed.len(), 1_000);

        // Nothing after the cursor: an empty array; nothing at all: the original's 404.
        let last = Cursor::after(store.names[1_499].clone());
        let (bytes, _) = read_all(
            everything(store.clone(), Some(last), later())
                .await
                .expect("listing"),
        )
        .await;
        assert_eq!(bytes, b"[]");
        let empty = everything(Arc::new(FakeStore::with(0)), None, later()).await;
        assert!(matches!(empty, Err(ApiError::NotFound(_))));
    }

    #[tokio::test]
    async fn a_store_failure_part_way_fails_the_body_instead_of_closing_the_array() {
        let store = Arc::new(FakeStore {
            fail_call: Some(2),
            ..FakeStore::with(2_500)
        });
        let (bytes, failed) =
            read_all(everything(store, None, later()).await.expect("first page")).await;
        assert!(failed, "the body must end with an error");
        assert!(bytes.starts_with(b"["));
        assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err());
    }

    #[tokio::test]
    async fn a_failure_on_the_first_page_is_a_clean_503() {
        let store = Arc::new(FakeStore {
            fail_call: Some(1),
            ..FakeStore::with(10)
        });
        let err = everything(store, None, later()).await.expect_err("503");
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_listing_past_its_deadline_is_cut_off() {
        let store = Arc::new(FakeStore {
            hang_call: Some(2),
            ..FakeStore::with(2_500)
        });
        let started = Instant::now();
        let deadline = started + Duration::from_secs(10);
        let (bytes, failed) =
            read_all(everything(store, None, deadline).await.expect("first page")).await;
        assert!(failed);
        assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err());
        assert_eq!(Instant::now(), deadline, "cut off exactly at the deadline");
    }
}

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
//! shorter list that looks whole (and the access log records it as cut off: 599).
//!
//! And the number of them is bounded ([`FullListings`]): a full listing of a large table
//! costs a fraction of a second of CPU, so enough of them at once would all miss their
//! deadline and slow every other request down. Beyond the bound a listing is refused at
//! once (503, `Retry-After`), before it reads anything, and the admitted ones finish.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

/// The full listings that may stream at once (`CANDIDATES_FULL_LISTINGS`).
#[derive(Debug, Clone)]
pub struct FullListings {
    places: Arc<Semaphore>,
    capacity: usize,
}

/// One admitted listing's place, given back when its stream ends or is dropped.
#[derive(Debug)]
pub struct ListingPlace(#[allow(dead_code)] OwnedSemaphorePermit);

impl FullListings {
    pub fn new(capacity: usize) -> Self {
        Self {
            places: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// A place for one more listing, or the 503 that refuses it.
    pub fn admit(&self) -> Result<ListingPlace, ApiError> {
        match Arc::clone(&self.places).try_acquire_owned() {
            Ok(permit) => Ok(ListingPlace(permit)),
            Err(_) => {
                counter!("candidates_full_listings_refused_total").increment(1);
                Err(ApiError::overloaded(
                    "too many full listings at once: retry shortly, or page with ?limit=",
                ))
            }
        }
    }

    /// Sets the gauges of the listings streaming now and of the bound.
    pub fn record_gauges(&self) {
        let in_flight = self.capacity - self.places.available_permits();
        gauge!("candidates_full_listings_in_flight").set(in_flight as f64);
        gauge!("candidates_full_listings_max").set(self.capacity as f64);
    }
}

/// Every candidate after `cursor` (from the start without one), streamed while `place`
/// is held. The first page is read before answering, so a store that is down is still a
/// clean 503 and an empty store the original's 404.
pub async fn everything(
    store: Arc<dyn CandidateStore>,
    cursor: Option<Cursor>,
    deadline: Instant,
    place: ListingPlace,
) -> Result<Response, ApiError> {
    let first = fetch(&*store, cursor.as_ref().map(Cursor::last_seen), deadline).await?;
    if first.candidates.is_empty() && cursor.is_none() {
        return Err(ApiError::not_found("no candidates"));
    }
    let body = Body::from_stream(chunks(store, first, deadline, place));
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
    place: ListingPlace,
) -> impl futures_util::Stream<Item = Result<Bytes, ListingError>> + Send + 'static {
    let start = Next::Send {
        page: first,
        first: true,
    };
    futures_util::stream::try_unfold(start, move |next| {
        // The place lives in this closure, that is as long as the stream.
        let _held = &place;
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

    /// A place of a gate of its own.
    fn place() -> ListingPlace {
        FullListings::new(1).admit().expect("a free place")
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
        let response = everything(store.clone(), None, later(), place())
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
        let response = everything(store.clone(), None, later(), place())
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
            everything(store.clone(), Some(cursor), later(), place())
                .await
                .expect("listing"),
        )
        .await;
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(listed.len(), 299);
        assert_eq!(listed[0]["CandidateName"], "name 01201");

        // Exactly one full page: the array still closes.
        let (bytes, _) = read_all(
            everything(Arc::new(FakeStore::with(1_000)), None, later(), place())
                .await
                .expect("listing"),
        )
        .await;
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(listed.len(), 1_000);

        // Nothing after the cursor: an empty array; nothing at all: the original's 404.
        let last = Cursor::after(store.names[1_499].clone());
        let (bytes, _) = read_all(
            everything(store.clone(), Some(last), later(), place())
                .await
                .expect("listing"),
        )
        .await;
        assert_eq!(bytes, b"[]");
        let empty = everything(Arc::new(FakeStore::with(0)), None, later(), place()).await;
        assert!(matches!(empty, Err(ApiError::NotFound(_))));
    }

    #[tokio::test]
    async fn a_store_failure_part_way_fails_the_body_instead_of_closing_the_array() {
        let store = Arc::new(FakeStore {
            fail_call: Some(2),
            ..FakeStore::with(2_500)
        });
        let (bytes, failed) = read_all(
            everything(store, None, later(), place())
                .await
                .expect("first page"),
        )
        .await;
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
        let err = everything(store, None, later(), place())
            .await
            .expect_err("503");
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
        let (bytes, failed) = read_all(
            everything(store, None, deadline, place())
                .await
                .expect("first page"),
        )
        .await;
        assert!(failed);
        assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err());
        assert_eq!(Instant::now(), deadline, "cut off exactly at the deadline");
    }

    #[tokio::test]
    async fn listings_beyond_the_bound_are_refused_until_one_ends() {
        let gate = FullListings::new(2);
        let store = Arc::new(FakeStore::with(2_500));
        let first = everything(store.clone(), None, later(), gate.admit().expect("1st"))
            .await
            .expect("listing");
        let second = everything(store.clone(), None, later(), gate.admit().expect("2nd"))
            .await
            .expect("listing");
        let refused = gate.admit().expect_err("a third at once");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let refused = refused.into_response();
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        // A listing read to its end gives its place back...
        let (_, failed) = read_all(first).await;
        assert!(!failed);
        let third = gate.admit().expect("a place again");
        assert!(gate.admit().is_err());
        // ...and so does one whose client went away (its body dropped unread).
        drop(second);
        let _fourth = gate.admit().expect("the abandoned listing's place");
        drop(third);
        // A listing that fails before its first byte (404, 503) holds no place either.
        let empty = everything(
            Arc::new(FakeStore::with(0)),
            None,
            later(),
            gate.admit().expect("place"),
        )
        .await;
        assert!(matches!(empty, Err(ApiError::NotFound(_))));
        gate.admit().expect("the 404's place came back");
    }
}

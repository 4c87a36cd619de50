//! The bound on open connections, and who makes room when it is reached.
//!
//! Every connection holds a file descriptor. Without a bound, idle keep-alive
//! connections (or half-sent heads, until their header timeout) can take every
//! descriptor the process may open: `accept` then fails, and the health check cannot get
//! in until some of them time out (75 s for idle ones). With a bound below the
//! descriptor limit, a connection that arrives when every place is taken makes room the
//! way nginx does when it runs short of connections: the connection that has been
//! waiting longest without a request in flight (idle, or still waiting for its request
//! head) is closed. Only when every connection has a request in flight is the new one
//! refused (closed at once). Requests in flight are never cut.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use metrics::{counter, gauge};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Clock;

/// Descriptors left for everything but connections (the listener, the store's files and
/// sockets, standard streams) when the bound is fitted under the process's limit.
pub const RESERVED_DESCRIPTORS: usize = 64;

/// The open connections, at most `max` of them.
#[derive(Debug)]
pub struct Registry {
    open: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
    max: usize,
    /// The most connections open at once since [`Registry::open_and_peak`] last looked.
    peak: AtomicUsize,
}

#[derive(Debug)]
struct Entry {
    clock: Arc<Clock>,
    evict: Arc<Notify>,
}

/// A connection's place; dropping it (the connection ended) gives the place back.
#[derive(Debug)]
pub struct Place {
    registry: Arc<Registry>,
    id: u64,
    evict: Arc<Notify>,
}

impl Place {
    /// Resolves when the registry closed this connection to make room for another.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        open.remove(&self.id);
        gauge!("http_connections_open").set(open.len() as f64);
    }
}

impl Registry {
    pub fn new(max: usize) -> Arc<Self> {
        gauge!("http_connections_max").set(max as f64);
        Arc::new(Self {
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            max: max.max(1),
            peak: AtomicUsize::new(0),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// The connections open now, and the most open at once since the last call.
    pub fn open_and_peak(&self) -> (usize, usize) {
        let open = self.lock().len();
        let peak = self.peak.swap(open, Ordering::AcqRel);
        (open, peak.max(open))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for a new connection whose phases `clock` follows; at the bound, the
    /// place of the connection waiting longest without a request in flight, which is
    /// told to close. `None` when every open connection has a request in flight.
    pub(super) fn admit(self: &Arc<Self>, clock: Arc<Clock>) -> Option<Place> {
        let mut open = self.lock();
        if open.len() >= self.max {
            let victim = open
                .iter()
                .filter_map(|(id, entry)| {
                    let (phase, since) = entry.clock.phase();
                    (phase != super::Phase::Busy).then_some((since, *id))
                })
                .min_by_key(|(since, _): &(Instant, u64)| *since)
                .map(|(_, id)| id);
            match victim.and_then(|id| open.remove(&id)) {
                // Counted as closed (`evicted`) by the connection when it closes.
                Some(evicted) => evicted.evict.notify_one(),
                None => {
                    counter!("http_connections_refused_total").increment(1);
                    return None;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        open.insert(
            id,
            Entry {
                clock,
                evict: Arc::clone(&evict),
            },
        );
        gauge!("http_connections_open").set(open.len() as f64);
        self.peak.fetch_max(open.len(), Ordering::AcqRel);
        Some(Place {
            registry: Arc::clone(self),
            id,
            evict,
        })
    }
}

/// The bound actually used: `configured`, lowered to leave [`RESERVED_DESCRIPTORS`]
/// under `descriptor_limit` (the process's open-file limit, when known).
pub fn fitted(configured: usize, descriptor_limit: Option<u64>) -> usize {
    let room = descriptor_limit.map_or(usize::MAX, |limit| {
        usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(RESERVED_DESCRIPTORS)
    });
    configured.min(room).max(1)
}

/// The process's soft limit on open files, if it has one.
#[allow(unsafe_code)]
pub fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one plain struct that lives on this stack frame.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) };
    (read == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn idle_clock() -> Arc<Clock> {
        let clock = Arc::new(Clock::new());
        drop(clock.request_started());
        clock
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_bound_the_connection_idle_longest_makes_room() {
        let registry = Registry::new(2);
        let oldest = idle_clock();
        let first = registry.admit(Arc::clone(&oldest)).expect("room");
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = registry.admit(idle_clock()).expect("room");
        tokio::time::advance(Duration::from_secs(1)).await;
        let third = registry.admit(idle_clock()).expect("room made");
        // The first was told to go; the others were not.
        tokio::time::timeout(Duration::from_millis(1), first.evicted())
            .await
            .expect("the oldest is evicted");
        assert!(
            tokio::time::timeout(Duration::from_millis(1), second.evicted())
                .await
                .is_err()
        );
        assert_eq!(registry.lock().len(), 2);
        // Dropping the evicted place (its connection closing) changes nothing more.
        drop(first);
        assert_eq!(registry.lock().len(), 2);
        drop((second, third));
        assert!(registry.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn connections_with_a_request_in_flight_are_never_evicted() {
        let registry = Registry::new(2);
        let busy = Arc::new(Clock::new());
        let _busy_request = busy.request_started();
        let _busy = registry.admit(busy).expect("room");
        tokio::time::advance(Duration::from_secs(5)).await;
        // Waiting for its head: younger than the busy one, but the one to go.
        let waiting = registry.admit(Arc::new(Clock::new())).expect("room");
        let newer = Arc::new(Clock::new());
        let _newer = registry.admit(Arc::clone(&newer)).expect("room made");
        tokio::time::timeout(Duration::from_millis(1), waiting.evicted())
            .await
            .expect("the waiting connection is evicted");
        // Both left have a request in flight: a newcomer is refused.
        let _newer_request = newer.request_started();
        assert!(registry.admit(idle_clock()).is_none());
    }

    #[test]
    fn the_bound_fits_under_the_descriptor_limit() {
        assert_eq!(fitted(10_000, Some(65_536)), 10_000);
        assert_eq!(fitted(10_000, Some(96)), 32);
        assert_eq!(fitted(10_000, None), 10_000);
        assert_eq!(fitted(10_000, Some(10)), 1);
    }
}

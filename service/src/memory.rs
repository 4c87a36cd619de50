//! Memory handed back to the system once a burst of connections is over.
//!
//! glibc's malloc keeps what threads free in their arenas for later use, and returns to
//! the system only free space at the very top of a heap. After a burst of thousands of
//! connections (each a few KiB of buffers, allocated and freed on every runtime thread)
//! the free space is scattered, so the resident size stayed near its peak, and grew
//! cycle after cycle of slowloris bursts (53 to 88 MiB over ten). `malloc_trim(0)`
//! returns every whole free page of every arena. It walks the arenas, so it runs only
//! when a burst has just ended (the open connections fell by [`BURST`] from their peak),
//! on a blocking thread rather than the runtime's.
//!
//! With the `mimalloc` feature there is nothing to do: mimalloc returns free pages by
//! itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics::counter;

/// The fall in open connections, from their peak, that ends a burst.
pub const BURST: usize = 256;

/// Follows the open connections and trims when a burst is over.
#[derive(Debug, Default)]
pub struct Trimmer {
    /// The most connections open since the last trim.
    peak: usize,
    /// A trim is running on a blocking thread.
    running: Arc<AtomicBool>,
}

impl Trimmer {
    /// Called periodically with the number of open connections and the most that were
    /// open since the last call. Starts a trim when a burst is over.
    pub fn observe(&mut self, open: usize, peak_since_last: usize) {
        self.peak = self.peak.max(peak_since_last).max(open);
        if !burst_over(self.peak, open) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.peak = open;
        let running = Arc::clone(&self.running);
        tokio::task::spawn_blocking(move || {
            let released = trim();
            counter!("memory_trims_total").increment(1);
            tracing::debug!(released, "handed free memory back to the system");
            running.store(false, Ordering::Release);
        });
    }
}

/// Whether the connections have fallen far enough from their peak.
fn burst_over(peak: usize, open: usize) -> bool {
    peak.saturating_sub(open) >= BURST
}

/// Returns free memory to the system; whether any was.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointer and only walks glibc's own arenas, under
    // their locks; it is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"))))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_over_once_connections_fall_far_enough_from_their_peak() {
        assert!(!burst_over(0, 0));
        assert!(!burst_over(300, 100), "a fall of 200 is not a burst's end");
        assert!(burst_over(3_000, 10));
        assert!(burst_over(BURST, 0));
    }

    #[tokio::test]
    async fn a_trim_starts_once_per_burst() {
        let mut trimmer = Trimmer::default();
        trimmer.observe(3_000, 3_000);
        assert_eq!(trimmer.peak, 3_000, "still at the peak: no trim");
        trimmer.observe(5, 3_000);
        assert_eq!(trimmer.peak, 5, "trimmed: the peak starts again from here");
        while trimmer.running.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
        }
        trimmer.observe(5, 6);
        assert_eq!(trimmer.peak, 6, "no new burst");
    }
}

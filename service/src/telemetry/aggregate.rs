//! Log lines that would repeat, written at most once a second per kind, with a count.
//!
//! A flood of like events (requests refused to shed load, calls to a store that is down)
//! must not become a flood of log lines: at 50 connections a store outage wrote 19 MB of
//! warnings in ten seconds, and a log consumer that cannot keep up loses the lines that
//! matter. So the first event after a quiet second is written at once, with its details,
//! and the ones that follow within the second are counted; their line (the count and,
//! where it helps, one sample of the details) is written when the second is over, by the
//! next event or by a flush, which the process runs every second so that the tail of a
//! flood is written even when nothing follows it. Metrics still count every event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// How long the events of one line may gather.
pub const WINDOW_MS: u64 = 1000;

/// The count of one kind of event not yet written, and when its last line was. Lock-free:
/// an event costs an atomic add, so even a flood of refusals pays next to nothing.
#[derive(Debug)]
pub struct Window {
    /// Events counted and not written yet.
    pending: AtomicU64,
    /// When the last line was written, in milliseconds on [`now_ms`]'s clock (`u64::MAX`:
    /// never).
    last_line_ms: AtomicU64,
}

impl Window {
    pub const fn new() -> Self {
        Self {
            pending: AtomicU64::new(0),
            last_line_ms: AtomicU64::new(u64::MAX),
        }
    }

    /// Counts one event at `now`. Returns how many events the line due now covers (this
    /// one and those counted before it), or `None` when this one waits for a later line.
    pub fn note_at(&self, now: u64) -> Option<u64> {
        if self.claim_line(now) {
            return Some(self.pending.swap(0, Ordering::Relaxed) + 1);
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// The count of the events still waiting, if their second is over.
    pub fn flush_at(&self, now: u64) -> Option<u64> {
        if self.pending.load(Ordering::Relaxed) == 0 || !self.claim_line(now) {
            return None;
        }
        let count = self.pending.swap(0, Ordering::Relaxed);
        (count > 0).then_some(count)
    }

    /// Whether a line may be written at `now`; only one caller per window wins.
    fn claim_line(&self, now: u64) -> bool {
        let last = self.last_line_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= WINDOW_MS;
        due && self
            .last_line_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`Window`] that also keeps one sample of the details of the events it counts (an
/// error message), so the aggregated line says what went wrong and not only how often.
#[derive(Debug, Default)]
pub struct Sampled {
    window: Window,
    /// The details of the first event counted since the last line.
    sample: Mutex<Option<String>>,
}

/// One line to write: how many events it stands for, and one event's details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub count: u64,
    pub sample: String,
}

impl Sampled {
    /// Counts one event at `now`, whose details `describe` gives (called only when they
    /// will be written). Returns the line due now, if any.
    pub fn note_at(&self, now: u64, describe: impl FnOnce() -> String) -> Option<Line> {
        let mut slot = self.slot();
        match self.window.note_at(now) {
            // This event is the freshest sample; an older one waiting is dropped with
            // the count it belonged to, which this line carries.
            Some(count) => {
                slot.take();
                Some(Line {
                    count,
                    sample: describe(),
                })
            }
            None => {
                if slot.is_none() {
                    *slot = Some(describe());
                }
                None
            }
        }
    }

    /// The line of the events still waiting, if their second is over.
    pub fn flush_at(&self, now: u64) -> Option<Line> {
        let mut slot = self.slot();
        let count = self.window.flush_at(now)?;
        Some(Line {
            count,
            sample: slot.take().unwrap_or_default(),
        })
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic while holding it leaves at worst a stale sample: keep going.
        self.sample
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Milliseconds since the first call: the clock of every window.
pub fn now_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_event_is_written_at_once_and_another_much_later_too() {
        let window = Window::new();
        assert_eq!(window.note_at(5_000), Some(1));
        assert_eq!(window.flush_at(10_000), None, "nothing left over");
        assert_eq!(window.note_at(60_000), Some(1));
    }

    #[test]
    fn a_flood_is_one_line_a_second_and_every_event_is_counted() {
        let window = Window::new();
        let mut written = 0;
        let mut lines = 0;
        // 10,000 events over 2.5 seconds.
        for i in 0..10_000u64 {
            if let Some(count) = window.note_at(i / 4) {
                written += count;
                lines += 1;
            }
        }
        // The tail is written by the periodic flush once its second is over.
        assert_eq!(window.flush_at(2_600), None, "its second is not over yet");
        written += window.flush_at(3_000).expect("the tail");
        lines += 1;
        assert_eq!(written, 10_000);
        assert!(lines <= 4, "{lines} lines");
        assert_eq!(window.flush_at(10_000), None);
    }

    #[test]
    fn a_sampled_line_carries_one_events_details() {
        let log = Sampled::default();
        let first = log.note_at(0, || "refused: first".to_owned());
        assert_eq!(
            first,
            Some(Line {
                count: 1,
                sample: "refused: first".to_owned()
            })
        );
        let mut described = 0;
        for i in 1..=50u64 {
            let line = log.note_at(i * 10, || {
                described += 1;
                format!("refused: {i}")
            });
            assert_eq!(line, None);
        }
        assert_eq!(described, 1, "details are formatted once per line");
        let tail = log.flush_at(1_000).expect("the tail");
        assert_eq!(tail.count, 50);
        assert_eq!(tail.sample, "refused: 1");
        assert_eq!(log.flush_at(5_000), None);
    }
}

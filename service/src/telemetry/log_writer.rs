//! Log lines leave the process through a buffer that a thread of its own writes out.
//!
//! Writing each line to standard output costs a `write(2)` per request (one per access
//! log line), on the thread that serves the request. Here a line is only copied into a
//! shared buffer; the writer thread, woken by the first line of a batch, lets the
//! batch gather for [`LINGER`] and writes it with one call. Under load a write carries
//! hundreds of lines; when the process is idle nothing wakes up at all.
//!
//! Logging never waits for the log's reader. If standard output stalls (a blocked pipe,
//! a journal that cannot keep up) and the buffer is full, a new line is dropped and
//! counted (`log_lines_dropped_total`) instead of making its logger wait, and once the
//! writer has room again it writes one line saying how many were lost. Waiting would
//! be the alternative, and it is worse: every request that logs (all of them, and
//! the health check) would stop until the reader woke up, so a slow log consumer would
//! take the service down with it. That is the trade-off of maintained logging
//! libraries' non-blocking mode (tracing-appender's default, log4j2's async appender
//! with a discarding policy): under a stalled reader some lines are lost, never the
//! service. The buffer (`CANDIDATES_LOG_BUFFER_KIB`, 4 MiB by default) absorbs bursts.
//!
//! Lines still buffered are written when the [`LogGuard`] is dropped, as `main` returns;
//! a process killed outright loses at most the last [`LINGER`] of them.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use metrics::counter;
use tracing_subscriber::fmt::MakeWriter;

/// How long the first line of a batch waits for others to join it.
pub const LINGER: Duration = Duration::from_millis(5);
/// Bytes that may wait for the writer thread by default; beyond them lines are dropped.
pub const DEFAULT_MAX_BUFFERED: usize = 4 << 20;
/// A batch buffer larger than this is not kept for the next one.
const KEPT_CAPACITY: usize = 256 << 10;

/// The `MakeWriter` of the subscriber: each event's line is appended to the buffer.
#[derive(Debug, Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when the buffer receives its first line, or on stop.
    lines_waiting: Condvar,
    /// Bytes that may wait; a line that does not fit is dropped.
    max_buffered: usize,
}

#[derive(Debug, Default)]
struct State {
    buffer: Vec<u8>,
    /// Lines dropped since the writer last said so.
    dropped: u64,
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A logger that panicked mid-append leaves at worst a partial line: keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Writes what is still buffered and stops the writer thread when dropped.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Says how many lines were dropped; called by the writer thread once it has room.
pub type DroppedReport = Box<dyn Fn(u64) + Send + 'static>;

impl LogWriter {
    /// A writer whose lines go to `out` from a thread named `log-writer`, at most
    /// `max_buffered` bytes of them waiting at a time.
    pub fn spawn(
        out: impl Write + Send + 'static,
        max_buffered: usize,
    ) -> io::Result<(Self, LogGuard)> {
        Self::spawn_reporting(out, max_buffered, Box::new(dropped_notice))
    }

    /// As [`LogWriter::spawn`], with `report` saying how many lines were dropped.
    fn spawn_reporting(
        out: impl Write + Send + 'static,
        max_buffered: usize,
        report: DroppedReport,
    ) -> io::Result<(Self, LogGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            lines_waiting: Condvar::new(),
            max_buffered,
        });
        let thread = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_batches(&shared, out, &report)
            })?;
        let guard = LogGuard {
            shared: Arc::clone(&shared),
            thread: Some(thread),
        };
        Ok((Self { shared }, guard))
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        if state.buffer.len() + line.len() > self.shared.max_buffered && !state.buffer.is_empty() {
            state.dropped += 1;
            drop(state);
            counter!("log_lines_dropped_total").increment(1);
            return;
        }
        let first = state.buffer.is_empty();
        state.buffer.extend_from_slice(line);
        drop(state);
        if first {
            self.shared.lines_waiting.notify_one();
        }
    }
}

/// The line that reports `dropped` lost lines, in the log's format.
fn dropped_notice(dropped: u64) {
    tracing::warn!(
        dropped,
        "log lines dropped: the log's reader did not keep up (log_lines_dropped_total)"
    );
}

fn write_batches(shared: &Shared, mut out: impl Write, report: &DroppedReport) {
    let mut batch = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.buffer.is_empty() && !state.stopping {
            state = shared
                .lines_waiting
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.buffer.is_empty() {
            return; // stopping, and everything written
        }
        if !state.stopping {
            drop(state);
            std::thread::sleep(LINGER);
            state = shared.lock();
        }
        std::mem::swap(&mut state.buffer, &mut batch);
        let dropped = std::mem::take(&mut state.dropped);
        drop(state);
        // Nowhere to report a failed write to but the log itself: the lines are lost,
        // as they would be with a direct write.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        batch.shrink_to(KEPT_CAPACITY);
        // Room again: say what was lost, through the subscriber, so the line has the
        // log's format. It lands in the buffer like any other line.
        if dropped > 0 {
            report(dropped);
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.lines_waiting.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What one event writes through; tracing-subscriber hands it the whole line at once.
#[derive(Debug)]
pub struct LineSink<'a>(&'a LogWriter);

impl Write for LineSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineSink(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// An output that records each write call.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.0.lock().expect("lock").clone()
        }
    }

    #[test]
    fn lines_written_together_leave_in_one_write_in_order() {
        let out = Recorder::default();
        let (writer, guard) = LogWriter::spawn(out.clone(), DEFAULT_MAX_BUFFERED).expect("spawn");
        for i in 0..100 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .expect("write");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.writes().is_empty() {
            assert!(Instant::now() < deadline, "nothing written");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(guard);
        let writes = out.writes();
        assert!(writes.len() <= 2, "{} writes for 100 lines", writes.len());
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(writes.concat()).expect("UTF-8"), expected);
    }

    #[test]
    fn dropping_the_guard_writes_what_is_buffered() {
        let out = Recorder::default();
        let (writer, guard) = LogWriter::spawn(out.clone(), DEFAULT_MAX_BUFFERED).expect("spawn");
        writer
            .make_writer()
            .write_all(b"last words\n")
            .expect("write");
        drop(guard);
        assert_eq!(out.writes().concat(), b"last words\n");
    }

    #[test]
    fn a_stalled_output_drops_lines_instead_of_making_loggers_wait_and_says_how_many() {
        /// Blocks every write until released.
        struct Stalled(Arc<(Mutex<bool>, Condvar)>, Recorder);
        impl Write for Stalled {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let (released, signal) = &*self.0;
                let mut released = released.lock().expect("lock");
                while !*released {
                    released = signal.wait(released).expect("wait");
                }
                self.1.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let out = Recorder::default();
        let reported = Arc::new(Mutex::new(Vec::new()));
        let (writer, guard) = LogWriter::spawn_reporting(
            Stalled(Arc::clone(&gate), out.clone()),
            64 << 10,
            Box::new({
                let reported = Arc::clone(&reported);
                move |dropped| reported.lock().expect("lock").push(dropped)
            }),
        )
        .expect("spawn");
        let line = vec![b'x'; 1 << 10];
        // The stalled writer takes one batch; 64 KiB more fit in the buffer; the rest of
        // these 1,000 lines of 1 KiB cannot: they are dropped, and nobody waits.
        let logger = std::thread::spawn(move || {
            for _ in 0..1000 {
                writer.make_writer().write_all(&line).expect("write");
            }
        });
        logger
            .join()
            .expect("the logger finished while the output was stalled");
        *gate.0.lock().expect("lock") = true;
        gate.1.notify_all();
        drop(guard);
        let written = out.writes().concat().len() / (1 << 10);
        let dropped: u64 = reported.lock().expect("lock").iter().sum();
        assert!(written >= 64, "{written} lines written");
        assert!(dropped >= 800, "{dropped} lines dropped");
        assert_eq!(
            written as u64 + dropped,
            1000,
            "every line written or counted"
        );
    }
}

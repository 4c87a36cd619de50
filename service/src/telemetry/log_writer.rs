//! Log lines leave the process through a buffer that a thread of its own writes out.
//!
//! Writing each line to standard output costs a `write(2)` per request (one per access
//! log line), on the thread that serves the request. Here a line is only copied into a
//! shared buffer; the writer thread, woken by the first line of a batch, lets the
//! batch gather for [`LINGER`] and writes it with one call. Under load a write carries
//! hundreds of lines; when the process is idle nothing wakes up at all.
//!
//! Nothing is dropped: if standard output stalls (a blocked pipe) and [`MAX_BUFFERED`]
//! bytes are waiting, loggers wait for room, as they would on a blocking write. Lines
//! still buffered are written when the [`LogGuard`] is dropped, as `main` returns; a
//! process killed outright loses at most the last [`LINGER`] of them.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the first line of a batch waits for others to join it.
pub const LINGER: Duration = Duration::from_millis(5);
/// Bytes that may wait for the writer thread before loggers wait for room.
pub const MAX_BUFFERED: usize = 4 << 20;
/// A batch buffer larger than this is not kept for the next one.
const KEPT_CAPACITY: usize = 256 << 10;

/// The `MakeWriter` of the subscriber: each event's line is appended to the buffer.
#[derive(Debug, Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when the buffer receives its first line, or on stop.
    lines_waiting: Condvar,
    /// Signalled when the writer thread has taken the buffer.
    room: Condvar,
}

#[derive(Debug, Default)]
struct State {
    buffer: Vec<u8>,
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

impl LogWriter {
    /// A writer whose lines go to `out` from a thread named `log-writer`.
    pub fn spawn(out: impl Write + Send + 'static) -> io::Result<(Self, LogGuard)> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_batches(&shared, out)
            })?;
        let guard = LogGuard {
            shared: Arc::clone(&shared),
            thread: Some(thread),
        };
        Ok((Self { shared }, guard))
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.shared.lock();
        while state.buffer.len() >= MAX_BUFFERED && !state.stopping {
            state = self
                .shared
                .room
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let first = state.buffer.is_empty();
        state.buffer.extend_from_slice(line);
        drop(state);
        if first {
            self.shared.lines_waiting.notify_one();
        }
    }
}

fn write_batches(shared: &Shared, mut out: impl Write) {
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
        drop(state);
        shared.room.notify_all();
        // Nowhere to report a failed write to but the log itself: the lines are lost,
        // as they would be with a direct write.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        batch.shrink_to(KEPT_CAPACITY);
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.lines_waiting.notify_one();
        self.shared.room.notify_all();
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
        let (writer, guard) = LogWriter::spawn(out.clone()).expect("spawn");
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
        let (writer, guard) = LogWriter::spawn(out.clone()).expect("spawn");
        writer
            .make_writer()
            .write_all(b"last words\n")
            .expect("write");
        drop(guard);
        assert_eq!(out.writes().concat(), b"last words\n");
    }

    #[test]
    fn a_stalled_output_makes_loggers_wait_rather_than_lose_lines() {
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
        let (writer, guard) =
            LogWriter::spawn(Stalled(Arc::clone(&gate), out.clone())).expect("spawn");
        let line = vec![b'x'; 1 << 20];
        let logger = std::thread::spawn(move || {
            // The stalled writer takes at most 4 MiB, the buffer takes 4 more: some line
            // of the ten must wait for room.
            for _ in 0..10 {
                writer.make_writer().write_all(&line).expect("write");
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !logger.is_finished(),
            "the logger should be waiting for room"
        );
        *gate.0.lock().expect("lock") = true;
        gate.1.notify_all();
        logger.join().expect("logger");
        drop(guard);
        assert_eq!(out.writes().concat().len(), 10 << 20);
    }
}

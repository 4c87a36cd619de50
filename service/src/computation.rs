//! The CPU-heavy work behind `/computation`, and the bounded pool that runs it.
//!
//! The chain runs on dedicated OS threads, never on the async runtime, so health checks
//! and store requests keep their latency while every worker is busy. The threads also
//! run at a lower scheduling priority: when the CPU is saturated the kernel serves the
//! runtime's threads first, which is what keeps `/gtg` fast for the load balancer.
//! The queue in front of them is bounded; when it is full the caller is told to retry
//! (503) instead of piling up work that would only time out.
//!
//! Admission counts jobs, not channel slots: `workers + queue` jobs are admitted at
//! once, and a job gives its place back before its result is sent. Counting the
//! channel's free slots instead refused work whenever a client's next request arrived
//! before the worker that had just answered it came back to take a job.

mod params;

pub use params::{Iterations, IterationsError, Seed, SeedError};

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use md5::{Digest, Md5};
use metrics::{counter, gauge};
use tokio::sync::oneshot;

/// `h0 = seed`, `h(i+1) = lowercase_hex(md5(h(i) + seed))`, `iterations` times.
pub fn md5_chain(seed: &str, iterations: u32) -> String {
    match run_chain(seed.as_bytes(), iterations, || false) {
        Chain::Done(hash) => hash,
        Chain::Cancelled => unreachable!("a chain that is never cancelled always finishes"),
    }
}

enum Chain {
    Done(String),
    Cancelled,
}

/// How many steps run between two looks at the cancellation flag: rare enough to cost
/// nothing, frequent enough to stop within about a millisecond.
const CANCEL_CHECK_EVERY: u32 = 4096;

fn run_chain(seed: &[u8], iterations: u32, cancelled: impl Fn() -> bool) -> Chain {
    if iterations == 0 {
        return Chain::Done(String::from_utf8_lossy(seed).into_owned());
    }
    let mut hash = step(seed, seed);
    for i in 1..iterations {
        if i % CANCEL_CHECK_EVERY == 0 && cancelled() {
            return Chain::Cancelled;
        }
        hash = step(&hash, seed);
    }
    Chain::Done(String::from_utf8(hash.to_vec()).expect("hex digits are ASCII"))
}

fn step(previous: &[u8], seed: &[u8]) -> [u8; 32] {
    let digest = Md5::new()
        .chain_update(previous)
        .chain_update(seed)
        .finalize();
    to_lower_hex(digest.as_slice())
}

fn to_lower_hex(digest: &[u8]) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    out
}

/// A finished computation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    pub hash: String,
    /// Time spent hashing, without the wait in the queue.
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("every computation worker is busy and the queue is full")]
    QueueFull,
    #[error("the computation workers have stopped")]
    Stopped,
}

struct Job {
    seed: String,
    iterations: u32,
    reply: oneshot::Sender<Computed>,
    /// Held until the job is done, cancelled or skipped.
    place: Place,
}

/// One of the pool's `workers + queue` places, taken at admission.
#[derive(Debug)]
struct Place(Arc<AtomicUsize>);

impl Place {
    fn take(admitted: &Arc<AtomicUsize>, capacity: usize) -> Option<Self> {
        admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(admitted)))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A fixed set of worker threads behind a bounded queue.
#[derive(Clone, Debug)]
pub struct ComputationPool {
    sender: Sender<Job>,
    busy: Arc<AtomicUsize>,
    /// Jobs admitted and not finished: queued or running.
    admitted: Arc<AtomicUsize>,
    workers: usize,
    queue_capacity: usize,
}

impl ComputationPool {
    /// Starts `workers` threads. `queue_capacity` jobs may wait for a free worker; with
    /// 0 a job is accepted only when a worker is idle.
    pub fn start(workers: NonZeroUsize, queue_capacity: usize) -> Self {
        // Never full: at most `workers + queue_capacity` jobs are admitted at a time.
        let (sender, receiver) = crossbeam_channel::bounded(workers.get() + queue_capacity);
        let busy = Arc::new(AtomicUsize::new(0));
        for index in 0..workers.get() {
            let receiver = receiver.clone();
            let busy = Arc::clone(&busy);
            std::thread::Builder::new()
                .name(format!("computation-{index}"))
                .spawn(move || work(&receiver, &busy))
                .expect("the OS refused to start a computation thread");
        }
        Self {
            sender,
            busy,
            admitted: Arc::new(AtomicUsize::new(0)),
            workers: workers.get(),
            queue_capacity,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// Workers hashing right now.
    pub fn busy_workers(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Jobs waiting for a worker right now.
    pub fn queue_depth(&self) -> usize {
        self.sender.len()
    }

    /// Sets the pool's gauges from its current state. Called when metrics are scraped,
    /// so they are exact at that moment and no request or job pays for keeping them.
    pub fn record_gauges(&self) {
        gauge!("computation_workers").set(self.workers as f64);
        gauge!("computation_queue_capacity").set(self.queue_capacity as f64);
        gauge!("computation_queue_depth").set(self.queue_depth() as f64);
        gauge!("computation_busy_workers").set(self.busy_workers() as f64);
    }

    /// Runs the chain on a worker. Dropping the returned future (the client went away,
    /// the request timed out) cancels the job, queued or running.
    pub async fn compute(&self, seed: String, iterations: u32) -> Result<Computed, PoolError> {
        let Some(place) = Place::take(&self.admitted, self.workers + self.queue_capacity) else {
            counter!("computation_rejected_total").increment(1);
            return Err(PoolError::QueueFull);
        };
        let (reply, done) = oneshot::channel();
        let job = Job {
            seed,
            iterations,
            reply,
            place,
        };
        if let Err(refused) = self.sender.try_send(job) {
            return Err(match refused {
                // Cannot happen (see `start`), but refusing is the safe answer.
                TrySendError::Full(_) => PoolError::QueueFull,
                TrySendError::Disconnected(_) => PoolError::Stopped,
            });
        }
        done.await.map_err(|_| PoolError::Stopped)
    }
}

fn work(receiver: &Receiver<Job>, busy: &AtomicUsize) {
    lower_thread_priority();
    for job in receiver {
        if job.reply.is_closed() {
            counter!("computation_abandoned_total").increment(1);
            continue;
        }
        busy.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = run_chain(job.seed.as_bytes(), job.iterations, || {
            job.reply.is_closed()
        });
        let elapsed = started.elapsed();
        busy.fetch_sub(1, Ordering::Relaxed);
        let Job { reply, place, .. } = job;
        // The place is free before the result leaves: a client that sends its next
        // request as soon as it has this answer finds it free.
        drop(place);
        match outcome {
            Chain::Done(hash) => {
                // The receiver may have gone in the meantime; nothing left to do then.
                let _ = reply.send(Computed { hash, elapsed });
            }
            Chain::Cancelled => counter!("computation_abandoned_total").increment(1),
        }
    }
}

/// Nice level 10 for the calling thread (Linux applies `setpriority` per thread).
#[allow(unsafe_code)]
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `0` names the calling thread.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, 0, 10) != 0 {
            tracing::debug!("could not lower the computation thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent implementation (the `md5` crate, string formatting) to compare with.
    fn reference_chain(seed: &str, iterations: u32) -> String {
        let mut hash = seed.to_owned();
        for _ in 0..iterations {
            hash = format!("{:x}", md5_reference::compute(format!("{hash}{seed}")));
        }
        hash
    }

    #[test]
    fn matches_an_independent_implementation() {
        for (seed, iterations) in [
            ("abc", 1),
            ("abc", 3),
            ("2026-11-22T10:00:00Z", 1000),
            ("é", 7),
        ] {
            assert_eq!(
                md5_chain(seed, iterations),
                reference_chain(seed, iterations)
            );
        }
    }

    #[test]
    fn fixed_vectors() {
        // Computed outside this code base (Python's hashlib).
        assert_eq!(md5_chain("abc", 1), "440ac85892ca43ad26d44c7ad9d47d3e");
        assert_eq!(md5_chain("abc", 3), "a1855a25f1ce845f2cf8096d297306fe");
        assert_eq!(md5_chain("abc", 0), "abc");
    }

    #[test]
    fn cancellation_stops_the_chain() {
        assert!(matches!(
            run_chain(b"seed", 1_000_000, || true),
            Chain::Cancelled
        ));
    }

    #[tokio::test]
    async fn the_pool_computes_on_its_workers() {
        let pool = ComputationPool::start(NonZeroUsize::MIN, 4);
        let computed = pool.compute("abc".into(), 3).await.expect("computed");
        assert_eq!(computed.hash, reference_chain("abc", 3));
    }

    /// Polls `condition` until it holds; panics after five seconds.
    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A client that sends its next job the moment it has its answer is never refused,
    /// however the worker thread is scheduled: the job's place is free before the
    /// answer is sent.
    #[tokio::test]
    async fn workers_plus_queue_jobs_in_a_closed_loop_are_never_refused() {
        let pool = ComputationPool::start(NonZeroUsize::MIN, 0);
        for round in 0..2_000 {
            assert_eq!(
                pool.compute("abc".into(), 1).await.map(|c| c.hash),
                Ok(md5_chain("abc", 1)),
                "round {round}"
            );
        }
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_and_abandoned_jobs_stop() {
        let pool = ComputationPool::start(NonZeroUsize::MIN, 1);
        let submit = |seed: &str| {
            let pool = pool.clone();
            let seed = seed.to_owned();
            tokio::spawn(async move { pool.compute(seed, u32::MAX).await })
        };
        let running = submit("running");
        eventually("the worker is busy", || pool.busy_workers() == 1).await;
        let queued = submit("queued");
        eventually("one job waits", || pool.queue_depth() == 1).await;

        assert_eq!(
            pool.compute("refused".into(), 1).await,
            Err(PoolError::QueueFull)
        );

        // Dropping the callers cancels both the running and the queued job.
        running.abort();
        queued.abort();
        eventually("the worker is idle again", || {
            pool.busy_workers() == 0 && pool.queue_depth() == 0
        })
        .await;
        assert_eq!(
            pool.compute("abc".into(), 1).await.map(|c| c.hash),
            Ok(md5_chain("abc", 1))
        );
    }
}

//! Group commit: the inserts of concurrent requests share one transaction, and so one
//! sync to disk.
//!
//! With `synchronous=FULL` every commit waits for the disk (an fsync of the WAL), so a
//! transaction per request makes the disk's sync time the ceiling of write throughput.
//! Instead one writer task does all the writing: it takes every insert waiting at that
//! moment (up to [`MAX_BATCH`]), writes them in one transaction, and answers each of
//! their requests only once that transaction has committed. An acknowledged write is
//! exactly as durable as before. Inserts that arrive during a commit form the next
//! batch, so batches grow with the load by themselves, and a lone insert is written at
//! once rather than held back waiting for company.
//!
//! The writer also knows whether writes work: how its last transaction ended, and
//! whether the one under way has been waiting long for the write lock. The health check
//! reads that ([`GroupCommit::health`]) instead of taking the lock itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use metrics::histogram;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The most inserts one transaction takes. Far above what waits at any moment at the
/// service's concurrency; it only bounds one transaction's size under a pile-up.
pub const MAX_BATCH: usize = 512;
/// Inserts that may wait for the writer; past that, requests wait for room to queue
/// (each within its own timeout).
const QUEUE_CAPACITY: usize = 4096;

/// Takes a JSON array of names: one statement whatever the batch's size, so SQLite
/// prepares it once.
const INSERT_BATCH: &str = "INSERT INTO candidates (name) SELECT value FROM json_each(?1) \
                            WHERE true ON CONFLICT (name) DO NOTHING";

/// The handle requests use to reach the writer task; cheap to clone.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Insert>,
    counts: Arc<Counts>,
}

/// What the writer is doing, for gauges, the health check and tests.
#[derive(Debug)]
struct Counts {
    /// Inserts sent and not yet taken into a batch.
    waiting: AtomicUsize,
    /// Inserts in the transaction being written.
    committing: AtomicUsize,
    /// Transactions written so far, committed or failed.
    batches: AtomicU64,
    /// The times below count milliseconds from here.
    origin: Instant,
    /// When the transaction under way began (`NEVER`: none is).
    began_ms: AtomicU64,
    /// When the last transaction ended (`NEVER`: none has), and whether it committed.
    ended_ms: AtomicU64,
    committed: AtomicBool,
}

const NEVER: u64 = u64::MAX;

impl Counts {
    fn new() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            committing: AtomicUsize::new(0),
            batches: AtomicU64::new(0),
            origin: Instant::now(),
            began_ms: AtomicU64::new(NEVER),
            ended_ms: AtomicU64::new(NEVER),
            committed: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }
}

/// What the writer's own transactions say about whether writes work now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteHealth {
    /// The last transaction, recent enough, committed.
    Committing,
    /// The last transaction, recent enough, failed; or the one under way has waited
    /// for the write lock longer than a healthy database ever makes it wait.
    Failing,
    /// No transaction recent enough to tell.
    Unknown,
}

#[derive(Debug)]
struct Insert {
    name: String,
    committed: oneshot::Sender<Result<(), CommitError>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// The batch's transaction failed: none of its inserts is acknowledged.
    #[error(transparent)]
    Database(Arc<sqlx::Error>),
    #[error("the SQLite writer has stopped")]
    Stopped,
}

impl GroupCommit {
    /// Starts the writer task on `pool` (it takes a connection for each transaction
    /// only, so readers share the pool). The task ends when every handle is dropped.
    pub fn start(pool: SqlitePool) -> Self {
        let (queue, inserts) = mpsc::channel(QUEUE_CAPACITY);
        let counts = Arc::new(Counts::new());
        tokio::spawn(write_batches(pool, inserts, Arc::clone(&counts)));
        Self { queue, counts }
    }

    /// Inserts `name` (nothing changes if it is there already). Returns once the
    /// transaction that holds it has committed, or failed.
    pub async fn insert(&self, name: &str) -> Result<(), CommitError> {
        let (committed, outcome) = oneshot::channel();
        let insert = Insert {
            name: name.to_owned(),
            committed,
        };
        self.counts.waiting.fetch_add(1, Ordering::Relaxed);
        if self.queue.send(insert).await.is_err() {
            self.counts.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(CommitError::Stopped);
        }
        outcome.await.unwrap_or(Err(CommitError::Stopped))
    }

    /// Inserts queued for the next transaction.
    pub fn waiting(&self) -> usize {
        self.counts.waiting.load(Ordering::Relaxed)
    }

    /// Inserts in the transaction being written now.
    pub fn committing(&self) -> usize {
        self.counts.committing.load(Ordering::Relaxed)
    }

    /// Whether writes work, judged from the transactions of the last `recent`: one under
    /// way for longer than `stuck` means the write lock is held elsewhere.
    pub fn health(&self, recent: Duration, stuck: Duration) -> WriteHealth {
        let counts = &self.counts;
        let now = counts.now_ms();
        let began = counts.began_ms.load(Ordering::Acquire);
        if began != NEVER && now.saturating_sub(began) >= millis(stuck) {
            return WriteHealth::Failing;
        }
        let ended = counts.ended_ms.load(Ordering::Acquire);
        if ended == NEVER || now.saturating_sub(ended) >= millis(recent) {
            return WriteHealth::Unknown;
        }
        if counts.committed.load(Ordering::Acquire) {
            WriteHealth::Committing
        } else {
            WriteHealth::Failing
        }
    }

    /// Transactions written so far, committed or failed.
    #[cfg(test)]
    pub fn batches(&self) -> u64 {
        self.counts.batches.load(Ordering::Relaxed)
    }
}

async fn write_batches(pool: SqlitePool, mut inserts: mpsc::Receiver<Insert>, counts: Arc<Counts>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while inserts.recv_many(&mut batch, MAX_BATCH).await > 0 {
        counts.waiting.fetch_sub(batch.len(), Ordering::Relaxed);
        // A request that gave up (timed out, client gone) is not acknowledged anyway:
        // its insert is not worth a place in the transaction.
        batch.retain(|insert| !insert.committed.is_closed());
        if batch.is_empty() {
            continue;
        }
        counts.committing.store(batch.len(), Ordering::Relaxed);
        counts.began_ms.store(counts.now_ms(), Ordering::Release);
        let outcome = commit(&pool, &batch)
            .await
            .map_err(|err| CommitError::Database(Arc::new(err)));
        counts.committed.store(outcome.is_ok(), Ordering::Release);
        counts.ended_ms.store(counts.now_ms(), Ordering::Release);
        counts.began_ms.store(NEVER, Ordering::Release);
        counts.committing.store(0, Ordering::Relaxed);
        counts.batches.fetch_add(1, Ordering::Relaxed);
        histogram!("sqlite_write_batch_size").record(batch.len() as f64);
        for insert in batch.drain(..) {
            // The request may have gone meanwhile; nothing left to tell it then.
            let _ = insert.committed.send(outcome.clone());
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(NEVER)
}

/// One transaction for the whole batch. `BEGIN IMMEDIATE` takes the write lock first,
/// so a lock held elsewhere is waited for (the connection's busy timeout) at the start
/// rather than failing half-way.
async fn commit(pool: &SqlitePool, batch: &[Insert]) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = batch.iter().map(|insert| insert.name.as_str()).collect();
    let names = serde_json::to_string(&names).map_err(|err| sqlx::Error::Encode(err.into()))?;
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(INSERT_BATCH)
        .bind(names)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await
}

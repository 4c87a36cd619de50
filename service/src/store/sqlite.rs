//! The embedded store: SQLite through sqlx, in WAL mode, schema from `migrations/`.
//!
//! The pool is opened lazily and re-opened after a failure, so a database that cannot be
//! opened at start (a read-only folder, a full disk) is reported as unavailable rather
//! than stopping the process, and starts working once the cause is fixed.
//!
//! Reads go through the pool; writes go through one writer task that commits the
//! inserts of concurrent requests together (`group_commit`).

mod group_commit;

pub(crate) use group_commit::MAX_BATCH;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use metrics::{counter, gauge};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use tokio::sync::OnceCell;

use self::group_commit::{GroupCommit, WriteHealth};
use super::{BoxError, CandidateStore, StoreError, StoreTimeouts, note_failure, parse_stored_name};
use crate::candidate::{Candidate, CandidateName, Page, PageLimit};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long the write probe waits for the write lock: long enough for the service's own
/// writes (milliseconds) to finish, short enough for `?details` to answer quickly. A
/// transaction of the service's own that has waited this long for the lock means the
/// lock is held elsewhere.
const WRITE_PROBE_WAIT: Duration = Duration::from_millis(500);
/// The first `?2` names after `?1` in ascending byte order, as one JSON array. SQLite
/// does not promise to keep the subquery's order in the aggregate (an `ORDER BY` inside
/// it would, at the price of sorting the page again in a temporary b-tree), so the page
/// is sorted once read: already in order, that costs one pass.
const PAGE_OF_NAMES: &str = "SELECT json_group_array(name) AS names FROM \
                             (SELECT name FROM candidates WHERE name > ?1 ORDER BY name LIMIT ?2)";
/// How recent a transaction of the service's own must be to speak for the writes.
const WRITES_SPEAK_FOR: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct SqliteStore {
    location: Location,
    timeouts: StoreTimeouts,
    opened: OnceCell<Opened>,
}

/// The database once opened: the pool, and the writer task that owns the writes.
#[derive(Debug)]
struct Opened {
    pool: SqlitePool,
    writer: GroupCommit,
}

#[derive(Debug)]
enum Location {
    File(PathBuf),
    Memory,
}

impl SqliteStore {
    pub fn file(path: PathBuf, timeouts: StoreTimeouts) -> Self {
        Self::new(Location::File(path), timeouts)
    }

    pub fn memory(timeouts: StoreTimeouts) -> Self {
        Self::new(Location::Memory, timeouts)
    }

    fn new(location: Location, timeouts: StoreTimeouts) -> Self {
        Self {
            location,
            timeouts,
            opened: OnceCell::new(),
        }
    }

    /// The database, opening it (and migrating the schema) on first use or after a
    /// failed attempt.
    async fn opened(&self, operation: &'static str) -> Result<&Opened, StoreError> {
        self.opened
            .get_or_try_init(|| async {
                let pool = self.open().await?;
                let writer = GroupCommit::start(pool.clone());
                Ok::<_, BoxError>(Opened { pool, writer })
            })
            .await
            .map_err(|err| StoreError::unavailable(operation, err))
    }

    async fn pool(&self, operation: &'static str) -> Result<&SqlitePool, StoreError> {
        Ok(&self.opened(operation).await?.pool)
    }

    /// How every connection to a database file is opened.
    fn file_options(&self, path: &Path) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged POST survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(self.timeouts.operation)
            .foreign_keys(true)
    }

    async fn open(&self) -> Result<SqlitePool, BoxError> {
        let (options, pool) = match &self.location {
            Location::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|err| {
                        format!("cannot create folder {}: {err}", parent.display())
                    })?;
                }
                let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
                let pool = SqlitePoolOptions::new()
                    .max_connections(u32::try_from(readers.max(4)).unwrap_or(4))
                    .min_connections(1);
                (self.file_options(path), pool)
            }
            // One connection, kept for the life of the process: the database lives only
            // as long as a connection does, and connections sharing an in-memory
            // database lock whole tables (SQLITE_LOCKED, which busy_timeout does not
            // wait out), so a second connection would turn concurrent writes into 503s.
            Location::Memory => {
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
                let options: SqliteConnectOptions = "sqlite::memory:".parse()?;
                (options.journal_mode(SqliteJournalMode::Memory), pool)
            }
        };
        let pool = pool
            .acquire_timeout(self.timeouts.operation)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(pool)
    }

    async fn bounded<T, E: Into<BoxError>>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeouts.operation, call).await {
            Ok(result) => result.map_err(|err| StoreError::unavailable(operation, err)),
            Err(elapsed) => Err(StoreError::unavailable(operation, elapsed)),
        }
    }
}

fn name_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Option<CandidateName>, sqlx::Error> {
    let raw: String = row.try_get("name")?;
    Ok(parse_stored_name("sqlite", raw))
}

#[async_trait]
impl CandidateStore for SqliteStore {
    /// Acknowledged once the transaction holding it has committed (with
    /// `synchronous=FULL`, once it is on disk), shared with the concurrent inserts.
    async fn put(&self, name: &CandidateName) -> Result<(), StoreError> {
        let writer = &self.opened("put").await?.writer;
        self.bounded("put", writer.insert(name.as_str())).await
    }

    async fn get(&self, name: &CandidateName) -> Result<Option<Candidate>, StoreError> {
        let pool = self.pool("get").await?;
        let select = async {
            let row = sqlx::query("SELECT name FROM candidates WHERE name = ?1")
                .bind(name.as_str())
                .fetch_optional(pool)
                .await?;
            Ok::<_, sqlx::Error>(row.as_ref().map(name_from_row).transpose()?.flatten())
        };
        let found = self.bounded("get", select).await?;
        Ok(found.map(Candidate::from))
    }

    async fn list(
        &self,
        limit: PageLimit,
        after: Option<&CandidateName>,
    ) -> Result<Page, StoreError> {
        let pool = self.pool("list").await?;
        // Every valid name sorts after the empty string, so "" means "from the start".
        let after = after.map_or("", CandidateName::as_str);
        let fetch = i64::try_from(limit.get() + 1).unwrap_or(i64::MAX);
        // The page comes back as one row holding a JSON array, not as a row per name:
        // sqlx hands every row from its SQLite thread to the runtime through a channel,
        // and a thread hand-off per name made a full listing of 100,000 names spend
        // half its CPU switching threads, starving the writer of its turns.
        let select = async {
            let row = sqlx::query(PAGE_OF_NAMES)
                .bind(after)
                .bind(fetch)
                .fetch_one(pool)
                .await?;
            let names: String = row.try_get("names")?;
            let mut names: Vec<String> =
                serde_json::from_str(&names).map_err(|err| sqlx::Error::Decode(err.into()))?;
            names.sort_unstable();
            Ok::<_, sqlx::Error>(
                names
                    .into_iter()
                    .filter_map(|raw| parse_stored_name("sqlite", raw))
                    .collect(),
            )
        };
        let names = self.bounded("list", select).await?;
        Ok(Page::from_sorted(names, limit))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pool = self.pool("ping").await?;
        let probe = sqlx::query("SELECT 1").execute(pool);
        self.bounded("ping", probe).await.map(drop)
    }

    /// Whether a write would be accepted now, without taking the write lock where the
    /// service's own writes already tell: its last transaction (committed or failed) if
    /// it is recent, or the one under way if it has been waiting too long for the lock.
    /// Only when nothing was written lately does it probe: take the write lock and let
    /// it go, on a connection of its own (the health check asks at most once a second).
    /// In WAL mode reads go on while another process holds that lock (a backup, a
    /// migration, a hand-run `sqlite3`), so only this shows that writes would wait and
    /// then fail.
    async fn ping_write(&self) -> Result<(), StoreError> {
        let path = match &self.location {
            // Nothing outside this process can lock an in-memory database.
            Location::Memory => return Ok(()),
            Location::File(path) => path,
        };
        // Opening the pool first migrates a new database: the probe never creates one.
        let opened = self.opened("ping_write").await?;
        match opened.writer.health(WRITES_SPEAK_FOR, WRITE_PROBE_WAIT) {
            WriteHealth::Committing => return Ok(()),
            WriteHealth::Failing => {
                return Err(StoreError::unavailable(
                    "ping_write",
                    "the service's own writes are failing or waiting for the write lock",
                ));
            }
            WriteHealth::Unknown => {}
        }
        let options = self.file_options(path).busy_timeout(WRITE_PROBE_WAIT);
        let probe = async {
            let mut connection = SqliteConnection::connect_with(&options).await?;
            connection
                .begin_with("BEGIN IMMEDIATE")
                .await?
                .rollback()
                .await?;
            connection.close().await
        };
        let probed = self.bounded("ping_write", probe).await;
        if let Err(err) = &probed {
            counter!("store_errors_total", "backend" => "sqlite", "operation" => "ping_write")
                .increment(1);
            note_failure("sqlite", "ping_write", err);
        }
        probed
    }

    fn record_gauges(&self) {
        if let Some(opened) = self.opened.get() {
            gauge!("sqlite_writes_waiting").set(opened.writer.waiting() as f64);
            gauge!("sqlite_writes_committing").set(opened.writer.committing() as f64);
        }
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn default_timeouts() -> StoreTimeouts {
        StoreTimeouts::within(Duration::from_secs(5))
    }

    fn name(raw: &str) -> CandidateName {
        CandidateName::parse(raw).expect("valid")
    }

    fn names(page: &Page) -> Vec<&str> {
        page.candidates.iter().map(|c| c.name.as_str()).collect()
    }

    #[tokio::test]
    async fn put_is_an_idempotent_upsert_and_get_sees_it() {
        let store = SqliteStore::memory(default_timeouts());
        assert_eq!(store.get(&name("Zoë")).await.expect("get"), None);
        store.put(&name("Zoë")).await.expect("put");
        store.put(&name("Zoë")).await.expect("put again");
        assert_eq!(
            store.get(&name("Zoë")).await.expect("get"),
            Some(Candidate::from(name("Zoë")))
        );
        let page = store.list(PageLimit::DEFAULT, None).await.expect("list");
        assert_eq!(names(&page), ["Zoë"]);
    }

    #[tokio::test]
    async fn list_pages_in_byte_order_and_resumes_after_the_cursor() {
        let store = SqliteStore::memory(default_timeouts());
        for raw in ["b", "a", "Z", "é", "aa", "李"] {
            store.put(&name(raw)).await.expect("put");
        }
        let limit = PageLimit::new(4).expect("limit");
        let first = store.list(limit, None).await.expect("first page");
        // Upper case before lower case, ASCII before multi-byte: UTF-8 byte order.
        assert_eq!(names(&first), ["Z", "a", "aa", "b"]);
        let cursor = first.next.expect("more pages");
        let second = store
            .list(limit, Some(cursor.last_seen()))
            .await
            .expect("second page");
        assert_eq!(names(&second), ["é", "李"]);
        assert_eq!(second.next, None);
    }

    #[tokio::test]
    async fn a_file_database_is_created_with_its_folder_and_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("candidates-sqlite-{}", uuid::Uuid::new_v4()));
        let path = dir.join("nested").join("c.db");
        {
            let store = SqliteStore::file(path.clone(), default_timeouts());
            store.put(&name("kept")).await.expect("put");
        }
        let reopened = SqliteStore::file(path.clone(), default_timeouts());
        assert!(reopened.get(&name("kept")).await.expect("get").is_some());
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[tokio::test]
    async fn an_unopenable_database_is_unavailable_and_recovers_without_a_restart() {
        let dir = std::env::temp_dir().join(format!("candidates-sqlite-{}", uuid::Uuid::new_v4()));
        // A regular file where the folder should be: opening must fail.
        std::fs::write(&dir, b"not a folder").expect("blocker");
        let store = SqliteStore::file(dir.join("c.db"), default_timeouts());
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable {
                operation: "ping",
                ..
            })
        ));
        std::fs::remove_file(&dir).expect("remove blocker");
        store.ping().await.expect("recovered");
        store.put(&name("after recovery")).await.expect("put");
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[tokio::test]
    async fn a_database_another_connection_holds_for_writing_reads_but_cannot_write() {
        let dir = std::env::temp_dir().join(format!("candidates-sqlite-{}", uuid::Uuid::new_v4()));
        let path = dir.join("c.db");
        let store = SqliteStore::file(path.clone(), default_timeouts());
        store.put(&name("before")).await.expect("put");
        store.ping_write().await.expect("writable");

        // Another connection (as another process would) takes the write lock and keeps it.
        let mut other = SqliteConnection::connect_with(&store.file_options(&path))
            .await
            .expect("second connection");
        let held = other.begin_with("BEGIN IMMEDIATE").await.expect("lock");
        // Until then the service's own recent commit speaks for the writes.
        tokio::time::sleep(WRITES_SPEAK_FOR).await;
        store.ping().await.expect("reads still work");
        assert!(store.get(&name("before")).await.expect("get").is_some());
        assert!(matches!(
            store.ping_write().await,
            Err(StoreError::Unavailable {
                operation: "ping_write",
                ..
            })
        ));
        held.rollback().await.expect("release");
        store.ping_write().await.expect("writable again");
        store.put(&name("after")).await.expect("put after");
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    /// Polls `condition` until it holds; panics after ten seconds.
    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_writes_share_one_transaction_and_are_acknowledged_after_it() {
        let dir = std::env::temp_dir().join(format!("candidates-sqlite-{}", uuid::Uuid::new_v4()));
        let path = dir.join("c.db");
        let store = Arc::new(SqliteStore::file(path.clone(), default_timeouts()));
        store.put(&name("warm-up")).await.expect("put");
        let writer = store.opened("test").await.expect("opened").writer.clone();
        let batches_before = writer.batches();

        // Another connection holds the write lock: the writer's next transaction waits.
        let mut other = SqliteConnection::connect_with(&store.file_options(&path))
            .await
            .expect("second connection");
        let held = other.begin_with("BEGIN IMMEDIATE").await.expect("lock");
        let put = |raw: String| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.put(&name(&raw)).await })
        };
        let first = put("first".to_owned());
        eventually("the first insert waits for the lock", || {
            writer.committing() == 1
        })
        .await;
        let rest: Vec<_> = (0..20).map(|i| put(format!("queued {i}"))).collect();
        eventually("20 inserts wait", || writer.waiting() == 20).await;
        assert!(!first.is_finished(), "not acknowledged before its commit");

        held.rollback().await.expect("release");
        first.await.expect("task").expect("first put");
        for put in rest {
            put.await.expect("task").expect("queued put");
        }
        assert_eq!(
            writer.batches() - batches_before,
            2,
            "the first insert's transaction, then one for the 20 that waited"
        );
        let page = store.list(PageLimit::MAX_PAGE, None).await.expect("list");
        assert_eq!(page.candidates.len(), 22);
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}

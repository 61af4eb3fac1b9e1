//! PostgreSQL: the pool, migrations, job records and uploads.
//!
//! The pool connects lazily, so a process starts while PostgreSQL is down;
//! every call fails fast with [`StoreError::Unavailable`] until it is back.
//! The schema is migrated by `refinery` (which records applied versions in
//! `refinery_schema_history`) under an advisory lock, so several processes
//! starting at once migrate once. Until the migration has run, every call
//! first tries to run it, so a process that started before PostgreSQL was
//! reachable recovers by itself.
//!
//! - `records`: rows as records, queue entries, attempt starts and ends.
//! - `jobs`: reading, listing and every state transition of a job.
//! - `writers`: the group-commit writers of the hot transitions, on `batch`.
//! - `maintenance`: the sweeps' queries and the dead-letter list.
//! - `uploads`: uploaded files, in chunks.

mod batch;
mod jobs;
mod maintenance;
mod outbox;
mod records;
mod uploads;
mod writers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::Mutex;
use tokio_postgres::NoTls;

pub use outbox::Unannounced;
pub use records::{Cursor, Ended, ListFilter, QueueEntry, Started, Terminal};
pub use uploads::{UploadMeta, CHUNK_BYTES};

mod embedded {
    refinery::embed_migrations!("src/jobs/migrations");
}

/// Key of the advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x7265_6c61_795f_6d67; // "relay_mg"

/// How long a caller waits for a pooled connection (or a new one) before
/// PostgreSQL is taken as unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the writer of a terminal state keeps the claim on its outbox
/// row (it publishes the event within that time, normally at once); once it
/// lapsed, any sweep may publish the event.
pub const OUTBOX_CLAIM: Duration = Duration::from_secs(5);

/// Longest any statement may run.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// PostgreSQL could not be reached or did not answer in time.
    #[error("postgresql is unavailable: {0}")]
    Unavailable(String),
    /// PostgreSQL refused a statement.
    #[error("postgresql error: {0}")]
    Db(String),
    /// The schema migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A configuration value is unusable.
    #[error("bad database configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// Whether the caller should answer `UNAVAILABLE` (retryable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            // Connection trouble, shutdown, too many connections, statement timeout.
            Some(c)
                if c.code().starts_with("08")
                    || c.code().starts_with("57")
                    || c.code() == "53300" =>
            {
                StoreError::Unavailable(e.to_string())
            }
            Some(_) => StoreError::Db(
                e.as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string()),
            ),
            None => StoreError::Unavailable(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `RELAY_DATABASE_URL`.
    pub url: String,
    /// Most connections held at once.
    pub max_connections: usize,
}

/// Handle to the job store; cheap to clone.
///
/// The hot writes (recording a job, starting and ending attempts, noting
/// enqueues) go through group-commit batchers (`batch`): concurrent calls
/// share one statement. Every statement is prepared once per connection.
#[derive(Clone)]
pub struct Store {
    core: Arc<Core>,
    batches: Arc<writers::Batches>,
    outbox: Arc<outbox::OutboxBatch>,
}

/// The pool and the migration state, shared by the handles and the batchers.
pub(crate) struct Core {
    pool: Pool,
    migrated: AtomicBool,
    migrate_lock: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("migrated", &self.is_migrated())
            .finish()
    }
}

/// Formats a timestamp as the contract does (RFC 3339, milliseconds, `Z`).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Store {
    /// Builds the pool; connects nothing yet.
    pub fn new(settings: &StoreSettings) -> Result<Self, StoreError> {
        let mut pg: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Config(e.to_string()))?;
        pg.connect_timeout(CONNECT_TIMEOUT);
        // Statements are prepared once per connection, but planned on every
        // run: a generic plan made while `jobs` was small (a hash join over a
        // sequential scan) would otherwise stay while the table grows.
        pg.options(format!(
            "-c statement_timeout={} -c plan_cache_mode=force_custom_plan",
            STATEMENT_TIMEOUT.as_millis()
        ));
        if pg.get_application_name().is_none() {
            pg.application_name("relay");
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let core = Arc::new(Core {
            pool,
            migrated: AtomicBool::new(false),
            migrate_lock: Mutex::new(()),
        });
        Ok(Self {
            batches: Arc::new(writers::Batches::new(&core)),
            outbox: Arc::new(outbox::OutboxBatch::new(&core)),
            core,
        })
    }

    /// Whether the schema migration has run in this process.
    pub fn is_migrated(&self) -> bool {
        self.core.is_migrated()
    }

    /// Runs the migrations once (later calls return at once).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.core.migrate().await
    }

    /// A connection, with the schema migrated; fails fast while PostgreSQL is away.
    pub(crate) async fn conn(&self) -> Result<Object, StoreError> {
        self.core.conn().await
    }

    /// Whether PostgreSQL answers `SELECT 1` within `within`.
    pub async fn ping(&self, within: Duration) -> bool {
        let probe = async {
            let conn = self.core.pool.get().await.ok()?;
            conn.simple_query("SELECT 1").await.ok()
        };
        matches!(tokio::time::timeout(within, probe).await, Ok(Some(_)))
    }
}

impl Core {
    fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        if self.is_migrated() {
            return Ok(());
        }
        let _one_at_a_time = self.migrate_lock.lock().await;
        if self.is_migrated() {
            return Ok(());
        }
        let mut conn = self.pool.get().await?;
        conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let client: &mut tokio_postgres::Client = &mut conn;
        let result = embedded::migrations::runner().run_async(client).await;
        let unlock = conn
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        let report = result.map_err(|e| StoreError::Migration(e.to_string()))?;
        unlock?;
        for m in report.applied_migrations() {
            tracing::info!(version = m.version(), name = m.name(), "applied migration");
        }
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// A connection, with the schema migrated; fails fast while PostgreSQL is away.
    pub(crate) async fn conn(&self) -> Result<Object, StoreError> {
        if !self.is_migrated() {
            self.migrate().await?;
        }
        Ok(self.pool.get().await?)
    }
}

impl Store {
    /// Keeps trying to migrate in the background until it succeeds or `stop` fires.
    pub fn migrate_in_background(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                match store.migrate().await {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(error = %e, "postgresql not ready; migrating later"),
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        })
    }
}

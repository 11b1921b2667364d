//! The shared catalog: one PostgreSQL database for every host behind a load
//! balancer. Same tables and the same semantics as sqlite.rs; where SQLite
//! serializes writers with its file lock, this takes row locks (`FOR UPDATE`)
//! inside short transactions, so that decisions hold across hosts.
//!
//! Connections come from a deadpool pool over tokio-postgres, without TLS
//! for now (`NoTls`: loopback or a private network; the config refuses
//! `sslmode=require` rather than silently ignoring it).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row};

use super::{
    Catalog, CatalogError, ClaimOutcome, CopyState, DownloadRecord, Event, Hold, LinkKind, LinkRecord, LinkStats,
    MetadataUpdate, ObjectPage, ObjectQuery, ObjectRecord, ProviderStats, Stats, TOP_FILES, TokenRecord, TopFile,
    UseOutcome, UseRequest, glob_pattern, like_pattern, system_now_ms,
};
use crate::config::PostgresConfig;

/// Schema versions, oldest first; version N is `MIGRATIONS[N - 1]`, recorded
/// in `wharf_schema_version` when applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE files (
    sha256     TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    name       TEXT NOT NULL,
    mime       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE objects (
    -- Listing order and cursors, as SQLite's rowid.
    seq         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    provider    TEXT NOT NULL,
    remote_id   TEXT NOT NULL,
    sha256      TEXT NOT NULL REFERENCES files(sha256),
    name        TEXT NOT NULL,
    mime        TEXT NOT NULL,
    purpose     TEXT NOT NULL DEFAULT '', -- '' when none was given
    state       TEXT NOT NULL DEFAULT 'present' CHECK (state IN ('present', 'gone')),
    created_at  BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags        TEXT[] NOT NULL DEFAULT '{}',
    UNIQUE (principal, provider, remote_id, purpose)
);
CREATE INDEX objects_by_content ON objects (sha256, provider);
CREATE INDEX objects_by_principal ON objects (principal, seq);
CREATE TABLE downloads (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_id   TEXT NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    principal   TEXT NOT NULL,
    destination TEXT NOT NULL,
    source      TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX downloads_by_object ON downloads (object_id);
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    principal    TEXT NOT NULL,
    admin        BOOLEAN NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE TABLE links (
    token_sha256   TEXT PRIMARY KEY,
    principal      TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('file', 'directory', 'stored')),
    target         TEXT NOT NULL,
    filename       TEXT NOT NULL,
    size           BIGINT NOT NULL,
    sha256         TEXT,
    identity       TEXT,
    max_size       BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    max_uses       INTEGER NOT NULL,
    uses           INTEGER NOT NULL DEFAULT 0,
    charged        BIGINT NOT NULL DEFAULT 0,
    budget_per_use BIGINT NOT NULL
);
CREATE INDEX links_by_principal ON links (principal);
CREATE INDEX links_by_expiry ON links (expires_at);
CREATE TABLE holds (
    name          TEXT PRIMARY KEY, -- 'upload PROVIDER SHA256 PURPOSE' or 'lease NAME'
    holder        TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
"#,
    // The file pipeline: corrupt copies and when a state began (retention),
    // free key-value metadata, registered objects, download counts and
    // tracking, and the events `wharf stats` counts.
    r#"
ALTER TABLE objects DROP CONSTRAINT objects_state_check;
ALTER TABLE objects ADD CONSTRAINT objects_state_check CHECK (state IN ('present', 'gone', 'corrupt'));
ALTER TABLE objects ADD COLUMN state_at BIGINT NOT NULL DEFAULT 0;
UPDATE objects SET state_at = created_at;
ALTER TABLE objects ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE objects ADD COLUMN registered BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE objects ADD COLUMN download_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN last_download_at BIGINT;
-- The content's size, kept here so listings and stats need no join.
ALTER TABLE objects ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
UPDATE objects o SET size = f.size FROM files f WHERE f.sha256 = o.sha256;
CREATE INDEX objects_by_state ON objects (state, principal, provider, size);
UPDATE objects o SET download_count = d.n, last_download_at = d.last
    FROM (SELECT object_id, count(*) AS n, max(at) AS last FROM downloads GROUP BY object_id) d
    WHERE d.object_id = o.id;
CREATE INDEX objects_by_last_use ON objects (provider, (coalesce(last_download_at, created_at)));
CREATE INDEX objects_by_tag ON objects USING gin (tags);
ALTER TABLE downloads ADD COLUMN provider TEXT NOT NULL DEFAULT '';
ALTER TABLE downloads ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE downloads ADD COLUMN duration_ms BIGINT NOT NULL DEFAULT 0;
-- Covering the statistics' queries, which read only these columns.
CREATE INDEX downloads_by_time ON downloads (at, principal, source, bytes, object_id);
CREATE TABLE events (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    principal TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('upload', 'dedup', 'failure')),
    provider  TEXT NOT NULL,
    bytes     BIGINT NOT NULL DEFAULT 0,
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_by_time ON events (at, principal, kind, detail, bytes);
"#,
];

/// The advisory lock that serializes schema upgrades of hosts starting at
/// once ("wharf" in ASCII; any constant that no other application uses).
const MIGRATION_LOCK: i64 = 0x77_68_61_72_66;
/// How long a host waits for a new connection, and for a free one from the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const POOL_WAIT: Duration = Duration::from_secs(30);

const OBJECT_COLUMNS: &str = "o.id, o.principal, o.provider, o.remote_id, o.sha256, o.size, o.name, o.mime, o.purpose, \
     o.created_at, o.state, o.description, o.tags, o.seq, o.attributes, o.registered, o.download_count, \
     o.last_download_at";

const LINK_COLUMNS: &str = "token_sha256, principal, kind, target, filename, size, sha256, identity, max_size, \
     created_at, expires_at, max_uses, uses, charged, budget_per_use";

const TOKEN_COLUMNS: &str = "id, principal, admin, token_sha256, created_at, expires_at, revoked_at";

/// The database's clock in milliseconds: one clock for every host's holds.
const NOW_MS: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint";

pub struct PostgresCatalog {
    pool: Pool,
    /// The URL without its password, naming this catalog in errors.
    label: String,
}

/// What went wrong talking to the database, before it is named for the catalog.
#[derive(Debug)]
enum Failure {
    Pool(PoolError),
    Db(tokio_postgres::Error),
    Schema(String),
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => Failure::Db(e),
            other => Failure::Pool(other),
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Pool(e) => write!(f, "no connection from the pool: {e}"),
            // tokio-postgres prints only the kind ("db error"); the server's
            // message and the underlying cause are in its details and source.
            Failure::Db(e) => match e.as_db_error() {
                Some(db) => {
                    write!(f, "{}: {}", db.severity(), db.message())?;
                    match db.detail() {
                        Some(detail) => write!(f, " ({detail})"),
                        None => Ok(()),
                    }
                }
                None => {
                    write!(f, "{e}")?;
                    let mut source = std::error::Error::source(e);
                    while let Some(cause) = source {
                        write!(f, ": {cause}")?;
                        source = cause.source();
                    }
                    Ok(())
                }
            },
            Failure::Schema(message) => f.write_str(message),
        }
    }
}

impl PostgresCatalog {
    /// Connects, and brings the schema up to date.
    pub async fn connect(config: &PostgresConfig) -> Result<Self, CatalogError> {
        let label = config.describe();
        let mut connection = config.connection.clone();
        if connection.get_connect_timeout().is_none() {
            connection.connect_timeout(CONNECT_TIMEOUT);
        }
        if connection.get_application_name().is_none() {
            connection.application_name("wharf");
        }
        let manager =
            Manager::from_config(connection, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(config.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| CatalogError {
                path: label.clone(),
                message: format!("setting up the connection pool: {e}"),
            })?;
        let catalog = Self { pool, label };
        catalog.run("connecting and upgrading the schema", catalog.migrate()).await?;
        Ok(catalog)
    }

    /// Applies the migrations this database lacks, in one transaction under
    /// an advisory lock: of several hosts starting at once, the first
    /// upgrades and the others wait, then find nothing left to do.
    async fn migrate(&self) -> Result<(), Failure> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS wharf_schema_version (
                 version    INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
        let current: i32 =
            tx.query_one("SELECT coalesce(max(version), 0) FROM wharf_schema_version", &[]).await?.get(0);
        let current = current as usize;
        if current > MIGRATIONS.len() {
            return Err(Failure::Schema(format!(
                "the database's schema is version {current}, newer than this Wharf knows ({}); upgrade Wharf on this host",
                MIGRATIONS.len()
            )));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            let version = index as i32 + 1;
            tx.batch_execute(sql)
                .await
                .map_err(|e| Failure::Schema(format!("applying schema version {version}: {}", Failure::Db(e))))?;
            tx.execute("INSERT INTO wharf_schema_version (version) VALUES ($1)", &[&version]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs one catalog operation, naming it and this catalog if it fails.
    async fn run<T>(&self, what: &str, operation: impl Future<Output = Result<T, Failure>>) -> Result<T, CatalogError> {
        operation.await.map_err(|e| CatalogError { path: self.label.clone(), message: format!("{what}: {e}") })
    }

    /// Rows of a query on a pooled connection, through its statement cache.
    async fn query(&self, sql: &str, args: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Vec<Row>, Failure> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, args).await?)
    }

    /// Rows changed by a statement on a pooled connection.
    async fn execute(&self, sql: &str, args: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<u64, Failure> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, args).await?)
    }

    async fn query_objects(
        &self,
        filter: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<(ObjectRecord, i64)>, Failure> {
        let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects o {filter}");
        self.query(&sql, args).await?.iter().map(object_from_row).collect()
    }
}

fn object_from_row(row: &Row) -> Result<(ObjectRecord, i64), Failure> {
    let state: String = row.try_get(10)?;
    let purpose: String = row.try_get(8)?;
    let attributes: String = row.try_get(14)?;
    let sha256: String = row.try_get(4)?;
    let record = ObjectRecord {
        id: row.try_get(0)?,
        principal: row.try_get(1)?,
        provider: row.try_get(2)?,
        remote_id: row.try_get(3)?,
        verified: ObjectRecord::is_hashed(&sha256),
        sha256,
        size: row.try_get::<_, i64>(5)? as u64,
        name: row.try_get(6)?,
        mime: row.try_get(7)?,
        purpose: Some(purpose).filter(|p| !p.is_empty()),
        created_at: row.try_get(9)?,
        state: CopyState::parse(&state),
        description: row.try_get(11)?,
        tags: row.try_get(12)?,
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        registered: row.try_get(15)?,
        download_count: row.try_get::<_, i64>(16)? as u64,
        last_download_at: row.try_get(17)?,
    };
    Ok((record, row.try_get(13)?))
}

fn link_from_row(row: &Row) -> Result<LinkRecord, Failure> {
    let kind: String = row.try_get(2)?;
    Ok(LinkRecord {
        token_sha256: row.try_get(0)?,
        principal: row.try_get(1)?,
        kind: match kind.as_str() {
            "directory" => LinkKind::Directory,
            "stored" => LinkKind::Stored,
            _ => LinkKind::File,
        },
        target: row.try_get(3)?,
        filename: row.try_get(4)?,
        size: row.try_get::<_, i64>(5)? as u64,
        sha256: row.try_get(6)?,
        identity: row.try_get(7)?,
        max_size: row.try_get::<_, i64>(8)? as u64,
        created_at: row.try_get(9)?,
        expires_at: row.try_get(10)?,
        max_uses: row.try_get::<_, i32>(11)? as u32,
        uses: row.try_get::<_, i32>(12)? as u32,
        charged: row.try_get::<_, i64>(13)? as u64,
        budget_per_use: row.try_get::<_, i64>(14)? as u64,
    })
}

fn token_from_row(row: &Row) -> Result<TokenRecord, Failure> {
    Ok(TokenRecord {
        id: row.try_get(0)?,
        principal: row.try_get(1)?,
        admin: row.try_get(2)?,
        token_sha256: row.try_get(3)?,
        created_at: row.try_get(4)?,
        expires_at: row.try_get(5)?,
        revoked_at: row.try_get(6)?,
    })
}

#[async_trait::async_trait]
impl Catalog for PostgresCatalog {
    async fn ping(&self) -> Result<(), CatalogError> {
        self.run("checking the connection", async { self.query("SELECT 1", &[]).await.map(drop) }).await
    }

    async fn find_copy(
        &self,
        provider: &str,
        sha256: &str,
        purpose: Option<&str>,
        principal: &str,
    ) -> Result<Option<ObjectRecord>, CatalogError> {
        let purpose = purpose.unwrap_or_default();
        self.run("looking for a copy", async {
            let found = self
                .query_objects(
                    "WHERE o.provider = $1 AND o.sha256 = $2 AND o.purpose = $3 AND o.state = 'present'
                     ORDER BY o.principal = $4 DESC, o.created_at, o.seq LIMIT 1",
                    &[&provider, &sha256, &purpose, &principal],
                )
                .await?;
            Ok(found.into_iter().next().map(|(record, _)| record))
        })
        .await
    }

    async fn object(&self, id: &str) -> Result<Option<ObjectRecord>, CatalogError> {
        self.run("reading a record", async {
            Ok(self.query_objects("WHERE o.id = $1", &[&id]).await?.into_iter().next().map(|(record, _)| record))
        })
        .await
    }

    async fn copies(&self, sha256: &str) -> Result<Vec<ObjectRecord>, CatalogError> {
        self.run("listing the records of some content", async {
            let rows = self.query_objects("WHERE o.sha256 = $1 ORDER BY o.created_at, o.seq", &[&sha256]).await?;
            Ok(rows.into_iter().map(|(record, _)| record).collect())
        })
        .await
    }

    async fn objects(&self, query: &ObjectQuery) -> Result<ObjectPage, CatalogError> {
        let after = match &query.after {
            Some(cursor) => Some(cursor.parse::<i64>().map_err(|_| CatalogError {
                path: self.label.clone(),
                message: format!("cursor {cursor:?} is not one this catalog handed out"),
            })?),
            None => None,
        };
        let limit = query.limit.map(|l| l as i64);
        let name = query.name_contains.as_deref().map(like_pattern);
        let glob = query.name_glob.as_deref().map(glob_pattern);
        let mime = query.mime.as_deref().map(glob_pattern);
        let rows = self
            .run("listing records", async {
                self.query_objects(
                    "WHERE ($1::text IS NULL OR o.principal = $1) AND ($2::text IS NULL OR o.provider = $2)
                       AND ($3::text IS NULL OR o.name ILIKE $3 ESCAPE '\\') AND ($4::bigint IS NULL OR o.seq < $4)
                       AND ($6::text IS NULL OR o.name ILIKE $6 ESCAPE '\\')
                       AND ($7::text IS NULL OR o.mime ILIKE $7 ESCAPE '\\')
                       AND ($8::text IS NULL OR o.tags @> ARRAY[$8::text])
                       AND ($9::bigint IS NULL OR o.created_at >= $9)
                     ORDER BY o.seq DESC LIMIT $5",
                    &[&query.principal, &query.provider, &name, &after, &limit, &glob, &mime, &query.tag, &query.since],
                )
                .await
            })
            .await?;
        let next = match query.limit {
            Some(limit) if rows.len() == limit => rows.last().map(|(_, seq)| seq.to_string()),
            _ => None,
        };
        Ok(ObjectPage { files: rows.into_iter().map(|(record, _)| record).collect(), next })
    }

    async fn insert(&self, object: &ObjectRecord) -> Result<String, CatalogError> {
        let purpose = object.purpose.as_deref().unwrap_or_default();
        let attributes = serde_json::to_string(&object.attributes).expect("attributes serialize");
        self.run("recording an upload", async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            // Upserting the content row locks it, as `remove` does before it
            // decides the content is unreferenced: the two never cross.
            tx.execute(
                "INSERT INTO files (sha256, size, name, mime, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (sha256) DO UPDATE SET size = files.size",
                &[&object.sha256, &(object.size as i64), &object.name, &object.mime, &object.created_at],
            )
            .await?;
            let row = tx
                .query_one(
                    "INSERT INTO objects (id, principal, provider, remote_id, sha256, name, mime, purpose, state, state_at,
                                          created_at, description, tags, attributes, registered, size)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14, $15)
                     ON CONFLICT (principal, provider, remote_id, purpose)
                     DO UPDATE SET state = EXCLUDED.state, state_at = EXCLUDED.state_at
                     RETURNING id",
                    &[
                        &object.id,
                        &object.principal,
                        &object.provider,
                        &object.remote_id,
                        &object.sha256,
                        &object.name,
                        &object.mime,
                        &purpose,
                        &object.state.as_str(),
                        &object.created_at,
                        &object.description,
                        &object.tags,
                        &attributes,
                        &object.registered,
                        &(object.size as i64),
                    ],
                )
                .await?;
            tx.commit().await?;
            Ok(row.try_get(0)?)
        })
        .await
    }

    async fn set_state(&self, id: &str, state: CopyState) -> Result<(), CatalogError> {
        self.run("marking a copy's state", async {
            let now = system_now_ms() / 1000;
            self.execute(
                "UPDATE objects SET state = $2, state_at = $3 WHERE id = $1 AND state <> $2",
                &[&id, &state.as_str(), &now],
            )
            .await
            .map(drop)
        })
        .await
    }

    async fn update_metadata(&self, id: &str, update: &MetadataUpdate) -> Result<(), CatalogError> {
        let attributes = update.attributes.as_ref().map(|a| serde_json::to_string(a).expect("attributes serialize"));
        self.run("changing a record's metadata", async {
            self.execute(
                "UPDATE objects SET name = coalesce($2, name), description = coalesce($3, description),
                                    tags = coalesce($4, tags), attributes = coalesce($5, attributes)
                 WHERE id = $1",
                &[&id, &update.name, &update.description, &update.tags, &attributes],
            )
            .await
            .map(drop)
        })
        .await
    }

    async fn remove(&self, id: &str) -> Result<(), CatalogError> {
        self.run("removing a record", async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let sha256: Option<String> =
                tx.query_opt("SELECT sha256 FROM objects WHERE id = $1", &[&id]).await?.map(|row| row.get(0));
            if let Some(sha256) = &sha256 {
                // Lock the content row first, as `insert` does, so that a
                // record being added concurrently is either seen below or
                // made after this transaction (recreating the content row).
                tx.execute("SELECT 1 FROM files WHERE sha256 = $1 FOR UPDATE", &[sha256]).await?;
            }
            tx.execute("DELETE FROM objects WHERE id = $1", &[&id]).await?;
            if let Some(sha256) = &sha256 {
                tx.execute(
                    "DELETE FROM files WHERE sha256 = $1 AND NOT EXISTS (SELECT 1 FROM objects WHERE sha256 = $1)",
                    &[sha256],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn record_download(&self, download: &DownloadRecord) -> Result<(), CatalogError> {
        self.run("recording a download", async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO downloads (object_id, principal, destination, source, provider, bytes, duration_ms, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &download.object_id,
                    &download.principal,
                    &download.destination,
                    &download.source,
                    &download.provider,
                    &(download.bytes as i64),
                    &(download.duration_ms as i64),
                    &download.at,
                ],
            )
            .await?;
            tx.execute(
                "UPDATE objects SET download_count = download_count + 1, last_download_at = $2 WHERE id = $1",
                &[&download.object_id, &download.at],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn downloads(&self, object_id: &str) -> Result<Vec<DownloadRecord>, CatalogError> {
        self.run("reading download history", async {
            let rows = self
                .query(
                    "SELECT object_id, principal, destination, source, provider, bytes, duration_ms, at
                     FROM downloads WHERE object_id = $1 ORDER BY id",
                    &[&object_id],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(DownloadRecord {
                        object_id: row.try_get(0)?,
                        principal: row.try_get(1)?,
                        destination: row.try_get(2)?,
                        source: row.try_get(3)?,
                        provider: row.try_get(4)?,
                        bytes: row.try_get::<_, i64>(5)? as u64,
                        duration_ms: row.try_get::<_, i64>(6)? as u64,
                        at: row.try_get(7)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn record_event(&self, event: &Event) -> Result<(), CatalogError> {
        self.run("recording an event", async {
            self.execute(
                "INSERT INTO events (at, principal, kind, provider, bytes, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &event.at,
                    &event.principal,
                    &event.kind.as_str(),
                    &event.provider,
                    &(event.bytes as i64),
                    &event.detail,
                ],
            )
            .await
            .map(drop)
        })
        .await
    }

    async fn holdings(&self, principal: Option<&str>) -> Result<BTreeMap<String, ProviderStats>, CatalogError> {
        self.run("counting files per provider", async {
            let rows = self
                .query(
                    "SELECT provider, count(*), coalesce(sum(size), 0)::bigint FROM objects
                     WHERE state = 'present' AND ($1::text IS NULL OR principal = $1) GROUP BY provider",
                    &[&principal],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    let (files, bytes): (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
                    Ok((row.try_get(0)?, ProviderStats { files: files as u64, bytes: bytes as u64 }))
                })
                .collect()
        })
        .await
    }

    async fn stats(&self, principal: Option<&str>, since: i64) -> Result<Stats, CatalogError> {
        let providers = self.holdings(principal).await?;
        self.run("gathering statistics", async {
            let mut stats = Stats { providers, ..Stats::default() };
            let rows = self
                .query(
                    "SELECT kind, detail, count(*), coalesce(sum(bytes), 0)::bigint FROM events
                     WHERE at >= $2 AND ($1::text IS NULL OR principal = $1) GROUP BY kind, detail",
                    &[&principal, &since],
                )
                .await?;
            for row in rows {
                let kind: String = row.try_get(0)?;
                let count: i64 = row.try_get(2)?;
                let bytes: i64 = row.try_get(3)?;
                stats.add_events(&kind, row.try_get(1)?, count as u64, bytes as u64);
            }
            let rows = self
                .query(
                    "SELECT source, count(*), coalesce(sum(bytes), 0)::bigint FROM downloads
                     WHERE at >= $2 AND ($1::text IS NULL OR principal = $1) GROUP BY source",
                    &[&principal, &since],
                )
                .await?;
            for row in rows {
                let count: i64 = row.try_get(1)?;
                let bytes: i64 = row.try_get(2)?;
                stats.downloads.insert(row.try_get(0)?, count as u64);
                stats.bytes_downloaded += bytes as u64;
            }
            let rows = self
                .query(
                    "SELECT t.object_id, o.name, t.n FROM
                       (SELECT object_id, count(*) AS n FROM downloads WHERE at >= $2 AND ($1::text IS NULL OR principal = $1)
                        GROUP BY object_id ORDER BY n DESC, object_id LIMIT $3) t
                     JOIN objects o ON o.id = t.object_id ORDER BY t.n DESC, t.object_id",
                    &[&principal, &since, &(TOP_FILES as i64)],
                )
                .await?;
            for row in rows {
                let downloads: i64 = row.try_get(2)?;
                stats.most_downloaded.push(TopFile {
                    id: row.try_get(0)?,
                    name: row.try_get(1)?,
                    downloads: downloads as u64,
                });
            }
            Ok(stats)
        })
        .await
    }

    async fn delete_history(&self, before: i64) -> Result<u64, CatalogError> {
        self.run("deleting old history", async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let downloads = tx.execute("DELETE FROM downloads WHERE at < $1", &[&before]).await?;
            let events = tx.execute("DELETE FROM events WHERE at < $1", &[&before]).await?;
            tx.commit().await?;
            Ok(downloads + events)
        })
        .await
    }

    async fn stale_copies(&self, state: CopyState, before: i64) -> Result<Vec<ObjectRecord>, CatalogError> {
        self.run("listing stale copies", async {
            let rows = self
                .query_objects("WHERE o.state = $1 AND o.state_at < $2 ORDER BY o.seq", &[&state.as_str(), &before])
                .await?;
            Ok(rows.into_iter().map(|(record, _)| record).collect())
        })
        .await
    }

    async fn copies_by_last_use(&self, provider: &str) -> Result<Vec<ObjectRecord>, CatalogError> {
        self.run("listing copies by last use", async {
            let rows = self
                .query_objects(
                    "WHERE o.provider = $1 AND o.state = 'present'
                     ORDER BY coalesce(o.last_download_at, o.created_at), o.seq",
                    &[&provider],
                )
                .await?;
            Ok(rows.into_iter().map(|(record, _)| record).collect())
        })
        .await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), CatalogError> {
        self.run("recording an API token", async {
            self.execute(
                &format!("INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                &[
                    &token.id,
                    &token.principal,
                    &token.admin,
                    &token.token_sha256,
                    &token.created_at,
                    &token.expires_at,
                    &token.revoked_at,
                ],
            )
            .await
            .map(drop)
        })
        .await
    }

    async fn token_by_hash(&self, token_sha256: &str) -> Result<Option<TokenRecord>, CatalogError> {
        self.run("looking up an API token", async {
            let rows = self
                .query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_sha256 = $1"), &[&token_sha256])
                .await?;
            rows.first().map(token_from_row).transpose()
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, CatalogError> {
        self.run("listing API tokens", async {
            let rows = self.query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"), &[]).await?;
            rows.iter().map(token_from_row).collect()
        })
        .await
    }

    async fn revoke_token(&self, id: &str, at: i64) -> Result<bool, CatalogError> {
        self.run("revoking an API token", async {
            let changed = self
                .execute("UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1", &[&id, &at])
                .await?;
            Ok(changed == 1)
        })
        .await
    }

    async fn insert_link(&self, link: &LinkRecord) -> Result<(), CatalogError> {
        self.run("recording a download link", async {
            self.execute(
                &format!(
                    "INSERT INTO links ({LINK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                ),
                &[
                    &link.token_sha256,
                    &link.principal,
                    &link.kind.as_str(),
                    &link.target,
                    &link.filename,
                    &(link.size as i64),
                    &link.sha256,
                    &link.identity,
                    &(link.max_size as i64),
                    &link.created_at,
                    &link.expires_at,
                    &(link.max_uses as i32),
                    &(link.uses as i32),
                    &(link.charged as i64),
                    &(link.budget_per_use as i64),
                ],
            )
            .await
            .map(drop)
        })
        .await
    }

    async fn link(&self, token_sha256: &str) -> Result<Option<LinkRecord>, CatalogError> {
        self.run("reading a download link", async {
            let rows = self
                .query(&format!("SELECT {LINK_COLUMNS} FROM links WHERE token_sha256 = $1"), &[&token_sha256])
                .await?;
            rows.first().map(link_from_row).transpose()
        })
        .await
    }

    async fn take_use(&self, token_sha256: &str, now: i64, request: UseRequest) -> Result<UseOutcome, CatalogError> {
        self.run("taking a use of a download link", async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            // The row lock makes every other host's request for this link
            // wait until this one has decided and written: two requests can
            // never both take the last use.
            let row = tx
                .query_opt(
                    &format!("SELECT {LINK_COLUMNS} FROM links WHERE token_sha256 = $1 FOR UPDATE"),
                    &[&token_sha256],
                )
                .await?;
            let Some(row) = row else {
                return Ok(UseOutcome::Unknown);
            };
            let outcome = link_from_row(&row)?.decide(now, request);
            if let UseOutcome::Granted { took_use } = outcome {
                let charge = match request {
                    UseRequest::Whole => 0,
                    UseRequest::Range { len } => len as i64,
                };
                tx.execute(
                    "UPDATE links SET uses = uses + $2, charged = charged + $3 WHERE token_sha256 = $1",
                    &[&token_sha256, &(took_use as i32), &charge],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    async fn settle_use(&self, token_sha256: &str, delta: i64, give_back_use: bool) -> Result<(), CatalogError> {
        self.run("settling a download link's use", async {
            self.execute(
                "UPDATE links SET charged = greatest(charged + $2, 0), uses = greatest(uses - $3, 0) WHERE token_sha256 = $1",
                &[&token_sha256, &delta, &(give_back_use as i32)],
            )
            .await
            .map(drop)
        })
        .await
    }

    async fn link_stats(&self, principal: &str, now: i64) -> Result<LinkStats, CatalogError> {
        self.run("counting download links", async {
            let rows = self
                .query(
                    "SELECT count(*),
                            count(*) FILTER (WHERE expires_at > $2 AND uses < max_uses),
                            count(*) FILTER (WHERE uses >= max_uses),
                            count(*) FILTER (WHERE expires_at <= $2 AND uses < max_uses)
                     FROM links WHERE principal = $1",
                    &[&principal, &now],
                )
                .await?;
            let row = &rows[0];
            Ok(LinkStats {
                total: row.try_get::<_, i64>(0)? as u64,
                active: row.try_get::<_, i64>(1)? as u64,
                used: row.try_get::<_, i64>(2)? as u64,
                expired: row.try_get::<_, i64>(3)? as u64,
            })
        })
        .await
    }

    async fn delete_expired_links(&self, now: i64) -> Result<u64, CatalogError> {
        self.run("deleting expired download links", async {
            self.execute("DELETE FROM links WHERE expires_at <= $1", &[&now]).await
        })
        .await
    }

    async fn claim(&self, name: &str, holder: &str, ttl: Duration) -> Result<ClaimOutcome, CatalogError> {
        let ttl_ms = ttl.as_millis() as i64;
        self.run("claiming a hold", async {
            let mut client = self.pool.get().await?;
            loop {
                let tx = client.transaction().await?;
                let now_ms: i64 = tx.query_one(NOW_MS, &[]).await?.get(0);
                let current = tx
                    .query_opt("SELECT holder, expires_at_ms FROM holds WHERE name = $1 FOR UPDATE", &[&name])
                    .await?
                    .map(|row| Hold { holder: row.get(0), expires_at_ms: row.get(1) });
                let expires_at_ms = now_ms.saturating_add(ttl_ms);
                match current {
                    Some(hold) if !hold.yields_to(holder, now_ms) => {
                        tx.commit().await?;
                        return Ok(ClaimOutcome::HeldBy(hold.holder));
                    }
                    Some(_) => {
                        tx.execute(
                            "UPDATE holds SET holder = $2, expires_at_ms = $3 WHERE name = $1",
                            &[&name, &holder, &expires_at_ms],
                        )
                        .await?;
                    }
                    None => {
                        // No row to lock: the primary key decides between
                        // claimers inserting at once. The loser looks again
                        // and finds the winner's hold.
                        let inserted = tx
                            .execute(
                                "INSERT INTO holds (name, holder, expires_at_ms) VALUES ($1, $2, $3)
                                 ON CONFLICT (name) DO NOTHING",
                                &[&name, &holder, &expires_at_ms],
                            )
                            .await?;
                        if inserted == 0 {
                            tx.rollback().await?;
                            continue;
                        }
                    }
                }
                tx.commit().await?;
                return Ok(ClaimOutcome::Granted);
            }
        })
        .await
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), CatalogError> {
        self.run("releasing a hold", async {
            self.execute("DELETE FROM holds WHERE name = $1 AND holder = $2", &[&name, &holder]).await.map(drop)
        })
        .await
    }
}

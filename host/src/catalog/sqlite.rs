//! The embedded catalog: one SQLite file in the data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};
use rusqlite_migration::{M, Migrations};

use super::{
    Catalog, CatalogError, ClaimOutcome, CopyState, DownloadRecord, Event, Hold, LinkKind, LinkRecord, LinkStats,
    MetadataUpdate, ObjectPage, ObjectQuery, ObjectRecord, ProviderStats, Stats, TOP_FILES, TokenRecord, TopFile,
    UseOutcome, UseRequest, glob_pattern, like_pattern, system_now_ms,
};

/// The schema as the first release made it (tests upgrade from it).
pub(super) const FIRST_SCHEMA: &str = r#"
CREATE TABLE files (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    name       TEXT NOT NULL,
    mime       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE objects (
    id         TEXT PRIMARY KEY,
    provider   TEXT NOT NULL,
    remote_id  TEXT NOT NULL,
    sha256     TEXT NOT NULL REFERENCES files(sha256),
    name       TEXT NOT NULL,
    mime       TEXT NOT NULL,
    purpose    TEXT NOT NULL DEFAULT '', -- '' when none was given
    state      TEXT NOT NULL DEFAULT 'present' CHECK (state IN ('present', 'gone')),
    created_at INTEGER NOT NULL,
    UNIQUE (provider, remote_id, purpose)
);
CREATE INDEX objects_by_content ON objects (sha256, provider);
CREATE TABLE downloads (
    id          INTEGER PRIMARY KEY,
    object_id   TEXT NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    source      TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX downloads_by_object ON downloads (object_id);
"#;

/// Schema versions, oldest first; applied in order on open.
const MIGRATIONS: &[&str] = &[
    FIRST_SCHEMA,
    // Principals own records (dedup stays global: several records may name one
    // remote object), free metadata, API tokens and download links. Records
    // made before principals existed belong to the default principal, `local`.
    r#"
CREATE TABLE objects_v2 (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    provider    TEXT NOT NULL,
    remote_id   TEXT NOT NULL,
    sha256      TEXT NOT NULL REFERENCES files(sha256),
    name        TEXT NOT NULL,
    mime        TEXT NOT NULL,
    purpose     TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL DEFAULT 'present' CHECK (state IN ('present', 'gone')),
    created_at  INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '[]', -- a JSON array of strings
    UNIQUE (principal, provider, remote_id, purpose)
);
INSERT INTO objects_v2 (rowid, id, principal, provider, remote_id, sha256, name, mime, purpose, state, created_at)
    SELECT rowid, id, 'local', provider, remote_id, sha256, name, mime, purpose, state, created_at FROM objects;
DROP TABLE objects;
ALTER TABLE objects_v2 RENAME TO objects;
CREATE INDEX objects_by_content ON objects (sha256, provider);
CREATE INDEX objects_by_principal ON objects (principal);
ALTER TABLE downloads ADD COLUMN principal TEXT NOT NULL DEFAULT 'local';
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    principal    TEXT NOT NULL,
    admin        INTEGER NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER
);
CREATE TABLE links (
    token_sha256   TEXT PRIMARY KEY,
    principal      TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('file', 'directory', 'stored')),
    target         TEXT NOT NULL,
    filename       TEXT NOT NULL,
    size           INTEGER NOT NULL,
    sha256         TEXT,
    identity       TEXT,
    max_size       INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    max_uses       INTEGER NOT NULL,
    uses           INTEGER NOT NULL DEFAULT 0,
    charged        INTEGER NOT NULL DEFAULT 0,
    budget_per_use INTEGER NOT NULL
);
CREATE INDEX links_by_principal ON links (principal);
CREATE INDEX links_by_expiry ON links (expires_at);
"#,
    // Upload claims and leases (see `Hold`): the same table as PostgreSQL's,
    // so that one code path serves both.
    r#"
CREATE TABLE holds (
    name          TEXT PRIMARY KEY, -- 'upload PROVIDER SHA256 PURPOSE' or 'lease NAME'
    holder        TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
"#,
    // The file pipeline: corrupt copies and when a state began (retention),
    // free key-value metadata, registered objects, download counts and
    // tracking, and the events `wharf stats` counts.
    r#"
CREATE TABLE objects_v4 (
    id               TEXT PRIMARY KEY,
    principal        TEXT NOT NULL,
    provider         TEXT NOT NULL,
    remote_id        TEXT NOT NULL,
    sha256           TEXT NOT NULL REFERENCES files(sha256),
    name             TEXT NOT NULL,
    size             INTEGER NOT NULL, -- the content's, kept here so listings and stats need no join
    mime             TEXT NOT NULL,
    purpose          TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL DEFAULT 'present' CHECK (state IN ('present', 'gone', 'corrupt')),
    state_at         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    tags             TEXT NOT NULL DEFAULT '[]', -- a JSON array of strings
    attributes       TEXT NOT NULL DEFAULT '{}', -- a JSON object of strings
    registered       INTEGER NOT NULL DEFAULT 0,
    download_count   INTEGER NOT NULL DEFAULT 0,
    last_download_at INTEGER,
    UNIQUE (principal, provider, remote_id, purpose)
);
INSERT INTO objects_v4 (rowid, id, principal, provider, remote_id, sha256, name, size, mime, purpose, state, state_at,
                        created_at, description, tags, download_count, last_download_at)
    SELECT rowid, id, principal, provider, remote_id, sha256, name,
           (SELECT size FROM files f WHERE f.sha256 = objects.sha256), mime, purpose, state, created_at,
           created_at, description, tags,
           (SELECT count(*) FROM downloads d WHERE d.object_id = objects.id),
           (SELECT max(at) FROM downloads d WHERE d.object_id = objects.id)
    FROM objects;
DROP TABLE objects;
ALTER TABLE objects_v4 RENAME TO objects;
CREATE INDEX objects_by_content ON objects (sha256, provider);
CREATE INDEX objects_by_principal ON objects (principal);
CREATE INDEX objects_by_last_use ON objects (provider, coalesce(last_download_at, created_at));
CREATE INDEX objects_by_state ON objects (state, principal, provider, size);
ALTER TABLE downloads ADD COLUMN provider TEXT NOT NULL DEFAULT '';
ALTER TABLE downloads ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE downloads ADD COLUMN duration_ms INTEGER NOT NULL DEFAULT 0;
-- Covering the statistics' queries, which read only these columns.
CREATE INDEX downloads_by_time ON downloads (at, principal, source, bytes, object_id);
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    principal TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('upload', 'dedup', 'failure')),
    provider  TEXT NOT NULL,
    bytes     INTEGER NOT NULL DEFAULT 0,
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_by_time ON events (at, principal, kind, detail, bytes);
"#,
];

const OBJECT_COLUMNS: &str = "o.id, o.principal, o.provider, o.remote_id, o.sha256, o.size, o.name, o.mime, o.purpose, \
     o.created_at, o.state, o.description, o.tags, o.rowid, o.attributes, o.registered, o.download_count, \
     o.last_download_at";

const LINK_COLUMNS: &str = "token_sha256, principal, kind, target, filename, size, sha256, identity, max_size, \
     created_at, expires_at, max_uses, uses, charged, budget_per_use";

pub struct SqliteCatalog {
    path: PathBuf,
    // Queries take microseconds; a mutex is simpler than a pool and keeps
    // writes serialized as SQLite wants.
    conn: Mutex<Connection>,
    log: Arc<WriteAheadLog>,
}

/// The catalog's write-ahead log, as far as making commits durable goes:
/// a group commit, where one sync covers every commit made before it began.
struct WriteAheadLog {
    path: PathBuf,
    /// Durable writes committed so far, numbered in commit order.
    committed: AtomicU64,
    /// The highest of those known to be on disk. Held while syncing: writers
    /// that commit meanwhile wait here, and the next sync covers them all.
    synced: Mutex<u64>,
}

impl WriteAheadLog {
    fn new(database: &Path) -> Self {
        let mut path = database.as_os_str().to_owned();
        path.push("-wal");
        Self { path: path.into(), committed: AtomicU64::new(0), synced: Mutex::new(0) }
    }

    /// Makes commit number `commit`, and every one before it, durable.
    fn sync_through(&self, commit: u64) -> std::io::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The sync this one waited for began after `commit` was made.
        if *synced >= commit {
            return Ok(());
        }
        let covered = self.committed.load(Ordering::SeqCst);
        match std::fs::File::open(&self.path) {
            Ok(file) => file.sync_data()?,
            // No log: the last connection checkpointed it into the database
            // (which that checkpoint synced) and removed it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        *synced = covered;
        Ok(())
    }
}

impl SqliteCatalog {
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let fail = |message: String| CatalogError { path: path.display().to_string(), message };
        let mut conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| fail(e.to_string()))?;
        // Commits do not wait for the disk; durable writes sync the log
        // themselves (`SqliteCatalog::write`). Checkpoints still sync, so the
        // database stays consistent whatever is cut off.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| fail(e.to_string()))?;
        // Every statement the gateway runs stays prepared (listings add one per filter).
        conn.set_prepared_statement_cache_capacity(64);
        // Foreign keys are off while migrating (the bundled SQLite turns them
        // on by default): rebuilding a table must not cascade into the tables
        // that refer to it.
        conn.pragma_update(None, "foreign_keys", "OFF").map_err(|e| fail(e.to_string()))?;
        let migrations = Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect());
        if let Err(e) = migrations.to_latest(&mut conn) {
            // Another process opening the same file at the same moment may
            // have applied the same version first: then nothing is left to do.
            if migrations.pending_migrations(&conn).ok() != Some(0) {
                return Err(fail(format!("upgrading the schema: {e}")));
            }
        }
        conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| fail(e.to_string()))?;
        Ok(Self { path: path.to_path_buf(), conn: Mutex::new(conn), log: Arc::new(WriteAheadLog::new(path)) })
    }

    /// Runs `f` on the connection: reads, and the writes that need not
    /// survive a power cut (upload claims, which lapse anyway, and statistics
    /// events). Those reach the disk with the next durable write, which syncs
    /// the whole write-ahead log.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, CatalogError> {
        let mut conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut conn).map_err(|e| self.error(e.to_string()))
    }

    /// Runs a write that is on disk when this returns. The commit itself
    /// does not wait for the disk (`synchronous = NORMAL`); the write-ahead
    /// log is synced here, after the connection is free again, so that
    /// concurrent writers share one fsync instead of queueing behind each
    /// other's, and no runtime thread blocks on the disk.
    async fn write<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, CatalogError> {
        let (value, commit) = {
            let mut conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let value = f(&mut conn).map_err(|e| self.error(e.to_string()))?;
            (value, self.log.committed.fetch_add(1, Ordering::SeqCst) + 1)
        };
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.sync_through(commit))
            .await
            .expect("syncing the write-ahead log does not panic")
            .map_err(|e| self.error(format!("syncing {}: {e}", self.log.path.display())))?;
        Ok(value)
    }

    fn error(&self, message: String) -> CatalogError {
        CatalogError { path: self.path.display().to_string(), message }
    }

    fn query_objects(&self, filter: &str, args: impl rusqlite::Params) -> Result<Vec<ObjectRecord>, CatalogError> {
        Ok(self.query_objects_with_seq(filter, args)?.into_iter().map(|(record, _)| record).collect())
    }

    fn query_objects_with_seq(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<(ObjectRecord, i64)>, CatalogError> {
        self.with(|conn| {
            let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects o {filter}");
            let mut stmt = conn.prepare_cached(&sql)?;
            stmt.query_map(args, object_from_row)?.collect()
        })
    }
}

fn object_from_row(row: &Row<'_>) -> rusqlite::Result<(ObjectRecord, i64)> {
    let state: String = row.get(10)?;
    let tags: String = row.get(12)?;
    let attributes: String = row.get(14)?;
    let sha256: String = row.get(4)?;
    let record = ObjectRecord {
        id: row.get(0)?,
        principal: row.get(1)?,
        provider: row.get(2)?,
        remote_id: row.get(3)?,
        verified: ObjectRecord::is_hashed(&sha256),
        sha256,
        size: row.get::<_, i64>(5)? as u64,
        name: row.get(6)?,
        mime: row.get(7)?,
        purpose: Some(row.get::<_, String>(8)?).filter(|p| !p.is_empty()),
        created_at: row.get(9)?,
        state: CopyState::parse(&state),
        description: row.get(11)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        registered: row.get(15)?,
        download_count: row.get::<_, i64>(16)? as u64,
        last_download_at: row.get(17)?,
    };
    Ok((record, row.get(13)?))
}

fn link_from_row(row: &Row<'_>) -> rusqlite::Result<LinkRecord> {
    let kind: String = row.get(2)?;
    Ok(LinkRecord {
        token_sha256: row.get(0)?,
        principal: row.get(1)?,
        kind: match kind.as_str() {
            "directory" => LinkKind::Directory,
            "stored" => LinkKind::Stored,
            _ => LinkKind::File,
        },
        target: row.get(3)?,
        filename: row.get(4)?,
        size: row.get::<_, i64>(5)? as u64,
        sha256: row.get(6)?,
        identity: row.get(7)?,
        max_size: row.get::<_, i64>(8)? as u64,
        created_at: row.get(9)?,
        expires_at: row.get(10)?,
        max_uses: row.get(11)?,
        uses: row.get(12)?,
        charged: row.get::<_, i64>(13)? as u64,
        budget_per_use: row.get::<_, i64>(14)? as u64,
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.get(0)?,
        principal: row.get(1)?,
        admin: row.get(2)?,
        token_sha256: row.get(3)?,
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
        revoked_at: row.get(6)?,
    })
}

const TOKEN_COLUMNS: &str = "id, principal, admin, token_sha256, created_at, expires_at, revoked_at";

#[async_trait::async_trait]
impl Catalog for SqliteCatalog {
    async fn ping(&self) -> Result<(), CatalogError> {
        self.with(|conn| conn.query_row("SELECT count(*) FROM files", [], |row| row.get::<_, i64>(0))).map(drop)
    }

    async fn find_copy(
        &self,
        provider: &str,
        sha256: &str,
        purpose: Option<&str>,
        principal: &str,
    ) -> Result<Option<ObjectRecord>, CatalogError> {
        let mut found = self.query_objects(
            "WHERE o.provider = ?1 AND o.sha256 = ?2 AND o.purpose = ?3 AND o.state = 'present'
             ORDER BY o.principal = ?4 DESC, o.created_at LIMIT 1",
            params![provider, sha256, purpose.unwrap_or_default(), principal],
        )?;
        Ok(found.pop())
    }

    async fn object(&self, id: &str) -> Result<Option<ObjectRecord>, CatalogError> {
        Ok(self.query_objects("WHERE o.id = ?1", params![id])?.pop())
    }

    async fn copies(&self, sha256: &str) -> Result<Vec<ObjectRecord>, CatalogError> {
        self.query_objects("WHERE o.sha256 = ?1 ORDER BY o.created_at, o.rowid", params![sha256])
    }

    async fn objects(&self, query: &ObjectQuery) -> Result<ObjectPage, CatalogError> {
        let after = match &query.after {
            Some(cursor) => Some(
                cursor
                    .parse::<i64>()
                    .map_err(|_| self.error(format!("cursor {cursor:?} is not one this catalog handed out")))?,
            ),
            None => None,
        };
        let limit = query.limit.map_or(-1, |l| l as i64);
        let rows = self.query_objects_with_seq(
            "WHERE (?1 IS NULL OR o.principal = ?1) AND (?2 IS NULL OR o.provider = ?2)
               AND (?3 IS NULL OR o.name LIKE ?3 ESCAPE '\\') AND (?4 IS NULL OR o.rowid < ?4)
               AND (?6 IS NULL OR o.name LIKE ?6 ESCAPE '\\') AND (?7 IS NULL OR o.mime LIKE ?7 ESCAPE '\\')
               AND (?8 IS NULL OR EXISTS (SELECT 1 FROM json_each(o.tags) WHERE value = ?8))
               AND (?9 IS NULL OR o.created_at >= ?9)
             ORDER BY o.rowid DESC LIMIT ?5",
            params![
                query.principal,
                query.provider,
                query.name_contains.as_deref().map(like_pattern),
                after,
                limit,
                query.name_glob.as_deref().map(glob_pattern),
                query.mime.as_deref().map(glob_pattern),
                query.tag,
                query.since,
            ],
        )?;
        let next = match query.limit {
            Some(limit) if rows.len() == limit => rows.last().map(|(_, seq)| seq.to_string()),
            _ => None,
        };
        Ok(ObjectPage { files: rows.into_iter().map(|(record, _)| record).collect(), next })
    }

    async fn insert(&self, object: &ObjectRecord) -> Result<String, CatalogError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO files (sha256, size, name, mime, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                object.sha256,
                object.size as i64,
                object.name,
                object.mime,
                object.created_at
            ])?;
            let tags = serde_json::to_string(&object.tags).expect("tags serialize");
            let attributes = serde_json::to_string(&object.attributes).expect("attributes serialize");
            tx.prepare_cached(
                "INSERT INTO objects (id, principal, provider, remote_id, sha256, name, mime, purpose, state, state_at,
                                      created_at, description, tags, attributes, registered, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT (principal, provider, remote_id, purpose)
                 DO UPDATE SET state = excluded.state, state_at = excluded.state_at",
            )?
            .execute(params![
                object.id,
                object.principal,
                object.provider,
                object.remote_id,
                object.sha256,
                object.name,
                object.mime,
                object.purpose.as_deref().unwrap_or_default(),
                object.state.as_str(),
                object.created_at,
                object.description,
                tags,
                attributes,
                object.registered,
                object.size as i64,
            ])?;
            let id = tx
                .prepare_cached(
                    "SELECT id FROM objects WHERE principal = ?1 AND provider = ?2 AND remote_id = ?3 AND purpose = ?4",
                )?
                .query_row(
                    params![
                        object.principal,
                        object.provider,
                        object.remote_id,
                        object.purpose.as_deref().unwrap_or_default()
                    ],
                    |row| row.get(0),
                )?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    async fn set_state(&self, id: &str, state: CopyState) -> Result<(), CatalogError> {
        self.write(|conn| {
            conn.execute(
                "UPDATE objects SET state = ?2, state_at = ?3 WHERE id = ?1 AND state <> ?2",
                params![id, state.as_str(), system_now_ms() / 1000],
            )
        })
        .await
        .map(drop)
    }

    async fn update_metadata(&self, id: &str, update: &MetadataUpdate) -> Result<(), CatalogError> {
        let tags = update.tags.as_ref().map(|tags| serde_json::to_string(tags).expect("tags serialize"));
        let attributes = update.attributes.as_ref().map(|a| serde_json::to_string(a).expect("attributes serialize"));
        self.write(|conn| {
            conn.execute(
                "UPDATE objects SET name = coalesce(?2, name), description = coalesce(?3, description),
                                    tags = coalesce(?4, tags), attributes = coalesce(?5, attributes)
                 WHERE id = ?1",
                params![id, update.name, update.description, tags, attributes],
            )
        })
        .await
        .map(drop)
    }

    async fn remove(&self, id: &str) -> Result<(), CatalogError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let sha256: Option<String> =
                tx.query_row("SELECT sha256 FROM objects WHERE id = ?1", params![id], |r| r.get(0)).optional()?;
            tx.execute("DELETE FROM objects WHERE id = ?1", params![id])?;
            if let Some(sha256) = sha256 {
                tx.execute(
                    "DELETE FROM files WHERE sha256 = ?1 AND NOT EXISTS (SELECT 1 FROM objects WHERE sha256 = ?1)",
                    params![sha256],
                )?;
            }
            tx.commit()
        })
        .await
    }

    async fn record_download(&self, download: &DownloadRecord) -> Result<(), CatalogError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO downloads (object_id, principal, destination, source, provider, bytes, duration_ms, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    download.object_id,
                    download.principal,
                    download.destination,
                    download.source,
                    download.provider,
                    download.bytes as i64,
                    download.duration_ms as i64,
                    download.at
                ],
            )?;
            tx.execute(
                "UPDATE objects SET download_count = download_count + 1, last_download_at = ?2 WHERE id = ?1",
                params![download.object_id, download.at],
            )?;
            tx.commit()
        })
        .await
    }

    async fn downloads(&self, object_id: &str) -> Result<Vec<DownloadRecord>, CatalogError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT object_id, principal, destination, source, provider, bytes, duration_ms, at
                 FROM downloads WHERE object_id = ?1 ORDER BY id",
            )?;
            stmt.query_map(params![object_id], |row| {
                Ok(DownloadRecord {
                    object_id: row.get(0)?,
                    principal: row.get(1)?,
                    destination: row.get(2)?,
                    source: row.get(3)?,
                    provider: row.get(4)?,
                    bytes: row.get::<_, i64>(5)? as u64,
                    duration_ms: row.get::<_, i64>(6)? as u64,
                    at: row.get(7)?,
                })
            })?
            .collect()
        })
    }

    async fn record_event(&self, event: &Event) -> Result<(), CatalogError> {
        self.with(|conn| {
            conn.prepare_cached(
                "INSERT INTO events (at, principal, kind, provider, bytes, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                event.at,
                event.principal,
                event.kind.as_str(),
                event.provider,
                event.bytes as i64,
                event.detail
            ])
        })
        .map(drop)
    }

    async fn holdings(&self, principal: Option<&str>) -> Result<BTreeMap<String, ProviderStats>, CatalogError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT provider, count(*), coalesce(sum(size), 0) FROM objects
                 WHERE state = 'present' AND (?1 IS NULL OR principal = ?1) GROUP BY provider",
            )?;
            stmt.query_map(params![principal], |r| {
                let (files, bytes): (i64, i64) = (r.get(1)?, r.get(2)?);
                Ok((r.get(0)?, ProviderStats { files: files as u64, bytes: bytes as u64 }))
            })?
            .collect()
        })
    }

    async fn stats(&self, principal: Option<&str>, since: i64) -> Result<Stats, CatalogError> {
        let providers = self.holdings(principal).await?;
        self.with(|conn| {
            let mut stats = Stats { providers, ..Stats::default() };
            let mut stmt = conn.prepare_cached(
                "SELECT kind, detail, count(*), coalesce(sum(bytes), 0) FROM events
                 WHERE at >= ?2 AND (?1 IS NULL OR principal = ?1) GROUP BY kind, detail",
            )?;
            for row in stmt.query_map(params![principal, since], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
            })? {
                let (kind, detail, count, bytes): (String, String, i64, i64) = row?;
                stats.add_events(&kind, detail, count as u64, bytes as u64);
            }
            let mut stmt = conn.prepare_cached(
                "SELECT source, count(*), coalesce(sum(bytes), 0) FROM downloads
                 WHERE at >= ?2 AND (?1 IS NULL OR principal = ?1) GROUP BY source",
            )?;
            for row in stmt
                .query_map(params![principal, since], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?
            {
                let (source, count, bytes): (String, i64, i64) = row?;
                stats.downloads.insert(source, count as u64);
                stats.bytes_downloaded += bytes as u64;
            }
            let mut stmt = conn.prepare_cached(
                "SELECT t.object_id, o.name, t.n FROM
                   (SELECT object_id, count(*) AS n FROM downloads WHERE at >= ?2 AND (?1 IS NULL OR principal = ?1)
                    GROUP BY object_id ORDER BY n DESC, object_id LIMIT ?3) t
                 JOIN objects o ON o.id = t.object_id ORDER BY t.n DESC, t.object_id",
            )?;
            for row in stmt.query_map(params![principal, since, TOP_FILES as i64], |r| {
                Ok(TopFile { id: r.get(0)?, name: r.get(1)?, downloads: r.get::<_, i64>(2)? as u64 })
            })? {
                stats.most_downloaded.push(row?);
            }
            Ok(stats)
        })
    }

    async fn delete_history(&self, before: i64) -> Result<u64, CatalogError> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let downloads = tx.execute("DELETE FROM downloads WHERE at < ?1", params![before])?;
            let events = tx.execute("DELETE FROM events WHERE at < ?1", params![before])?;
            tx.commit()?;
            Ok((downloads + events) as u64)
        })
        .await
    }

    async fn stale_copies(&self, state: CopyState, before: i64) -> Result<Vec<ObjectRecord>, CatalogError> {
        self.query_objects("WHERE o.state = ?1 AND o.state_at < ?2 ORDER BY o.rowid", params![state.as_str(), before])
    }

    async fn copies_by_last_use(&self, provider: &str) -> Result<Vec<ObjectRecord>, CatalogError> {
        self.query_objects(
            "WHERE o.provider = ?1 AND o.state = 'present'
             ORDER BY coalesce(o.last_download_at, o.created_at), o.rowid",
            params![provider],
        )
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), CatalogError> {
        self.write(|conn| {
            conn.execute(
                &format!("INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![
                    token.id,
                    token.principal,
                    token.admin,
                    token.token_sha256,
                    token.created_at,
                    token.expires_at,
                    token.revoked_at
                ],
            )
        })
        .await
        .map(drop)
    }

    async fn token_by_hash(&self, token_sha256: &str) -> Result<Option<TokenRecord>, CatalogError> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_sha256 = ?1"),
                params![token_sha256],
                token_from_row,
            )
            .optional()
        })
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, CatalogError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"))?;
            stmt.query_map([], token_from_row)?.collect()
        })
    }

    async fn revoke_token(&self, id: &str, at: i64) -> Result<bool, CatalogError> {
        self.write(|conn| {
            conn.execute("UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1", params![id, at])
        })
        .await
        .map(|changed| changed == 1)
    }

    async fn insert_link(&self, link: &LinkRecord) -> Result<(), CatalogError> {
        self.write(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO links ({LINK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                ),
                params![
                    link.token_sha256,
                    link.principal,
                    link.kind.as_str(),
                    link.target,
                    link.filename,
                    link.size as i64,
                    link.sha256,
                    link.identity,
                    link.max_size as i64,
                    link.created_at,
                    link.expires_at,
                    link.max_uses,
                    link.uses,
                    link.charged as i64,
                    link.budget_per_use as i64,
                ],
            )
        })
        .await
        .map(drop)
    }

    async fn link(&self, token_sha256: &str) -> Result<Option<LinkRecord>, CatalogError> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {LINK_COLUMNS} FROM links WHERE token_sha256 = ?1"),
                params![token_sha256],
                link_from_row,
            )
            .optional()
        })
    }

    async fn take_use(&self, token_sha256: &str, now: i64, request: UseRequest) -> Result<UseOutcome, CatalogError> {
        self.write(|conn| {
            // An immediate transaction takes SQLite's write lock before reading,
            // so no other request (of this process or another) decides on the
            // same state: two requests can never both take the last use.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let link = tx
                .query_row(
                    &format!("SELECT {LINK_COLUMNS} FROM links WHERE token_sha256 = ?1"),
                    params![token_sha256],
                    link_from_row,
                )
                .optional()?;
            let Some(link) = link else {
                return Ok(UseOutcome::Unknown);
            };
            let outcome = link.decide(now, request);
            if let UseOutcome::Granted { took_use } = outcome {
                let charge = match request {
                    UseRequest::Whole => 0,
                    UseRequest::Range { len } => len,
                };
                tx.execute(
                    "UPDATE links SET uses = uses + ?2, charged = charged + ?3 WHERE token_sha256 = ?1",
                    params![token_sha256, took_use as i64, charge as i64],
                )?;
            }
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn settle_use(&self, token_sha256: &str, delta: i64, give_back_use: bool) -> Result<(), CatalogError> {
        self.write(|conn| {
            conn.execute(
                "UPDATE links SET charged = max(charged + ?2, 0), uses = max(uses - ?3, 0) WHERE token_sha256 = ?1",
                params![token_sha256, delta, give_back_use as i64],
            )
        })
        .await
        .map(drop)
    }

    async fn link_stats(&self, principal: &str, now: i64) -> Result<LinkStats, CatalogError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT count(*),
                        coalesce(sum(expires_at > ?2 AND uses < max_uses), 0),
                        coalesce(sum(uses >= max_uses), 0),
                        coalesce(sum(expires_at <= ?2 AND uses < max_uses), 0)
                 FROM links WHERE principal = ?1",
                params![principal, now],
                |row| {
                    Ok(LinkStats {
                        total: row.get::<_, i64>(0)? as u64,
                        active: row.get::<_, i64>(1)? as u64,
                        used: row.get::<_, i64>(2)? as u64,
                        expired: row.get::<_, i64>(3)? as u64,
                    })
                },
            )
        })
    }

    async fn delete_expired_links(&self, now: i64) -> Result<u64, CatalogError> {
        self.write(|conn| conn.execute("DELETE FROM links WHERE expires_at <= ?1", params![now]))
            .await
            .map(|n| n as u64)
    }

    async fn claim(&self, name: &str, holder: &str, ttl: Duration) -> Result<ClaimOutcome, CatalogError> {
        let now_ms = system_now_ms();
        self.with(|conn| {
            // As for links: the write lock first, so that the decision stands.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current = tx
                .query_row("SELECT holder, expires_at_ms FROM holds WHERE name = ?1", params![name], |row| {
                    Ok(Hold { holder: row.get(0)?, expires_at_ms: row.get(1)? })
                })
                .optional()?;
            let outcome = match current {
                Some(hold) if !hold.yields_to(holder, now_ms) => ClaimOutcome::HeldBy(hold.holder),
                _ => {
                    tx.prepare_cached("INSERT INTO holds (name, holder, expires_at_ms) VALUES (?1, ?2, ?3)
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms")?.execute(
                        params![name, holder, now_ms.saturating_add(ttl.as_millis() as i64)],
                    )?;
                    ClaimOutcome::Granted
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), CatalogError> {
        self.with(|conn| {
            conn.prepare_cached("DELETE FROM holds WHERE name = ?1 AND holder = ?2")?.execute(params![name, holder])
        })
        .map(drop)
    }
}

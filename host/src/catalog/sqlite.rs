//! The embedded catalog: one SQLite file in the data directory.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, params};
use rusqlite_migration::{M, Migrations};

use super::{Catalog, CatalogError, CopyState, DownloadRecord, ObjectRecord};

/// Schema versions, oldest first; applied in order on open.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

const OBJECT_COLUMNS: &str =
    "o.id, o.provider, o.remote_id, o.sha256, f.size, o.name, o.mime, o.purpose, o.created_at, o.state";

pub struct SqliteCatalog {
    path: PathBuf,
    // Queries take microseconds; a mutex is simpler than a pool and keeps
    // writes serialized as SQLite wants.
    conn: Mutex<Connection>,
}

impl SqliteCatalog {
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let fail = |message: String| CatalogError { path: path.display().to_string(), message };
        let mut conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| fail(e.to_string()))?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| fail(e.to_string()))?;
        let migrations = Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect());
        migrations.to_latest(&mut conn).map_err(|e| fail(format!("upgrading the schema: {e}")))?;
        Ok(Self { path: path.to_path_buf(), conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, CatalogError> {
        let mut conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut conn).map_err(|e| CatalogError { path: self.path.display().to_string(), message: e.to_string() })
    }

    fn query_objects(&self, filter: &str, args: impl rusqlite::Params) -> Result<Vec<ObjectRecord>, CatalogError> {
        self.with(|conn| {
            let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects o JOIN files f USING (sha256) {filter}");
            let mut stmt = conn.prepare_cached(&sql)?;
            stmt.query_map(args, object_from_row)?.collect()
        })
    }
}

fn object_from_row(row: &Row<'_>) -> rusqlite::Result<ObjectRecord> {
    let state: String = row.get(9)?;
    Ok(ObjectRecord {
        id: row.get(0)?,
        provider: row.get(1)?,
        remote_id: row.get(2)?,
        sha256: row.get(3)?,
        size: row.get::<_, i64>(4)? as u64,
        name: row.get(5)?,
        mime: row.get(6)?,
        purpose: Some(row.get::<_, String>(7)?).filter(|p| !p.is_empty()),
        created_at: row.get(8)?,
        state: if state == "gone" { CopyState::Gone } else { CopyState::Present },
    })
}

fn state_text(state: CopyState) -> &'static str {
    match state {
        CopyState::Present => "present",
        CopyState::Gone => "gone",
    }
}

#[async_trait::async_trait]
impl Catalog for SqliteCatalog {
    async fn find_copy(
        &self,
        provider: &str,
        sha256: &str,
        purpose: Option<&str>,
    ) -> Result<Option<ObjectRecord>, CatalogError> {
        let mut found = self.query_objects(
            "WHERE o.provider = ?1 AND o.sha256 = ?2 AND o.purpose = ?3 AND o.state = 'present' ORDER BY o.created_at LIMIT 1",
            params![provider, sha256, purpose.unwrap_or_default()],
        )?;
        Ok(found.pop())
    }

    async fn object(&self, id: &str) -> Result<Option<ObjectRecord>, CatalogError> {
        Ok(self.query_objects("WHERE o.id = ?1", params![id])?.pop())
    }

    async fn copies(&self, sha256: &str) -> Result<Vec<ObjectRecord>, CatalogError> {
        self.query_objects("WHERE o.sha256 = ?1 ORDER BY o.created_at, o.rowid", params![sha256])
    }

    async fn objects(&self, provider: Option<&str>) -> Result<Vec<ObjectRecord>, CatalogError> {
        self.query_objects(
            "WHERE ?1 IS NULL OR o.provider = ?1 ORDER BY o.created_at DESC, o.rowid DESC",
            params![provider],
        )
    }

    async fn insert(&self, object: &ObjectRecord) -> Result<String, CatalogError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO files (sha256, size, name, mime, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![object.sha256, object.size as i64, object.name, object.mime, object.created_at],
            )?;
            tx.execute(
                "INSERT INTO objects (id, provider, remote_id, sha256, name, mime, purpose, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (provider, remote_id, purpose) DO UPDATE SET state = excluded.state",
                params![
                    object.id,
                    object.provider,
                    object.remote_id,
                    object.sha256,
                    object.name,
                    object.mime,
                    object.purpose.as_deref().unwrap_or_default(),
                    state_text(object.state),
                    object.created_at
                ],
            )?;
            let id = tx.query_row(
                "SELECT id FROM objects WHERE provider = ?1 AND remote_id = ?2 AND purpose = ?3",
                params![object.provider, object.remote_id, object.purpose.as_deref().unwrap_or_default()],
                |row| row.get(0),
            )?;
            tx.commit()?;
            Ok(id)
        })
    }

    async fn set_state(&self, id: &str, state: CopyState) -> Result<(), CatalogError> {
        self.with(|conn| conn.execute("UPDATE objects SET state = ?2 WHERE id = ?1", params![id, state_text(state)]))
            .map(drop)
    }

    async fn remove(&self, id: &str) -> Result<(), CatalogError> {
        self.with(|conn| {
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
    }

    async fn record_download(&self, download: &DownloadRecord) -> Result<(), CatalogError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO downloads (object_id, destination, source, at) VALUES (?1, ?2, ?3, ?4)",
                params![download.object_id, download.destination, download.source, download.at],
            )
        })
        .map(drop)
    }

    async fn downloads(&self, object_id: &str) -> Result<Vec<DownloadRecord>, CatalogError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT object_id, destination, source, at FROM downloads WHERE object_id = ?1 ORDER BY id",
            )?;
            stmt.query_map(params![object_id], |row| {
                Ok(DownloadRecord {
                    object_id: row.get(0)?,
                    destination: row.get(1)?,
                    source: row.get(2)?,
                    at: row.get(3)?,
                })
            })?
            .collect()
        })
    }
}

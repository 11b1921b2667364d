//! What this host has already hashed: a file's identity (device, inode,
//! size, modification and change times) mapped to its SHA-256, so that
//! uploading a file Wharf has hashed, unchanged, costs a `stat` instead of a
//! read of every byte.
//!
//! Any change of identity means a fresh hash: writing a file changes its
//! modification and change times, and the change time cannot be set back by
//! anyone. A file modified within the filesystem clock's granularity of being
//! hashed could keep its times, so identities younger than [`SETTLE`] are not
//! remembered (git's "racily clean" rule). The index is local to the host
//! (inode numbers mean nothing elsewhere), in its own SQLite file beside the
//! catalog; losing it costs only hashing again.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::body::Digest;

/// How old a file's times must be before its digest is remembered.
const SETTLE: Duration = Duration::from_secs(2);

/// What identifies one version of a file on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub device: u64,
    pub inode: u64,
    pub size: u64,
    pub modified_ns: i64,
    pub changed_ns: i64,
}

impl FileIdentity {
    pub fn of(file: &File) -> std::io::Result<Self> {
        let meta = file.metadata()?;
        Ok(Self {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            changed_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        })
    }

    /// Whether both times are far enough in the past that a later write
    /// could not leave them as they are.
    fn settled(&self) -> bool {
        let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
        let settle_ns = SETTLE.as_nanos() as i64;
        self.modified_ns.max(self.changed_ns) + settle_ns <= now_ns
    }
}

pub struct IdentityIndex {
    conn: Mutex<Connection>,
}

impl IdentityIndex {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS identities (
                device      INTEGER NOT NULL,
                inode       INTEGER NOT NULL,
                size        INTEGER NOT NULL,
                modified_ns INTEGER NOT NULL,
                changed_ns  INTEGER NOT NULL,
                sha256      BLOB NOT NULL,
                PRIMARY KEY (device, inode)
            )",
        )?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    /// The digest recorded for exactly this identity, if any.
    pub fn lookup(&self, identity: &FileIdentity) -> Option<Digest> {
        let conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let found: rusqlite::Result<Option<Vec<u8>>> = conn
            .prepare_cached(
                "SELECT sha256 FROM identities WHERE device = ?1 AND inode = ?2 AND size = ?3
                   AND modified_ns = ?4 AND changed_ns = ?5",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![
                        identity.device as i64,
                        identity.inode as i64,
                        identity.size as i64,
                        identity.modified_ns,
                        identity.changed_ns
                    ],
                    |row| row.get(0),
                )
                .optional()
            });
        match found {
            Ok(bytes) => bytes.and_then(|b| b.try_into().ok()),
            Err(e) => {
                tracing::warn!("reading the file-identity index: {e}; hashing instead");
                None
            }
        }
    }

    /// Remembers the digest of a file hashed at this identity, once its times
    /// have settled; the inode's previous entry goes.
    pub fn remember(&self, identity: &FileIdentity, digest: &Digest) {
        if !identity.settled() {
            return;
        }
        let conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let stored = conn
            .prepare_cached(
                "INSERT OR REPLACE INTO identities (device, inode, size, modified_ns, changed_ns, sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    identity.device as i64,
                    identity.inode as i64,
                    identity.size as i64,
                    identity.modified_ns,
                    identity.changed_ns,
                    &digest[..]
                ])
            });
        if let Err(e) = stored {
            tracing::warn!("recording in the file-identity index: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_not_taken_for_the_one_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let index = IdentityIndex::open(&dir.path().join("identities.sqlite3")).unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        let identity = FileIdentity::of(&File::open(&path).unwrap()).unwrap();
        // Its change time is now (set_modified changed it): not settled yet.
        index.remember(&identity, &[7; 32]);
        assert_eq!(index.lookup(&identity), None, "too fresh to remember");
        let settled = FileIdentity { changed_ns: identity.modified_ns, ..identity };
        index.remember(&settled, &[7; 32]);
        assert_eq!(index.lookup(&settled), Some([7; 32]));
        let rewritten = FileIdentity { changed_ns: settled.changed_ns + 1, ..settled };
        assert_eq!(index.lookup(&rewritten), None, "any change of identity means a fresh hash");
        assert_eq!(index.lookup(&FileIdentity { size: 4, ..settled }), None);
    }
}

//! SQLite-only: upgrading a catalog file in place. Everything the trait
//! promises is checked against both backends in tests/catalog.rs.

use super::*;

/// A catalog made before principals existed opens with its records intact,
/// owned by the default principal, with their download history.
#[test]
fn an_old_catalog_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.sqlite3");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let first = rusqlite_migration::Migrations::new(vec![rusqlite_migration::M::up(sqlite::FIRST_SCHEMA)]);
        first.to_latest(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO files VALUES ('aa', 3, 'a.txt', 'text/plain', 1);
             INSERT INTO objects (id, provider, remote_id, sha256, name, mime, purpose, state, created_at)
                 VALUES ('wf_old', 'local', 'aa', 'aa', 'a.txt', 'text/plain', '', 'present', 1);
             INSERT INTO downloads (object_id, destination, source, at) VALUES ('wf_old', '/x/a.txt', 'provider', 2);",
        )
        .unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let catalog = SqliteCatalog::open(&path).unwrap();
        let old = catalog.object("wf_old").await.unwrap().unwrap();
        assert_eq!((old.principal.as_str(), old.size), ("local", 3));
        assert_eq!(catalog.downloads("wf_old").await.unwrap().len(), 1, "history survives the rebuild");
    });
}

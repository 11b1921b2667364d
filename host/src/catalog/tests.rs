//! The catalog's behaviour, written against the trait so that every backend
//! runs the same checks.

use std::sync::Arc;

use super::*;

fn sqlite() -> (tempfile::TempDir, Arc<dyn Catalog>) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SqliteCatalog::open(&dir.path().join("catalog.sqlite3")).unwrap();
    (dir, Arc::new(catalog))
}

fn record(id: &str, principal: &str, remote_id: &str) -> ObjectRecord {
    ObjectRecord {
        id: id.into(),
        principal: principal.into(),
        provider: "local".into(),
        remote_id: remote_id.into(),
        sha256: "ab".repeat(32),
        size: 10,
        name: format!("{id}.txt"),
        mime: "text/plain".into(),
        purpose: None,
        created_at: 1,
        state: CopyState::Present,
        description: String::new(),
        tags: Vec::new(),
    }
}

fn link(size: u64, max_uses: u32, expires_at: i64) -> LinkRecord {
    LinkRecord {
        token_sha256: format!("t{size}-{max_uses}-{expires_at}"),
        principal: "alice".into(),
        kind: LinkKind::File,
        target: "/x".into(),
        filename: "x".into(),
        size,
        sha256: None,
        identity: None,
        max_size: size,
        created_at: 0,
        expires_at,
        max_uses,
        uses: 0,
        charged: 0,
        budget_per_use: LinkRecord::budget_for(size),
    }
}

#[tokio::test]
async fn records_are_per_principal_and_dedup_finds_any() {
    let (_dir, catalog) = sqlite();
    catalog.insert(&record("wf_a", "alice", "obj")).await.unwrap();
    // Bob's record of the same remote object is a record of its own.
    assert_eq!(catalog.insert(&record("wf_b", "bob", "obj")).await.unwrap(), "wf_b");
    // The same principal recording it again gets its existing id back.
    assert_eq!(catalog.insert(&record("wf_c", "alice", "obj")).await.unwrap(), "wf_a");
    let sha = "ab".repeat(32);
    let mine = catalog.find_copy("local", &sha, None, "bob").await.unwrap().unwrap();
    assert_eq!(mine.id, "wf_b", "the caller's own record first");
    let any = catalog.find_copy("local", &sha, None, "carol").await.unwrap().unwrap();
    assert_eq!(any.principal, "alice", "else anyone's, oldest first");

    let query = |principal: &str| ObjectQuery { principal: Some(principal.into()), ..ObjectQuery::default() };
    let alice = catalog.objects(&query("alice")).await.unwrap();
    assert_eq!(alice.files.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["wf_a"]);
    catalog.remove("wf_a").await.unwrap();
    assert!(catalog.object("wf_b").await.unwrap().is_some(), "bob's record stays");
    assert_eq!(catalog.copies(&sha).await.unwrap().len(), 1);
}

#[tokio::test]
async fn listing_pages_filters_and_updates_metadata() {
    let (_dir, catalog) = sqlite();
    for i in 0..5 {
        catalog.insert(&record(&format!("wf_{i}"), "alice", &format!("obj{i}"))).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let query = ObjectQuery { principal: Some("alice".into()), after, limit: Some(2), ..ObjectQuery::default() };
        let page = catalog.objects(&query).await.unwrap();
        seen.extend(page.files.into_iter().map(|o| o.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["wf_4", "wf_3", "wf_2", "wf_1", "wf_0"], "newest first, each once");

    let update = MetadataUpdate {
        name: Some("100%_report.txt".into()),
        description: Some("the report".into()),
        tags: Some(vec!["q3".into(), "final".into()]),
    };
    catalog.update_metadata("wf_2", &update).await.unwrap();
    let updated = catalog.object("wf_2").await.unwrap().unwrap();
    assert_eq!((updated.name.as_str(), updated.description.as_str()), ("100%_report.txt", "the report"));
    assert_eq!(updated.tags, ["q3", "final"]);
    // `%` and `_` in a name filter match themselves, not any text.
    let by_name = |name: &str| ObjectQuery { name_contains: Some(name.into()), ..ObjectQuery::default() };
    let found = catalog.objects(&by_name("0%_R")).await.unwrap();
    assert_eq!(found.files.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["wf_2"]);
    assert!(catalog.objects(&by_name("w%")).await.unwrap().files.is_empty());
}

#[tokio::test]
async fn a_single_use_link_is_taken_once_and_given_back_on_failure() {
    let (_dir, catalog) = sqlite();
    let link = link(1000, 1, 100);
    catalog.insert_link(&link).await.unwrap();
    let take = |request| {
        let catalog = catalog.clone();
        let token = link.token_sha256.clone();
        async move { catalog.take_use(&token, 50, request).await.unwrap() }
    };
    assert_eq!(take(UseRequest::Whole).await, UseOutcome::Granted { took_use: true });
    assert_eq!(take(UseRequest::Whole).await, UseOutcome::Exhausted);
    // A failure on Wharf's side gives the use back.
    catalog.settle_use(&link.token_sha256, 0, true).await.unwrap();
    assert_eq!(take(UseRequest::Whole).await, UseOutcome::Granted { took_use: true });
    // Expired, whatever is left; unknown is unknown.
    assert_eq!(catalog.take_use(&link.token_sha256, 100, UseRequest::Whole).await.unwrap(), UseOutcome::Expired);
    assert_eq!(catalog.take_use("nope", 50, UseRequest::Whole).await.unwrap(), UseOutcome::Unknown);
}

#[tokio::test]
async fn a_cut_download_resumes_within_its_budget_but_cannot_repeat() {
    let (_dir, catalog) = sqlite();
    let link = link(1 << 20, 1, 100);
    catalog.insert_link(&link).await.unwrap();
    let token = &link.token_sha256;
    let size = link.size;
    assert_eq!(catalog.take_use(token, 1, UseRequest::Whole).await.unwrap(), UseOutcome::Granted { took_use: true });
    // The connection is cut after 400 KiB; the client resumes at once, before
    // the first transfer has been settled.
    let rest = UseRequest::Range { len: size - (400 << 10) };
    assert_eq!(catalog.take_use(token, 1, rest).await.unwrap(), UseOutcome::Granted { took_use: false });
    // Then the cut transfer settles: it sent a little more than the client got.
    catalog.settle_use(token, (400 << 10) + (64 << 10), false).await.unwrap();
    // The whole file again is past the budget of the one use.
    assert_eq!(catalog.take_use(token, 1, UseRequest::Range { len: size }).await.unwrap(), UseOutcome::Exhausted);
    assert_eq!(catalog.take_use(token, 1, UseRequest::Whole).await.unwrap(), UseOutcome::Exhausted);
}

#[tokio::test]
async fn a_range_first_takes_a_use_and_stats_count_states() {
    let (_dir, catalog) = sqlite();
    let fresh = link(100, 2, 1000);
    let expired = link(100, 1, 10);
    let spent = link(101, 1, 1000);
    for l in [&fresh, &expired, &spent] {
        catalog.insert_link(l).await.unwrap();
    }
    let range = UseRequest::Range { len: 10 };
    assert_eq!(catalog.take_use(&fresh.token_sha256, 20, range).await.unwrap(), UseOutcome::Granted { took_use: true });
    assert_eq!(
        catalog.take_use(&fresh.token_sha256, 20, range).await.unwrap(),
        UseOutcome::Granted { took_use: false }
    );
    catalog.take_use(&spent.token_sha256, 20, UseRequest::Whole).await.unwrap();
    let stats = catalog.link_stats("alice", 20).await.unwrap();
    assert_eq!(stats, LinkStats { total: 3, active: 1, used: 1, expired: 1 });
    assert_eq!(catalog.delete_expired_links(20).await.unwrap(), 1);
    assert_eq!(catalog.link_stats("alice", 20).await.unwrap().total, 2);
}

#[tokio::test]
async fn concurrent_takes_of_a_single_use_link_grant_exactly_one() {
    let (_dir, catalog) = sqlite();
    let link = link(10, 1, 100);
    catalog.insert_link(&link).await.unwrap();
    let takes = (0..50).map(|_| {
        let catalog = catalog.clone();
        let token = link.token_sha256.clone();
        tokio::spawn(async move { catalog.take_use(&token, 1, UseRequest::Whole).await.unwrap() })
    });
    let outcomes = futures::future::join_all(takes).await;
    let granted = outcomes.iter().filter(|o| matches!(o, Ok(UseOutcome::Granted { .. }))).count();
    assert_eq!(granted, 1);
}

#[tokio::test]
async fn tokens_are_found_by_hash_and_revoked() {
    let (_dir, catalog) = sqlite();
    let token = TokenRecord {
        id: "tok_1".into(),
        principal: "alice".into(),
        admin: false,
        token_sha256: "cd".repeat(32),
        created_at: 1,
        expires_at: None,
        revoked_at: None,
    };
    catalog.insert_token(&token).await.unwrap();
    assert_eq!(catalog.token_by_hash(&"cd".repeat(32)).await.unwrap().unwrap().principal, "alice");
    assert!(catalog.revoke_token("tok_1", 5).await.unwrap());
    assert!(!catalog.revoke_token("tok_2", 5).await.unwrap());
    assert_eq!(catalog.tokens().await.unwrap()[0].revoked_at, Some(5));
}

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

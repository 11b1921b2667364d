//! The catalog's behaviour, written once against the `Catalog` trait and run
//! against both backends: SQLite in a temporary file, and a real PostgreSQL
//! (one server for this test binary, a fresh database per test). Each case
//! below is a test in `sqlite::` and in `postgres::`.

#[path = "support/postgres.rs"]
mod postgres_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf::catalog::{
    Catalog, ClaimOutcome, CopyState, Event, EventKind, LinkKind, LinkRecord, LinkStats, MetadataUpdate, ObjectQuery,
    ObjectRecord, PostgresCatalog, SqliteCatalog, TokenRecord, UseOutcome, UseRequest,
};
use wharf::config::PostgresConfig;

use postgres_server::PostgresServer;

// ---- the backends ----

/// A catalog and what must outlive it.
struct Backend {
    catalog: Arc<dyn Catalog>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SqliteCatalog::open(&dir.path().join("catalog.sqlite3")).unwrap();
    Backend { catalog: Arc::new(catalog), _dir: Some(dir) }
}

fn postgres_config(url: &str) -> PostgresConfig {
    PostgresConfig { url_env: "WHARF_DATABASE_URL".into(), connection: url.parse().unwrap(), max_connections: 16 }
}

async fn postgres() -> Backend {
    let url = PostgresServer::shared().await.create_database().await;
    let catalog = PostgresCatalog::connect(&postgres_config(&url)).await.unwrap();
    Backend { catalog: Arc::new(catalog), _dir: None }
}

/// Every case, as a test against each backend.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::sqlite().await;
                    super::$case(backend.catalog.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::postgres().await;
                    super::$case(backend.catalog.clone()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    records_are_per_principal_and_dedup_finds_any,
    listing_pages_filters_and_updates_metadata,
    a_record_of_known_content_after_its_last_record_went,
    a_single_use_link_is_taken_once_and_given_back_on_failure,
    a_cut_download_resumes_within_its_budget_but_cannot_repeat,
    a_range_first_takes_a_use_and_stats_count_states,
    concurrent_takes_of_a_single_use_link_grant_exactly_one,
    tokens_are_found_by_hash_and_revoked,
    downloads_are_recorded_and_go_with_their_record,
    holds_are_exclusive_renewable_and_released,
    a_lapsed_hold_passes_to_the_next_claimant,
    concurrent_claims_grant_exactly_one,
    listing_filters_by_tag_glob_type_and_time,
    corrupt_and_gone_copies_age_and_cache_copies_order_by_last_use,
    stats_count_files_transfers_and_failures,
);

// ---- helpers ----

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
        ..ObjectRecord::default()
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

// ---- the cases ----

async fn records_are_per_principal_and_dedup_finds_any(catalog: Arc<dyn Catalog>) {
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
    assert!(catalog.find_copy("local", &sha, Some("batch"), "bob").await.unwrap().is_none(), "purposes differ");
    assert!(catalog.find_copy("s3", &sha, None, "bob").await.unwrap().is_none(), "providers differ");

    let query = |principal: &str| ObjectQuery { principal: Some(principal.into()), ..ObjectQuery::default() };
    let alice = catalog.objects(&query("alice")).await.unwrap();
    assert_eq!(alice.files.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["wf_a"]);
    catalog.remove("wf_a").await.unwrap();
    assert!(catalog.object("wf_b").await.unwrap().is_some(), "bob's record stays");
    assert_eq!(catalog.copies(&sha).await.unwrap().len(), 1);

    // A copy marked gone is no longer found for dedup.
    catalog.set_state("wf_b", CopyState::Gone).await.unwrap();
    assert!(catalog.find_copy("local", &sha, None, "bob").await.unwrap().is_none());
    assert_eq!(catalog.object("wf_b").await.unwrap().unwrap().state, CopyState::Gone);
}

async fn listing_pages_filters_and_updates_metadata(catalog: Arc<dyn Catalog>) {
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
    let bad_cursor = ObjectQuery { after: Some("not-a-cursor".into()), ..ObjectQuery::default() };
    let err = catalog.objects(&bad_cursor).await.unwrap_err();
    assert!(err.to_string().contains("not-a-cursor"), "{err}");

    let update = MetadataUpdate {
        name: Some("100%_report.txt".into()),
        description: Some("the report".into()),
        tags: Some(vec!["q3".into(), "final".into()]),
        attributes: Some([("client".to_string(), "acme".to_string())].into()),
    };
    catalog.update_metadata("wf_2", &update).await.unwrap();
    let updated = catalog.object("wf_2").await.unwrap().unwrap();
    assert_eq!((updated.name.as_str(), updated.description.as_str()), ("100%_report.txt", "the report"));
    assert_eq!(updated.tags, ["q3", "final"]);
    assert_eq!(updated.attributes.get("client").map(String::as_str), Some("acme"));
    // `None` leaves a field as it is.
    catalog
        .update_metadata("wf_2", &MetadataUpdate { name: Some("r.txt".into()), ..Default::default() })
        .await
        .unwrap();
    let updated = catalog.object("wf_2").await.unwrap().unwrap();
    assert_eq!((updated.name.as_str(), updated.tags.len()), ("r.txt", 2));
    catalog.update_metadata("wf_2", &update).await.unwrap();
    // `%` and `_` in a name filter match themselves, not any text; case does not matter.
    let by_name = |name: &str| ObjectQuery { name_contains: Some(name.into()), ..ObjectQuery::default() };
    let found = catalog.objects(&by_name("0%_R")).await.unwrap();
    assert_eq!(found.files.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["wf_2"]);
    assert!(catalog.objects(&by_name("w%")).await.unwrap().files.is_empty());
    let by_provider = ObjectQuery { provider: Some("s3".into()), ..ObjectQuery::default() };
    assert!(catalog.objects(&by_provider).await.unwrap().files.is_empty());
}

async fn a_record_of_known_content_after_its_last_record_went(catalog: Arc<dyn Catalog>) {
    catalog.insert(&record("wf_1", "alice", "obj")).await.unwrap();
    catalog.remove("wf_1").await.unwrap();
    assert!(catalog.copies(&"ab".repeat(32)).await.unwrap().is_empty());
    // The content row went with the last record; a new upload brings it back.
    let mut again = record("wf_2", "alice", "obj");
    again.size = 11;
    catalog.insert(&again).await.unwrap();
    assert_eq!(catalog.object("wf_2").await.unwrap().unwrap().size, 11);
}

async fn a_single_use_link_is_taken_once_and_given_back_on_failure(catalog: Arc<dyn Catalog>) {
    let link = link(1000, 1, 100);
    catalog.insert_link(&link).await.unwrap();
    assert_eq!(catalog.link(&link.token_sha256).await.unwrap().as_ref(), Some(&link));
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

async fn a_cut_download_resumes_within_its_budget_but_cannot_repeat(catalog: Arc<dyn Catalog>) {
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
    let charged = catalog.link(token).await.unwrap().unwrap().charged;
    assert_eq!(charged, size + (64 << 10), "what the cut transfer sent plus the range");
}

async fn a_range_first_takes_a_use_and_stats_count_states(catalog: Arc<dyn Catalog>) {
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
    assert_eq!(catalog.link_stats("bob", 20).await.unwrap(), LinkStats::default());
    assert_eq!(catalog.delete_expired_links(20).await.unwrap(), 1);
    assert_eq!(catalog.link_stats("alice", 20).await.unwrap().total, 2);
}

async fn concurrent_takes_of_a_single_use_link_grant_exactly_one(catalog: Arc<dyn Catalog>) {
    let link = link(10, 1, 100);
    catalog.insert_link(&link).await.unwrap();
    let takes = (0..50).map(|_| {
        let catalog = catalog.clone();
        let token = link.token_sha256.clone();
        tokio::spawn(async move { catalog.take_use(&token, 1, UseRequest::Whole).await.unwrap() })
    });
    let outcomes = futures::future::join_all(takes).await;
    let granted = outcomes.iter().filter(|o| matches!(o, Ok(UseOutcome::Granted { .. }))).count();
    assert_eq!(granted, 1, "{outcomes:?}");
}

async fn tokens_are_found_by_hash_and_revoked(catalog: Arc<dyn Catalog>) {
    let token = TokenRecord {
        id: "tok_1".into(),
        principal: "alice".into(),
        admin: true,
        token_sha256: "cd".repeat(32),
        created_at: 1,
        expires_at: Some(99),
        revoked_at: None,
    };
    catalog.insert_token(&token).await.unwrap();
    assert_eq!(catalog.token_by_hash(&"cd".repeat(32)).await.unwrap().as_ref(), Some(&token));
    assert!(catalog.token_by_hash(&"ef".repeat(32)).await.unwrap().is_none());
    assert!(catalog.revoke_token("tok_1", 5).await.unwrap());
    assert!(catalog.revoke_token("tok_1", 7).await.unwrap(), "revoking again is no error");
    assert!(!catalog.revoke_token("tok_2", 5).await.unwrap());
    assert_eq!(catalog.tokens().await.unwrap()[0].revoked_at, Some(5), "the first revocation stands");
}

async fn downloads_are_recorded_and_go_with_their_record(catalog: Arc<dyn Catalog>) {
    catalog.insert(&record("wf_d", "alice", "obj")).await.unwrap();
    for (at, source) in [(5, "provider"), (6, "cache")] {
        let download = wharf::catalog::DownloadRecord {
            object_id: "wf_d".into(),
            principal: "alice".into(),
            destination: format!("/out/{at}"),
            source: source.into(),
            provider: "local".into(),
            bytes: 10,
            duration_ms: 3,
            at,
        };
        catalog.record_download(&download).await.unwrap();
    }
    let history = catalog.downloads("wf_d").await.unwrap();
    assert_eq!(history.iter().map(|d| (d.at, d.source.as_str())).collect::<Vec<_>>(), [(5, "provider"), (6, "cache")]);
    assert_eq!((history[0].bytes, history[0].duration_ms, history[0].provider.as_str()), (10, 3, "local"));
    let counted = catalog.object("wf_d").await.unwrap().unwrap();
    assert_eq!((counted.download_count, counted.last_download_at), (2, Some(6)));
    catalog.remove("wf_d").await.unwrap();
    assert!(catalog.downloads("wf_d").await.unwrap().is_empty());
}

const LONG: Duration = Duration::from_secs(60);

async fn holds_are_exclusive_renewable_and_released(catalog: Arc<dyn Catalog>) {
    let held_by = |holder: &str| ClaimOutcome::HeldBy(holder.into());
    assert_eq!(catalog.claim("upload x", "a", LONG).await.unwrap(), ClaimOutcome::Granted);
    assert_eq!(catalog.claim("upload x", "b", LONG).await.unwrap(), held_by("a"));
    assert_eq!(catalog.claim("upload x", "a", LONG).await.unwrap(), ClaimOutcome::Granted, "a renewal");
    assert_eq!(catalog.claim("upload y", "b", LONG).await.unwrap(), ClaimOutcome::Granted, "another name");
    // Only the holder's release counts.
    catalog.release("upload x", "b").await.unwrap();
    assert_eq!(catalog.claim("upload x", "c", LONG).await.unwrap(), held_by("a"));
    catalog.release("upload x", "a").await.unwrap();
    assert_eq!(catalog.claim("upload x", "c", LONG).await.unwrap(), ClaimOutcome::Granted);
}

async fn a_lapsed_hold_passes_to_the_next_claimant(catalog: Arc<dyn Catalog>) {
    assert_eq!(catalog.claim("lease z", "dead", Duration::from_millis(200)).await.unwrap(), ClaimOutcome::Granted);
    assert_eq!(catalog.claim("lease z", "next", LONG).await.unwrap(), ClaimOutcome::HeldBy("dead".into()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while catalog.claim("lease z", "next", LONG).await.unwrap() != ClaimOutcome::Granted {
        assert!(Instant::now() < deadline, "a 200 ms hold still held after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(catalog.claim("lease z", "dead", LONG).await.unwrap(), ClaimOutcome::HeldBy("next".into()));
}

async fn concurrent_claims_grant_exactly_one(catalog: Arc<dyn Catalog>) {
    let claims = (0..20).map(|i| {
        let catalog = catalog.clone();
        tokio::spawn(async move { catalog.claim("upload race", &format!("holder-{i}"), LONG).await.unwrap() })
    });
    let outcomes = futures::future::join_all(claims).await;
    let granted = outcomes.iter().filter(|o| matches!(o, Ok(ClaimOutcome::Granted))).count();
    assert_eq!(granted, 1, "{outcomes:?}");
}

// ---- PostgreSQL only ----

/// Hosts starting at once against a new database: one applies the schema,
/// the others wait for it and find nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hosts_starting_at_once_upgrade_the_schema_once() {
    let url = PostgresServer::shared().await.create_database().await;
    let config = postgres_config(&url);
    let opens = (0..6).map(|_| PostgresCatalog::connect(&config));
    for opened in futures::future::join_all(opens).await {
        opened.unwrap().ping().await.unwrap();
    }
    let client = postgres_server::connect(&url).await;
    let versions: Vec<i32> =
        client.query("SELECT version FROM wharf_schema_version", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, [1, 2], "each version applied once");
}

/// A database upgraded by a newer Wharf is refused, not written to.
#[tokio::test]
async fn postgres_schema_newer_than_this_wharf_is_refused() {
    let url = PostgresServer::shared().await.create_database().await;
    let config = postgres_config(&url);
    PostgresCatalog::connect(&config).await.unwrap();
    let client = postgres_server::connect(&url).await;
    client.execute("INSERT INTO wharf_schema_version (version) VALUES (99)", &[]).await.unwrap();
    let err = PostgresCatalog::connect(&config).await.err().expect("a newer schema is refused");
    assert!(err.to_string().contains("version 99") && err.to_string().contains("upgrade Wharf"), "{err}");
}

/// An unreachable server is named, without the password.
#[tokio::test]
async fn postgres_unreachable_is_named_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = postgres_config(&format!("postgres://wharf:pw-SECRET@127.0.0.1:{port}/files"));
    let err = PostgresCatalog::connect(&config).await.err().expect("nothing listens there");
    let message = err.to_string();
    assert!(message.contains(&format!("postgres://wharf@127.0.0.1:{port}/files")), "{message}");
    assert!(message.contains("connect") && !message.contains("pw-SECRET"), "{message}");
}

async fn listing_filters_by_tag_glob_type_and_time(catalog: Arc<dyn Catalog>) {
    let files = [
        ("wf_a", "Report Q3.pdf", "application/pdf", 10, &["work", "q3"][..]),
        ("wf_b", "photo.png", "image/png", 20, &["holiday"][..]),
        ("wf_c", "notes_1.txt", "text/plain", 30, &["work"][..]),
        ("wf_d", "notes%2.txt", "text/plain", 40, &[][..]),
    ];
    for (id, name, mime, created_at, tags) in files {
        let mut r = record(id, "alice", id);
        (r.name, r.mime, r.created_at) = (name.into(), mime.into(), created_at);
        r.tags = tags.iter().map(|t| t.to_string()).collect();
        catalog.insert(&r).await.unwrap();
    }
    let ids = |query: ObjectQuery| {
        let catalog = catalog.clone();
        async move {
            let page = catalog.objects(&query).await.unwrap();
            page.files.into_iter().map(|f| f.id).collect::<Vec<_>>()
        }
    };
    let q = ObjectQuery::default;
    assert_eq!(ids(ObjectQuery { tag: Some("work".into()), ..q() }).await, ["wf_c", "wf_a"]);
    assert_eq!(ids(ObjectQuery { tag: Some("wor".into()), ..q() }).await, Vec::<String>::new(), "whole tags only");
    assert_eq!(ids(ObjectQuery { name_glob: Some("notes*.txt".into()), ..q() }).await, ["wf_d", "wf_c"]);
    assert_eq!(ids(ObjectQuery { name_glob: Some("NOTES_?.TXT".into()), ..q() }).await, ["wf_c"], "_ is literal");
    assert_eq!(ids(ObjectQuery { name_glob: Some("*.pdf".into()), ..q() }).await, ["wf_a"]);
    assert_eq!(ids(ObjectQuery { mime: Some("image/*".into()), ..q() }).await, ["wf_b"]);
    assert_eq!(ids(ObjectQuery { mime: Some("text/plain".into()), ..q() }).await, ["wf_d", "wf_c"]);
    assert_eq!(ids(ObjectQuery { since: Some(30), ..q() }).await, ["wf_d", "wf_c"]);
    let combined = ObjectQuery { tag: Some("work".into()), mime: Some("text/*".into()), since: Some(5), ..q() };
    assert_eq!(ids(combined).await, ["wf_c"]);
}

async fn corrupt_and_gone_copies_age_and_cache_copies_order_by_last_use(catalog: Arc<dyn Catalog>) {
    for id in ["wf_1", "wf_2", "wf_3"] {
        catalog.insert(&record(id, "alice", id)).await.unwrap();
    }
    catalog.set_state("wf_1", CopyState::Corrupt).await.unwrap();
    catalog.set_state("wf_2", CopyState::Gone).await.unwrap();
    assert_eq!(catalog.object("wf_1").await.unwrap().unwrap().state, CopyState::Corrupt);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let gone = |before: i64| {
        let catalog = catalog.clone();
        async move { catalog.stale_copies(CopyState::Gone, before).await.unwrap() }
    };
    assert!(gone(now - 60).await.is_empty(), "gone only just now");
    assert_eq!(gone(now + 60).await.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["wf_2"]);
    // A download makes a copy the most recently used; never-downloaded ones
    // count from when they were made.
    let download = wharf::catalog::DownloadRecord {
        object_id: "wf_3".into(),
        principal: "alice".into(),
        destination: "/out".into(),
        source: "provider".into(),
        provider: "local".into(),
        bytes: 10,
        duration_ms: 1,
        at: 100,
    };
    catalog.insert(&record("wf_4", "alice", "wf_4")).await.unwrap();
    catalog.record_download(&download).await.unwrap();
    let order = catalog.copies_by_last_use("local").await.unwrap();
    assert_eq!(order.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["wf_4", "wf_3"], "present copies only");
    assert_eq!(catalog.delete_history(101).await.unwrap(), 1);
    assert!(catalog.downloads("wf_3").await.unwrap().is_empty());
}

async fn stats_count_files_transfers_and_failures(catalog: Arc<dyn Catalog>) {
    catalog.insert(&record("wf_1", "alice", "one")).await.unwrap();
    let mut other = record("wf_2", "bob", "two");
    other.provider = "s3".into();
    catalog.insert(&other).await.unwrap();
    let event = |kind, bytes, detail: &str, principal: &str, at| Event {
        at,
        principal: principal.into(),
        kind,
        provider: "local".into(),
        bytes,
        detail: detail.into(),
    };
    for e in [
        event(EventKind::Upload, 10, "", "alice", 50),
        event(EventKind::Dedup, 10, "", "alice", 60),
        event(EventKind::Failure, 0, "download: corrupt", "alice", 70),
        event(EventKind::Failure, 0, "download: corrupt", "alice", 71),
        event(EventKind::Upload, 99, "", "bob", 80),
        event(EventKind::Upload, 7, "", "alice", 1),
    ] {
        catalog.record_event(&e).await.unwrap();
    }
    for (at, source) in [(60, "cache"), (61, "cache"), (62, "provider")] {
        let download = wharf::catalog::DownloadRecord {
            object_id: "wf_1".into(),
            principal: "alice".into(),
            destination: "/out".into(),
            source: source.into(),
            provider: "local".into(),
            bytes: 10,
            duration_ms: 1,
            at,
        };
        catalog.record_download(&download).await.unwrap();
    }
    let stats = catalog.stats(Some("alice"), 10).await.unwrap();
    assert_eq!(stats.providers.len(), 1, "alice's files only: {stats:?}");
    assert_eq!((stats.providers["local"].files, stats.providers["local"].bytes), (1, 10));
    assert_eq!((stats.uploads, stats.bytes_uploaded, stats.dedup_hits, stats.bytes_not_sent), (1, 10, 1, 10));
    assert_eq!(stats.failures.get("download: corrupt"), Some(&2));
    assert_eq!((stats.downloads.get("cache"), stats.downloads.get("provider")), (Some(&2), Some(&1)));
    assert_eq!(stats.bytes_downloaded, 30);
    assert_eq!(stats.most_downloaded.first().map(|f| (f.id.as_str(), f.downloads)), Some(("wf_1", 3)));
    assert_eq!(catalog.holdings(Some("alice")).await.unwrap(), stats.providers, "the same count on its own");
    let everyone = catalog.stats(None, 0).await.unwrap();
    assert_eq!((everyone.providers.len(), everyone.uploads, everyone.bytes_uploaded), (2, 3, 116));
}

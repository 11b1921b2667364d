//! Figures for several hosts on one PostgreSQL:
//!
//! 1. Catalog operation latency through the `Catalog` trait, SQLite (a file
//!    in a temporary directory) against PostgreSQL (a local server on
//!    loopback, fsync on as by default): median and p99 of sequential calls
//!    of record insertion, record lookup by id, and taking a link's use.
//! 2. 200 small uploads sent at once through one `wharf serve` host, against
//!    the same spread over two hosts (files/s): both hosts on that
//!    PostgreSQL and one SeaweedFS as the S3 provider.
//!
//! `cargo bench --bench catalog` (needs what tests/multihost.rs needs:
//! PostgreSQL's server binaries and `weed`, which scripts/test installs).
//! WHARF_BENCH_OPS sets the calls per operation (default 2000),
//! WHARF_BENCH_ROUNDS the upload rounds per setting (default 3; the median is
//! reported). Every process shares the machine's cores: on 2 cores a second
//! host adds no CPU, so spreading shows what it costs, not what it scales to.

#[path = "../../tests/support/cluster.rs"]
mod cluster;
#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/support/postgres.rs"]
mod postgres_server;
#[path = "../../tests/support/s3_server.rs"]
mod s3_server;
#[path = "../../tests/support/serve.rs"]
mod serve;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf::catalog::{
    Catalog, LinkKind, LinkRecord, ObjectRecord, PostgresCatalog, SqliteCatalog, UseOutcome, UseRequest,
};
use wharf::config::PostgresConfig;

use cluster::{Host, Shared};
use postgres_server::PostgresServer;
use s3_server::S3Server;

const BUCKET: &str = "bench";
const UPLOADS: usize = 200;
const UPLOAD_BYTES: usize = 4096;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("starting tokio");
    runtime.block_on(run());
}

async fn run() {
    let ops = env_usize("WHARF_BENCH_OPS", 2000);
    let rounds = env_usize("WHARF_BENCH_ROUNDS", 3);
    let postgres = PostgresServer::start(true).await;

    println!("catalog operation latency, {ops} sequential calls each, in µs (median / p99):");
    println!("{:<10} {:>20} {:>20} {:>20}", "backend", "insert", "lookup by id", "take_use");
    let dir = tempfile::tempdir().expect("a directory for SQLite");
    let sqlite: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open(&dir.path().join("catalog.sqlite3")).unwrap());
    let url = postgres.create_database().await;
    let config = PostgresConfig { url_env: "-".into(), connection: url.parse().unwrap(), max_connections: 16 };
    let shared: Arc<dyn Catalog> = Arc::new(PostgresCatalog::connect(&config).await.unwrap());
    for (name, catalog) in [("sqlite", sqlite), ("postgres", shared)] {
        let figures = latencies(&catalog, ops).await;
        println!("{name:<10} {:>20} {:>20} {:>20}", figures[0], figures[1], figures[2]);
    }

    println!();
    println!("{UPLOADS} uploads of {UPLOAD_BYTES} bytes sent at once, files/s (median of {rounds} rounds):");
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    let database_url = postgres.create_database().await;
    let shared = Shared {
        database_url: &database_url,
        s3_endpoint: &s3.endpoint,
        bucket: BUCKET,
        prefix: "",
        claim_ttl_secs: 30,
        max_upload_bytes: 1 << 20,
    };
    let hosts = [cluster::start_host(&shared), cluster::start_host(&shared)];
    let token = hosts[0].serve.token("bench", false);
    let http = serve::client_builder().pool_max_idle_per_host(UPLOADS).build().unwrap();
    // Unmeasured: fills each host's connection pools (PostgreSQL, S3) and the client's.
    upload_round(&http, &hosts, &token, "warm-up").await;
    for (label, spread) in [("one host", &hosts[..1]), ("two hosts", &hosts[..])] {
        let mut rates = Vec::new();
        for round in 0..rounds {
            rates.push(upload_round(&http, spread, &token, &format!("{label}-{round}")).await);
        }
        rates.sort_by(f64::total_cmp);
        let all: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!("{label:<10} {:>8.0} files/s   (rounds: {})", rates[rates.len() / 2], all.join(", "));
    }
}

/// Times `ops` sequential calls of `call`, after a few unmeasured ones (the
/// prepared-statement caches fill then): "median / p99" in µs.
async fn time_each<F: Future<Output = ()>>(ops: usize, offset: usize, mut call: impl FnMut(usize) -> F) -> String {
    for i in 0..50 {
        call(offset + ops + i).await;
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(ops);
    for i in 0..ops {
        let started = Instant::now();
        call(offset + i).await;
        samples.push(started.elapsed());
    }
    samples.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    format!("{:.0} / {:.0}", micros(samples[ops / 2]), micros(samples[ops * 99 / 100]))
}

fn record(i: usize) -> ObjectRecord {
    ObjectRecord {
        id: format!("wf_{i:08}"),
        principal: "bench".into(),
        provider: "s3".into(),
        remote_id: format!("{i:064x}"),
        sha256: format!("{i:064x}"),
        size: 4096,
        name: format!("file-{i}.bin"),
        mime: "application/octet-stream".into(),
        purpose: None,
        created_at: 1,
        ..ObjectRecord::default()
    }
}

/// Insert, lookup and take_use figures for one catalog.
async fn latencies(catalog: &Arc<dyn Catalog>, ops: usize) -> [String; 3] {
    let insert = time_each(ops, 0, |i| {
        let catalog = catalog.clone();
        async move {
            catalog.insert(&record(i)).await.unwrap();
        }
    })
    .await;
    let lookup = time_each(ops, 0, |i| {
        let catalog = catalog.clone();
        async move {
            assert!(catalog.object(&record(i % ops).id).await.unwrap().is_some());
        }
    })
    .await;
    let link = LinkRecord {
        token_sha256: "bench-link".into(),
        principal: "bench".into(),
        kind: LinkKind::Stored,
        target: "wf_00000000".into(),
        filename: "file.bin".into(),
        size: 4096,
        sha256: None,
        identity: None,
        max_size: 4096,
        created_at: 0,
        expires_at: i64::MAX,
        max_uses: u32::MAX,
        uses: 0,
        charged: 0,
        budget_per_use: LinkRecord::budget_for(4096),
    };
    catalog.insert_link(&link).await.unwrap();
    let take = time_each(ops, 0, |_| {
        let catalog = catalog.clone();
        async move {
            let outcome = catalog.take_use("bench-link", 1, UseRequest::Whole).await.unwrap();
            assert_eq!(outcome, UseOutcome::Granted { took_use: true });
        }
    })
    .await;
    [insert, lookup, take]
}

/// Sends `UPLOADS` distinct small files at once, in turn to each of `hosts`:
/// files per second from the first request to the last answer.
async fn upload_round(http: &reqwest::Client, hosts: &[Host], token: &str, tag: &str) -> f64 {
    let started = Instant::now();
    let mut uploads = tokio::task::JoinSet::new();
    for i in 0..UPLOADS {
        let url = format!("{}/api/files?name=small-{i}.bin", hosts[i % hosts.len()].serve.base_url);
        let mut body = vec![0u8; UPLOAD_BYTES];
        let stamp = format!("{tag}-{i}-{}", std::process::id());
        body[..stamp.len()].copy_from_slice(stamp.as_bytes());
        let request = http.post(url).bearer_auth(token).body(body);
        uploads.spawn(async move {
            let response = request.send().await.expect("sending an upload");
            let status = response.status();
            assert_eq!(status, reqwest::StatusCode::CREATED, "{}", response.text().await.unwrap_or_default());
        });
    }
    while let Some(done) = uploads.join_next().await {
        done.expect("an upload task");
    }
    UPLOADS as f64 / started.elapsed().as_secs_f64()
}

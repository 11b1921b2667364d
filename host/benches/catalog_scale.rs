//! The file pipeline's queries on a large catalog: `wharf stats` and
//! `wharf ls --tag` (whole processes of the release binary: start, open the
//! catalog, load the adapter, query, print JSON) on an embedded SQLite
//! catalog of WHARF_BENCH_FILES files (default 100,000) with one download
//! and one upload event per file; and the same two queries through the
//! `Catalog` trait on SQLite and PostgreSQL, without the process around them.
//!
//! Tags: `rare` on one file in 1,000, `common` on one in 10. Medians of
//! WHARF_BENCH_RUNS runs (default 5).
//!
//! `cargo bench --bench catalog_scale` (PostgreSQL's server binaries, which
//! scripts/test installs).

#[path = "../../tests/support/postgres.rs"]
mod postgres_server;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf::catalog::{
    Catalog, DownloadRecord, Event, EventKind, ObjectQuery, ObjectRecord, PostgresCatalog, SqliteCatalog,
};
use wharf::config::PostgresConfig;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("starting tokio");
    runtime.block_on(run());
}

async fn run() {
    let files = env_usize("WHARF_BENCH_FILES", 100_000);
    let runs = env_usize("WHARF_BENCH_RUNS", 5);
    let dir = tempfile::tempdir().expect("a scratch directory");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let sqlite: Arc<dyn Catalog> = Arc::new(SqliteCatalog::open(&data.join("catalog.sqlite3")).unwrap());
    let started = Instant::now();
    fill(&sqlite, files).await;
    println!("filled a SQLite catalog with {files} files in {:.1} s", started.elapsed().as_secs_f64());

    let config = dir.path().join("providers.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\ndata_dir = \"{data}\"\nsandbox_roots = [\"{root}\"]\nprincipal = \"bench\"\n\n[providers.local]\nplugin = \"local\"\nstorage_dir = \"{data}/local\"\n",
            data = data.display(),
            root = dir.path().display()
        ),
    )
    .unwrap();
    println!("\nwhole `wharf` processes on SQLite, median of {runs} (ms):");
    for args in [&["stats"][..], &["ls", "--tag", "rare"], &["ls", "--tag", "common"], &["ls"]] {
        let (median, lines) = time_process(&config, args, runs);
        println!("  wharf --json {:<22} {median:>8.1} ms   ({lines} lines)", args.join(" "));
    }

    let postgres = postgres_server::PostgresServer::start(true).await;
    let url = postgres.create_database().await;
    let pg_config = PostgresConfig { url_env: "-".into(), connection: url.parse().unwrap(), max_connections: 16 };
    let shared: Arc<dyn Catalog> = Arc::new(PostgresCatalog::connect(&pg_config).await.unwrap());
    fill(&shared, files).await;
    println!("\nthrough the Catalog trait, median of {runs} (ms):");
    println!("  {:<10} {:>10} {:>14} {:>14}", "backend", "stats", "tag rare", "tag common");
    for (name, catalog) in [("sqlite", &sqlite), ("postgres", &shared)] {
        let stats = time_query(runs, || async { drop(catalog.stats(Some("bench"), 0).await.unwrap()) }).await;
        let rare = time_query(runs, || async { drop(catalog.objects(&tagged("rare")).await.unwrap()) }).await;
        let common = time_query(runs, || async { drop(catalog.objects(&tagged("common")).await.unwrap()) }).await;
        println!("  {name:<10} {stats:>10.1} {rare:>14.1} {common:>14.1}");
    }
}

fn tagged(tag: &str) -> ObjectQuery {
    ObjectQuery { principal: Some("bench".into()), tag: Some(tag.into()), ..ObjectQuery::default() }
}

/// `files` records with tags, each with one download and one upload event.
async fn fill(catalog: &Arc<dyn Catalog>, files: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    let workers = 8;
    for worker in 0..workers {
        let catalog = catalog.clone();
        tasks.spawn(async move {
            for i in (worker..files).step_by(workers) {
                catalog.insert(&record(i)).await.unwrap();
                let download = DownloadRecord {
                    object_id: format!("wf_{i:08}"),
                    principal: "bench".into(),
                    destination: "/dev/null".into(),
                    source: if i % 3 == 0 { "cache" } else { "provider" }.into(),
                    provider: "local".into(),
                    bytes: 4096,
                    duration_ms: 1,
                    at: 1_000 + i as i64,
                };
                catalog.record_download(&download).await.unwrap();
                let event = Event {
                    at: 1_000 + i as i64,
                    principal: "bench".into(),
                    kind: if i % 4 == 0 { EventKind::Dedup } else { EventKind::Upload },
                    provider: "local".into(),
                    bytes: 4096,
                    detail: String::new(),
                };
                catalog.record_event(&event).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

fn record(i: usize) -> ObjectRecord {
    let mut tags = Vec::new();
    if i.is_multiple_of(1000) {
        tags.push("rare".to_string());
    }
    if i.is_multiple_of(10) {
        tags.push("common".to_string());
    }
    ObjectRecord {
        id: format!("wf_{i:08}"),
        principal: "bench".into(),
        provider: "local".into(),
        remote_id: format!("{i:064x}"),
        sha256: format!("{i:064x}"),
        size: 4096,
        name: format!("file-{i}.bin"),
        mime: "application/octet-stream".into(),
        purpose: None,
        created_at: 1_000 + i as i64,
        tags,
        ..ObjectRecord::default()
    }
}

/// Median wall time of `wharf --json ARGS` and how many lines it printed.
fn time_process(config: &Path, args: &[&str], runs: usize) -> (f64, usize) {
    let mut samples = Vec::new();
    let mut lines = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("--config")
            .arg(config)
            .arg("--json")
            .args(args)
            .output()
            .expect("running wharf");
        samples.push(started.elapsed());
        assert!(output.status.success(), "wharf {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        lines = output.stdout.iter().filter(|b| **b == b'\n').count();
    }
    (median_ms(samples), lines)
}

async fn time_query<F, Fut>(runs: usize, query: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        query().await;
        samples.push(started.elapsed());
    }
    median_ms(samples)
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

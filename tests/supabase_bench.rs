//! Supabase adapter throughput through the real gateway, against the fake
//! Supabase server on loopback, beside a plain streaming POST of the same
//! file to the same server (the floor: what the fake and loopback cost).
//!
//! `cargo bench --bench supabase` (WHARF_BENCH_MIB sets the size, default
//! 256; WHARF_BENCH_RUNS the runs per figure, default 3, median reported).

#[path = "common/mod.rs"]
mod common;
#[path = "support/supabase_fake.rs"]
mod supabase_fake;

use std::time::{Duration, Instant};

use common::{Scratch, pattern};
use supabase_fake::{BucketLimits, FakeSupabase};
use wharf::gateway::{Source, UploadOptions};

const KEY_VAR: &str = "WHARF_BENCH_SUPABASE_KEY";
const KEY: &str = "bench-service-role-key";
const BUCKET: &str = "bench";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn mib_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn providers(fake: &FakeSupabase) -> String {
    let entry = |name: &str, threshold: u64| {
        format!(
            "\n[providers.{name}]\nplugin = \"supabase\"\nallowed_hosts = [\"{}\"]\nsecrets = {{ api_key = \"{KEY_VAR}\" }}\nconfig = {{ base_url = \"{}\", bucket = \"{BUCKET}\", tus_threshold = {threshold} }}\n",
            fake.origin(),
            fake.base_url()
        )
    };
    entry("standard", i64::MAX as u64) + &entry("tus", 0)
}

fn main() -> anyhow::Result<()> {
    // SAFETY: set before any other thread exists.
    unsafe { std::env::set_var(KEY_VAR, KEY) };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let size = env_or("WHARF_BENCH_MIB", 256) << 20;
    let runs = env_or("WHARF_BENCH_RUNS", 3).max(1);
    let content = pattern(size as usize);
    let key = common::sha256_hex(&content);
    let fake = FakeSupabase::start(KEY, &[(BUCKET, BucketLimits::default())]).await;

    let (mut floor, mut standard, mut tus, mut download) = (vec![], vec![], vec![], vec![]);
    // The gateway hashes every upload twice (before, and while sending) and
    // every download once: one pass, for scale.
    let mut hash = vec![];
    for _ in 0..runs {
        let started = Instant::now();
        std::hint::black_box(<sha2::Sha256 as sha2::Digest>::digest(&content));
        hash.push(started.elapsed());
        let scratch = Scratch::new();
        let source = scratch.write("big.bin", &content);
        let gateway = scratch.gateway(&providers(&fake)).await;

        let file = tokio::fs::File::open(&source).await?;
        let started = Instant::now();
        let response = reqwest::Client::new()
            .post(format!("{}/object/{BUCKET}/floor", fake.base_url()))
            .header("apikey", KEY)
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-length", size)
            .body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)))
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "floor upload: {response:?}");
        floor.push(started.elapsed());
        fake.remove(BUCKET, "floor");

        for (provider, times) in [("standard", &mut standard), ("tus", &mut tus)] {
            let options = UploadOptions { provider: Some(provider.into()), ..UploadOptions::default() };
            let started = Instant::now();
            let up = gateway.upload(Source::Path(source.clone()), &options).await?;
            times.push(started.elapsed());
            anyhow::ensure!(up.remote_id == key && !up.deduplicated);
            if provider == "tus" {
                let dest = scratch.work().join("back.bin");
                let started = Instant::now();
                let down = gateway.download(&up.id, Some(&dest), None).await?;
                download.push(started.elapsed());
                anyhow::ensure!(down.verified && down.size == size);
            }
            anyhow::ensure!(fake.remove(BUCKET, &key), "{provider} stored the object");
        }
    }
    let requests = fake.requests();
    let patches = requests.iter().filter(|r| r.method == "PATCH").count() as u64 / runs;
    println!("Supabase adapter vs the fake Supabase server, {} MiB, median of {runs}:", size >> 20);
    for (what, times) in [
        ("plain streaming POST (floor)", floor),
        ("wharf upload, standard POST", standard),
        ("wharf upload, TUS 6 MiB chunks", tus),
        ("wharf download, verified", download),
        ("one SHA-256 pass in memory", hash),
    ] {
        let took = median(times);
        println!("  {what:32} {:8.1} ms  {:7.1} MiB/s", took.as_secs_f64() * 1000.0, mib_per_s(size, took));
    }
    println!("  TUS PATCH requests per upload: {patches}");
    Ok(())
}

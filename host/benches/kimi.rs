//! The Kimi adapter against the fake Kimi of the tests, on loopback:
//! - per-call cost of `stat` (fresh instance + init + one plain-HTTP GET +
//!   JSON) and of `list` over 1,000 files (one GET, sort and page in the guest);
//! - a 95 MiB upload with the release `wharf` binary (hash, backup into the
//!   local cache, multipart stream to Kimi): wall time and Wharf's peak RSS.
//!
//! `cargo bench --bench kimi` (WHARF_BENCH_KIMI_MIB changes the upload size,
//! at most 95: Kimi takes 10^8 bytes).

#[path = "../../tests/support/kimi_fake.rs"]
mod fake;
mod support;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use fake::FakeKimi;
use support::{Took, measure};
use wharf::body::Body;
use wharf::config::Config;
use wharf::runtime::{ObjectRef, Runtime};

const KEY_VAR: &str = "WHARF_BENCH_KIMI_KEY";
const KEY: &str = "sk-bench-kimi";
const SAMPLES: usize = 1_000;
const LIST_FILES: usize = 1_000;

fn median_and_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(samples[samples.len() / 2]), us(samples[samples.len() * 99 / 100]))
}

fn main() -> anyhow::Result<()> {
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var(KEY_VAR, KEY) };
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let fake = FakeKimi::start(KEY).await;
    // The listed files plus the big upload, within the account's file count.
    fake.set_max_files(LIST_FILES + 1);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let work = dir.path().to_path_buf();
    let config_path = work.join("providers.toml");
    std::fs::write(
        &config_path,
        format!(
            "[host]\ndata_dir = \"data\"\nsandbox_roots = [\".\"]\n[providers.local]\nplugin = \"local\"\nstorage_dir = \"data/local\"\n\
             [providers.kimi]\nplugin = \"kimi\"\nallowed_hosts = [\"{}\"]\nsecrets = {{ api_key = \"{KEY_VAR}\" }}\nconfig = {{ base_url = \"{}\" }}\n",
            fake.origin(),
            fake.base_url()
        ),
    )?;
    let config = Config::load(&config_path)?;
    let runtime = Runtime::new(&work.join("components"), 64 << 20)?;
    let adapter = runtime.load(&config.providers["kimi"]).await?;

    let mut remote_id = String::new();
    for i in 0..LIST_FILES {
        let body = Body::Bytes(format!("file {i}").into_bytes().into());
        remote_id = adapter.upload(body, &format!("f{i}.txt"), "text/plain", "unused", None).await?.info.remote_id;
    }
    let target = ObjectRef { remote_id, purpose: None };
    let mut stat = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        adapter.stat(&target).await?;
        stat.push(started.elapsed());
    }
    let mut list = Vec::with_capacity(SAMPLES / 10);
    for _ in 0..SAMPLES / 10 {
        let started = Instant::now();
        let page = adapter.list(None, LIST_FILES as u32).await?;
        anyhow::ensure!(page.items.len() == LIST_FILES && page.next_cursor.is_none(), "one full page");
        list.push(started.elapsed());
    }
    let (stat_median, stat_p99) = median_and_p99(stat);
    let (list_median, list_p99) = median_and_p99(list);
    println!("kimi adapter on loopback, fake Kimi:");
    println!("  stat:                 median {stat_median:.0} µs, p99 {stat_p99:.0} µs over {SAMPLES} calls");
    println!(
        "  list of {LIST_FILES} files:   median {list_median:.0} µs, p99 {list_p99:.0} µs over {} calls",
        SAMPLES / 10
    );

    let mib: u64 = std::env::var("WHARF_BENCH_KIMI_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(95).min(95);
    let size = mib << 20;
    {
        let mut file = std::fs::File::create(work.join("big.pdf"))?;
        let block: Vec<u8> = (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        for i in 0..mib {
            let mut block = block.clone();
            block[..8].copy_from_slice(&i.to_le_bytes());
            file.write_all(&block)?;
        }
    }
    let wharf = |args: &'static [&'static str]| {
        let work = work.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
            cmd.current_dir(&work).env(KEY_VAR, KEY).arg("--json").args(args);
            measure(&mut cmd)
        })
    };
    // Warms the binary's compiled-component cache and the page cache, the
    // latter through a small buffer: memory this process just touched shows
    // up in the child's peak RSS and would hide Wharf's own.
    wharf(&["plugins"]).await??;
    std::io::copy(&mut std::fs::File::open(work.join("big.pdf"))?, &mut std::io::sink())?;
    let (Took { wall: took, rss_kib: rss, .. }, _) = wharf(&["upload", "--provider", "kimi", "big.pdf"]).await??;
    let received = fake.files().last().map_or(0, |f| f.content.len() as u64);
    anyhow::ensure!(received == size, "the fake received {received} of {size} bytes");
    println!(
        "  wharf upload of {mib} MiB: {:.0} MiB/s ({:.2} s: hash + local cache copy + multipart to Kimi), peak RSS {} MiB",
        mib as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        rss / 1024
    );
    Ok(())
}

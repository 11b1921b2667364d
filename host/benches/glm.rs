//! The GLM adapter through the gateway, against the fake GLM server of the
//! tests on loopback: upload throughput (multipart, streamed from the file)
//! next to the local adapter, the cost of the per-upload file-count check,
//! and of `stat`, which GLM lacks and the adapter emulates by listing.
//!
//! `cargo bench --bench glm` (set WHARF_BENCH_MIB to change the upload size;
//! at most 100, GLM's limit). The fake keeps uploads in memory.

#[path = "../../tests/support/glm_fake.rs"]
mod fake;

use std::time::{Duration, Instant};

use fake::FakeGlm;
use wharf::config::Config;
use wharf::gateway::{Gateway, Source, UploadOptions};

const KEY_VAR: &str = "WHARF_BENCH_GLM_KEY";

fn mib() -> u64 {
    std::env::var("WHARF_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(64).min(100)
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

fn to(provider: &str, purpose: Option<&str>) -> UploadOptions {
    UploadOptions { provider: Some(provider.into()), purpose: purpose.map(str::to_string), ..UploadOptions::default() }
}

fn main() -> anyhow::Result<()> {
    // SAFETY: set before any other thread exists.
    unsafe { std::env::set_var(KEY_VAR, fake::KEY) };
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let fake = FakeGlm::start();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let work = dir.path();
    let entry = |name: &str, count: bool| {
        format!(
            "[providers.{name}]\nplugin = \"glm\"\nallowed_hosts = [\"{}\"]\nsecrets = {{ api_key = \"{KEY_VAR}\" }}\nconfig = {{ base_url = \"{}\", check_file_count = {count} }}\n",
            fake.origin(),
            fake.base_url()
        )
    };
    std::fs::write(
        work.join("providers.toml"),
        format!(
            "[host]\ndata_dir = \"data\"\nsandbox_roots = [\".\"]\n[providers.local]\nplugin = \"local\"\nstorage_dir = \"data/local\"\n{}{}",
            entry("glm", true),
            entry("glm_nocount", false)
        ),
    )?;
    let gateway = Gateway::open(Config::load(&work.join("providers.toml"))?).await?.host_caller();

    // Throughput: local first, which also fills the cache, so that the GLM
    // upload that follows measures the GLM path alone.
    let size = mib() << 20;
    let line = b"{\"custom_id\":\"request-000001\",\"method\":\"POST\",\"url\":\"/v4/chat/completions\"}\n";
    let big = work.join("big.jsonl");
    std::fs::write(&big, line.repeat(size as usize / line.len()))?;
    let size = std::fs::metadata(&big)?.len();
    let throughput = |took: Duration| size as f64 / (1 << 20) as f64 / took.as_secs_f64();
    let started = Instant::now();
    gateway.upload(Source::Path(big.clone()), &to("local", None)).await?;
    let local = started.elapsed();
    let started = Instant::now();
    let up = gateway.upload(Source::Path(big), &to("glm_nocount", Some("batch"))).await?;
    let glm = started.elapsed();
    anyhow::ensure!(fake.file(&up.remote_id).map(|f| f.bytes.len() as u64) == Some(size), "the fake holds it all");
    println!("upload of {:.1} MiB (hash + send; page cache warm)", size as f64 / (1 << 20) as f64);
    println!("  local adapter:                {:>7.0} MiB/s ({:.2} s)", throughput(local), local.as_secs_f64());
    println!("  glm adapter, loopback fake:   {:>7.0} MiB/s ({:.2} s)", throughput(glm), glm.as_secs_f64());

    // Small uploads, with and without the count check (one list request).
    for (provider, label) in [("glm_nocount", "without count check"), ("glm", "with count check   ")] {
        let mut samples = Vec::new();
        for i in 0..40 {
            let path = work.join(format!("{provider}-{i}.pdf"));
            std::fs::write(&path, format!("{provider} small file {i}"))?;
            let started = Instant::now();
            gateway.upload(Source::Path(path), &to(provider, Some("file-extract"))).await?;
            samples.push(started.elapsed());
        }
        println!("small upload, {label}: median {:.2} ms over 40", median_ms(samples));
    }

    // Stat emulation: the oldest of 1,000 batch files is on the last of ten pages.
    for i in 0..999 {
        fake.seed("batch", &format!("seed{i}.jsonl"), b"{}\n");
    }
    let lists_before = fake.requests("GET", "/files").len();
    let mut samples = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let info = gateway.info(&up.id).await?;
        samples.push(started.elapsed());
        anyhow::ensure!(info.remote.is_some(), "stat found it: {:?}", info.remote_error);
    }
    let lists = (fake.requests("GET", "/files").len() - lists_before) / 20;
    println!("stat of the oldest of 1000 files: median {:.2} ms ({lists} list requests each)", median_ms(samples));

    let started = Instant::now();
    let all = gateway.list_remote(Some("glm")).await?;
    println!("list all purposes ({} files): {:.2} ms", all.len(), started.elapsed().as_secs_f64() * 1e3);
    Ok(())
}

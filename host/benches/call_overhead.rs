//! Adapter call overhead: fresh store + instantiate + `init` + one call, on
//! the real local component. `presign` answers "unsupported" without I/O, so
//! it measures the runtime's own cost; `stat` adds a small file read.
//!
//! `cargo bench --bench call_overhead`

use std::time::{Duration, Instant};

use wharf::config::Config;
use wharf::runtime::{ObjectRef, Runtime};

const WARMUP: usize = 200;
const SAMPLES: usize = 5_000;

fn median_and_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(samples[samples.len() / 2]), us(samples[samples.len() * 99 / 100]))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("providers.toml");
    std::fs::write(
        &config_path,
        "[host]\nsandbox_roots = [\".\"]\n[providers.local]\nplugin = \"local\"\nstorage_dir = \"store\"\n",
    )?;
    let config = Config::load(&config_path)?;
    let runtime = Runtime::new(&dir.path().join("components"), 64 << 20)?;
    let adapter = runtime.load(&config.providers["local"]).await?;

    let content = b"overhead".to_vec();
    let sha = wharf::body::to_hex(&wharf::body::digest_of(&content));
    adapter.upload(wharf::body::Body::Bytes(content.into()), "o.txt", "text/plain", &sha, None).await?;
    let target = ObjectRef { remote_id: sha, purpose: None };

    for (name, with_io) in [("presign (no I/O)", false), ("stat (reads metadata)", true)] {
        let mut samples = Vec::with_capacity(SAMPLES);
        for i in 0..WARMUP + SAMPLES {
            let started = Instant::now();
            if with_io {
                adapter.stat(&target).await?;
            } else {
                assert!(adapter.presign(&target, Duration::from_secs(60)).await.is_err());
            }
            if i >= WARMUP {
                samples.push(started.elapsed());
            }
        }
        let (median, p99) = median_and_p99(samples);
        println!("call overhead, {name}: median {median:.1} µs, p99 {p99:.1} µs over {SAMPLES} calls");
    }
    Ok(())
}

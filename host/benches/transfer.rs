//! 1 GiB through the local adapter with the release `wharf` binary, against a
//! plain fsynced copy of the same file (`dd bs=1M conv=fsync`) in the same
//! round, over a few rounds; Wharf's peak RSS; and the re-upload of the
//! unchanged file through the gateway library (the file-identity index makes
//! it a `stat`).
//!
//! `cargo bench --bench transfer` (set WHARF_BENCH_MIB to change the size).
//! The source sits in the page cache; every copy is fsynced to disk.

mod support;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Took, env_u64, in_turn, measure};

fn throughput(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

/// Rounds of upload and download, each on a fresh data directory, with
/// Wharf and `dd` taking turns at going first: the disk's speed drifts
/// within a run, and whoever goes first meets a different page cache.
const ROUNDS: usize = 5;

struct Round {
    wharf_first: bool,
    upload: Took,
    dd_up: Took,
    download: Took,
    dd_down: Took,
}

fn main() -> anyhow::Result<()> {
    let mib = env_u64("WHARF_BENCH_MIB", 1024);
    let size = mib << 20;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let work = dir.path();
    let source = work.join("big.bin");
    {
        let mut file = std::fs::File::create(&source)?;
        let block: Vec<u8> = (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        for i in 0..(size >> 20) {
            let mut block = block.clone();
            block[..8].copy_from_slice(&i.to_le_bytes());
            file.write_all(&block)?;
        }
    }
    let shell = |script: &str| {
        let mut cmd = Command::new("sh");
        cmd.current_dir(work).args(["-c", script]);
        measure(&mut cmd)
    };
    // Warm the page cache.
    shell("cat big.bin > /dev/null")?;

    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let config = format!("round{round}.toml");
        std::fs::write(
            work.join(&config),
            format!(
                "[host]\ndata_dir = \"data{round}\"\nsandbox_roots = [\".\"]\n\
                 [providers.local]\nplugin = \"local\"\nstorage_dir = \"data{round}/local\"\n"
            ),
        )?;
        let run = |args: &[&str]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
            cmd.current_dir(work).args(["--json", "--config", &config]).args(args);
            measure(&mut cmd)
        };
        run(&["plugins"])?; // compiles the component into this data directory's cache
        let dd_up = || shell("dd if=big.bin of=copy1.bin bs=1M conv=fsync status=none").map(|(took, _)| took);
        let dd_down = || shell("dd if=copy1.bin of=copy2.bin bs=1M conv=fsync status=none").map(|(took, _)| took);
        let wharf_first = round % 2 == 1;
        let ((upload, out), dd_up) = in_turn(wharf_first, || run(&["upload", "big.bin"]), dd_up)?;
        let id = serde_json::from_str::<serde_json::Value>(&out)?["id"].as_str().unwrap_or_default().to_string();
        let download = || run(&["download", &id, "-o", "back.bin"]).map(|(took, _)| took);
        let (download, dd_down) = in_turn(wharf_first, download, dd_down)?;
        anyhow::ensure!(std::fs::metadata(work.join("back.bin"))?.len() == size, "downloaded size differs");
        rounds.push(Round { wharf_first, upload, dd_up, download, dd_down });
        for copy in ["copy1.bin", "copy2.bin", "back.bin"] {
            std::fs::remove_file(work.join(copy))?;
        }
        if round + 1 < ROUNDS {
            std::fs::remove_dir_all(work.join(format!("data{round}")))?;
        }
    }
    let reupload = reupload_times(work, &format!("round{}.toml", ROUNDS - 1))?;

    println!("transfer of {mib} MiB through the local adapter (source in the page cache, copies fsynced)");
    for (i, r) in rounds.iter().enumerate() {
        let leg = |wharf: &Took, dd: &Took| {
            format!(
                "{:>4.0} MiB/s vs dd {:>4.0} ({:.2}x; CPU {:.2} s vs {:.2} s; peak RSS {} MiB)",
                throughput(size, wharf.wall),
                throughput(size, dd.wall),
                dd.wall.as_secs_f64() / wharf.wall.as_secs_f64(),
                wharf.cpu.as_secs_f64(),
                dd.cpu.as_secs_f64(),
                wharf.rss_kib / 1024
            )
        };
        let first = if r.wharf_first { "wharf" } else { "dd" };
        println!("  round {} ({first} first)", i + 1);
        println!("    upload   {}", leg(&r.upload, &r.dd_up));
        println!("    download {}", leg(&r.download, &r.dd_down));
    }
    let median = |ratio: fn(&Round) -> f64| {
        let mut ratios: Vec<f64> = rounds.iter().map(ratio).collect();
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
    };
    println!(
        "  median ratio (wharf / dd) over {ROUNDS} rounds: upload {:.2}, download {:.2}",
        median(|r| r.dd_up.wall.as_secs_f64() / r.upload.wall.as_secs_f64()),
        median(|r| r.dd_down.wall.as_secs_f64() / r.download.wall.as_secs_f64()),
    );
    println!(
        "  re-upload of the unchanged file (gateway call, already stored): first {:.2} ms, then median {:.3} ms over {} (a stat: the CLI upload hashed it)",
        reupload.0.as_secs_f64() * 1e3,
        reupload.1.as_secs_f64() * 1e3,
        REUPLOADS
    );
    Ok(())
}

const REUPLOADS: usize = 20;

/// Re-uploads of big.bin through the gateway library: the first (opening
/// the catalog's statements and the index) and the median of further ones.
/// The CLI upload hashed the file after its times had settled, so each is a
/// stat, an index lookup and a dedup hit; the wait below makes sure the
/// identity is settled even on a fast machine.
fn reupload_times(work: &std::path::Path, config: &str) -> anyhow::Result<(Duration, Duration)> {
    // An identity is remembered once the file's times are two seconds old.
    let written = std::fs::metadata(work.join("big.bin"))?.modified()?;
    if let Ok(wait) = (written + Duration::from_secs(3)).duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(wait);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut config = wharf::config::Config::load(&work.join(config))?;
        config.relative_to_first_root = true;
        let caller = wharf::gateway::Gateway::open(config).await?.host_caller();
        let options = wharf::gateway::UploadOptions::default();
        let upload = || caller.upload(wharf::gateway::Source::Path("big.bin".into()), &options);
        let started = Instant::now();
        anyhow::ensure!(upload().await?.deduplicated, "the file was uploaded before");
        let first = started.elapsed();
        let mut samples = Vec::new();
        for _ in 0..REUPLOADS {
            let started = Instant::now();
            upload().await?;
            samples.push(started.elapsed());
        }
        samples.sort();
        Ok((first, samples[REUPLOADS / 2]))
    })
}

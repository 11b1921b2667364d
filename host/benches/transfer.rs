//! 1 GiB through the local adapter with the release `wharf` binary, against a
//! plain fsynced copy of the same file (`dd bs=1M conv=fsync`) in the same
//! run, Wharf's peak RSS, and the re-upload of the unchanged file through
//! the gateway library (the file-identity index makes it a `stat`).
//!
//! `cargo bench --bench transfer` (set WHARF_BENCH_MIB to change the size).
//! The source sits in the page cache; every copy is fsynced to disk.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

fn mib() -> u64 {
    std::env::var("WHARF_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024)
}

/// Runs a command, returning its wall time and peak RSS in KiB.
fn measure(cmd: &mut Command) -> anyhow::Result<(Duration, i64, String)> {
    let started = Instant::now();
    let child = cmd.stdout(std::process::Stdio::piped()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("piped");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out)?;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `usage` is a valid out-parameter.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    anyhow::ensure!(waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{cmd:?} failed");
    Ok((started.elapsed(), usage.ru_maxrss, out))
}

fn throughput(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let size = mib() << 20;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let work = dir.path();
    std::fs::write(
        work.join("providers.toml"),
        "[host]\ndata_dir = \"data\"\nsandbox_roots = [\".\"]\n[providers.local]\nplugin = \"local\"\nstorage_dir = \"data/local\"\n",
    )?;
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
    let wharf = env!("CARGO_BIN_EXE_wharf");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(wharf);
        cmd.current_dir(work).args(["--json"]).args(args);
        measure(&mut cmd)
    };
    let shell = |script: &str| {
        let mut cmd = Command::new("sh");
        cmd.current_dir(work).args(["-c", script]);
        measure(&mut cmd)
    };
    // Warm the page cache and the compiled-component cache.
    shell("cat big.bin > /dev/null")?;
    run(&["plugins"])?;

    let (dd_up, _, _) = shell("dd if=big.bin of=copy1.bin bs=1M conv=fsync status=none")?;
    let (upload, upload_rss, out) = run(&["upload", "big.bin"])?;
    let id = serde_json::from_str::<serde_json::Value>(&out)?["id"].as_str().unwrap_or_default().to_string();
    let (dd_down, _, _) = shell("dd if=copy1.bin of=copy2.bin bs=1M conv=fsync status=none")?;
    let (download, download_rss, _) = run(&["download", &id, "-o", "back.bin"])?;
    anyhow::ensure!(std::fs::metadata(work.join("back.bin"))?.len() == size, "downloaded size differs");
    let reupload = reupload_times(work)?;

    println!("transfer of {} MiB through the local adapter (source in the page cache, copies fsynced)", mib());
    println!(
        "  wharf upload:   {:>8.0} MiB/s  ({:.2} s, peak RSS {} MiB)",
        throughput(size, upload),
        upload.as_secs_f64(),
        upload_rss / 1024
    );
    println!(
        "  wharf download: {:>8.0} MiB/s  ({:.2} s, peak RSS {} MiB)",
        throughput(size, download),
        download.as_secs_f64(),
        download_rss / 1024
    );
    println!(
        "  dd conv=fsync:  {:>8.0} MiB/s  ({:.2} s, the upload's peer)",
        throughput(size, dd_up),
        dd_up.as_secs_f64()
    );
    println!(
        "  dd conv=fsync:  {:>8.0} MiB/s  ({:.2} s, the download's peer)",
        throughput(size, dd_down),
        dd_down.as_secs_f64()
    );
    println!(
        "  ratio (wharf / dd): upload {:.2}, download {:.2}",
        dd_up.as_secs_f64() / upload.as_secs_f64(),
        dd_down.as_secs_f64() / download.as_secs_f64()
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
fn reupload_times(work: &std::path::Path) -> anyhow::Result<(Duration, Duration)> {
    // An identity is remembered once the file's times are two seconds old.
    let written = std::fs::metadata(work.join("big.bin"))?.modified()?;
    if let Ok(wait) = (written + Duration::from_secs(3)).duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(wait);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut config = wharf::config::Config::load(&work.join("providers.toml"))?;
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

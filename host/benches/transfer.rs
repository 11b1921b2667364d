//! 1 GiB through the local adapter with the release `wharf` binary, against
//! `cp` + `sha256sum` on the same file, and Wharf's peak RSS.
//!
//! `cargo bench --bench transfer` (set WHARF_BENCH_MIB to change the size).
//! Files sit in the page cache: this measures the gateway, not the disk.

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

    let (upload, upload_rss, out) = run(&["upload", "big.bin"])?;
    let id = serde_json::from_str::<serde_json::Value>(&out)?["id"].as_str().unwrap_or_default().to_string();
    let (download, download_rss, _) = run(&["download", &id, "-o", "back.bin"])?;
    let (cp_hash, _, _) = shell("sha256sum big.bin > /dev/null && cp big.bin copy1.bin")?;
    let (cp_hash_down, _, _) = shell("cp copy1.bin copy2.bin && sha256sum copy2.bin > /dev/null")?;
    anyhow::ensure!(std::fs::metadata(work.join("back.bin"))?.len() == size, "downloaded size differs");

    println!("transfer of {} MiB through the local adapter (page cache warm)", mib());
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
    println!("  sha256sum + cp: {:>8.0} MiB/s  ({:.2} s)", throughput(size, cp_hash), cp_hash.as_secs_f64());
    println!("  cp + sha256sum: {:>8.0} MiB/s  ({:.2} s)", throughput(size, cp_hash_down), cp_hash_down.as_secs_f64());
    println!(
        "  ratio (wharf / coreutils): upload {:.2}, download {:.2}",
        cp_hash.as_secs_f64() / upload.as_secs_f64(),
        cp_hash_down.as_secs_f64() / download.as_secs_f64()
    );
    Ok(())
}

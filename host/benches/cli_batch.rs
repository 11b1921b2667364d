//! Batches in the CLI (the release `wharf` binary): WHARF_BENCH_FILES
//! (default 1,000) small files of 4 KiB, uploaded once to the local provider,
//! then uploaded again (every file known: deduplicated, nothing sent) by one
//! `wharf upload` with `--jobs 1` and with `--jobs 8`, WHARF_BENCH_RUNS rounds
//! (default 3, the two alternating); median files/s of each and their ratio.
//! A round is the whole command: starting the process, opening the catalog,
//! loading the adapter, then the batch.
//!
//! `cargo bench --bench cli_batch` (or `scripts/bench --bench cli_batch`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, ensure};

const FILE_BYTES: usize = 4096;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Uploads `names` (in `files`) in one `wharf upload --jobs N`; returns the
/// seconds it took and how many results were deduplicated.
fn upload(config: &Path, files: &Path, names: &[String], jobs: usize) -> anyhow::Result<(f64, usize)> {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--config")
        .arg(config)
        .args(["--json", "upload", "--jobs", &jobs.to_string()])
        .args(names)
        .current_dir(files)
        .stderr(Stdio::inherit())
        .output()?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(output.status.success(), "wharf upload --jobs {jobs} failed");
    let results: Vec<serde_json::Value> = String::from_utf8(output.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("reading the JSON results")?;
    ensure!(results.len() == names.len(), "{} results for {} files", results.len(), names.len());
    Ok((seconds, results.iter().filter(|r| r["deduplicated"] == true).count()))
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let count = env_usize("WHARF_BENCH_FILES", 1000).max(1);
    let runs = env_usize("WHARF_BENCH_RUNS", 3).max(1);

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files)?;
    let config = dir.path().join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            r#"[host]
data_dir = "{data}"
sandbox_roots = ["{files}"]
default_provider = "local"

[providers.local]
plugin = "local"
storage_dir = "{data}/local"
"#,
            data = dir.path().join("data").display(),
            files = files.display(),
        ),
    )?;
    let names: Vec<String> = (0..count).map(|i| format!("f{i:05}.bin")).collect();
    for (i, name) in names.iter().enumerate() {
        // Different bytes in every file: each is its own upload.
        let mut content = vec![0u8; FILE_BYTES];
        content[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(files.join(name), content)?;
    }

    let (seconds, dedup) = upload(&config, &files, &names, 8)?;
    ensure!(dedup == 0, "{dedup} files were already there on the first upload");
    println!("CLI batches: {count} files of {FILE_BYTES} B to the local provider, one `wharf upload` each round");
    println!("  first upload (--jobs 8, new bytes): {:.2} s, {:.0} files/s", seconds, count as f64 / seconds);

    let mut rates = [Vec::new(), Vec::new()];
    for round in 0..runs {
        for (slot, jobs) in [(0, 1), (1, 8)] {
            let (seconds, dedup) = upload(&config, &files, &names, jobs)?;
            ensure!(dedup == count, "round {round}, --jobs {jobs}: only {dedup} of {count} deduplicated");
            rates[slot].push(count as f64 / seconds);
        }
    }
    let [one, eight] = rates.map(median);
    println!("  re-upload, all known (median of {runs}):");
    println!("    --jobs 1: {one:.0} files/s");
    println!("    --jobs 8: {eight:.0} files/s");
    println!("    ratio --jobs 8 / --jobs 1: {:.2}", eight / one);
    Ok(())
}

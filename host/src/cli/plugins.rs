//! `wharf plugins …`: listing the loaded adapters and checking a component.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::output::Output;
use wharf::config::{self, Config, ProviderConfig};
use wharf::gateway::{ConformanceReport, Gateway, StepOutcome};
use wharf::runtime::{CheckReport, Runtime};

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// List the loaded adapters, their contract version and what they can do (the default)
    Ls,
    /// Check a component: is it one, which contract it targets, its imports, `init` and its capabilities
    Check {
        /// The component file (.wasm)
        path: PathBuf,
        /// Initialise it with this provider's entry of the config file (its config table, grants and pin)
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
    },
    /// Write a new adapter crate (lib, config, core, error, README, the SDK) that builds and passes check as it is
    New {
        /// The adapter's name: lowercase letters, digits and '-'
        name: String,
        /// The folder to create it in [default: the current one]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Run the conformance suite against a configured provider (stores one small object and deletes it)
    Test {
        /// The provider's name in the config file
        name: String,
    },
}

pub fn list(gateway: &Gateway, out: &mut Output) {
    for plugin in gateway.plugins() {
        out.item(&plugin, |p| {
            let hosts = if p.allowed_hosts.is_empty() { "none".into() } else { p.allowed_hosts.join(", ") };
            format!(
                "{}  {}  download={} stat={} list={} delete={} presign={} persistent={}  hosts: {hosts}",
                p.name, p.wit_version, p.download, p.stat, p.list, p.delete, p.presign, p.persistent
            )
        });
    }
}

/// `wharf plugins check PATH [--provider NAME]`: exit code 0 when every step passed.
pub async fn check(config_file: Option<&Path>, path: &Path, provider: Option<&str>, out: &mut Output) {
    let (entry, cache_dir) = match provider {
        Some(name) => {
            let config = match Config::load(&config::locate(config_file)) {
                Ok(config) => config,
                Err(e) => return out.error(None, &e),
            };
            let Some(entry) = config.providers.get(name) else {
                let known = config.providers.keys().cloned().collect::<Vec<_>>().join(", ");
                return out
                    .usage(&format_args!("{}: no provider {name:?}; configured: {known}", config.file.display()));
            };
            (entry.clone(), config.data_dir.join("components"))
        }
        None => {
            (ProviderConfig::standalone("checked", path.to_path_buf()), std::env::temp_dir().join("wharf-components"))
        }
    };
    let runtime = match Runtime::new(&cache_dir, entry.limits.memory_bytes) {
        Ok(runtime) => runtime,
        Err(e) => return out.error(None, &format_args!("{e:#}")),
    };
    let report = runtime.check(path, &entry).await;
    let passed = report.passed;
    out.item(&report, human);
    if !passed {
        out.error(Some(&path.display().to_string()), &"refused: see the failed check above");
    }
}

fn human(report: &CheckReport) -> String {
    let mut text = format!("{}\n", report.component);
    if let Some(sha256) = &report.sha256 {
        text.push_str(&format!("  sha256        {sha256}\n"));
    }
    for finding in &report.findings {
        let mark = if finding.passed { "ok  " } else { "FAIL" };
        text.push_str(&format!("  {mark} {:<12} {}\n", finding.check, finding.detail));
    }
    text.push_str(if report.passed { "verdict: usable as an adapter" } else { "verdict: refused" });
    text
}

/// `wharf plugins test NAME`: exit code 0 when no step failed.
pub async fn test(gateway: &Gateway, name: &str, out: &mut Output) {
    match gateway.conformance(name).await {
        Ok(report) => {
            let passed = report.passed;
            out.item(&report, conformance_text);
            if !passed {
                out.error(Some(name), &"the conformance suite failed: see the FAIL lines above");
            }
        }
        Err(e) => out.error(Some(name), &e),
    }
}

fn conformance_text(report: &ConformanceReport) -> String {
    let mut text = format!("{}\n", report.provider);
    for step in &report.steps {
        let mark = match step.outcome {
            StepOutcome::Passed => "ok  ",
            StepOutcome::Failed => "FAIL",
            StepOutcome::Skipped => "skip",
        };
        text.push_str(&format!("  {mark} {:<18} {}\n", step.step, step.detail));
    }
    text.push_str(if report.passed { "conformance: passed" } else { "conformance: failed" });
    text
}

/// `wharf plugins new NAME [--dir DIR]`.
pub fn new(name: &str, dir: Option<&Path>, out: &mut Output) {
    match wharf::scaffold::new_adapter(name, dir.unwrap_or(Path::new("."))) {
        Ok(made) => out.item(&made, |m| {
            format!(
                "created {} ({})\nbuild it:  cd {} && cargo build --release --target wasm32-wasip2\ncheck it:  wharf plugins check {}",
                m.dir.display(),
                m.contract,
                m.dir.display(),
                m.component.display()
            )
        }),
        Err(e) => out.error(Some(name), &e),
    }
}

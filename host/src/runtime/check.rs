//! `wharf plugins check`: whether a component file can serve as an adapter
//! here, step by step, each with a verdict an operator can act on.

use std::path::Path;

use serde::Serialize;

use super::{ContractVersion, Runtime, contract};
use crate::config::{PluginSource, ProviderConfig};

/// One step of a check and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// Everything `check` found; `passed` when every step passed.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub component: String,
    pub sha256: Option<String>,
    pub contract: Option<ContractVersion>,
    pub findings: Vec<Finding>,
    pub passed: bool,
}

impl CheckReport {
    fn record(&mut self, check: &'static str, outcome: Result<String, String>) -> bool {
        let passed = outcome.is_ok();
        let detail = outcome.unwrap_or_else(|e| e);
        self.findings.push(Finding { check, passed, detail });
        self.passed &= passed;
        passed
    }
}

impl Runtime {
    /// Checks the component at `path`: that it is a component, which contract
    /// version it targets, that it imports nothing beyond the contract, that
    /// it matches the entry's `sha256` pin, and that `init` accepts the
    /// entry's config (an empty one for [`ProviderConfig::standalone`]), with
    /// the capabilities it declares. Stops at the first step that fails.
    pub async fn check(&self, path: &Path, entry: &ProviderConfig) -> CheckReport {
        let mut report = CheckReport {
            component: path.display().to_string(),
            sha256: None,
            contract: None,
            findings: Vec::new(),
            passed: true,
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                report.record("read", Err(format!("cannot read {}: {e}", path.display())));
                return report;
            }
        };
        let sha256 = crate::body::to_hex(&crate::body::digest_of(&bytes));
        report.sha256 = Some(sha256.clone());
        let encoding = contract::check_encoding(&bytes).map(|()| "a Wasm component".to_string());
        if !report.record("component", encoding.map_err(|e| e.to_string())) {
            return report;
        }
        let component = match self.compile(&bytes, path) {
            Ok(component) => component,
            Err(e) => {
                report.record("component", Err(format!("{e:#}")));
                return report;
            }
        };
        let version = match contract::version(&self.engine, &component) {
            Ok(version) => version,
            Err(e) => {
                report.record("contract", Err(e.to_string()));
                return report;
            }
        };
        report.contract = Some(version);
        let current = if version == ContractVersion::CURRENT { " (current)" } else { " (older; still loaded)" };
        report.record("contract", Ok(format!("{version}{current}")));
        let imports = contract::refuse_foreign_imports(&self.engine, &component, version)
            .map(|()| "only the contract's interfaces and the WASI files, clocks, random and stderr".to_string());
        if !report.record("imports", imports.map_err(|e| e.to_string())) {
            return report;
        }
        if let Some(pin) = &entry.sha256 {
            let pinned = if *pin == sha256 {
                Ok(format!("matches [providers.{}] sha256", entry.name))
            } else {
                Err(format!("the component's SHA-256 is {sha256}, but [providers.{}] sha256 pins {pin}", entry.name))
            };
            if !report.record("pin", pinned) {
                return report;
            }
        }
        let mut entry = entry.clone();
        entry.plugin = PluginSource::File(path.to_path_buf());
        entry.sha256 = None;
        match self.load(&entry).await {
            Ok(adapter) => {
                report.record("init", Ok(format!("accepted the config of [providers.{}]", entry.name)));
                report.record("capabilities", Ok(adapter.capabilities().to_string()));
            }
            Err(e) => {
                report.record("init", Err(format!("{e:#}")));
            }
        }
        report
    }
}

//! Shared set-up for the integration tests: a scratch directory holding a
//! sandbox root, a data directory and a providers.toml, and the real host
//! loading the real adapter components.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use wharf::catalog::{ObjectQuery, ObjectRecord};
use wharf::config::Config;
use wharf::gateway::{Caller, Gateway};

/// The hostile test adapter, built for wasm32-wasip2 by the host's build script.
pub fn hostile_plugin() -> PathBuf {
    test_adapter("hostile")
}

/// A test adapter of tests/adapters (`hostile`, `v0_1`, `v0_2`, `sockets`, `future`, `liar`),
/// built for wasm32-wasip2 by the host's build script.
pub fn test_adapter(name: &str) -> PathBuf {
    Path::new(env!("WHARF_BUILTIN_PLUGIN_DIR")).join(format!("wharf_test_{name}.wasm"))
}

/// The `[host]` keys `write_config` uses: the local provider for everything.
pub const LOCAL_HOST_SETTINGS: &str = "default_provider = \"local\"\ncache = \"local\"";

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("creating a scratch directory");
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Self { dir }
    }

    /// The sandbox root: the only place user paths may be.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("providers.toml")
    }

    /// Writes a providers.toml with the local provider and `extra` entries.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        self.write_config_with_host(LOCAL_HOST_SETTINGS, extra)
    }

    /// `write_config` with `host` as the `[host]` keys after `data_dir` and
    /// `sandbox_roots` (e.g. another default provider, a catalog).
    pub fn write_config_with_host(&self, host: &str, extra: &str) -> PathBuf {
        let text = format!(
            r#"[host]
data_dir = "{data}"
sandbox_roots = ["{work}"]
{host}

[providers.local]
plugin = "local"
storage_dir = "{data}/local"
{extra}
"#,
            data = self.data().display(),
            work = self.work().display(),
        );
        std::fs::write(self.config_path(), text).unwrap();
        self.config_path()
    }

    /// The gateway over the config with `extra` entries, acting for the host's principal.
    pub async fn gateway(&self, extra: &str) -> Caller {
        self.open_gateway(extra).await.host_caller()
    }

    /// The gateway over the config with `extra` entries, for callers of one's choosing.
    pub async fn open_gateway(&self, extra: &str) -> Arc<Gateway> {
        let config = Config::load(&self.write_config(extra)).expect("test config is valid");
        Gateway::open(config).await.expect("gateway opens")
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.work().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// The `wharf` binary run on the scratch config, in its work directory.
pub fn wharf(scratch: &Scratch, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("--config")
        .arg(scratch.config_path())
        .args(args)
        .current_dir(scratch.work())
        .output()
        .expect("running wharf")
}

/// Deterministic non-trivial content of a given size.
pub fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    wharf::body::to_hex(&wharf::body::digest_of(bytes))
}

/// Every record the gateway's principal sees (at `provider`, if given), newest first.
pub async fn records(gateway: &Caller, provider: Option<&str>) -> Vec<ObjectRecord> {
    let query = ObjectQuery { provider: provider.map(str::to_string), ..ObjectQuery::default() };
    gateway.list(query).await.expect("listing records").files
}

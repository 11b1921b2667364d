//! Hot reload under `wharf serve`: when providers.toml or a component file
//! changes (seen by polling their size and modification time) or on SIGHUP,
//! every adapter is loaded and initialised beside the running ones and the
//! whole set is swapped in at once. Calls in flight keep the adapter they
//! took. A broken new version is refused with a log line naming why, and the
//! old adapters keep serving.
//!
//! What reloads: each provider's adapter (component, pin, config table,
//! hosts, secrets, limits, retries). The `[host]` settings, the providers'
//! upload `validation` rules and the set of providers stay as they were at
//! start: changing those needs a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{Gateway, load_adapters};
use crate::config::{Config, ConfigError};

/// How often the watched files are looked at.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// Providers whose component or `config` table changed.
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{file}: the providers changed ({now}; running: {running}); adding or removing a provider needs a restart")]
    ProvidersChanged { file: String, now: String, running: String },
    #[error("{0:#}")]
    Load(anyhow::Error),
}

/// What a watched file looked like: its size and modification time.
type Stamp = Option<(u64, SystemTime)>;

fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

impl Gateway {
    /// Reads providers.toml again and loads every adapter it names beside the
    /// running ones; swaps them all in when every one loaded and initialised.
    pub async fn reload_adapters(&self) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let config = Config::load(&self.config.file)?;
        let running = self.adapters.load_full();
        if !config.providers.keys().eq(running.keys()) {
            let names = |names: Vec<&String>| names.into_iter().cloned().collect::<Vec<_>>().join(", ");
            return Err(ReloadError::ProvidersChanged {
                file: self.config.file.display().to_string(),
                now: names(config.providers.keys().collect()),
                running: names(running.keys().collect()),
            });
        }
        let mut check = config;
        check.cache_provider = self.config.cache_provider.clone();
        let fresh = load_adapters(&self.runtime, &check).await.map_err(ReloadError::Load)?;
        let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
        for (name, adapter) in &fresh {
            let old = &running[name];
            let same = old.sha256() == adapter.sha256() && old.config_json() == adapter.config_json();
            if same { &mut unchanged } else { &mut changed }.push(name.clone());
        }
        self.adapters.store(Arc::new(fresh));
        Ok(Reloaded { changed, unchanged })
    }

    /// The files whose change triggers a reload: providers.toml and every
    /// adapter's component.
    fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config.file.clone()];
        files.extend(self.adapters.load().values().map(|a| a.plugin_path().to_path_buf()));
        files
    }

    /// Reloads on SIGHUP and when a watched file changes, until `shutdown`.
    /// The signal handler and the files' first stamps are taken before this
    /// returns, so that a change or a SIGHUP right after start is not missed
    /// (and SIGHUP no longer ends the process).
    pub fn watch_for_changes(self: &Arc<Self>, shutdown: CancellationToken) {
        use tokio::signal::unix::{SignalKind, signal};
        let stamps = |files: &[PathBuf]| files.iter().map(stamp).collect::<Vec<_>>();
        let mut files = self.watched_files();
        let mut seen = stamps(&files);
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(e) => {
                tracing::warn!("hot reload: cannot listen for SIGHUP ({e}); watching files only");
                None
            }
        };
        let gateway = self.clone();
        tokio::spawn(async move {
            loop {
                let hangup_received = async {
                    match hangup.as_mut() {
                        Some(hangup) => hangup.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let trigger = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = hangup_received => "SIGHUP",
                    _ = tokio::time::sleep(POLL_INTERVAL) => {
                        if stamps(&files) == seen { continue; }
                        "a changed file"
                    }
                };
                match gateway.reload_adapters().await {
                    Ok(done) if done.changed.is_empty() => tracing::info!("reload on {trigger}: nothing changed"),
                    Ok(done) => tracing::info!("reload on {trigger}: swapped in {}", done.changed.join(", ")),
                    Err(e) => tracing::error!("reload on {trigger} refused, the running adapters keep serving: {e}"),
                }
                files = gateway.watched_files();
                seen = stamps(&files);
            }
        });
    }
}

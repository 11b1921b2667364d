//! Commands and their output. With `--json`, stdout carries one JSON object
//! per result per line; errors go to stderr, and the exit code is 1 if any
//! item failed (2 for usage errors, from clap).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use wharf::catalog::ObjectQuery;
use wharf::config::{self, Config};
use wharf::gateway::{Gateway, Source, UploadOptions};

#[derive(Parser)]
#[command(
    name = "wharf",
    version,
    about = "A safe, fast file gateway for AI tools: upload once, get the exact bytes back"
)]
pub struct Cli {
    /// The config file [default: $WHARF_CONFIG, else ./providers.toml]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Print one JSON object per result per line
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upload files (or `-` for standard input); the same bytes are sent once per provider and purpose
    Upload {
        #[arg(required = true, value_name = "PATH|-")]
        paths: Vec<PathBuf>,
        /// Provider to upload to [default: [host] default_provider]
        #[arg(long)]
        provider: Option<String>,
        /// What the provider should use the file for (e.g. file-extract)
        #[arg(long)]
        purpose: Option<String>,
        /// Name to record instead of the file's own (one file only)
        #[arg(long)]
        name: Option<String>,
    },
    /// Download files by id (wf_…) or sha256:<hex>, verified against their SHA-256
    Download {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// Destination file, or directory to download into [default: working directory]
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Take the copy held by this provider
        #[arg(long, conflicts_with = "derived")]
        provider: Option<String>,
        /// Fetch the provider's derived content (e.g. Kimi's extracted text) instead of the original bytes, into a separate file
        #[arg(long)]
        derived: bool,
    },
    /// Show what Wharf and the provider know about a file
    Info { id: String },
    /// List recorded files, newest first
    Ls {
        #[arg(long)]
        provider: Option<String>,
        /// Ask the provider what it holds instead of reading Wharf's records
        #[arg(long)]
        remote: bool,
    },
    /// Delete files at their provider and forget them
    Rm {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// List the loaded adapters and what they can do
    Plugins,
    /// Serve the Model Context Protocol over standard input and output
    Mcp,
    /// Serve HTTP: download links, the file API, health and metrics (see docs/http-api.md)
    Serve {
        /// Address to listen on [default: [server] listen, else 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Manage the API tokens `wharf serve` accepts
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token; it is printed once and only its SHA-256 is kept
    Create {
        /// Who the token acts for
        #[arg(long)]
        principal: String,
        /// The token sees every principal's files
        #[arg(long)]
        admin: bool,
        /// Expire after this many days [default: never]
        #[arg(long, value_name = "DAYS")]
        expires: Option<u32>,
    },
    /// List tokens (never their secret part)
    Ls,
    /// Revoke a token by its id (tok_…)
    Revoke {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

/// Prints results and errors in the chosen format, remembering failures.
struct Output {
    json: bool,
    failed: bool,
}

impl Output {
    fn item<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        if self.json {
            println!("{}", serde_json::to_string(value).expect("results serialize"));
        } else {
            println!("{}", human(value));
        }
    }

    fn error(&mut self, input: Option<&str>, err: &dyn std::fmt::Display) {
        self.failed = true;
        if self.json {
            let line = serde_json::json!({ "input": input, "error": err.to_string() });
            eprintln!("{line}");
        } else {
            match input {
                Some(input) => eprintln!("error: {input}: {err}"),
                None => eprintln!("error: {err}"),
            }
        }
    }

    fn exit_code(&self) -> ExitCode {
        if self.failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

pub async fn run(cli: Cli) -> ExitCode {
    let mut out = Output { json: cli.json, failed: false };
    let config_path = config::locate(cli.config.as_deref());
    let config = match Config::load(&config_path) {
        Ok(config) => config,
        Err(e) => {
            out.error(None, &e);
            return out.exit_code();
        }
    };
    if let Command::Serve { listen } = cli.command {
        if let Err(e) = wharf::http::serve(config, listen).await {
            out.error(None, &format_args!("{e:#}"));
        }
        return out.exit_code();
    }
    let gateway = match Gateway::open(config).await {
        Ok(gateway) => gateway,
        Err(e) => {
            out.error(None, &format_args!("{e:#}"));
            return out.exit_code();
        }
    };
    let caller = gateway.host_caller();
    match cli.command {
        Command::Upload { paths, provider, purpose, name } => {
            if name.is_some() && paths.len() > 1 {
                out.error(None, &"--name applies to one file; upload the files one at a time to name each");
                return ExitCode::from(2);
            }
            let options = UploadOptions { provider, purpose, name, ..UploadOptions::default() };
            for path in paths {
                let input = path.display().to_string();
                let source = if input == "-" { Source::Stdin } else { Source::Path(path) };
                match caller.upload(source, &options).await {
                    Ok(up) => out.item(&up, |u| {
                        let dedup = if u.deduplicated { "  (already there)" } else { "" };
                        format!(
                            "{}  {}  {}  sha256:{}  {}{dedup}",
                            u.id,
                            u.provider,
                            human_size(u.size),
                            u.sha256,
                            u.name
                        )
                    }),
                    Err(e) => out.error(Some(&input), &e),
                }
            }
        }
        Command::Download { ids, output, provider, derived } => {
            for id in ids {
                let result = if derived {
                    caller.download_derived(&id, output.as_deref()).await
                } else {
                    caller.download(&id, output.as_deref(), provider.as_deref()).await
                };
                match result {
                    Ok(down) => out.item(&down, |d| {
                        let check = match (d.kind, d.verified) {
                            ("derived", _) => "derived content, not the original".to_string(),
                            (_, true) => format!("sha256:{} verified", d.sha256),
                            (_, false) => format!("sha256:{} not verified", d.sha256),
                        };
                        format!("{}  {}  {}  {check}, from {}", d.id, d.path.display(), human_size(d.size), d.source)
                    }),
                    Err(e) => out.error(Some(&id), &e),
                }
            }
        }
        Command::Info { id } => match caller.info(&id).await {
            Ok(info) => out.item(&info, |i| {
                let mut text = serde_json::to_string_pretty(i).expect("info serializes");
                text.insert_str(0, &format!("{}\n", i.object.name));
                text
            }),
            Err(e) => out.error(Some(&id), &e),
        },
        Command::Ls { provider, remote } => {
            if remote {
                match caller.list_remote(provider.as_deref()).await {
                    Ok(items) => {
                        for item in &items {
                            out.item(item, |i| {
                                let size = i.size.map_or_else(|| "?".into(), human_size);
                                format!("{}  {size}  {}", i.remote_id, i.name.as_deref().unwrap_or(""))
                            });
                        }
                    }
                    Err(e) => out.error(provider.as_deref(), &e),
                }
            } else {
                let query = ObjectQuery { provider: provider.clone(), ..ObjectQuery::default() };
                match caller.list(query).await {
                    Ok(page) => {
                        for object in &page.files {
                            out.item(object, |o| {
                                let gone = if o.state == wharf::catalog::CopyState::Gone { "  (gone)" } else { "" };
                                format!("{}  {}  {}  {}{gone}", o.id, o.provider, human_size(o.size), o.name)
                            });
                        }
                    }
                    Err(e) => out.error(provider.as_deref(), &e),
                }
            }
        }
        Command::Rm { ids } => {
            for id in ids {
                match caller.remove(&id, false).await {
                    Ok(removed) => out.item(&removed, |o| format!("removed {} ({} at {})", o.id, o.name, o.provider)),
                    Err(e) => out.error(Some(&id), &e),
                }
            }
        }
        Command::Plugins => {
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
        Command::Mcp => {
            if let Err(e) = wharf::mcp::serve_stdio(gateway.clone()).await {
                out.error(None, &format_args!("{e:#}"));
            }
        }
        Command::Token { command } => run_token(&gateway, command, &mut out).await,
        Command::Serve { .. } => unreachable!("served above"),
    }
    out.exit_code()
}

async fn run_token(gateway: &Gateway, command: TokenCommand, out: &mut Output) {
    match command {
        TokenCommand::Create { principal, admin, expires } => {
            match gateway.create_token(&principal, admin, expires).await {
                Ok(created) => out.item(&created, |t| {
                    let expiry =
                        t.expires_at.map_or_else(|| "never expires".to_string(), |at| format!("expires at {at}"));
                    let role = if t.admin { ", admin" } else { "" };
                    format!(
                        "{}\n(principal {}{role}, id {}, {expiry}; shown once: only its SHA-256 is kept)",
                        t.token, t.principal, t.id
                    )
                }),
                Err(e) => out.error(Some(&principal), &e),
            }
        }
        TokenCommand::Ls => match gateway.tokens().await {
            Ok(tokens) => {
                for token in &tokens {
                    out.item(token, |t| {
                        let state = match (t.revoked_at, t.expires_at) {
                            (Some(_), _) => "revoked".to_string(),
                            (None, Some(at)) => format!("expires {at}"),
                            (None, None) => "no expiry".to_string(),
                        };
                        let role = if t.admin { "admin" } else { "user" };
                        format!("{}  {}  {role}  created {}  {state}", t.id, t.principal, t.created_at)
                    });
                }
            }
            Err(e) => out.error(None, &e),
        },
        TokenCommand::Revoke { ids } => {
            for id in ids {
                match gateway.revoke_token(&id).await {
                    Ok(()) => out.item(&serde_json::json!({ "id": id, "revoked": true }), |_| format!("revoked {id}")),
                    Err(e) => out.error(Some(&id), &e),
                }
            }
        }
    }
}

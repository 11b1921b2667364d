//! Commands and their output. With `--json`, stdout carries one JSON object
//! per result per line; errors go to stderr. The exit code is 0, 1 if any
//! item failed, 2 for usage errors, 130 when Ctrl-C stopped a transfer batch.
//!
//! A command is a variant of [`Command`] and an arm of [`run_command`],
//! which calls the gateway and prints through [`Output`].

mod files;
mod output;
mod plugins;
mod transfer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use output::Output;
use plugins::PluginsCommand;
use transfer::{DownloadArgs, UploadArgs};
use wharf::config::{self, Config};
use wharf::gateway::Gateway;

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
    /// Upload files (or `-` for standard input), a few at a time; the same bytes are sent once per provider and purpose
    Upload(UploadArgs),
    /// Download files by id (wf_…) or sha256:<hex>, a few at a time, verified against their SHA-256
    Download(DownloadArgs),
    /// Show what Wharf and the provider know about a file
    Info { id: String },
    /// List recorded files, newest first, optionally filtered
    Ls(files::LsArgs),
    /// Add (+TAG) and remove (-TAG) tags
    Tag(files::TagArgs),
    /// Change a file's name, description or key-value pairs
    Edit(files::EditArgs),
    /// Record objects already at a provider, without uploading them
    Register(files::RegisterArgs),
    /// Delete files at their provider and forget them
    Rm(files::RmArgs),
    /// Files and bytes per provider, uploads, dedup savings, downloads by source, failures
    Stats(files::StatsArgs),
    /// Apply the retention rules of [retention]: expired links, old history, gone copies, old downloads, cache size
    Gc(files::GcArgs),
    /// Check the catalog against what the providers hold and the spool: records without objects, objects without records, damaged copies (--verify), stale spool files
    Fsck(files::FsckArgs),
    /// List the loaded adapters and what they can do; check a component
    Plugins {
        #[command(subcommand)]
        command: Option<PluginsCommand>,
    },
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

pub async fn run(cli: Cli) -> ExitCode {
    let mut out = Output::new(cli.json);
    if let Command::Plugins { command: Some(PluginsCommand::Check { path, provider }) } = &cli.command {
        plugins::check(cli.config.as_deref(), path, provider.as_deref(), &mut out).await;
        return out.exit_code();
    }
    if let Command::Plugins { command: Some(PluginsCommand::New { name, dir }) } = &cli.command {
        plugins::new(name, dir.as_deref(), &mut out);
        return out.exit_code();
    }
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
    run_command(&gateway, cli.command, &mut out).await;
    out.exit_code()
}

/// Runs one command on the open gateway.
async fn run_command(gateway: &Arc<Gateway>, command: Command, out: &mut Output) {
    let caller = gateway.host_caller();
    match command {
        Command::Upload(args) => transfer::upload(&caller, args, out).await,
        Command::Download(args) => transfer::download(&caller, args, out).await,
        Command::Info { id } => match caller.info(&id).await {
            Ok(info) => out.item(&info, |i| {
                let mut text = serde_json::to_string_pretty(i).expect("info serializes");
                text.insert_str(0, &format!("{}\n", i.object.name));
                text
            }),
            Err(e) => out.error(Some(&id), &e),
        },
        Command::Ls(args) => files::list(&caller, args, out).await,
        Command::Tag(args) => files::tag(&caller, args, out).await,
        Command::Edit(args) => files::edit(&caller, args, out).await,
        Command::Register(args) => files::register(&caller, args, out).await,
        Command::Rm(args) => files::remove(&caller, args, out).await,
        Command::Stats(args) => files::stats(&caller, args, out).await,
        Command::Gc(args) => files::gc(gateway, args, out).await,
        Command::Fsck(args) => files::fsck(gateway, args, out).await,
        Command::Plugins { command: None | Some(PluginsCommand::Ls) } => plugins::list(gateway, out),
        Command::Plugins { command: Some(PluginsCommand::Test { name }) } => plugins::test(gateway, &name, out).await,
        Command::Plugins { command: Some(PluginsCommand::Check { .. } | PluginsCommand::New { .. }) } => {
            unreachable!("run before the gateway opens")
        }
        Command::Mcp => {
            if let Err(e) = wharf::mcp::serve_stdio(gateway.clone()).await {
                out.error(None, &format_args!("{e:#}"));
            }
        }
        Command::Token { command } => run_token(gateway, command, out).await,
        Command::Serve { .. } => unreachable!("served before the gateway opens"),
    }
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
                    if out.closed() {
                        break;
                    }
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

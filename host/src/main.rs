//! `wharf`: the command-line front of the gateway.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WHARF_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("starting tokio");
    let code = runtime.block_on(cli::run(args));
    // What is still running now was abandoned, like the copying thread of a
    // download stopped by Ctrl-C (its temporary file already removed):
    // nothing to wait for.
    runtime.shutdown_background();
    code
}

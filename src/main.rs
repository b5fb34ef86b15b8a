//! The `rangeserve` command: parse the command line, set up logging, serve.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rangeserve::cli::Cli;
use rangeserve::Server;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if cli.quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("RANGESERVE_LOG")
                .unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async {
        let server = match Server::bind(cli.config()).await {
            Ok(s) => s,
            Err(e) => return fail(&e.to_string()),
        };
        // The contract for anyone spawning us: this is stdout's first line,
        // flushed before the first connection is accepted.
        let mut out = std::io::stdout().lock();
        if writeln!(out, "listening on {}", server.url())
            .and_then(|()| out.flush())
            .is_err()
        {
            return fail("cannot write to stdout");
        }
        drop(out);
        server.run(shutdown_signal(), Duration::from_secs(10)).await;
        ExitCode::SUCCESS
    })
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("rangeserve: error: {msg}");
    ExitCode::FAILURE
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

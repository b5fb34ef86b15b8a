//! The `rangeserve` command: parse the command line, set up logging, serve
//! (or hand `rangeserve probe ...` to [`rangeserve::probe::cli`]).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rangeserve::cli::Cli;
use rangeserve::config::LogFormat;
use rangeserve::Server;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // `rangeserve probe URL` diagnoses another server; a directory named
    // `probe` is served as `rangeserve ./probe`
    if std::env::args_os().nth(1).is_some_and(|a| a == "probe") {
        return ExitCode::from(rangeserve::probe::cli::main(std::env::args_os().skip(1)));
    }
    let cli = Cli::parse();
    if cli.list_quirks {
        print!("{}", rangeserve::quirks::catalogue::text());
        return ExitCode::SUCCESS;
    }
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rangeserve: error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(url) = &cli.healthcheck {
        return match rangeserve::healthcheck::check(url, Duration::from_secs(5)) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("healthcheck {url}: {e}")),
        };
    }
    // object_store logs each retry at info: the answer (or the start-up
    // error) says what matters, so its lines show from warn up
    let default_level = if cli.quiet {
        "warn"
    } else {
        "info,object_store=warn"
    };
    let filter =
        EnvFilter::try_from_env("RANGESERVE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
        // one object per line: timestamp, level, target, message and the
        // event's fields at the top level (README: "Access log")
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
    }
    // Blocking-pool threads (opens, cold reads): by default one per CPU this
    // process may run on. More only add context switches when the page cache
    // holds the tree (measured: 2.2x the requests per CPU-second of tokio's
    // default 512 on one CPU); more help a cold, slow disk (--io-threads).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // One serving thread: tokio's current-thread scheduler, which pays for
    // no cross-thread queues or wakeups (measured on one CPU: 3-6 % more
    // requests per CPU-second for small GETs and 304s than one worker of
    // the multi-thread scheduler).
    let threads = cli.threads.map_or(cpus, |n| n.get());
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = cli.threads {
                b.worker_threads(n.get());
            }
            b
        }
    };
    let runtime = match builder
        .enable_all()
        .max_blocking_threads(cli.io_threads.unwrap_or(cpus).max(1))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async {
        let server = match Server::bind(config).await {
            Ok(s) => s,
            // unusable certificate material, or a store that cannot be
            // reached: a usage error, like a bad option
            Err(e @ (rangeserve::StartError::Tls(_) | rangeserve::StartError::Store { .. })) => {
                eprintln!("rangeserve: error: {e}");
                return ExitCode::from(2);
            }
            Err(e) => return fail(&e.to_string()),
        };
        if let Some(fp) = server.tls_fingerprint() {
            eprintln!("rangeserve: TLS certificate SHA-256 fingerprint {fp}");
        }
        if let Some(reloader) = server.tls_reloader() {
            if let Err(e) = reload_on_sighup(reloader) {
                return fail(&format!("cannot install signal handlers: {e}"));
            }
        }
        // Signal handlers go in before anyone is told we are ready, so a
        // SIGTERM sent right after the first line still shuts down cleanly.
        let shutdown = match shutdown_signal() {
            Ok(f) => f,
            Err(e) => return fail(&format!("cannot install signal handlers: {e}")),
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
        // On a worker thread, not this one: connections are spawned where
        // they are accepted, with no cross-thread wake-up per connection.
        match tokio::spawn(server.run(shutdown)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("server stopped: {e}")),
        }
    })
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("rangeserve: error: {msg}");
    ExitCode::FAILURE
}

/// Reload the certificate files on every SIGHUP; a bad file keeps the
/// current certificate (and says why).
fn reload_on_sighup(reloader: rangeserve::server::TlsReloader) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let r = reloader.clone();
            match tokio::task::spawn_blocking(move || r.reload()).await {
                Ok(Ok(fp)) => tracing::warn!(fingerprint = %fp, "TLS certificate reloaded"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "TLS reload failed; keeping the current certificate")
                }
                Err(_) => {}
            }
        }
    });
    Ok(())
}

/// A future that completes on SIGINT or SIGTERM; the handlers are installed now.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down; a second signal stops at once");
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("rangeserve: second signal, exiting now");
            std::process::exit(130);
        });
    })
}

//! The `socklab` binary: parses the command line, starts the server, prints the URL.

use anyhow::Context as _;
use clap::Parser as _;
use socklab_server::config::{Args, Config};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Logs go to standard error; standard output carries the URL alone.
        .with_writer(std::io::stderr)
        .init();

    if args.no_token && !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "--no-token is only allowed when listening on loopback; {} would let anyone who reaches it open sockets on this machine",
            args.listen
        );
    }
    socklab_server::slots::raise_file_limit();
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let mut config = Config::from(&args);
    if !args.no_token && config.token.is_none() {
        config.token = Some(format!("{:032x}", rand::random::<u128>()));
    }
    if config.record
        && let Some(dir) = &config.data_dir
    {
        // Every session records from its start: a store that cannot be used should
        // stop the server now, not fail each session quietly.
        socklab_server::store::Store::open(dir)
            .map_err(anyhow::Error::msg)
            .context("--record needs a usable store (choose another with --data)")?;
    }
    if let Some(dir) = &config.data_dir {
        tracing::info!(dir = %dir.display(), record = config.record, "recordings are kept here");
    }
    if config.web_dir.is_none() {
        tracing::warn!("no --web-dir given: the page will explain how to build the web app");
    }
    tracing::info!(%local, "socklab listening");
    let shutdown = shutdown_signal()?;
    let query = config
        .token
        .as_ref()
        .map(|t| format!("?token={t}"))
        .unwrap_or_default();
    if !local.ip().is_loopback() {
        tracing::warn!(%local, "listening beyond loopback: anyone with the token can open sockets on this machine");
    }
    println!("socklab is running: open http://{local}/{query} in a browser (Ctrl-C stops it)");

    socklab_server::run(listener, config, shutdown)
        .await
        .context("server failed")?;
    tracing::info!("socklab stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed before it returns, so a
/// signal that comes right after the URL is printed is not missed.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        let terminate = terminate.recv();
        #[cfg(not(unix))]
        let terminate = std::future::pending::<Option<()>>();
        tokio::select! {
            result = ctrl_c => match result {
                Ok(()) => tracing::info!("Ctrl-C: shutting down"),
                Err(e) => tracing::error!(error = %e, "cannot listen for Ctrl-C; shutting down"),
            },
            _ = terminate => tracing::info!("SIGTERM: shutting down"),
        }
    })
}

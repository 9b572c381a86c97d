//! `herald run`: bind the configured address, start the daemon, stop on SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Site;

pub async fn run(site: Arc<Site>) -> anyhow::Result<ExitCode> {
    let bind = site.config.http.bind.clone();
    let listener = TcpListener::bind(&bind).await.with_context(|| {
        format!("cannot listen on {bind} (set [http] bind or HERALD_HTTP_BIND)")
    })?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    crate::daemon::run(site, listener, crate::config::Secrets::from_env(), shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `token` on the first SIGTERM or Ctrl-C.
pub async fn stop_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}

//! The supervisor: a daemon task that panics or ends early is logged and started again
//! after a backoff, so no work stops silently.

use super::*;

/// The first wait before a task that panicked is started again; it doubles up to
/// [`MAX_BACKOFF`] while the task keeps failing.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A task that ran this long before failing starts again after [`FIRST_BACKOFF`].
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Runs the task `make` starts until it ends or `shutdown` fires. A task that panics, or
/// ends while herald is not shutting down, is logged (`herald_task_restarts_total`) and
/// started again after a backoff: 1 s, doubling to 60 s while it keeps failing, 1 s again
/// after a minute of good running.
pub async fn supervise<F, Fut>(name: &'static str, shutdown: CancellationToken, mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut delay = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let why = match tokio::spawn(make()).await {
            Ok(()) if shutdown.is_cancelled() => return,
            Ok(()) => "stopped".to_string(),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                format!("panicked ({})", crate::text::escaped(&message))
            }
            Err(_) => return, // cancelled: the runtime is going away
        };
        if shutdown.is_cancelled() {
            return;
        }
        if started.elapsed() >= HEALTHY_RUN {
            delay = FIRST_BACKOFF;
        }
        metrics::counter!("herald_task_restarts_total", "task" => name).increment(1);
        tracing::error!(
            "{name} {why}; starting it again in {} s",
            delay.as_secs_f64()
        );
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

//! The rebuild loop: rebuilds on file events (debounced), on due dates and on the rescan,
//! publishes each build to the HTTP handlers, and logs problems once.

use super::*;

/// Quiet time after a file event before rebuilding (editors write in bursts).
const DEBOUNCE: Duration = Duration::from_millis(150);
/// The longest a build waits to go live at its `Last-Modified` (longer means a clock that
/// went back, or another instance's clock ahead: the header is then shown as now).
const MAX_LIVE_WAIT: Duration = Duration::from_secs(2);

/// What has been logged about each file's problems, so a problem is logged when it appears
/// or changes, and once more when it is fixed, never again on every rebuild.
#[derive(Debug, Default)]
pub struct ProblemLog {
    logged: BTreeMap<PathBuf, Vec<String>>,
}

impl ProblemLog {
    /// Knows `problems` as already logged.
    pub fn seeded(problems: &[Problem]) -> ProblemLog {
        let mut log = ProblemLog::default();
        log.update(problems);
        log
    }

    /// Takes the problems of a new build; returns the lines to log now: new or changed
    /// problems, and files whose problems are gone (`None`).
    pub fn update(&mut self, problems: &[Problem]) -> (Vec<String>, Vec<PathBuf>) {
        let mut now: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for p in problems {
            now.entry(p.path.clone()).or_default().push(p.to_string());
        }
        let mut fresh = Vec::new();
        for (path, lines) in &now {
            let before = self.logged.get(path);
            for line in lines {
                if !before.is_some_and(|b| b.contains(line)) {
                    fresh.push(line.clone());
                }
            }
        }
        let fixed = self
            .logged
            .keys()
            .filter(|p| !now.contains_key(*p))
            .cloned()
            .collect();
        self.logged = now;
        (fresh, fixed)
    }

    /// Logs what changed since the last build.
    fn log(&mut self, problems: &[Problem]) {
        let (fresh, fixed) = self.update(problems);
        for line in fresh {
            tracing::warn!("{line}");
        }
        for path in fixed {
            tracing::info!("{}: fixed, no problem any more", shown(&path));
        }
    }
}

pub(super) fn report(build: &Build) {
    for p in &build.problems {
        tracing::warn!("{p}");
    }
    if let Some(reason) = &build.held {
        tracing::warn!("{reason}");
        return;
    }
    tracing::info!(
        "built: {} articles published, {} feed files ({} changed, {} removed){}",
        build.published,
        build.feeds.len(),
        build.changed.len(),
        build.removed.len(),
        build
            .next_due
            .map(|d| format!(", next scheduled article due {}", crate::time::rfc3339(d)))
            .unwrap_or_default()
    );
}

/// Rebuilds whenever something may have changed, until shutdown.
pub(super) async fn builder(
    mut publisher: Publisher,
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>>,
    watch: Arc<Mutex<ArticleWatch>>,
    tx: watch::Sender<Arc<Build>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    rescan: Duration,
) {
    let hub = publisher
        .site()
        .config
        .feeds
        .websub_hub
        .as_ref()
        .map(|u| u.0.to_string());
    // Held for this task's life; a panic releases it for the next one.
    let mut events = events.lock().await;
    let (mut problems, mut held) = {
        let current = tx.borrow();
        (ProblemLog::seeded(&current.problems), current.held.clone())
    };

    loop {
        let next_due = tx.borrow().next_due;
        let until_due = next_due
            .map(|d| (d - Utc::now()).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(5))
            .unwrap_or(rescan)
            .min(rescan);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = events.recv() => {
                if got.is_none() { return; }
                // Debounce: wait for a quiet moment, draining further events.
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        more = tokio::time::timeout(DEBOUNCE, events.recv()) => match more {
                            Ok(Some(())) => continue,
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
            }
            _ = tokio::time::sleep(until_due) => {}
        }
        watch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .refresh();
        let started = Instant::now();
        match publisher.build(Utc::now()).await {
            Ok(build) => {
                metrics::histogram!("herald_feed_build_seconds")
                    .record(started.elapsed().as_secs_f64());
                problems.log(&build.problems);
                if build.held != held {
                    match &build.held {
                        Some(reason) => tracing::warn!("{reason}"),
                        None => tracing::info!("articles are readable again: publishing"),
                    }
                    held = build.held.clone();
                }
                if build.held.is_some() {
                    // Keep serving the previous build.
                    continue;
                }
                if build.reread > 0 || !build.changed.is_empty() || !build.removed.is_empty() {
                    tracing::info!(
                        "rebuilt in {} ms: {} files re-read, {} feed files changed, {} removed",
                        started.elapsed().as_millis(),
                        build.reread,
                        build.changed.len(),
                        build.removed.len()
                    );
                }
                let changed: Vec<String> = build
                    .changed
                    .iter()
                    .map(|rel| {
                        crate::links::feed_url(&publisher.site().config.site.base_url.0, rel)
                    })
                    .collect();
                // A second change within one second goes live when its second begins.
                if let Ok(wait) = (build.live_from - Utc::now()).to_std()
                    && wait <= MAX_LIVE_WAIT
                {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                // Publish first, ping after: the hub fetches what we now serve.
                tx.send_replace(Arc::new(build));
                if let Some(hub) = &hub
                    && !changed.is_empty()
                {
                    tracker.spawn(crate::websub::ping_all(
                        hub.clone(),
                        changed,
                        shutdown.clone(),
                    ));
                }
            }
            Err(e) => tracing::error!("rebuild failed, still serving the previous feeds: {e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(path: &str, message: &str) -> Problem {
        Problem {
            path: PathBuf::from(path),
            line: 1,
            message: message.into(),
        }
    }

    #[test]
    fn a_problem_is_logged_when_it_appears_changes_and_is_fixed() {
        let mut log = ProblemLog::default();
        let bad = [problem("articles/a.md", "broken")];
        assert_eq!(
            log.update(&bad),
            (vec!["articles/a.md:1: broken".to_string()], vec![])
        );
        assert_eq!(log.update(&bad), (vec![], vec![]));
        assert_eq!(log.update(&bad), (vec![], vec![]));
        let worse = [problem("articles/a.md", "broken differently")];
        assert_eq!(
            log.update(&worse),
            (
                vec!["articles/a.md:1: broken differently".to_string()],
                vec![]
            )
        );
        assert_eq!(
            log.update(&[]),
            (vec![], vec![PathBuf::from("articles/a.md")])
        );
        assert_eq!(log.update(&[]), (vec![], vec![]));
    }
}

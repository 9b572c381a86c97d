//! The article watcher: which file events mean an article may have changed, and a watch on
//! `articles/` that follows the folder when it is removed, renamed or swapped.

use super::*;

/// Whether a file event can mean an article changed: a create, modify, remove or rename.
/// Opening, reading and closing files (the build's own reads among them) cannot.
pub(super) fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        // `Other` and `Any` include "events were lost: rescan".
        EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Other
        | EventKind::Any => true,
    }
}

/// A recursive watch on `articles/`, plus a watch on the publication folder itself so a
/// folder that is removed, renamed away or swapped for another is watched again when it is
/// back. Without a watcher (a platform that cannot watch) the periodic rescan still finds
/// changes.
pub(super) struct ArticleWatch {
    watcher: Option<notify::RecommendedWatcher>,
    articles: PathBuf,
    /// The identity of the folder the recursive watch is on, if any.
    watching: Option<FolderId>,
    rescan: Duration,
    /// Without watching, the event channel's sender, kept so the channel stays open.
    _quiet: Option<mpsc::UnboundedSender<()>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FolderId(PathBuf, Option<(u64, u64)>);

impl FolderId {
    fn of(path: &Path) -> Option<FolderId> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return None;
        }
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            Some((meta.dev(), meta.ino()))
        };
        #[cfg(not(unix))]
        let inode = None;
        Some(FolderId(path.canonicalize().ok()?, inode))
    }
}

impl ArticleWatch {
    pub(super) fn start(
        site_dir: &Path,
        articles: &Path,
        options: &Options,
    ) -> (ArticleWatch, mpsc::UnboundedReceiver<()>) {
        let (events_tx, events) = mpsc::unbounded_channel::<()>();
        let rescan = options.rescan.as_secs_f64();
        if !options.watch {
            let watch = ArticleWatch {
                watcher: None,
                articles: articles.to_path_buf(),
                watching: None,
                rescan: options.rescan,
                _quiet: Some(events_tx),
            };
            // The sender is kept, unused: no event ever comes, and the channel stays open.
            return (watch, events);
        }
        let under = articles.to_path_buf();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else {
                // An error may mean lost events: look again.
                let _ = events_tx.send(());
                return;
            };
            if is_change(&event.kind)
                && (event.paths.is_empty() || event.paths.iter().any(|p| p.starts_with(&under)))
            {
                let _ = events_tx.send(());
            }
        });
        let watcher = match watcher {
            Ok(mut w) => {
                if let Err(e) = w.watch(site_dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(
                        "not watching {} for a new articles folder: {e}",
                        shown(site_dir)
                    );
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!("no file watcher: {e}; rescanning every {rescan}s instead");
                None
            }
        };
        let mut watch = ArticleWatch {
            watcher,
            articles: articles.to_path_buf(),
            watching: None,
            rescan: options.rescan,
            _quiet: None,
        };
        watch.refresh();
        (watch, events)
    }

    /// Watches `articles/` again if it is not the folder being watched (it came back, or
    /// was swapped for another).
    pub(super) fn refresh(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let now = FolderId::of(&self.articles);
        if now == self.watching {
            return;
        }
        if self.watching.take().is_some() {
            let _ = watcher.unwatch(&self.articles);
        }
        if now.is_some() {
            match watcher.watch(&self.articles, RecursiveMode::Recursive) {
                Ok(()) => self.watching = now,
                Err(e) => tracing::warn!(
                    "not watching {}: {e}; rescanning every {}s instead",
                    shown(&self.articles),
                    self.rescan.as_secs_f64()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_files_is_no_change_but_writing_renaming_and_removing_are() {
        use notify::event::{AccessKind, CreateKind, ModifyKind, RemoveKind, RenameMode};
        assert!(!is_change(&EventKind::Access(AccessKind::Any)));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            notify::event::AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            notify::event::DataChange::Any
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        ))));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
    }
}

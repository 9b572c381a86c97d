//! The build: articles on disk → ids and dates settled in the store → feed bytes → files in
//! `feeds/`, rewritten atomically and only when their bytes change.
//!
//! A [`Publisher`] lives as long as the daemon and remembers the last build, so a rebuild
//! re-reads only changed files, re-renders only changed bodies and re-serializes only feeds
//! whose entries changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};

use crate::articles::{self, Article, Library, Parsed, Problem, Rendered, Tag};
use crate::config::{FeedFormat, Site};
use crate::feeds::{self, Channel, Entry, FeedFile, FeedSpec};
use crate::store::Store;
use crate::store::articles::IndexRow;

/// The outcome of one build.
pub struct Build {
    /// Bad files, each reported as `path:line: reason`; everything else was published.
    pub problems: Vec<Problem>,
    /// Every good article with its id and date settled, newest first (drafts and
    /// future-dated ones included; see [`Build::published`]).
    pub articles: Arc<Vec<Article>>,
    /// How many articles are in the feeds now.
    pub published: usize,
    /// The earliest date at which a held-back (future-dated) article becomes due.
    pub next_due: Option<DateTime<Utc>>,
    /// Every feed file, by its path below `feeds/` (`rss.xml`, `tags/x/atom.xml`).
    pub feeds: Arc<BTreeMap<String, Arc<FeedFile>>>,
    /// Files whose bytes changed (written to disk) in this build.
    pub changed: Vec<String>,
    /// Files removed because their feed no longer exists.
    pub removed: Vec<String>,
    /// Article files read anew.
    pub reread: usize,
    /// Rendered bodies of every article in some feed, by content hash.
    pub bodies: HashMap<String, Arc<Rendered>>,
    /// When the build ran.
    pub at: DateTime<Utc>,
}

impl Build {
    /// Articles that are in the feeds at `now`: not drafts, not dated in the future.
    pub fn published(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Article> {
        self.articles.iter().filter(move |a| a.is_due(now))
    }
}

/// Builds a publication again and again, remembering what it did last time.
pub struct Publisher {
    site: Arc<Site>,
    store: Store,
    library: Library,
    index: Option<HashMap<String, IndexRow>>,
    /// Feed file path → (fingerprint of its inputs, the file).
    last: HashMap<String, (u64, Arc<FeedFile>)>,
    first_build: bool,
}

impl Publisher {
    pub fn new(site: Arc<Site>, store: Store) -> Publisher {
        let cfg = &site.config.site;
        let library = Library::new(&site.dir, &cfg.base_url.0, cfg.timezone.0);
        Publisher {
            site,
            store,
            library,
            index: None,
            last: HashMap::new(),
            first_build: true,
        }
    }

    pub fn site(&self) -> &Arc<Site> {
        &self.site
    }

    /// Reads the articles, settles ids, writes the feeds that changed.
    pub async fn build(&mut self, now: DateTime<Utc>) -> anyhow::Result<Build> {
        let scan = blocking(|| self.library.scan());
        let articles = self.settle(&scan.articles, now).await?;

        let published: Vec<&Article> = articles.iter().filter(|a| a.is_due(now)).collect();
        let next_due = articles
            .iter()
            .filter(|a| !a.draft && a.date > now)
            .map(|a| a.date)
            .min();

        let site = self.site.clone();
        let feeds_cfg = &site.config.feeds;
        let tags = tags_of(&published);
        let mut specs = feeds::specs(&self.site.config.site, &tags, feeds_cfg.per_tag);
        self.assign_feed_ids(&mut specs, now).await?;

        // Pick each feed's entries, then render every body that appears anywhere.
        let cap = feeds_cfg.items.0;
        let chosen: Vec<Vec<&Article>> = specs
            .iter()
            .map(|spec| {
                published
                    .iter()
                    .filter(|a| match &spec.tag {
                        None => true,
                        Some(t) => a.tags.iter().any(|x| x.slug == t.slug),
                    })
                    .take(cap)
                    .copied()
                    .collect()
            })
            .collect();
        let needed: Vec<&Parsed> = chosen.iter().flatten().map(|a| &*a.parsed).collect();
        blocking(|| self.library.render_all(&needed));

        let hub = feeds_cfg.websub_hub.as_ref().map(|u| u.0.to_string());
        let mut files = BTreeMap::new();
        let mut fresh = Vec::new();
        let mut bodies = HashMap::new();
        blocking(|| {
            for (spec, entries) in specs.iter().zip(&chosen) {
                let rendered: Vec<_> = entries.iter().map(|a| self.library.render(a)).collect();
                for (a, r) in entries.iter().zip(&rendered) {
                    bodies.entry(a.hash.clone()).or_insert_with(|| r.clone());
                }
                let entries: Vec<Entry<'_>> = entries
                    .iter()
                    .zip(&rendered)
                    .map(|(a, b)| Entry {
                        article: a,
                        body: b,
                    })
                    .collect();
                for &format in &feeds_cfg.formats {
                    let rel = spec.file(format);
                    let fp = fingerprint(format, spec, hub.as_deref(), &entries);
                    if let Some((old, file)) = self.last.get(&rel)
                        && *old == fp
                    {
                        files.insert(rel, file.clone());
                        continue;
                    }
                    let channel = Channel {
                        site: &site.config.site,
                        spec,
                        self_url: feed_url(&site, &rel),
                        hub: hub.as_deref(),
                        entries: &entries,
                    };
                    let bytes = feeds::render(format, &channel);
                    let file = FeedFile::new(format, bytes, channel.updated());
                    self.last.insert(rel.clone(), (fp, file.clone()));
                    fresh.push(rel.clone());
                    files.insert(rel, file);
                }
            }
        });
        self.last.retain(|rel, _| files.contains_key(rel));

        let feeds_dir = self.site.feeds_dir();
        let first = std::mem::replace(&mut self.first_build, false);
        let (changed, removed) = blocking(|| write_feeds(&feeds_dir, &files, &fresh, first))?;

        Ok(Build {
            problems: scan.problems,
            published: published.len(),
            next_due,
            feeds: Arc::new(files),
            changed,
            removed,
            reread: scan.reread,
            bodies,
            at: now,
            articles: Arc::new(articles),
        })
    }

    /// Gives every article its permanent id and date, recording new and changed ones.
    async fn settle(
        &mut self,
        parsed: &[Arc<Parsed>],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Article>> {
        if self.index.is_none() {
            self.index = Some(self.store.article_index().await?);
        }
        let index = self.index.as_mut().expect("loaded above");
        let domain = self.site.config.site.domain();
        let zone = self.site.config.site.timezone.0;
        // Stored times are whole seconds, as every feed format shows them.
        let now = now.trunc_subsecs(0);
        let mut rows = Vec::new();
        let mut articles = Vec::with_capacity(parsed.len());
        for p in parsed {
            let source = p.source.to_string_lossy().into_owned();
            let (id, first_seen) = match index.get(&p.slug) {
                Some(row) => (
                    p.explicit_id.clone().unwrap_or_else(|| row.id.clone()),
                    row.first_seen,
                ),
                None => {
                    let date = p.date.unwrap_or(now);
                    let id = p.explicit_id.clone().unwrap_or_else(|| {
                        articles::tag_uri(&domain, date.with_timezone(&zone).date_naive(), &p.slug)
                    });
                    (id, now)
                }
            };
            let row = IndexRow {
                slug: p.slug.clone(),
                id: id.clone(),
                source,
                first_seen,
                content_hash: p.hash.clone(),
            };
            if index.get(&p.slug) != Some(&row) {
                index.insert(p.slug.clone(), row.clone());
                rows.push(row);
            }
            articles.push(Article {
                parsed: p.clone(),
                id,
                date: p.date.unwrap_or(first_seen),
            });
        }
        self.store
            .save_articles(&rows, now)
            .await
            .context("recording articles in the store")?;
        articles.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.id.cmp(&b.id)));
        Ok(articles)
    }

    async fn assign_feed_ids(
        &self,
        specs: &mut [FeedSpec],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let domain = self.site.config.site.domain();
        let wanted: Vec<(String, String)> = specs
            .iter()
            .map(|s| (s.key.clone(), feeds::mint_feed_id(&domain, &s.key, now)))
            .collect();
        let ids = self.store.feed_ids(&wanted, now).await?;
        for spec in specs {
            let (id, created) = ids
                .get(&spec.key)
                .cloned()
                .expect("every wanted key is stored");
            spec.id = id;
            spec.created = created;
        }
        Ok(())
    }
}

/// Runs CPU-bound work without stalling the async runtime's other tasks.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The distinct tags of the published articles, by slug, each named as its newest article
/// writes it.
fn tags_of(published: &[&Article]) -> Vec<Tag> {
    let mut by_slug: BTreeMap<&str, &Tag> = BTreeMap::new();
    for a in published {
        for t in &a.tags {
            by_slug.entry(&t.slug).or_insert(t);
        }
    }
    by_slug.into_values().cloned().collect()
}

/// The absolute URL a feed file is served at.
pub fn feed_url(site: &Site, rel: &str) -> String {
    site.config
        .site
        .base_url
        .0
        .join(&format!("feeds/{rel}"))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| site.config.site.url(&format!("feeds/{rel}")))
}

/// What a feed file's bytes depend on, besides configuration (fixed for a process).
fn fingerprint(
    format: FeedFormat,
    spec: &FeedSpec,
    hub: Option<&str>,
    entries: &[Entry<'_>],
) -> u64 {
    let mut h = DefaultHasher::new();
    (
        format,
        &spec.title,
        &spec.description,
        &spec.id,
        spec.created,
        hub,
    )
        .hash(&mut h);
    for e in entries {
        (&e.article.id, &e.article.hash, e.article.date).hash(&mut h);
    }
    h.finish()
}

/// Writes the files whose bytes differ from what is on disk and removes feed files that no
/// longer belong. On the first build every file is compared with the disk; later only
/// freshly rendered ones.
fn write_feeds(
    dir: &Path,
    files: &BTreeMap<String, Arc<FeedFile>>,
    fresh: &[String],
    first: bool,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut changed = Vec::new();
    let candidates: Vec<&String> = if first {
        files.keys().collect()
    } else {
        fresh.iter().collect()
    };
    for rel in candidates {
        let path = dir.join(rel);
        let file = &files[rel];
        if std::fs::read(&path).ok().as_deref() == Some(&file.bytes[..]) {
            continue;
        }
        write_atomic(&path, &file.bytes)?;
        changed.push(rel.clone());
    }
    // Remove generated files that are no longer wanted (a tag that lost its articles, a
    // format taken out of the configuration). Only herald's own file names are touched.
    let mut removed = Vec::new();
    let mut existing = Vec::new();
    collect_feed_files(dir, dir, &mut existing);
    let wanted: HashSet<&str> = files.keys().map(|s| s.as_str()).collect();
    for rel in existing {
        if !wanted.contains(rel.as_str()) {
            let path = dir.join(&rel);
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            if let Some(parent) = path.parent()
                && parent != dir
            {
                let _ = std::fs::remove_dir(parent); // only succeeds when empty
            }
            removed.push(rel);
        }
    }
    Ok((changed, removed))
}

fn collect_feed_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            collect_feed_files(root, &path, out);
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str())
            && FeedFormat::ALL.iter().any(|f| f.file_name() == name)
            && let Ok(rel) = path.strip_prefix(root)
        {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Writes through a temporary file in the same folder and renames it into place, so a
/// reader never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

//! The build: articles on disk → ids and dates settled in the store → feed bytes → files in
//! `feeds/`, rewritten atomically and only when their bytes change.
//!
//! A [`Publisher`] lives as long as the daemon and remembers the last build, so a rebuild
//! re-reads only changed files, re-renders only changed bodies and re-serializes only feeds
//! whose entries changed.
//!
//! Each feed file's `Last-Modified` is when its bytes last changed, kept in the store
//! ([`FeedStamp`]) so it survives restarts and instances sharing a store agree on it. A
//! build that cannot read `articles/`, or finds it suddenly empty, is held: the previous
//! feeds stay as they are ([`Build::held`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};

use crate::articles::{self, Article, Library, Parsed, Problem, Rendered, Tag};
use crate::config::{FeedFormat, Site};
use crate::feeds::{self, Channel, Entry, FeedFile, FeedSpec};
use crate::fs::write_atomic;
use crate::store::Store;
use crate::store::articles::{FeedStamp, IndexRow};

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
    /// Why this build published nothing and kept the previous feeds (`articles/` cannot be
    /// read, or holds no article files while the feeds hold entries). Then nothing was
    /// written or removed, `feeds` are the previous files and `articles` is empty.
    pub held: Option<String>,
    /// The latest `Last-Modified` among the files written: two changes within one second
    /// are stamped a second apart (a client comparing dates must see the second one), so
    /// this can be up to a second ahead. A server serves the build from then on, so no
    /// `Last-Modified` is later than the moment it is sent.
    pub live_from: DateTime<Utc>,
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
    /// What the store says of each feed file, loaded on first use and kept in step.
    stamps: Option<HashMap<String, FeedStamp>>,
    first_build: bool,
}

impl Publisher {
    pub fn new(site: Arc<Site>, store: Store) -> Publisher {
        let library = Library::for_site(&site);
        Publisher {
            site,
            store,
            library,
            index: None,
            last: HashMap::new(),
            stamps: None,
            first_build: true,
        }
    }

    pub fn site(&self) -> &Arc<Site> {
        &self.site
    }

    /// Reads the articles, settles ids, writes the feeds that changed.
    pub async fn build(&mut self, now: DateTime<Utc>) -> anyhow::Result<Build> {
        let scan = blocking(|| self.library.scan());
        if self.stamps.is_none() {
            self.stamps = Some(self.store.feed_stamps().await?);
        }
        if let Some(reason) = self.hold_reason(&scan) {
            return Ok(self.held(scan.problems, scan.reread, reason, now));
        }
        let articles = self.settle(&scan.articles, now).await?;
        let mut problems = scan.problems;

        let mut published: Vec<&Article> = articles.iter().filter(|a| a.is_due(now)).collect();
        let next_due = articles
            .iter()
            .filter(|a| !a.draft && a.date > now)
            .map(|a| a.date)
            .min();

        let site = self.site.clone();
        let feeds_cfg = &site.config.feeds;
        let cap = feeds_cfg.items.0;
        // Pick each feed's entries and render every body that appears anywhere. An article
        // whose body fails to render is reported and left out, and the feeds picked again.
        let (specs, chosen, bodies) = loop {
            let tags = tags_of(&published);
            let mut specs = feeds::specs(&self.site.config.site, &tags, feeds_cfg.per_tag);
            self.assign_feed_ids(&mut specs, now).await?;
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
            let (bodies, failed) = blocking(|| {
                self.library.render_all(&needed);
                let mut bodies: HashMap<String, Arc<Rendered>> = HashMap::new();
                let mut failed: BTreeMap<String, Problem> = BTreeMap::new();
                for a in &needed {
                    if bodies.contains_key(&a.hash) || failed.contains_key(&a.hash) {
                        continue;
                    }
                    match self.library.render(a) {
                        Ok(r) => {
                            bodies.insert(a.hash.clone(), r);
                        }
                        Err(p) => {
                            failed.insert(a.hash.clone(), p);
                        }
                    }
                }
                (bodies, failed)
            });
            if failed.is_empty() {
                break (specs, chosen, bodies);
            }
            published.retain(|a| !failed.contains_key(&a.hash));
            problems.extend(failed.into_values());
        };

        let hub = feeds_cfg.websub_hub.as_ref().map(|u| u.0.to_string());
        let mut files = BTreeMap::new();
        // Freshly serialized files: (path, fingerprint, entries).
        let mut fresh: Vec<(String, u64, usize)> = Vec::new();
        blocking(|| {
            for (spec, entries) in specs.iter().zip(&chosen) {
                let entries: Vec<Entry<'_>> = entries
                    .iter()
                    .filter_map(|a| {
                        bodies.get(&a.hash).map(|b| Entry {
                            article: a,
                            body: b,
                        })
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
                        self_url: crate::links::feed_url(&site.config.site.base_url.0, &rel),
                        hub: hub.as_deref(),
                        entries: &entries,
                    };
                    let bytes = feeds::render(format, &channel);
                    // Stamped with its real modification time below.
                    files.insert(rel.clone(), FeedFile::new(format, bytes, now));
                    fresh.push((rel, fp, entries.len()));
                }
            }
        });
        self.stamp(&mut files, &fresh, now).await?;
        let live_from = fresh
            .iter()
            .filter_map(|f| files.get(&f.0))
            .map(|f| f.modified)
            .max()
            .unwrap_or(now);
        self.last.retain(|rel, _| files.contains_key(rel));

        let feeds_dir = self.site.feeds_dir();
        let first = std::mem::replace(&mut self.first_build, false);
        let fresh_paths: Vec<String> = fresh.into_iter().map(|f| f.0).collect();
        let (changed, removed) = blocking(|| write_feeds(&feeds_dir, &files, &fresh_paths, first))?;

        Ok(Build {
            problems,
            published: published.len(),
            next_due,
            feeds: Arc::new(files),
            changed,
            removed,
            reread: scan.reread,
            bodies,
            at: now,
            articles: Arc::new(articles),
            held: None,
            live_from,
        })
    }

    /// Gives each freshly serialized file the time its bytes last changed (now, unless the
    /// store already has these bytes) and forgets files no longer built.
    async fn stamp(
        &mut self,
        files: &mut BTreeMap<String, Arc<FeedFile>>,
        fresh: &[(String, u64, usize)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        // HTTP dates are whole seconds.
        let now = now.trunc_subsecs(0);
        let stamps = self.stamps.get_or_insert_with(HashMap::new);
        let changed: Vec<(String, String, i64)> = fresh
            .iter()
            .map(|(rel, _, entries)| (rel.clone(), content_hash(&files[rel]), *entries as i64))
            .filter(|(rel, hash, _)| stamps.get(rel).map(|s| &s.hash) != Some(hash))
            .collect();
        let stored = self
            .store
            .stamp_feed_files(&changed, now)
            .await
            .context("recording when the feeds changed")?;
        stamps.extend(stored);
        for (rel, fp, _) in fresh {
            let modified = stamps.get(rel).map_or(now, |s| s.modified);
            let file = files[rel].changed_at(modified);
            self.last.insert(rel.clone(), (*fp, file.clone()));
            files.insert(rel.clone(), file);
        }
        let gone: Vec<String> = stamps
            .keys()
            .filter(|rel| !files.contains_key(*rel))
            .cloned()
            .collect();
        if !gone.is_empty() {
            self.store.forget_feed_files(&gone).await?;
            stamps.retain(|rel, _| files.contains_key(rel));
        }
        Ok(())
    }

    /// Why this scan must not be published, if it must not: `articles/` cannot be read, or
    /// it holds no article files while the feeds hold entries (a folder being swapped).
    fn hold_reason(&self, scan: &articles::Scan) -> Option<String> {
        let articles_dir = self.site.relative(&self.site.articles_dir()).to_path_buf();
        let shown = crate::text::shown(&articles_dir);
        if let Some(p) = &scan.unreadable {
            return Some(format!(
                "{shown}: {}: kept the previous feeds, wrote and removed nothing",
                p.message
            ));
        }
        let had = self
            .stamps
            .iter()
            .flat_map(|s| s.values())
            .map(|s| s.entries)
            .max()
            .unwrap_or(0);
        if scan.article_files == 0 && had > 0 {
            return Some(format!(
                "{shown}: holds no article files, while the feeds hold {had} entries: kept the previous feeds, wrote and removed nothing (to empty the feeds on purpose, leave one article with `draft: true`)"
            ));
        }
        None
    }

    /// A build that keeps the previous feeds: those of this publisher's last build, or those
    /// on disk when it has made none.
    fn held(
        &self,
        problems: Vec<Problem>,
        reread: usize,
        reason: String,
        now: DateTime<Utc>,
    ) -> Build {
        let feeds: BTreeMap<String, Arc<FeedFile>> = if self.last.is_empty() {
            let stamps = self.stamps.clone().unwrap_or_default();
            blocking(|| read_feeds(&self.site.feeds_dir(), &stamps, now))
        } else {
            self.last
                .iter()
                .map(|(rel, (_, file))| (rel.clone(), file.clone()))
                .collect()
        };
        Build {
            problems,
            articles: Arc::new(Vec::new()),
            published: 0,
            next_due: None,
            feeds: Arc::new(feeds),
            changed: Vec::new(),
            removed: Vec::new(),
            reread,
            bodies: HashMap::new(),
            at: now,
            held: Some(reason),
            live_from: now,
        }
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

/// The feed files on disk, to serve when a build is held before any was made. Their
/// modification time is the stored one when the store knows their bytes, else `now`.
fn read_feeds(
    dir: &Path,
    stamps: &HashMap<String, FeedStamp>,
    now: DateTime<Utc>,
) -> BTreeMap<String, Arc<FeedFile>> {
    let mut rels = Vec::new();
    collect_feed_files(dir, dir, &mut rels);
    let now = now.trunc_subsecs(0);
    let mut out = BTreeMap::new();
    for rel in rels {
        let Some(format) = FeedFormat::ALL
            .into_iter()
            .find(|f| rel.rsplit('/').next() == Some(f.file_name()))
        else {
            continue;
        };
        let Ok(bytes) = std::fs::read(dir.join(&rel)) else {
            continue;
        };
        let file = FeedFile::new(format, bytes, now);
        let modified = stamps
            .get(&rel)
            .filter(|s| s.hash == content_hash(&file))
            .map_or(now, |s| s.modified);
        out.insert(rel, file.changed_at(modified));
    }
    out
}

/// The hash the store keeps of a feed file's bytes: its strong ETag (128 bits of SHA-256).
fn content_hash(file: &FeedFile) -> String {
    file.etag.trim_matches('"').to_string()
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

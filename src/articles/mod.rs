//! Articles in: finding the files under `articles/` ([`tree`]), reading each into a
//! [`Parsed`] article (front matter, title, slug, URL, tags, authors), rendering bodies to
//! safe HTML, and reporting every bad file as `path:line: reason` without stopping the others.
//!
//! [`Library`] caches by file size and modification time, so a rebuild re-reads only what
//! changed; rendered HTML is cached by content hash. Each file is read, parsed and rendered
//! in isolation: even a panic in one becomes that file's [`Problem`], never the build's.

pub mod body;
pub mod frontmatter;
pub mod tree;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sha2::{Digest, Sha256};
use url::Url;

pub use body::{Kind, Renderer};

/// Longest generated summary, in characters.
const SUMMARY_CHARS: usize = 300;

/// A bad input, reported as `path:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}",
            crate::text::shown(&self.path),
            self.line,
            self.message
        )
    }
}

/// A tag as written, with the slug its feed lives under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Tag {
    pub name: String,
    pub slug: String,
}

/// `Name` or `Name <email>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Author {
    pub name: String,
    pub email: Option<String>,
}

impl Author {
    pub fn parse(s: &str) -> Result<Author, String> {
        let s = s.trim();
        if let Some(open) = s.find('<') {
            let Some(close) = s.rfind('>').filter(|c| *c > open) else {
                return Err(format!("author {s:?}: an email in <…> is not closed"));
            };
            let name = s[..open].trim().trim_matches('"').trim();
            let email = s[open + 1..close].trim();
            if !email.contains('@') || email.contains(char::is_whitespace) {
                return Err(format!("author {s:?}: {email:?} is not an email address"));
            }
            Ok(Author {
                name: if name.is_empty() {
                    email.to_string()
                } else {
                    name.to_string()
                },
                email: Some(email.to_string()),
            })
        } else if s.is_empty() {
            Err("an author is empty".into())
        } else {
            Ok(Author {
                name: s.to_string(),
                email: None,
            })
        }
    }
}

/// What one file says, before the store gives it an id and a date.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Path relative to the publication folder, for messages (`articles/x.md`).
    pub source: PathBuf,
    pub kind: Kind,
    pub slug: String,
    /// The `id` key, when the front matter fixes one.
    pub explicit_id: Option<String>,
    pub title: String,
    /// Absolute permalink.
    pub url: String,
    pub date: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    pub tags: Vec<Tag>,
    pub authors: Vec<Author>,
    /// The `summary` key; otherwise the first paragraph is used when rendering.
    pub summary: Option<String>,
    pub draft: bool,
    /// Absolute image URL.
    pub image: Option<String>,
    pub body: String,
    /// SHA-256 of the file's bytes, kind and URL, hex: changes exactly when the rendered body
    /// can (footnotes link into the URL).
    pub hash: String,
}

/// An article with its permanent id and publication date settled (by the store).
#[derive(Debug, Clone)]
pub struct Article {
    pub parsed: Arc<Parsed>,
    pub id: String,
    pub date: DateTime<Utc>,
}

impl Article {
    /// The last significant change: `updated`, else the publication date.
    pub fn updated(&self) -> DateTime<Utc> {
        self.parsed.updated.unwrap_or(self.date).max(self.date)
    }

    /// Not a draft and not dated in the future.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        !self.parsed.draft && self.date <= now
    }
}

impl std::ops::Deref for Article {
    type Target = Parsed;
    fn deref(&self) -> &Parsed {
        &self.parsed
    }
}

/// An article body in its published form.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub html: String,
    /// Plain text, possibly empty.
    pub summary: String,
}

/// Everything a file needs to be parsed.
struct Context<'a> {
    site_dir: &'a Path,
    base: &'a Url,
    zone: Tz,
}

struct Cached {
    modified: SystemTime,
    len: u64,
    outcome: Result<Arc<Parsed>, Problem>,
}

/// The outcome of reading every article file.
pub struct Scan {
    /// Good articles, ordered by path; duplicates of an earlier slug or id left out.
    pub articles: Vec<Arc<Parsed>>,
    pub problems: Vec<Problem>,
    /// Files read anew in this scan (0 when nothing changed since the last one).
    pub reread: usize,
    /// Files that went away since the last scan.
    pub removed: usize,
    /// Entries named like articles, refused ones included: 0 when the folder holds none.
    pub article_files: usize,
    /// Why `articles/` itself could not be read (missing, not a folder, a link outside the
    /// publication), if so; also the first of `problems`.
    pub unreadable: Option<Problem>,
}

/// The article files of one publication, cached between scans.
pub struct Library {
    site_dir: PathBuf,
    root: PathBuf,
    base: Url,
    zone: Tz,
    renderer: Renderer,
    rules: tree::Rules,
    files: HashMap<PathBuf, Cached>,
    /// Rendered bodies by content hash; `Err` holds why rendering failed (a panic's message).
    rendered: HashMap<String, Result<Arc<Rendered>, String>>,
}

impl Library {
    pub fn new(site_dir: &Path, base: &Url, zone: Tz) -> Library {
        Library {
            site_dir: site_dir.to_path_buf(),
            root: site_dir.join("articles"),
            base: base.clone(),
            zone,
            renderer: Renderer::new(base),
            rules: tree::Rules::default(),
            files: HashMap::new(),
            rendered: HashMap::new(),
        }
    }

    /// The library of a publication, with its `[articles]` rules.
    pub fn for_site(site: &crate::config::Site) -> Library {
        let c = &site.config;
        let mut library = Library::new(&site.dir, &c.site.base_url.0, c.site.timezone.0);
        library.rules = tree::Rules::from(&c.articles);
        library
    }

    /// Reads every article file, reusing what has not changed since the last scan.
    pub fn scan(&mut self) -> Scan {
        let listing = tree::list(&self.site_dir, &self.root, &self.rules);
        let mut problems = listing.problems;
        if let Some(p) = listing.unreadable {
            // Nothing to read: the cache is kept for when the folder is back.
            problems.insert(0, p.clone());
            return Scan {
                articles: Vec::new(),
                problems,
                reread: 0,
                removed: 0,
                article_files: 0,
                unreadable: Some(p),
            };
        }
        let mut found = listing.files;
        found.sort_by(|a, b| a.path.cmp(&b.path));

        // Which files must be read again?
        let stale: Vec<usize> = found
            .iter()
            .enumerate()
            .filter(|(_, f)| match self.files.get(&f.path) {
                Some(c) => c.modified != f.modified || c.len != f.len,
                None => true,
            })
            .map(|(i, _)| i)
            .collect();
        let ctx = Context {
            site_dir: &self.site_dir,
            base: &self.base,
            zone: self.zone,
        };
        let fresh = parse_in_parallel(&ctx, &found, &stale, self.rules.max_size);
        for (i, outcome) in stale.iter().zip(fresh) {
            let f = &found[*i];
            self.files.insert(
                f.path.clone(),
                Cached {
                    modified: f.modified,
                    len: f.len,
                    outcome: outcome.map(Arc::new),
                },
            );
        }
        let live: HashSet<&PathBuf> = found.iter().map(|f| &f.path).collect();
        let before = self.files.len();
        self.files.retain(|p, _| live.contains(p));
        let removed = before - self.files.len();

        // Duplicates: the first by path wins, every later one is reported.
        let mut slugs: HashMap<&str, &Path> = HashMap::new();
        let mut ids: HashMap<&str, &Path> = HashMap::new();
        let mut articles = Vec::new();
        for f in &found {
            match &self.files[&f.path].outcome {
                Err(p) => problems.push(p.clone()),
                Ok(a) => {
                    if let Some(first) = slugs.get(a.slug.as_str()) {
                        problems.push(Problem {
                            path: a.source.clone(),
                            line: 1,
                            message: format!(
                                "duplicate slug {:?}: {} already uses it (set `slug` to tell them apart)",
                                a.slug,
                                crate::text::shown(first)
                            ),
                        });
                        continue;
                    }
                    if let Some(id) = &a.explicit_id {
                        if let Some(first) = ids.get(id.as_str()) {
                            problems.push(Problem {
                                path: a.source.clone(),
                                line: 1,
                                message: format!(
                                    "duplicate id {id:?}: {} already uses it",
                                    crate::text::shown(first)
                                ),
                            });
                            continue;
                        }
                        ids.insert(id, &a.source);
                    }
                    slugs.insert(&a.slug, &a.source);
                    articles.push(a.clone());
                }
            }
        }
        // Rendered bodies of files that went away are dropped too.
        let hashes: HashSet<&str> = articles.iter().map(|a| a.hash.as_str()).collect();
        self.rendered.retain(|h, _| hashes.contains(h.as_str()));

        Scan {
            articles,
            problems,
            reread: stale.len(),
            removed,
            article_files: listing.article_names,
            unreadable: None,
        }
    }

    /// The published form of an article's body, rendered once per content hash. A failure
    /// (even a panic) is that article's problem and is remembered for its content.
    pub fn render(&mut self, a: &Parsed) -> Result<Arc<Rendered>, Problem> {
        let outcome = match self.rendered.get(&a.hash) {
            Some(r) => r.clone(),
            None => {
                let r = catch_unwind(AssertUnwindSafe(|| render(&self.renderer, a)))
                    .map(Arc::new)
                    .map_err(|p| panic_message(&*p));
                self.rendered.insert(a.hash.clone(), r.clone());
                r
            }
        };
        outcome.map_err(|m| failed(&a.source, "rendering", &m))
    }

    /// Renders many articles, in parallel, filling the cache.
    pub fn render_all(&mut self, articles: &[&Parsed]) {
        let todo: Vec<&Parsed> = {
            let mut seen = HashSet::new();
            articles
                .iter()
                .filter(|a| !self.rendered.contains_key(&a.hash) && seen.insert(a.hash.as_str()))
                .copied()
                .collect()
        };
        if todo.is_empty() {
            return;
        }
        let renderer = &self.renderer;
        let done = in_parallel(&todo, |a| render(renderer, a));
        for (a, r) in todo.iter().zip(done) {
            self.rendered.insert(a.hash.clone(), r.map(Arc::new));
        }
    }
}

fn render(renderer: &Renderer, a: &Parsed) -> Rendered {
    let html = renderer.html(a.kind, &a.body, &a.url);
    let summary = match &a.summary {
        Some(s) => s.clone(),
        None => body::summary_of(&html, SUMMARY_CHARS).unwrap_or_default(),
    };
    Rendered { html, summary }
}

fn parse_in_parallel(
    ctx: &Context<'_>,
    found: &[tree::Found],
    stale: &[usize],
    max_size: crate::config::HumanSize,
) -> Vec<Result<Parsed, Problem>> {
    let paths: Vec<&Path> = stale.iter().map(|i| found[*i].path.as_path()).collect();
    let done = in_parallel(&paths, |path| {
        let rel = path.strip_prefix(ctx.site_dir).unwrap_or(path);
        match tree::read(path, max_size) {
            Ok(bytes) => parse(ctx, rel, &bytes),
            Err(message) => Err(Problem {
                path: rel.to_path_buf(),
                line: 1,
                message,
            }),
        }
    });
    paths
        .iter()
        .zip(done)
        .map(|(path, outcome)| {
            outcome.unwrap_or_else(|m| {
                Err(failed(
                    path.strip_prefix(ctx.site_dir).unwrap_or(path),
                    "reading",
                    &m,
                ))
            })
        })
        .collect()
}

/// The problem reported for a file herald itself failed on (a panic: a bug in herald).
fn failed(rel: &Path, doing: &str, why: &str) -> Problem {
    Problem {
        path: rel.to_path_buf(),
        line: 1,
        message: format!(
            "herald failed while {doing} this file ({}): a bug in herald, please report it; the other articles are published",
            crate::text::escaped(why)
        ),
    }
}

/// What a panic said.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// Maps `f` over `items` on every core, keeping order. Each call is isolated: a panic in
/// `f` becomes that item's `Err` (the panic's message), and the other items still come back.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
) -> Vec<Result<R, String>> {
    let one = |x: &T| catch_unwind(AssertUnwindSafe(|| f(x))).map_err(|p| panic_message(&*p));
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if items.len() < 64 || threads == 1 {
        return items.iter().map(one).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| (c.len(), s.spawn(|| c.iter().map(one).collect::<Vec<_>>())))
            .collect();
        handles
            .into_iter()
            .flat_map(|(n, h)| match h.join() {
                Ok(done) => done,
                // Every call is caught above, so a thread can only die of something worse
                // (a panic while dropping a panic's payload): its items fail, the rest stand.
                Err(p) => {
                    let why = panic_message(&*p);
                    (0..n).map(|_| Err(why.clone())).collect()
                }
            })
            .collect()
    })
}

/// Parses one file's bytes. `rel` is its path relative to the publication folder.
fn parse(ctx: &Context<'_>, rel: &Path, bytes: &[u8]) -> Result<Parsed, Problem> {
    let problem = |line: usize, message: String| Problem {
        path: rel.to_path_buf(),
        line,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        problem(
            line,
            format!(
                "not valid UTF-8 (byte 0x{:02x} at offset {at}); save the file as UTF-8",
                bytes[at]
            ),
        )
    })?;
    // Characters XML forbids are never meaningful in an article and YAML and TOML refuse
    // them: drop them before anything else reads the text (line numbers are unchanged).
    let text = body::xml_safe_cow(text);
    let text: &str = &text;
    let kind = rel
        .extension()
        .and_then(|e| e.to_str())
        .and_then(Kind::from_extension)
        .expect("only article extensions are scanned");
    let split = frontmatter::split(text, ctx.zone).map_err(|e| problem(e.line, e.message))?;
    let fm = split.front;
    let mut body = split.body.to_string();

    // The title: front matter, else (plain text) the first line, else a leading `# Heading`.
    let title = match fm.title.clone() {
        Some(t) => t,
        None => {
            let first = body
                .lines()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.to_string());
            match (kind, first) {
                (Kind::Text, Some(line)) => {
                    body = remove_first_line(&body, &line);
                    line.trim().to_string()
                }
                (Kind::Markdown, Some(line)) if line.starts_with("# ") => {
                    body = remove_first_line(&body, &line);
                    line[2..].trim().trim_end_matches('#').trim().to_string()
                }
                _ => {
                    return Err(problem(
                        1,
                        "no title: add `title` to the front matter".to_string(),
                    ));
                }
            }
        }
    };
    let title = crate::text::collapse_ws(&body::strip_html_tags(&title));
    if title.is_empty() {
        return Err(problem(fm.line("title"), "the title is empty".into()));
    }

    let slug = match &fm.slug {
        Some(s) => {
            let ok = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
                && !s.starts_with('.');
            if !ok {
                return Err(problem(
                    fm.line("slug"),
                    format!("slug {s:?} may only hold letters, digits, '-', '_' and '.'"),
                ));
            }
            s.clone()
        }
        None => {
            let stem = rel.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let s = crate::text::slugify(stem);
            if s.is_empty() {
                return Err(problem(
                    1,
                    format!("the file name {stem:?} gives an empty slug: set `slug`"),
                ));
            }
            s
        }
    };

    let absolute = |key: &str, value: &str| -> Result<String, Problem> {
        let joined = ctx
            .base
            .join(value.trim())
            .map_err(|e| problem(fm.line(key), format!("`{key}` {value:?} is not a URL: {e}")))?;
        if !matches!(joined.scheme(), "http" | "https") {
            return Err(problem(
                fm.line(key),
                format!("`{key}` {value:?} must be an http(s) URL"),
            ));
        }
        Ok(joined.to_string())
    };
    let url = match &fm.url {
        Some(u) => absolute("url", u)?,
        None => ctx
            .base
            .join(&format!("{slug}/"))
            .map(|u| u.to_string())
            .map_err(|e| problem(1, format!("slug {slug:?} does not make a URL: {e}")))?,
    };
    let image = fm
        .image
        .as_deref()
        .map(|i| absolute("image", i))
        .transpose()?;

    let explicit_id = match &fm.id {
        Some(id) => {
            let id = id.trim();
            if !is_absolute_iri(id) {
                return Err(problem(
                    fm.line("id"),
                    format!(
                        "id {id:?} must be an absolute URI, such as tag:example.com,2026-05-01:post-1 or urn:uuid:…"
                    ),
                ));
            }
            Some(id.to_string())
        }
        None => None,
    };

    let mut tags: Vec<Tag> = Vec::new();
    for name in &fm.tags {
        let name = crate::text::collapse_ws(&body::strip_html_tags(name));
        let slug = crate::text::slugify(&name);
        if slug.is_empty() {
            return Err(problem(
                fm.line("tags"),
                format!("tag {name:?} has no letters or digits to name its feed"),
            ));
        }
        if !tags.iter().any(|t| t.slug == slug) {
            tags.push(Tag { name, slug });
        }
    }
    let authors = fm
        .authors
        .iter()
        .map(|a| Author::parse(&body::xml_safe(a)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| problem(fm.line("authors"), m))?;

    let summary = fm
        .summary
        .as_deref()
        .map(|s| crate::text::collapse_ws(&body::xml_safe(s)))
        .filter(|s| !s.is_empty());

    let hash = hex::encode(
        Sha256::new()
            .chain_update(bytes)
            .chain_update(format!("\0{kind:?}\0{url}"))
            .finalize(),
    );
    Ok(Parsed {
        source: rel.to_path_buf(),
        kind,
        slug,
        explicit_id,
        title,
        url,
        date: fm.date,
        updated: fm.updated,
        tags,
        authors,
        summary,
        draft: fm.draft,
        image,
        body,
        hash,
    })
}

fn remove_first_line(body: &str, line: &str) -> String {
    match body.find(line) {
        Some(i) => body[i + line.len()..].to_string(),
        None => body.to_string(),
    }
}

/// `scheme:rest` with no white space: what Atom accepts as an id.
fn is_absolute_iri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    !rest.is_empty()
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The `tag:` URI (RFC 4151) minted for an article without an `id`, dated with the day as
/// written (in the site's zone).
pub fn tag_uri(domain: &str, date: chrono::NaiveDate, slug: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    format!(
        "tag:{domain},{}:{}",
        date.format("%Y-%m-%d"),
        percent_encoding::utf8_percent_encode(slug, KEEP)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_parse(rel: &str, text: &str) -> Result<Parsed, Problem> {
        let base = Url::parse("https://example.com/").unwrap();
        let ctx = Context {
            site_dir: Path::new("/site"),
            base: &base,
            zone: Tz::UTC,
        };
        parse(&ctx, Path::new(rel), text.as_bytes())
    }

    #[test]
    fn defaults_come_from_the_file_name_and_base_url() {
        let a = ctx_parse("articles/Hello World.md", "---\ntitle: Hi\n---\nText").unwrap();
        assert_eq!(a.slug, "hello-world");
        assert_eq!(a.url, "https://example.com/hello-world/");
        assert!(a.explicit_id.is_none() && a.date.is_none());
    }

    #[test]
    fn plain_text_takes_its_first_line_as_title() {
        let a = ctx_parse("articles/note.txt", "\nMy note\n\nFirst para.\n").unwrap();
        assert_eq!(a.title, "My note");
        assert!(!a.body.contains("My note"));
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let base = Url::parse("https://example.com/").unwrap();
        let ctx = Context {
            site_dir: Path::new("/site"),
            base: &base,
            zone: Tz::UTC,
        };
        let e = parse(
            &ctx,
            Path::new("articles/x.md"),
            b"---\ntitle: x\n---\nok\nbad \xff here\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 5);
        assert!(
            e.to_string()
                .starts_with("articles/x.md:5: not valid UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_title_is_an_error() {
        let e = ctx_parse("articles/x.html", "<p>hi</p>").unwrap_err();
        assert!(e.message.contains("no title"));
    }

    #[test]
    fn ids_must_be_absolute() {
        let e = ctx_parse("articles/x.md", "---\ntitle: x\nid: 42\n---\n").unwrap_err();
        assert_eq!(e.line, 3);
    }

    #[test]
    fn authors_with_and_without_email() {
        assert_eq!(
            Author::parse("Jane Doe <jane@example.com>").unwrap(),
            Author {
                name: "Jane Doe".into(),
                email: Some("jane@example.com".into())
            }
        );
        assert_eq!(Author::parse("Jane").unwrap().email, None);
        assert!(Author::parse("Jane <nope>").is_err());
    }

    #[test]
    fn a_panic_in_one_item_leaves_the_others_standing() {
        // Past the threshold, so the work is spread over threads.
        let items: Vec<usize> = (0..200).collect();
        let out = in_parallel(&items, |i| {
            if *i == 77 {
                panic!("item 77 is cursed");
            }
            i * 2
        });
        assert_eq!(out.len(), 200);
        assert_eq!(out[77].as_ref().unwrap_err(), "item 77 is cursed");
        assert!(
            out.iter()
                .enumerate()
                .all(|(i, r)| i == 77 || r.as_ref().ok() == Some(&(i * 2)))
        );
        let few = in_parallel(&[1, 2], |i| if *i == 1 { panic!("one") } else { *i });
        assert!(few[0].is_err() && few[1].as_ref().ok() == Some(&2));
    }

    #[test]
    fn a_failure_names_the_file_and_escapes_the_reason() {
        let p = failed(Path::new("articles/x\n.md"), "rendering", "bad\u{1b}[0m");
        assert_eq!(
            p.to_string(),
            "articles/x\\n.md:1: herald failed while rendering this file (bad\\u{1b}[0m): a bug in herald, please report it; the other articles are published"
        );
    }

    #[test]
    fn tag_uris_encode_their_slug() {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
        assert_eq!(
            tag_uri("example.com", d, "héllo"),
            "tag:example.com,2026-05-01:h%C3%A9llo"
        );
    }
}

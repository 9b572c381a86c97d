//! The file tree under `articles/`: which entries are article files and how they are read.
//! Links are followed only to places inside the publication folder (unless
//! `[articles] allow_outside` says otherwise) and never into a loop; pipes, sockets and
//! devices are refused, and so are files over `[articles] max_size`. Names are shown
//! escaped ([`shown`]): a file name is untrusted text and may hold newlines or escape bytes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::Metadata;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Kind, Problem};
use crate::config::{ArticlesConfig, HumanSize};
use crate::text::shown;

/// What the walk may read.
#[derive(Debug, Clone)]
pub struct Rules {
    pub allow_outside: bool,
    pub max_size: HumanSize,
}

impl From<&ArticlesConfig> for Rules {
    fn from(c: &ArticlesConfig) -> Rules {
        Rules {
            allow_outside: c.allow_outside,
            max_size: c.max_size,
        }
    }
}

impl Default for Rules {
    fn default() -> Rules {
        Rules::from(&ArticlesConfig::default())
    }
}

/// An article file to read.
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub modified: SystemTime,
    pub len: u64,
}

/// The outcome of one walk.
#[derive(Debug, Default)]
pub struct Listing {
    /// Readable article files, in no particular order.
    pub files: Vec<Found>,
    /// Entries refused or unreadable, each as `path:1: reason`.
    pub problems: Vec<Problem>,
    /// Every entry named like an article (`*.md`, `*.html`, `*.txt`), refused ones included.
    pub article_names: usize,
    /// Set when `articles/` itself cannot be read: missing, not a folder, a link outside.
    pub unreadable: Option<Problem>,
}

/// Walks `root` (the `articles/` folder of the publication in `site_dir`).
pub fn list(site_dir: &Path, root: &Path, rules: &Rules) -> Listing {
    let mut walk = Walk {
        site_dir,
        inside: site_dir
            .canonicalize()
            .unwrap_or_else(|_| site_dir.to_path_buf()),
        rules,
        seen: HashSet::new(),
        files: HashMap::new(),
        links: VecDeque::new(),
        out: Listing::default(),
    };
    let folder = |message: String| Problem {
        path: rel(site_dir, root),
        line: 1,
        message,
    };
    let meta = match std::fs::metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            walk.out.unreadable = Some(folder("the articles folder is missing".into()));
            return walk.out;
        }
        Err(e) => {
            walk.out.unreadable = Some(folder(format!("cannot read the articles folder: {e}")));
            return walk.out;
        }
    };
    if !meta.is_dir() {
        walk.out.unreadable = Some(folder("is not a folder".into()));
        return walk.out;
    }
    if !rules.allow_outside
        && let Ok(target) = root.canonicalize()
        && !target.starts_with(&walk.inside)
    {
        walk.out.unreadable = Some(folder(outside(&target)));
        return walk.out;
    }
    if let Err(e) = walk.dir(root, &meta, true) {
        walk.out.unreadable = Some(folder(format!("cannot read the articles folder: {e}")));
        return walk.out;
    }
    // Links last, once every real folder and file is known: a file keeps its own path, and
    // a link back to it or to a folder already read ends there.
    while let Some((path, article_name)) = walk.links.pop_front() {
        walk.link(&path, article_name);
    }
    walk.out
}

/// Reads an article file, refusing one larger than `max` (also when it grew after it was
/// listed).
pub fn read(path: &Path, max: HumanSize) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > max.0 {
        return Err(too_big(len, max));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max.0 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max.0 {
        return Err(too_big(bytes.len() as u64, max));
    }
    Ok(bytes)
}

fn too_big(len: u64, max: HumanSize) -> String {
    format!(
        "the file is {}, more than [articles] max_size ({max}): not read (split the article, or raise max_size)",
        HumanSize(len)
    )
}

fn outside(target: &Path) -> String {
    format!(
        "links to {}, outside the publication folder: not read (set [articles] allow_outside = true to read it)",
        shown(target)
    )
}

struct Walk<'a> {
    site_dir: &'a Path,
    /// The publication folder with every link resolved: what "inside" means.
    inside: PathBuf,
    rules: &'a Rules,
    /// Folders already walked, by identity, so a link loop ends.
    seen: HashSet<DirKey>,
    /// Files already listed, by identity, with the path they were listed under.
    files: HashMap<DirKey, PathBuf>,
    /// Links met and not followed yet (with whether their name is an article's).
    links: VecDeque<(PathBuf, bool)>,
    out: Listing,
}

impl Walk<'_> {
    fn problem(&mut self, path: &Path, message: String) {
        self.out.problems.push(Problem {
            path: rel(self.site_dir, path),
            line: 1,
            message,
        });
    }

    /// Walks one folder; `meta` is its metadata with links followed. Only the top folder's
    /// own read error is returned; everything below is reported as a problem.
    fn dir(&mut self, dir: &Path, meta: &Metadata, top: bool) -> std::io::Result<()> {
        if !self.seen.insert(DirKey::of(dir, meta)) {
            self.problem(
                dir,
                "a link to a folder that was already read (a link loop, or a second link to one folder): not read again".into(),
            );
            return Ok(());
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => {
                let mut all: Vec<_> = e.collect();
                all.sort_by_cached_key(|e| e.as_ref().map(|e| e.file_name()).ok());
                all
            }
            Err(e) if top => return Err(e),
            Err(e) => {
                self.problem(dir, format!("cannot read the folder: {e}"));
                return Ok(());
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    self.problem(dir, format!("cannot list the folder: {e}"));
                    continue;
                }
            };
            if entry.file_name().as_encoded_bytes().first() == Some(&b'.') {
                continue;
            }
            let path = entry.path();
            let article_name = kind_of(&path).is_some();
            if article_name {
                self.out.article_names += 1;
            }
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) => {
                    self.problem(&path, format!("cannot read: {e}"));
                    continue;
                }
            };
            if file_type.is_symlink() {
                self.links.push_back((path, article_name));
                continue;
            }
            if !(file_type.is_dir() || article_name) {
                continue;
            }
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => {
                    let _ = self.dir(&path, &meta, false);
                }
                Ok(meta) => self.file(path, &meta),
                Err(e) => self.problem(&path, format!("cannot read: {e}")),
            }
        }
        Ok(())
    }

    fn link(&mut self, path: &Path, article_name: bool) {
        let resolved = std::fs::canonicalize(path).and_then(|t| {
            let meta = std::fs::metadata(&t)?;
            Ok((t, meta))
        });
        let (target, meta) = match resolved {
            Ok(r) => r,
            Err(e) => {
                // A dangling link may have meant either a folder or an article.
                self.problem(path, format!("a link that cannot be followed: {e}"));
                return;
            }
        };
        if !(meta.is_dir() || article_name) {
            return;
        }
        if !self.rules.allow_outside && !target.starts_with(&self.inside) {
            self.problem(path, outside(&target));
            return;
        }
        if meta.is_dir() {
            let _ = self.dir(path, &meta, false);
        } else {
            self.file(path.to_path_buf(), &meta);
        }
    }

    fn file(&mut self, path: PathBuf, meta: &Metadata) {
        if meta.is_file()
            && let Some(first) = self.files.get(&DirKey::of(&path, meta))
        {
            let message = format!(
                "a link to {}, which is read already: not read twice",
                shown(&rel(self.site_dir, first))
            );
            self.problem(&path, message);
            return;
        }
        if !meta.is_file() {
            self.problem(
                &path,
                "is not a regular file (a pipe, socket or device): not read".into(),
            );
            return;
        }
        if meta.len() > self.rules.max_size.0 {
            let message = too_big(meta.len(), self.rules.max_size);
            self.problem(&path, message);
            return;
        }
        self.files.insert(DirKey::of(&path, meta), path.clone());
        self.out.files.push(Found {
            path,
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            len: meta.len(),
        });
    }
}

/// A folder's or file's identity: device and inode where there are such things, else its
/// resolved path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DirKey {
    #[cfg_attr(not(unix), allow(dead_code))]
    Inode(u64, u64),
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

impl DirKey {
    #[cfg(unix)]
    fn of(_path: &Path, meta: &Metadata) -> DirKey {
        use std::os::unix::fs::MetadataExt;
        DirKey::Inode(meta.dev(), meta.ino())
    }

    #[cfg(not(unix))]
    fn of(path: &Path, _meta: &Metadata) -> DirKey {
        DirKey::Path(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
    }
}

/// The kind of article a file name says it is (`None`: not an article).
pub fn kind_of(path: &Path) -> Option<Kind> {
    path.extension()
        .and_then(|e| e.to_str())
        .and_then(Kind::from_extension)
}

/// `path` relative to the publication folder, for messages (`articles/x.md`).
pub fn rel(site_dir: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(site_dir).unwrap_or(path).to_path_buf()
}

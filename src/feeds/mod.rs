//! Feeds out: which articles go into which feed, and the bytes of each feed in RSS 2.0,
//! Atom 1.0 and JSON Feed 1.1. Everything here is a pure function of its inputs: the same
//! articles give the same bytes, so unchanged input never changes a file or an ETag.
//!
//! # Layout
//! - [`rss`], [`atom`], [`json`]: one serializer per format.

pub mod atom;
pub mod json;
pub mod rss;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::articles::{Article, Rendered, Tag};
use crate::config::{FeedFormat, SiteConfig};
use crate::time::http_date;

/// One feed (the whole publication, or one tag) in every format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSpec {
    /// Where its files live below `feeds/`: `""` or `tags/<slug>/`.
    pub dir: String,
    /// The key its permanent id is stored under.
    pub key: String,
    pub title: String,
    pub description: String,
    /// The tag it follows, if any.
    pub tag: Option<Tag>,
    /// Permanent id (Atom `id`), minted once and stored.
    pub id: String,
    /// When the id was minted: the `updated` of a feed that has no entries yet.
    pub created: DateTime<Utc>,
}

impl FeedSpec {
    /// The path of one format's file relative to `feeds/` (`tags/x/rss.xml`).
    pub fn file(&self, format: FeedFormat) -> String {
        format!("{}{}", self.dir, format.file_name())
    }
}

/// The specs of every feed a publication has: the whole, then one per tag in slug order.
/// Ids and creation times are filled in by the caller from the store.
pub fn specs(site: &SiteConfig, tags: &[Tag], per_tag: bool) -> Vec<FeedSpec> {
    let mut out = vec![FeedSpec {
        dir: String::new(),
        key: "feed".into(),
        title: site.title.0.clone(),
        description: site.description().to_string(),
        tag: None,
        id: String::new(),
        created: DateTime::<Utc>::UNIX_EPOCH,
    }];
    if per_tag {
        for tag in tags {
            out.push(FeedSpec {
                dir: format!("tags/{}/", tag.slug),
                key: format!("tag/{}", tag.slug),
                title: format!("{}: {}", site.title.0, tag.name),
                description: format!("{} (articles tagged “{}”)", site.description(), tag.name),
                tag: Some(tag.clone()),
                id: String::new(),
                created: DateTime::<Utc>::UNIX_EPOCH,
            });
        }
    }
    out
}

/// The id a feed gets the first time it is built: a `tag:` URI under the site's domain,
/// dated the day it was minted, so a later change of domain or URL leaves it alone.
pub fn mint_feed_id(domain: &str, key: &str, now: DateTime<Utc>) -> String {
    crate::articles::tag_uri(domain, now.date_naive(), key).replace("%2F", "/")
}

/// An article ready for a feed: its settled metadata and its rendered body.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    pub article: &'a Article,
    pub body: &'a Rendered,
}

/// Everything a serializer needs for one feed file.
pub struct Channel<'a> {
    pub site: &'a SiteConfig,
    pub spec: &'a FeedSpec,
    /// Absolute URL this very file is served at (`rel="self"`, `feed_url`).
    pub self_url: String,
    pub hub: Option<&'a str>,
    /// Newest first, already capped.
    pub entries: &'a [Entry<'a>],
}

impl Channel<'_> {
    /// The newest change among the entries, or the feed's creation time when it has none.
    pub fn updated(&self) -> DateTime<Utc> {
        self.entries
            .iter()
            .map(|e| e.article.updated())
            .max()
            .unwrap_or(self.spec.created)
    }

    pub fn home_url(&self) -> &str {
        self.site.base_url.0.as_str()
    }
}

/// Serializes one feed.
pub fn render(format: FeedFormat, channel: &Channel<'_>) -> Vec<u8> {
    match format {
        FeedFormat::Rss => rss::render(channel),
        FeedFormat::Atom => atom::render(channel),
        FeedFormat::Json => json::render(channel),
    }
}

/// Orders articles newest first, ties broken by id so the order never wobbles.
pub fn newest_first(articles: &mut [&Article]) {
    articles.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.id.cmp(&b.id)));
}

/// The media type of an image, from the extension of its URL's path (`None` when unknown: the
/// feeds then name the image without a type rather than guess one).
pub fn image_type(url: &str) -> Option<&'static str> {
    let parsed = url::Url::parse(url).ok()?;
    let name = parsed.path_segments()?.next_back()?;
    let (_, ext) = name.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "svg" => "image/svg+xml",
        _ => return None,
    })
}

/// Rewrites the given escapes (`("&amp;", "&#x26;")`) of an XML document everywhere outside
/// CDATA sections. A character reference means the same character, and the W3C validator
/// reads a line holding `&#x` as deliberately escaped text: a title saying `&amp;` or `<b` is
/// then text, not a "contains HTML" warning. XML writers escape every `&` and `<` outside
/// CDATA, so outside it `&amp;` and `&lt;` only ever stand for those characters.
pub(crate) fn hex_references(xml: &str, escapes: &[(&str, &str)]) -> String {
    let rewrite = |out: &mut String, text: &str| {
        let mut text = std::borrow::Cow::Borrowed(text);
        for (from, to) in escapes {
            if text.contains(from) {
                text = text.replace(from, to).into();
            }
        }
        out.push_str(&text);
    };
    let mut out = String::with_capacity(xml.len() + xml.len() / 16);
    let mut rest = xml;
    while let Some(start) = rest.find("<![CDATA[") {
        rewrite(&mut out, &rest[..start]);
        rest = &rest[start..];
        let end = rest.find("]]>").map(|e| e + 3).unwrap_or(rest.len());
        out.push_str(&rest[..end]);
        rest = &rest[end..];
    }
    rewrite(&mut out, rest);
    out
}

/// A generated feed file held in memory, ready to serve.
#[derive(Debug)]
pub struct FeedFile {
    pub format: FeedFormat,
    pub bytes: Bytes,
    /// Strong validator from the bytes: `"<first 128 bits of sha256>"`.
    pub etag: String,
    /// When these bytes were first built, as the store recorded it: it moves whenever the
    /// bytes change, a back-dated entry or an edit included. `Last-Modified` shows it (never
    /// later than the present) and `If-Modified-Since` is judged against it.
    pub modified: DateTime<Utc>,
    gzip: OnceLock<Bytes>,
    prepared: OnceLock<Prepared>,
}

/// The response header values of one feed file, made on its first request and reused by
/// every poll after it: feed readers poll far more often than feeds change, and building
/// these strings per request was a measurable share of a `304` answer.
#[derive(Debug)]
pub struct Prepared {
    pub etag: http::HeaderValue,
    pub gzip_etag: http::HeaderValue,
    /// `Last-Modified` for [`FeedFile::modified`]; a stamp still ahead of the clock when
    /// first asked is not kept (see [`FeedFile::last_modified`]).
    last_modified: Option<http::HeaderValue>,
}

impl FeedFile {
    pub fn new(format: FeedFormat, bytes: Vec<u8>, modified: DateTime<Utc>) -> Arc<FeedFile> {
        let digest = Sha256::digest(&bytes);
        Arc::new(FeedFile {
            format,
            etag: format!("\"{}\"", hex::encode(&digest[..16])),
            bytes: Bytes::from(bytes),
            modified,
            gzip: OnceLock::new(),
            prepared: OnceLock::new(),
        })
    }

    /// The same bytes, last changed at `modified`.
    pub fn changed_at(&self, modified: DateTime<Utc>) -> Arc<FeedFile> {
        Arc::new(FeedFile {
            format: self.format,
            bytes: self.bytes.clone(),
            etag: self.etag.clone(),
            modified,
            gzip: self.gzip.clone(),
            prepared: OnceLock::new(),
        })
    }

    /// The gzip representation, compressed on first use and kept.
    pub fn gzip(&self) -> &Bytes {
        self.gzip.get_or_init(|| {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.bytes.len() / 3),
                flate2::Compression::default(),
            );
            enc.write_all(&self.bytes)
                .expect("writing to memory cannot fail");
            Bytes::from(enc.finish().expect("writing to memory cannot fail"))
        })
    }

    /// A different representation needs a different strong ETag.
    pub fn gzip_etag(&self) -> String {
        format!("{}-gzip\"", self.etag.trim_end_matches('"'))
    }

    /// Header values for this file, made once.
    pub fn prepared(&self) -> &Prepared {
        self.prepared.get_or_init(|| {
            let value = |s: &str| {
                http::HeaderValue::from_str(s).expect("hex ETags are valid header values")
            };
            Prepared {
                etag: value(&self.etag),
                gzip_etag: value(&self.gzip_etag()),
                last_modified: (self.modified <= Utc::now()).then(|| http_date(self.modified)),
            }
        })
    }

    /// `Last-Modified`: when the bytes last changed, but never later than now (a build served
    /// once its time has come, a clock that went back, another instance's clock).
    pub fn last_modified(&self) -> http::HeaderValue {
        match &self.prepared().last_modified {
            Some(v) => v.clone(),
            None => http_date(self.modified.min(Utc::now())),
        }
    }
}

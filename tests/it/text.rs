//! The text path under stress: articles of random Unicode, entities (good and broken),
//! markup fragments and control characters are parsed, rendered, summarized and serialized
//! without a panic, and every feed made from them still parses.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use herald::articles::{Article, Library, Parsed, Rendered};
use herald::config::{FeedFormat, Site};
use herald::feeds::{self, Channel, Entry};
use proptest::prelude::*;

use super::helpers::*;

/// The issue's own input: an entity, then text whose 12th byte falls inside `ß`.
#[tokio::test]
async fn an_entity_before_multibyte_text_builds() {
    let p = Publication::new();
    p.article(
        "a.html",
        "---\ntitle: A\ndate: 2026-05-02\n---\n<p>&lt; b Straße und mehr</p>\n",
    );
    p.article(
        "b.md",
        "---\ntitle: B\ndate: 2026-05-01\n---\n&lt; b Straße und mehr\n",
    );
    let build = p.build().await;
    assert!(build.problems.is_empty(), "{:?}", build.problems);
    for a in build.articles.iter() {
        assert_eq!(
            build.bodies[&a.hash].summary, "< b Straße und mehr",
            "{}",
            a.title
        );
    }
    for file in ["rss.xml", "atom.xml", "feed.json"] {
        assert_eq!(p.feed(file).entries.len(), 2, "{file}");
    }
}

/// Characters XML 1.0 forbids: none may reach a feed.
fn forbidden_in_xml(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// Element names a plain-text field must not hold as a tag (the JSON Feed checker's list).
const ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "big",
    "blockquote",
    "br",
    "code",
    "del",
    "div",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "iframe",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "object",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "script",
    "small",
    "span",
    "strike",
    "strong",
    "style",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "tt",
    "u",
    "ul",
    "video",
];

/// The first element tag (`<b>`, `</p>`, `<a href=x>`, `<br/>`) in `s`, as HTML would read it.
fn element_tag(s: &str) -> Option<String> {
    for (i, _) in s.match_indices('<') {
        let rest = &s[i + 1..];
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_len);
        let Some(end) = after.find('>') else { continue };
        let attrs = &after[..end];
        let well_formed =
            attrs.is_empty() || attrs.starts_with(char::is_whitespace) || attrs == "/";
        if well_formed
            && !attrs.contains('<')
            && ELEMENTS.contains(&name.to_ascii_lowercase().as_str())
        {
            return Some(s[i..].chars().take(name_len + end + 3).collect());
        }
    }
    None
}

const SAMPLES: &[&str] = &[
    // Scripts, directions, emoji, combining marks.
    "Straße",
    "日本語",
    "テキスト",
    "مرحبا بالعالم",
    "שלום",
    "Ελληνικά",
    "हिन्दी",
    "한국어",
    "🎉",
    "👩\u{200d}👩\u{200d}👧",
    "🇩🇪",
    "e\u{301}",
    "a\u{308}\u{304}",
    "\u{202e}RTL\u{202c}",
    "\u{200f}",
    "\u{feff}",
    "\u{a0}",
    "\u{2028}",
    " ",
    "  ",
    "word",
    "Fish",
    ",",
    ".",
    ";",
    "!",
    "'",
    "\"",
    // Entities, good and broken.
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&apos;",
    "&nbsp;",
    "&copy;",
    "&eacute;",
    "&#169;",
    "&#x1F389;",
    "&#x;",
    "&#;",
    "&#99999999;",
    "&#0;",
    "&#xD800;",
    "&#x110000;",
    "&lt",
    "&amp",
    "&bogus;",
    "&",
    "&&",
    "&#38;",
    "&#x26;lt;",
    // Markup fragments.
    "<b>",
    "</b>",
    "<em>x</em>",
    "<p>",
    "</p>",
    "<br>",
    "<br/>",
    "<a href=\"/x\">",
    "</a>",
    "<a href=\"#1\">",
    "<script>alert(1)</script>",
    "<style>p{}</style>",
    "<img src=x alt=\"y\">",
    "<div id=\"d\">",
    "</div>",
    "<sup>2</sup>",
    "<",
    ">",
    "</",
    "<3",
    "a<b",
    "Vec<T>",
    "]]>",
    "<![CDATA[",
    "<!--",
    "-->",
    "<?xml ?>",
    "<b class=\"c",
    "< b>",
    "<p onclick=\"x()\">",
    "<xmp>",
    "<plaintext>",
    "<table><tr><td>",
    "<ul><li>",
    // Markdown.
    "[^1]",
    "[^n]",
    "\n\n[^1]: note ",
    "\n\n[^n]: other\n\n",
    "**",
    "_",
    "`",
    "\n# ",
    "\n## ",
    "\n- ",
    "\n1. ",
    "| a | b |\n|---|---|\n",
    "[link](/l)",
    "![i](i.png)",
    "~~s~~",
    "\\",
    "\n```\n",
    "    ",
    "> ",
    // Lines and controls.
    "\n",
    "\n\n",
    "\r\n",
    "\t",
    "\u{0}",
    "\u{1}",
    "\u{b}",
    "\u{c}",
    "\u{1f}",
    "\u{7f}",
    "\u{80}",
    "\u{85}",
    "\u{9f}",
    "\u{fffd}",
    "\u{fffe}",
    "\u{ffff}",
    "\u{e026}",
    "\u{e03c}",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(SAMPLES).prop_map(str::to_string),
        2 => any::<char>().prop_map(String::from),
        2 => "\\PC{1,6}",
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..max).prop_map(|v| v.concat())
}

const IMAGES: &[&str] = &[
    "img/a.jpg",
    "https://cdn.example.net/x.PNG?w=1&h=2",
    "/p.svg",
    "日本.webp",
    "a.avif",
    "x.heic",
    "no-extension",
    "sp ace.gif",
];

#[derive(Debug, Clone)]
struct Source {
    ext: &'static str,
    toml: bool,
    title: String,
    summary: Option<String>,
    tags: Vec<String>,
    author: String,
    image: Option<String>,
    body: String,
}

fn source() -> impl Strategy<Value = Source> {
    (
        prop::sample::select(&["md", "html", "txt"][..]),
        any::<bool>(),
        text(6),
        prop::option::of(text(8)),
        prop::collection::vec(text(3), 0..3),
        text(3),
        prop::option::of(prop_oneof![
            3 => prop::sample::select(IMAGES).prop_map(str::to_string),
            1 => text(3),
        ]),
        text(40),
    )
        .prop_map(
            |(ext, toml, title, summary, tags, author, image, body)| Source {
                ext,
                toml,
                // Most titles, tags and names keep a letter, so most articles are published.
                title: format!("T {title}"),
                summary,
                tags: tags.into_iter().map(|t| format!("t{t}")).collect(),
                author: format!("A {author}"),
                image,
                body,
            },
        )
}

/// The file: front matter in YAML or TOML (values quoted by a serializer), then the body.
fn file_text(s: &Source, day: usize) -> String {
    let mut front = Vec::new();
    let quote = |v: &str| {
        if s.toml {
            toml::Value::String(v.to_string()).to_string()
        } else {
            serde_json::to_string(v).unwrap()
        }
    };
    let list = |vs: &[String]| {
        format!(
            "[{}]",
            vs.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")
        )
    };
    let sep = if s.toml { " = " } else { ": " };
    front.push(format!("title{sep}{}", quote(&s.title)));
    front.push(format!(
        "date{sep}{}",
        quote(&format!("2026-05-{:02}", day + 1))
    ));
    if let Some(summary) = &s.summary {
        front.push(format!("summary{sep}{}", quote(summary)));
    }
    front.push(format!("tags{sep}{}", list(&s.tags)));
    front.push(format!(
        "authors{sep}{}",
        list(std::slice::from_ref(&s.author))
    ));
    if let Some(image) = &s.image {
        front.push(format!("image{sep}{}", quote(image)));
    }
    let fence = if s.toml { "+++" } else { "---" };
    format!("{fence}\n{}\n{fence}\n{}", front.join("\n"), s.body)
}

/// What [`publish`] made of some articles.
struct Published {
    read: Vec<(Arc<Parsed>, Arc<Rendered>)>,
    problems: usize,
    feeds: Vec<(FeedFormat, Vec<u8>)>,
}

/// Writes the articles, reads and renders them as herald does, and serializes one feed in
/// every format.
fn publish(site: &Site, sources: &[Source]) -> Published {
    let dir = site.dir.join("articles");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in sources.iter().enumerate() {
        std::fs::write(dir.join(format!("a{i}.{}", s.ext)), file_text(s, i)).unwrap();
    }
    let cfg = &site.config.site;
    let mut library = Library::new(&site.dir, &cfg.base_url.0, cfg.timezone.0);
    let scan = library.scan();
    let read: Vec<_> = scan
        .articles
        .iter()
        .map(|p| {
            let body = library
                .render(p)
                .unwrap_or_else(|e| panic!("rendering must not fail: {e}"));
            (p.clone(), body)
        })
        .collect();
    let start: DateTime<Utc> = "2026-05-01T00:00:00Z".parse().unwrap();
    let articles: Vec<Article> = read
        .iter()
        .enumerate()
        .map(|(i, (p, _))| Article {
            parsed: p.clone(),
            id: format!("tag:news.example.com,2026:{}", p.slug),
            date: start - Duration::hours(i as i64),
        })
        .collect();
    let entries: Vec<Entry<'_>> = articles
        .iter()
        .zip(&read)
        .map(|(article, (_, body))| Entry { article, body })
        .collect();
    let mut spec = feeds::specs(cfg, &[], false).remove(0);
    spec.id = "tag:news.example.com,2026:feed".into();
    let out = FeedFormat::ALL
        .iter()
        .map(|&format| {
            let channel = Channel {
                site: cfg,
                spec: &spec,
                self_url: format!("{BASE}feeds/{}", spec.file(format)),
                hub: None,
                entries: &entries,
            };
            (format, feeds::render(format, &channel))
        })
        .collect();
    Published {
        read,
        problems: scan.problems.len(),
        feeds: out,
    }
}

fn text_site_in(dir: &Path) -> Site {
    std::fs::write(
        dir.join("herald.toml"),
        format!("[site]\ntitle = \"T & <t>\"\ndescription = \"D & <d>\"\nbase_url = \"{BASE}\"\ntimezone = \"Europe/Berlin\"\nauthor = {{ name = \"Desk & <Co>\" }}\n"),
    )
    .unwrap();
    super::helpers::site_in(dir)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_articles_never_panic_and_their_feeds_parse(
        sources in prop::collection::vec(source(), 1..5)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let site = text_site_in(dir.path());
        let Published { read, problems, feeds: out } = publish(&site, &sources);
        prop_assert_eq!(read.len() + problems, sources.len());

        for (p, r) in &read {
            for (what, s) in [("title", &p.title), ("summary", &r.summary)] {
                prop_assert!(element_tag(s).is_none(), "{} {:?} holds {:?}", what, s, element_tag(s));
                prop_assert!(!s.chars().any(|c| c.is_control()), "{} {:?}", what, s);
                prop_assert_eq!(s.trim(), s.as_str());
            }
            prop_assert!(r.summary.chars().count() <= 301, "{:?}", r.summary);
            prop_assert!(!r.html.contains("<script"), "{}", r.html);
            prop_assert!(!r.html.chars().any(forbidden_in_xml), "{:?}", r.html);
        }

        for (format, bytes) in &out {
            let text = std::str::from_utf8(bytes).unwrap();
            prop_assert!(!text.chars().any(forbidden_in_xml), "{:?}: {}", format, text);
            match format {
                FeedFormat::Rss => {
                    let channel = rss::Channel::read_from(&bytes[..]);
                    prop_assert!(channel.is_ok(), "{:?}\n{}", channel.err(), text);
                }
                FeedFormat::Atom => {
                    let feed = atom_syndication::Feed::read_from(&bytes[..]);
                    prop_assert!(feed.is_ok(), "{:?}\n{}", feed.err(), text);
                }
                FeedFormat::Json => {
                    let v = serde_json::from_slice::<serde_json::Value>(bytes);
                    prop_assert!(v.is_ok(), "{}", text);
                }
            }
            let feed = feed_rs::parser::Builder::new()
                .sanitize_content(false)
                .build()
                .parse(&bytes[..]);
            prop_assert!(feed.is_ok(), "{:?}: {:?}\n{}", format, feed.err(), text);
            let feed = feed.unwrap();
            prop_assert_eq!(feed.entries.len(), read.len());
            for (e, (p, _)) in feed.entries.iter().zip(&read) {
                // Every format carries the title's exact characters.
                let title = e.title.as_ref().map(|t| t.content.as_str());
                prop_assert_eq!(title, Some(p.title.as_str()), "{:?}\n{}", format, text);
            }
        }
    }
}

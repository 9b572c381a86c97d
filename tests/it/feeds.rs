//! Feed output, read back by a real feed parser.

use std::time::Duration;

use super::helpers::*;

const TRAPS: &str = "---
title: \"Fish & Chips <3 \\\"quoted\\\" 'single' \u{1} 🎉 <em>in</em> a<b\"
date: 2026-05-01T09:00:00Z
tags: [\"R&D\", \"a<b\", \"machine learning\", \"c/c++\", \"日本語\", \"Ελληνικά\", '\"quoted\"']
authors: [\"Ana <ana@news.example.com>\"]
---

Intro with ]]> in it, <abbr title=\"x]]>y\">an attribute</abbr>, emoji 🎉, Arabic مرحبا بالعالم and Hebrew שלום.

<script>alert('x')</script>
<p onclick=\"steal()\">Click <a href=\"../other/\" onmouseover=\"x()\">relative</a></p>

![image](img/pic.png) and a [root link](/about/) and control \u{b} char.

<iframe src=\"https://evil.example/\"></iframe><style>body{}</style>
";

fn traps() -> Publication {
    let p = Publication::new();
    p.article("traps.md", TRAPS);
    p.article(
        "plain.md",
        "---\ntitle: Plain one\ndate: 2026-04-01\ntags: [machine learning]\n---\nHello.\n",
    );
    p
}

#[tokio::test]
async fn every_format_parses_back_with_the_same_ids_titles_and_order() {
    let p = traps();
    let build = p.build().await;
    assert!(build.problems.is_empty(), "{:?}", build.problems);
    for file in ["rss.xml", "atom.xml", "feed.json"] {
        let feed = p.feed(file);
        assert_eq!(feed.entries.len(), 2, "{file}");
        let first = &feed.entries[0];
        let title = text(&first.title);
        // Control characters dropped, the title's HTML tags removed, every other character
        // kept and escaped correctly for each format.
        assert_eq!(
            title, "Fish & Chips <3 \"quoted\" 'single' 🎉 in a<b",
            "{file}"
        );
        assert_eq!(first.id, "tag:news.example.com,2026-05-01:traps", "{file}");
        assert_eq!(
            feed.entries[1].id, "tag:news.example.com,2026-04-01:plain",
            "{file}"
        );
        assert_eq!(
            first.published.unwrap().to_rfc3339(),
            "2026-05-01T09:00:00+00:00",
            "{file}"
        );
        // The second article's date was written without a time, so it is midnight in Berlin.
        assert_eq!(
            feed.entries[1].published.unwrap().to_rfc3339(),
            "2026-03-31T22:00:00+00:00",
            "{file}"
        );
        let link = first
            .links
            .iter()
            .find(|l| l.rel.as_deref() != Some("self"))
            .unwrap();
        assert_eq!(link.href, "https://news.example.com/traps/", "{file}");
        let tags: Vec<String> = first.categories.iter().map(|c| c.term.clone()).collect();
        for t in [
            "R&D",
            "a<b",
            "machine learning",
            "c/c++",
            "日本語",
            "Ελληνικά",
            "\"quoted\"",
        ] {
            assert!(
                tags.iter().any(|x| x == t),
                "{file}: tag {t:?} missing from {tags:?}"
            );
        }
    }
}

#[tokio::test]
async fn content_is_sanitized_absolutized_and_keeps_its_text() {
    let p = traps();
    p.build().await;
    for file in ["rss.xml", "atom.xml", "feed.json"] {
        let feed = p.feed(file);
        let html = feed.entries[0]
            .content
            .as_ref()
            .and_then(|c| c.body.clone())
            .expect("content");
        for bad in [
            "<script",
            "onclick",
            "onmouseover",
            "<iframe",
            "<style",
            "steal()",
            "\u{b}",
        ] {
            assert!(!html.contains(bad), "{file}: {bad:?} survived in {html}");
        }
        for good in [
            "]]&gt; in it",
            "title=\"x]]&gt;y\"",
            "مرحبا بالعالم",
            "שלום",
            "🎉",
            "href=\"https://news.example.com/other/\"",
            "href=\"https://news.example.com/about/\"",
            "src=\"https://news.example.com/img/pic.png\"",
        ] {
            assert!(html.contains(good), "{file}: {good:?} missing from {html}");
        }
    }
}

#[tokio::test]
async fn rss_marks_tag_guids_as_not_permalinks_and_validates() {
    let p = traps();
    p.build().await;
    let bytes = p.read("feeds/rss.xml");
    let channel = rss::Channel::read_from(&bytes[..]).unwrap();
    use rss::validation::Validate;
    channel.validate().expect("rss crate validation");
    let item = &channel.items()[0];
    let guid = item.guid().unwrap();
    assert!(!guid.is_permalink());
    assert!(item.title().is_some() && item.description().is_some());
    assert!(item.pub_date().unwrap().ends_with("+0000"));
    let text = String::from_utf8(bytes).unwrap();
    // Plain-text elements use hexadecimal references, as the RSS profile asks.
    assert!(text.contains("<title>Fish &#x26; Chips &#x3C;3"), "{text}");
    assert!(text.contains("isPermaLink=\"false\""));
    assert!(
        text.contains("<atom:link href=\"https://news.example.com/feeds/rss.xml\" rel=\"self\"")
    );
    assert!(text.contains("<author>ana@news.example.com (Ana)</author>"));
}

/// What RFC 4287 requires of every feed and entry: atom_syndication checks none of it.
#[tokio::test]
async fn atom_has_every_required_element() {
    let p = traps();
    p.build().await;
    let bytes = p.read("feeds/atom.xml");
    let feed = atom_syndication::Feed::read_from(&bytes[..]).unwrap();
    assert!(feed.id().starts_with("tag:news.example.com,"));
    assert!(!feed.title().as_str().is_empty());
    assert!(!feed.authors().is_empty());
    let selfs: Vec<_> = feed.links().iter().filter(|l| l.rel() == "self").collect();
    assert_eq!(selfs.len(), 1);
    assert_eq!(selfs[0].href(), "https://news.example.com/feeds/atom.xml");
    assert_eq!(feed.updated().to_rfc3339(), "2026-05-01T09:00:00+00:00");
    let mut seen = std::collections::HashSet::new();
    for e in feed.entries() {
        assert!(seen.insert(e.id()), "duplicate id");
        assert!(e.content().is_some() || e.links().iter().any(|l| l.rel() == "alternate"));
        assert!(!e.title().as_str().is_empty());
    }
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.contains("<updated>2026-05-01T09:00:00+00:00</updated>"),
        "{text}"
    );
}

#[tokio::test]
async fn json_feed_has_the_required_members() {
    let p = traps();
    p.build().await;
    let v: serde_json::Value = serde_json::from_slice(&p.read("feeds/feed.json")).unwrap();
    assert_eq!(v["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(v["feed_url"], "https://news.example.com/feeds/feed.json");
    assert_eq!(v["home_page_url"], BASE);
    assert!(v["authors"][0]["name"].is_string());
    let item = &v["items"][0];
    assert!(item["id"].is_string());
    assert_eq!(item["date_published"], "2026-05-01T09:00:00Z");
    assert!(item["content_html"].as_str().unwrap().contains("<p>"));
    assert!(!item["title"].as_str().unwrap().contains('\u{1}'));
}

#[tokio::test]
async fn one_feed_per_tag_with_its_own_id_and_self_link() {
    let p = traps();
    let build = p.build().await;
    for dir in [
        "machine-learning",
        "c-c",
        "日本語",
        "ελληνικά",
        "r-d",
        "a-b",
        "quoted",
    ] {
        for f in ["rss.xml", "atom.xml", "feed.json"] {
            assert!(
                build.feeds.contains_key(&format!("tags/{dir}/{f}")),
                "tags/{dir}/{f}"
            );
        }
    }
    let ml = p.feed("tags/machine-learning/atom.xml");
    assert_eq!(ml.entries.len(), 2);
    let jp = p.feed("tags/日本語/atom.xml");
    assert_eq!(jp.entries.len(), 1);
    let self_link = jp
        .links
        .iter()
        .find(|l| l.rel.as_deref() == Some("self"))
        .unwrap();
    assert_eq!(
        self_link.href,
        "https://news.example.com/feeds/tags/%E6%97%A5%E6%9C%AC%E8%AA%9E/atom.xml"
    );
    assert_ne!(jp.id, p.feed("atom.xml").id);
}

#[tokio::test]
async fn feeds_hold_the_newest_items_only() {
    let p = Publication::with_config("[feeds]\nitems = 3\n");
    for day in 1..=5 {
        p.article(
            &format!("a{day}.md"),
            &format!("---\ntitle: Day {day}\ndate: 2026-05-0{day}\n---\nBody {day}\n"),
        );
    }
    p.build().await;
    let feed = p.feed("rss.xml");
    let titles: Vec<String> = feed.entries.iter().map(|e| text(&e.title)).collect();
    assert_eq!(titles, ["Day 5", "Day 4", "Day 3"]);
}

#[tokio::test]
async fn building_twice_changes_no_file_and_no_mtime() {
    let p = traps();
    let first = p.build().await;
    assert!(!first.changed.is_empty());
    let stamp = |rel: &str| {
        std::fs::metadata(p.path().join("feeds").join(rel))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = first
        .feeds
        .keys()
        .map(|k| (k.clone(), stamp(k), p.read(&format!("feeds/{k}"))))
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    let second = p.build().await;
    assert!(second.changed.is_empty(), "{:?}", second.changed);
    for (k, mtime, bytes) in before {
        assert_eq!(stamp(&k), mtime, "{k} was touched");
        assert_eq!(p.read(&format!("feeds/{k}")), bytes, "{k} changed");
    }
}

#[tokio::test]
async fn a_tag_that_loses_its_articles_loses_its_feed_files() {
    let p = traps();
    p.build().await;
    assert!(p.path().join("feeds/tags/r-d/rss.xml").exists());
    std::fs::remove_file(p.path().join("articles/traps.md")).unwrap();
    let build = p.build().await;
    assert!(
        build.removed.iter().any(|r| r == "tags/r-d/rss.xml"),
        "{:?}",
        build.removed
    );
    assert!(!p.path().join("feeds/tags/r-d").exists());
    assert!(
        p.path()
            .join("feeds/tags/machine-learning/rss.xml")
            .exists()
    );
}

#[tokio::test]
async fn same_day_entries_get_distinct_atom_updated_values() {
    let p = Publication::new();
    for n in 1..=3 {
        p.article(
            &format!("n{n}.md"),
            &format!("---\ntitle: N{n}\ndate: 2026-05-01\n---\nx\n"),
        );
    }
    p.build().await;
    let feed = p.feed("atom.xml");
    let updated: std::collections::HashSet<_> =
        feed.entries.iter().map(|e| e.updated.unwrap()).collect();
    assert_eq!(updated.len(), 3);
    for e in &feed.entries {
        assert_eq!(
            e.published.unwrap().to_rfc3339(),
            "2026-04-30T22:00:00+00:00"
        );
    }
}

#[tokio::test]
async fn an_article_without_text_is_described_by_its_title() {
    let p = Publication::new();
    p.article(
        "img.html",
        "---\ntitle: Only a picture\ndate: 2026-05-01\n---\n<img src=\"/a.png\" alt=\"\">\n",
    );
    p.build().await;
    let text = String::from_utf8(p.read("feeds/rss.xml")).unwrap();
    let desc = text
        .find("<description><![CDATA[Only a picture]]></description>")
        .expect("description");
    assert!(desc < text.find("<content:encoded>").unwrap());
}

#[tokio::test]
async fn only_configured_formats_are_written() {
    let p = Publication::with_config("[feeds]\nformats = [\"atom\"]\nper_tag = false\n");
    p.article(
        "a.md",
        "---\ntitle: A\ndate: 2026-05-01\ntags: [x]\n---\nx\n",
    );
    let build = p.build().await;
    assert_eq!(build.feeds.keys().collect::<Vec<_>>(), ["atom.xml"]);
    assert!(!p.path().join("feeds/rss.xml").exists());
}

/// The item's summary as a reader shows it: RSS `<description>` is HTML, the others text.
fn summary_text(file: &str, e: &feed_rs::model::Entry) -> String {
    let s = e.summary.as_ref().expect("summary present");
    if file == "rss.xml" {
        decode(&s.content)
    } else {
        s.content.clone()
    }
}

fn json_items(p: &Publication, rel: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&p.read(&format!("feeds/{rel}"))).unwrap();
    v["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn atom_titles_and_summaries_are_plain_text_shown_as_written() {
    let p = Publication::new();
    p.article(
        "amp.md",
        "---\ntitle: \"Fish & Chips <3, a<b, &amp; 'q' \\\"qq\\\"\"\ndate: 2026-05-01\nsummary: \"Tom & Jerry <3 &amp; a<b\"\n---\nBody.\n",
    );
    p.build().await;
    let bytes = String::from_utf8(p.read("feeds/atom.xml")).unwrap();
    assert!(!bytes.contains("type=\"html\">Fish"), "{bytes}");
    assert!(!bytes.contains("<summary type="), "{bytes}");
    let feed = p.feed("atom.xml");
    let title = feed.title.as_ref().unwrap();
    assert_eq!(title.content_type.essence().to_string(), "text/plain");
    assert_eq!(title.content, "Test News");
    let subtitle = feed.description.as_ref().unwrap();
    assert_eq!(subtitle.content_type.essence().to_string(), "text/plain");
    assert_eq!(subtitle.content, "Tests & <checks>");
    let e = &feed.entries[0];
    let title = e.title.as_ref().unwrap();
    assert_eq!(title.content_type.essence().to_string(), "text/plain");
    assert_eq!(title.content, "Fish & Chips <3, a<b, &amp; 'q' \"qq\"");
    let summary = e.summary.as_ref().unwrap();
    assert_eq!(summary.content_type.essence().to_string(), "text/plain");
    assert_eq!(summary.content, "Tom & Jerry <3 &amp; a<b");
    // The other formats say the same.
    for file in ["rss.xml", "feed.json"] {
        let e = &p.feed(file).entries[0];
        assert_eq!(
            e.title.as_ref().unwrap().content,
            "Fish & Chips <3, a<b, &amp; 'q' \"qq\"",
            "{file}"
        );
        assert_eq!(summary_text(file, e), "Tom & Jerry <3 &amp; a<b", "{file}");
    }
}

#[tokio::test]
async fn generated_summaries_have_no_space_before_punctuation() {
    let p = Publication::new();
    p.article(
        "md.md",
        "---\ntitle: Markdown\ndate: 2026-05-02\n---\n## Heading\n\nhello <b>x</b>, then [left](/l). *Done*; `code`: **bold**!\n\nSecond.\n",
    );
    p.article(
        "page.html",
        "---\ntitle: HTML\ndate: 2026-05-01\n---\n<p>Caf&eacute; <em>au</em> lait&nbsp;&amp; <a href=\"x\">cr&egrave;me</a>, line<br>break.</p>\n",
    );
    p.build().await;
    for file in ["rss.xml", "atom.xml", "feed.json"] {
        let feed = p.feed(file);
        assert_eq!(
            summary_text(file, &feed.entries[0]),
            "hello x, then left. Done; code: bold!",
            "{file}"
        );
        assert_eq!(
            summary_text(file, &feed.entries[1]),
            "Café au lait & crème, line break.",
            "{file}"
        );
    }
}

#[tokio::test]
async fn front_matter_summaries_lose_their_element_tags() {
    let p = Publication::new();
    p.article(
        "s.md",
        "---\ntitle: S\ndate: 2026-05-01\nsummary: \"<b>Bold</b> news, <i>really</i> & Vec<T> <br/>done\"\n---\nBody.\n",
    );
    p.build().await;
    for file in ["rss.xml", "atom.xml", "feed.json"] {
        let e = &p.feed(file).entries[0];
        assert_eq!(
            summary_text(file, e),
            "Bold news, really & Vec<T> done",
            "{file}"
        );
    }
    let items = json_items(&p, "feed.json");
    assert_eq!(items[0]["summary"], "Bold news, really & Vec<T> done");
}

/// The `(href, id)` of every footnote reference in `html`, and the ids it defines.
fn footnotes(html: &str) -> (Vec<String>, Vec<String>) {
    let hrefs = html
        .split("<a href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|h| h.contains("#herald-fn-"))
        .map(str::to_string)
        .collect();
    let ids = html
        .split(" id=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect();
    (hrefs, ids)
}

#[tokio::test]
async fn footnotes_link_into_their_own_article() {
    let p = Publication::new();
    let text = |day: u32| {
        format!(
            "---\ntitle: T\ndate: 2026-05-0{day}\n---\nA claim[^1] and a second[^why].\n\n[^1]: The source.\n[^why]: Because.\n"
        )
    };
    p.article("one.md", &text(2));
    p.article("two.md", &text(1));
    p.build().await;
    for file in ["rss.xml", "atom.xml", "feed.json"] {
        let feed = p.feed(file);
        let mut all_ids = Vec::new();
        for (e, slug) in feed.entries.iter().zip(["one", "two"]) {
            let html = e.content.as_ref().and_then(|c| c.body.clone()).unwrap();
            let (hrefs, ids) = footnotes(&html);
            assert_eq!(hrefs.len(), 2, "{file}: {html}");
            assert_eq!(ids.len(), 2, "{file}: {html}");
            for (href, id) in hrefs.iter().zip(&ids) {
                let page = format!("https://news.example.com/{slug}/");
                assert_eq!(*href, format!("{page}#{id}"), "{file}: {html}");
                assert!(id.starts_with("herald-fn-"), "{file}: {id}");
            }
            all_ids.extend(ids);
        }
        let distinct: std::collections::HashSet<_> = all_ids.iter().collect();
        assert_eq!(distinct.len(), 4, "{file}: ids clash: {all_ids:?}");
    }
}

#[tokio::test]
async fn images_reach_every_format_with_their_media_type() {
    let p = Publication::new();
    let cases = [
        (
            "a",
            "img/photo.jpg",
            "https://news.example.com/img/photo.jpg",
            Some("image/jpeg"),
        ),
        (
            "b",
            "https://cdn.example.net/p/x.PNG?w=600&h=4",
            "https://cdn.example.net/p/x.PNG?w=600&h=4",
            Some("image/png"),
        ),
        (
            "c",
            "/d.svg",
            "https://news.example.com/d.svg",
            Some("image/svg+xml"),
        ),
        (
            "d",
            "/e.webp",
            "https://news.example.com/e.webp",
            Some("image/webp"),
        ),
        ("e", "/f.heic", "https://news.example.com/f.heic", None),
    ];
    for (day, (slug, image, _, _)) in cases.iter().enumerate() {
        p.article(
            &format!("{slug}.md"),
            &format!(
                "---\ntitle: {slug}\ndate: 2026-05-{:02}\nimage: \"{image}\"\n---\nx\n",
                20 - day
            ),
        );
    }
    p.article("none.md", "---\ntitle: none\ndate: 2026-05-01\n---\nx\n");
    p.build().await;

    let rss = p.feed("rss.xml");
    let atom = p.feed("atom.xml");
    let json = json_items(&p, "feed.json");
    for (i, (slug, _, url, kind)) in cases.iter().enumerate() {
        let media: Vec<_> = rss.entries[i]
            .media
            .iter()
            .flat_map(|m| &m.content)
            .collect();
        assert_eq!(media.len(), 1, "rss {slug}");
        assert_eq!(media[0].url.as_ref().unwrap().as_str(), *url, "rss {slug}");
        assert_eq!(
            media[0].content_type.as_ref().map(|t| t.to_string()),
            kind.map(str::to_string),
            "rss {slug}"
        );
        let links: Vec<_> = atom.entries[i]
            .links
            .iter()
            .filter(|l| l.rel.as_deref() == Some("enclosure"))
            .collect();
        assert_eq!(links.len(), 1, "atom {slug}");
        assert_eq!(links[0].href, *url, "atom {slug}");
        assert_eq!(links[0].media_type.as_deref(), *kind, "atom {slug}");
        assert_eq!(json[i]["image"], *url, "json {slug}");
    }
    assert!(rss.entries[5].media.is_empty());
    assert!(
        atom.entries[5]
            .links
            .iter()
            .all(|l| l.rel.as_deref() != Some("enclosure"))
    );
    assert!(json[5].get("image").is_none());
    let text = String::from_utf8(p.read("feeds/rss.xml")).unwrap();
    assert!(
        text.contains("xmlns:media=\"http://search.yahoo.com/mrss/\""),
        "{text}"
    );
}

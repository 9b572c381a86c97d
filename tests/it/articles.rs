//! Article files in: front matter in both syntaxes, defaults, drafts and scheduled
//! articles, permanent ids, and bad files that stop nothing else.

use chrono::{Duration, Utc};

use super::helpers::*;

#[tokio::test]
async fn yaml_toml_html_and_text_articles_are_all_published() {
    let p = Publication::new();
    p.article("y.md", "---\ntitle: YAML\ndate: 2026-05-04\n---\n*yaml*\n");
    p.article(
        "t.md",
        "+++\ntitle = \"TOML\"\ndate = 2026-05-03T10:00:00Z\n+++\n*toml*\n",
    );
    p.article(
        "h.html",
        "---\ntitle: HTML\ndate: 2026-05-02\n---\n<p>html <b>bold</b></p>\n",
    );
    p.article(
        "sub/dir/notes.txt",
        "Plain title\n\nFirst paragraph\nsecond line.\n\nSecond paragraph.\n",
    );
    let build = p.build().await;
    assert!(build.problems.is_empty(), "{:?}", build.problems);
    let titles: Vec<&str> = build.articles.iter().map(|a| a.title.as_str()).collect();
    // The text file has no date: it was first seen now, so it is the newest.
    assert_eq!(titles, ["Plain title", "YAML", "TOML", "HTML"]);
    let html = &build.bodies[&build.articles[0].hash].html;
    assert_eq!(
        html,
        "<p>First paragraph<br>\nsecond line.</p>\n<p>Second paragraph.</p>\n"
    );
    assert!(
        build.bodies[&build.articles[1].hash]
            .html
            .contains("<em>yaml</em>")
    );
}

#[tokio::test]
async fn summaries_default_to_the_first_paragraph() {
    let p = Publication::new();
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\n## Heading\n\nThe *first* paragraph & more.\n\nSecond.\n");
    p.article(
        "b.md",
        "---\ntitle: B\ndate: 2026-05-02\nsummary: Given summary\n---\nBody.\n",
    );
    let build = p.build().await;
    let summary = |t: &str| {
        let a = build.articles.iter().find(|a| a.title == t).unwrap();
        build.bodies[&a.hash].summary.clone()
    };
    assert_eq!(summary("A"), "The first paragraph & more.");
    assert_eq!(summary("B"), "Given summary");
}

#[tokio::test]
async fn drafts_and_future_articles_are_held_back() {
    let p = Publication::new();
    let tomorrow = (Utc::now() + Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ");
    p.article("now.md", "---\ntitle: Now\ndate: 2026-01-01\n---\nx\n");
    p.article(
        "draft.md",
        "---\ntitle: Draft\ndate: 2026-01-02\ndraft: true\n---\nx\n",
    );
    p.article(
        "later.md",
        &format!("---\ntitle: Later\ndate: {tomorrow}\n---\nx\n"),
    );
    let build = p.build().await;
    assert_eq!(build.published, 1);
    assert_eq!(
        build
            .next_due
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        tomorrow.to_string()
    );
    let feed = p.feed("atom.xml");
    assert_eq!(feed.entries.len(), 1);
    assert_eq!(text(&feed.entries[0].title), "Now");
}

#[tokio::test]
async fn ids_stay_put_when_title_url_and_domain_change() {
    let p = Publication::new();
    p.article(
        "story.md",
        "---\ntitle: First title\ndate: 2026-05-01\n---\nx\n",
    );
    let id = p.build().await.articles[0].id.clone();
    assert_eq!(id, "tag:news.example.com,2026-05-01:story");

    p.article(
        "story.md",
        "---\ntitle: Second title\ndate: 2026-05-02\nurl: /elsewhere/\n---\nx\n",
    );
    let toml = std::fs::read_to_string(p.path().join("herald.toml")).unwrap();
    std::fs::write(
        p.path().join("herald.toml"),
        toml.replace("news.example.com", "moved.example.org"),
    )
    .unwrap();
    let build = p.build().await;
    assert_eq!(build.articles[0].id, id);
    assert_eq!(
        build.articles[0].url,
        "https://moved.example.org/elsewhere/"
    );
    let feed = p.feed("atom.xml");
    assert_eq!(feed.entries[0].id, id);
}

#[tokio::test]
async fn an_undated_article_keeps_the_time_it_was_first_seen() {
    let p = Publication::new();
    p.article("undated.md", "---\ntitle: Undated\n---\nx\n");
    let first = p.build().await.articles[0].date;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    p.article("undated.md", "---\ntitle: Undated, edited\n---\ny\n");
    assert_eq!(p.build().await.articles[0].date, first);
}

#[tokio::test]
async fn a_fresh_store_mints_the_same_id_for_a_dated_article() {
    let p = Publication::new();
    p.article(
        "story.md",
        "---\ntitle: T\ndate: 2026-05-01T10:00:00Z\n---\nx\n",
    );
    let id = p.build().await.articles[0].id.clone();
    std::fs::remove_dir_all(p.path().join("subscribers")).unwrap();
    assert_eq!(p.build().await.articles[0].id, id);
}

#[tokio::test]
async fn one_bad_file_is_reported_by_line_and_the_rest_are_published() {
    let p = Publication::new();
    p.article("good.md", "---\ntitle: Good\ndate: 2026-05-01\n---\nfine\n");
    p.article(
        "bad-yaml.md",
        "---\ntitle: Bad\ndate: 2026-05-01\ntags: [unclosed\n---\nx\n",
    );
    p.article(
        "bad-key.md",
        "+++\ntitle = \"K\"\ncolour = \"red\"\n+++\nx\n",
    );
    p.article("bad-date.md", "---\ntitle: D\ndate: next tuesday\n---\nx\n");
    p.write_bytes(
        "articles/bad-utf8.md",
        b"---\ntitle: U\n---\nline four\n\xc3\x28 broken\n",
    );
    p.article("unclosed.md", "---\ntitle: never closed\n");
    let build = p.build().await;
    let problems: Vec<String> = build.problems.iter().map(|p| p.to_string()).collect();
    let has = |prefix: &str| problems.iter().any(|m| m.starts_with(prefix));
    assert!(has("articles/bad-yaml.md:4: "), "{problems:#?}");
    assert!(
        has("articles/bad-key.md:3: unknown front matter key `colour`"),
        "{problems:#?}"
    );
    assert!(has("articles/bad-date.md:3: `date`"), "{problems:#?}");
    assert!(
        has("articles/bad-utf8.md:5: not valid UTF-8"),
        "{problems:#?}"
    );
    assert!(has("articles/unclosed.md:1: "), "{problems:#?}");
    assert_eq!(problems.len(), 5);
    assert_eq!(build.published, 1);
    assert_eq!(p.feed("rss.xml").entries.len(), 1);
}

#[tokio::test]
async fn duplicate_slugs_and_ids_are_reported() {
    let p = Publication::new();
    p.article("a/same.md", "---\ntitle: One\ndate: 2026-05-01\n---\nx\n");
    p.article("b/same.md", "---\ntitle: Two\ndate: 2026-05-02\n---\nx\n");
    p.article("c.md", "---\ntitle: Three\nid: urn:uuid:1\n---\nx\n");
    p.article("d.md", "---\ntitle: Four\nid: urn:uuid:1\n---\nx\n");
    let build = p.build().await;
    let problems: Vec<String> = build.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        problems
            .iter()
            .any(|m| m.starts_with("articles/b/same.md:1: duplicate slug \"same\"")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|m| m.starts_with("articles/d.md:1: duplicate id")),
        "{problems:?}"
    );
    assert_eq!(build.published, 2);
}

#[tokio::test]
async fn control_characters_are_dropped_not_fatal() {
    let p = Publication::new();
    p.article(
        "c.md",
        "---\ntitle: \"Bell\u{7} and tab\"\ndate: 2026-05-01\n---\nform\u{c}feed\n",
    );
    let build = p.build().await;
    assert!(build.problems.is_empty(), "{:?}", build.problems);
    assert_eq!(build.articles[0].title, "Bell and tab");
}

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
    p.article("undated.md", "---\ntitle: Undated, edited\n---\ny\n");
    // An hour later, by the build's clock.
    let later = p
        .build_at(chrono::Utc::now() + chrono::Duration::hours(1))
        .await;
    assert_eq!(later.articles[0].title, "Undated, edited");
    assert_eq!(later.articles[0].date, first);
}

#[tokio::test]
async fn a_fresh_store_mints_the_same_id_for_a_dated_article() {
    let p = Publication::new();
    p.article(
        "story.md",
        "---\ntitle: T\ndate: 2026-05-01T10:00:00Z\n---\nx\n",
    );
    let id = p.build().await.articles[0].id.clone();
    p.forget_store();
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

/// A build on a thread of its own, failing the test instead of hanging when the build never
/// ends (a build stuck in a read would hold up any timer on its own runtime).
async fn build_within(p: &Publication, secs: u64) -> herald::publish::Build {
    let site = p.site();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let build = rt.block_on(async {
            let store = herald::store::Store::open(&site.store_location().unwrap())
                .await
                .unwrap();
            let build = herald::publish::Publisher::new(site, store.clone())
                .build(Utc::now())
                .await
                .unwrap();
            store.close().await;
            build
        });
        let _ = tx.send(build);
    });
    tokio::time::timeout(std::time::Duration::from_secs(secs), rx)
        .await
        .unwrap_or_else(|_| panic!("the build did not finish within {secs} s"))
        .expect("the build thread panicked")
}

fn problem_lines(build: &herald::publish::Build) -> Vec<String> {
    build.problems.iter().map(|p| p.to_string()).collect()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_loops_under_articles_end_and_are_reported() {
    use std::os::unix::fs::symlink;
    let p = Publication::new();
    p.article("a/one.md", "---\ntitle: One\ndate: 2026-05-01\n---\nx\n");
    p.article("b/two.md", "---\ntitle: Two\ndate: 2026-05-02\n---\nx\n");
    // Two loops: a folder linking to its parent, and two folders linking to each other.
    symlink("..", p.path().join("articles/a/up")).unwrap();
    symlink("../b", p.path().join("articles/a/to-b")).unwrap();
    symlink("../a", p.path().join("articles/b/to-a")).unwrap();
    let build = build_within(&p, 20).await;
    let problems = problem_lines(&build);
    assert_eq!(build.published, 2, "each article once: {problems:#?}");
    // The links are reported, never the real folders, and each file keeps its own path.
    let mut linked: Vec<&str> = problems
        .iter()
        .filter(|m| m.contains(":1: a link to a folder that was already read"))
        .map(|m| m.split(':').next().unwrap())
        .collect();
    linked.sort();
    assert_eq!(
        linked,
        ["articles/a/to-b", "articles/a/up", "articles/b/to-a"],
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
    let sources: Vec<String> = build
        .articles
        .iter()
        .map(|a| a.source.display().to_string())
        .collect();
    assert_eq!(sources, ["articles/b/two.md", "articles/a/one.md"]);

    // A second link to a file that is read already is refused too.
    symlink("a/one.md", p.path().join("articles/alias.md")).unwrap();
    let build = build_within(&p, 20).await;
    assert_eq!(build.published, 2);
    assert!(
        problem_lines(&build).iter().any(|m| m
            == "articles/alias.md:1: a link to articles/a/one.md, which is read already: not read twice"),
        "{:#?}",
        problem_lines(&build)
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_link_to_a_file_outside_the_publication_is_refused_unless_allowed() {
    use std::os::unix::fs::symlink;
    let elsewhere = tempfile::tempdir().unwrap();
    let private = elsewhere.path().join("private.md");
    std::fs::write(&private, "---\ntitle: Host secret\n---\nroot password\n").unwrap();
    std::fs::create_dir(elsewhere.path().join("shelf")).unwrap();
    std::fs::write(
        elsewhere.path().join("shelf/book.md"),
        "---\ntitle: Shelved\n---\nx\n",
    )
    .unwrap();
    let p = Publication::new();
    p.article("fine.md", "---\ntitle: Fine\ndate: 2026-05-01\n---\nx\n");
    symlink(&private, p.path().join("articles/private.md")).unwrap();
    symlink(
        elsewhere.path().join("shelf"),
        p.path().join("articles/shelf"),
    )
    .unwrap();
    // A link that stays inside the publication is followed.
    p.write_bytes(
        "drafts/inside.md",
        b"---\ntitle: Inside\ndate: 2026-05-02\n---\nx\n",
    );
    symlink("../drafts/inside.md", p.path().join("articles/inside.md")).unwrap();

    let build = p.build().await;
    let problems = problem_lines(&build);
    for name in ["private.md", "shelf"] {
        assert!(
            problems
                .iter()
                .any(|m| m.starts_with(&format!("articles/{name}:1: links to "))
                    && m.contains("outside the publication folder")
                    && m.contains("allow_outside")),
            "{name}: {problems:#?}"
        );
    }
    assert_eq!(build.published, 2, "{problems:#?}");
    let rss = String::from_utf8(p.read("feeds/rss.xml")).unwrap();
    assert!(!rss.contains("Host secret") && !rss.contains("root password"));
    assert!(!rss.contains("Shelved") && rss.contains("Inside"));

    let toml = std::fs::read_to_string(p.path().join("herald.toml")).unwrap();
    std::fs::write(
        p.path().join("herald.toml"),
        format!("{toml}\n[articles]\nallow_outside = true\n"),
    )
    .unwrap();
    let build = p.build().await;
    assert!(build.problems.is_empty(), "{:?}", build.problems);
    assert_eq!(build.published, 4);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_cannot_be_read_are_reported_and_the_rest_published() {
    use std::os::unix::fs::symlink;
    let p = Publication::new();
    p.article("good.md", "---\ntitle: Good\ndate: 2026-05-01\n---\nx\n");
    // A link to nothing, and a named pipe (reading it would wait forever).
    symlink("missing.md", p.path().join("articles/dangling.md")).unwrap();
    let fifo = p.path().join("articles/pipe.md");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let build = build_within(&p, 20).await;
    let problems = problem_lines(&build);
    assert!(
        problems
            .iter()
            .any(|m| m.starts_with("articles/dangling.md:1: a link that cannot be followed")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|m| m.starts_with("articles/pipe.md:1: is not a regular file")),
        "{problems:#?}"
    );
    assert_eq!(build.published, 1);
}

#[tokio::test]
async fn an_article_over_the_size_limit_is_refused_with_its_size() {
    let p = Publication::with_config("[articles]\nmax_size = \"10 kB\"\n");
    p.article("small.md", "---\ntitle: Small\ndate: 2026-05-01\n---\nx\n");
    let big = format!(
        "---\ntitle: Huge\ndate: 2026-05-02\n---\n{}\n",
        "All work and no play. ".repeat(2000)
    );
    p.article("huge.md", &big);
    let build = p.build().await;
    let problems = problem_lines(&build);
    assert_eq!(
        problems,
        [
            "articles/huge.md:1: the file is 44 kB, more than [articles] max_size (10 kB): not read (split the article, or raise max_size)"
        ]
    );
    assert_eq!(build.published, 1);
    assert!(
        !String::from_utf8(p.read("feeds/atom.xml"))
            .unwrap()
            .contains("Huge")
    );

    // The default limit is 2 MB.
    let p = Publication::new();
    p.article("ok.md", "---\ntitle: OK\ndate: 2026-05-01\n---\nx\n");
    p.article(
        "fifty.md",
        &format!("---\ntitle: Fifty\n---\n{}", "x".repeat(3_000_000)),
    );
    let build = p.build().await;
    let problems = problem_lines(&build);
    assert_eq!(build.published, 1);
    assert!(
        problems[0].starts_with(
            "articles/fifty.md:1: the file is 3 MB, more than [articles] max_size (2 MB)"
        ),
        "{problems:#?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn file_names_are_shown_escaped_in_every_message() {
    let p = Publication::new();
    p.article("good.md", "---\ntitle: Good\ndate: 2026-05-01\n---\nx\n");
    p.article(
        "evil\nFAKE.md:1: all is well\u{1b}[2K.md",
        "---\ntitle: [broken\n---\nx\n",
    );
    let build = p.build().await;
    let problems = problem_lines(&build);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("articles/evil\\nFAKE.md:1: all is well\\u{1b}[2K.md:"),
        "{problems:#?}"
    );
    // The real binary prints it the same way: one line, no raw escape byte.
    let out = p.herald(&["build"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("evil")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(!lines[0].contains('\u{1b}'), "{err:?}");
    assert!(lines[0].starts_with("articles/evil\\nFAKE.md"), "{err}");
    assert!(!err.lines().any(|l| l.starts_with("FAKE.md")), "{err}");
}

#[tokio::test]
async fn a_vanished_or_emptied_articles_folder_keeps_the_previous_feeds() {
    let p = Publication::new();
    p.article(
        "a.md",
        "---\ntitle: Alpha\ndate: 2026-05-01\ntags: [news]\n---\nx\n",
    );
    p.article("b.md", "---\ntitle: Beta\ndate: 2026-05-02\n---\nx\n");
    let out = p.herald(&["build"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let feeds = [
        "feeds/rss.xml",
        "feeds/atom.xml",
        "feeds/tags/news/feed.json",
    ];
    let before: Vec<Vec<u8>> = feeds.iter().map(|f| p.read(f)).collect();

    // Gone (a deploy swapping folders).
    std::fs::rename(p.path().join("articles"), p.path().join("articles.old")).unwrap();
    let out = p.herald(&["build"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("articles:1: the articles folder is missing"),
        "{err}"
    );
    assert!(err.contains("kept the previous feeds"), "{err}");
    let after: Vec<Vec<u8>> = feeds.iter().map(|f| p.read(f)).collect();
    assert_eq!(before, after, "the feeds were left alone");

    // Back, but empty for a moment.
    std::fs::create_dir(p.path().join("articles")).unwrap();
    let out = p.herald(&["build"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("holds no article files"), "{err}");
    assert!(err.contains("kept the previous feeds"), "{err}");
    let after: Vec<Vec<u8>> = feeds.iter().map(|f| p.read(f)).collect();
    assert_eq!(before, after, "the feeds were left alone");

    // Filled again: published as usual.
    std::fs::remove_dir(p.path().join("articles")).unwrap();
    std::fs::rename(p.path().join("articles.old"), p.path().join("articles")).unwrap();
    let out = p.herald(&["build"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(p.feed("rss.xml").entries.len(), 2);

    // Emptying the feeds on purpose: a draft is left, the rest removed.
    std::fs::remove_file(p.path().join("articles/a.md")).unwrap();
    p.article(
        "b.md",
        "---\ntitle: Beta\ndate: 2026-05-02\ndraft: true\n---\nx\n",
    );
    let out = p.herald(&["build"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(p.feed("rss.xml").entries.len(), 0);
    assert!(!p.path().join("feeds/tags/news").exists());
}

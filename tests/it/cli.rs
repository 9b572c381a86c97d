//! The `herald` binary as a user runs it.

use super::helpers::*;

#[test]
fn init_makes_a_publication_that_checks_and_builds_clean() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("my-news");
    let o = herald_in(dir.path(), &["init", site.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "herald.toml",
        "articles/hello.md",
        "templates",
        ".gitignore",
    ] {
        assert!(site.join(f).exists(), "{f}");
    }
    let o = herald_in(&site, &["check"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = herald_in(&site, &["build"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(site.join("feeds/rss.xml").exists());
    // Running init again refuses to overwrite.
    let o = herald_in(dir.path(), &["init", site.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already holds a herald.toml"));
}

#[test]
fn build_with_a_broken_article_exits_2_naming_file_and_line() {
    let p = Publication::new();
    p.article("good.md", "---\ntitle: Good\ndate: 2026-05-01\n---\nfine\n");
    p.article("broken.md", "---\ntitle: Broken\ndraft: maybe\n---\nx\n");
    let o = p.herald(&["build"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("articles/broken.md:3: `draft` must be true or false"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("1 articles published"),
        "{}",
        stdout(&o)
    );
    assert_eq!(p.feed("rss.xml").entries.len(), 1);

    let o = p.herald(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("articles/broken.md:3:"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bad_config_exits_2_naming_the_key_and_line() {
    let p = Publication::with_config("[feeds]\nitems = \"lots\"\n");
    let o = p.herald(&["build"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("herald.toml:8:"), "{err}");

    let p = Publication::with_config("[http]\nport = 80\n");
    let o = p.herald(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown field `port`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_missing_publication_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = herald_in(dir.path(), &["build"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("herald init DIR"), "{}", stderr(&o));
}

#[test]
fn environment_variables_override_the_file() {
    let p = Publication::new();
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\nx\n");
    let o = herald_command(p.path())
        .arg("build")
        .env("HERALD_FEEDS_FORMATS", "[\"json\"]")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(p.path().join("feeds/feed.json").exists());
    assert!(!p.path().join("feeds/rss.xml").exists());
}

#[test]
fn a_local_base_url_override_does_not_change_the_ids_a_fresh_store_mints() {
    let p = Publication::new();
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\nx\n");
    p.article("b.md", "---\ntitle: B\n---\nundated\n");
    let ids = |p: &Publication| -> Vec<String> {
        let feed = parse_feed(&p.read("feeds/atom.xml"));
        let mut ids: Vec<String> = feed.entries.iter().map(|e| e.id.clone()).collect();
        ids.push(feed.id);
        ids
    };
    let o = herald_command(p.path())
        .arg("build")
        .env("HERALD_SITE_BASE_URL", "http://127.0.0.1:8080/")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let local = ids(&p);
    assert!(
        String::from_utf8_lossy(&p.read("feeds/atom.xml")).contains("http://127.0.0.1:8080/a/"),
        "links follow the override"
    );
    assert!(
        local
            .iter()
            .all(|id| id.starts_with("tag:news.example.com,")),
        "{local:?}"
    );
    // A production store, fresh, without the override: the dated article's id and the
    // feed's id come out the same.
    p.forget_store();
    let o = p.herald(&["build"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let production = ids(&p);
    let dated = |ids: &[String]| ids.iter().find(|i| i.ends_with(":a")).cloned();
    assert_eq!(dated(&local), dated(&production));
    assert!(dated(&production).is_some(), "{production:?}");
    assert_eq!(local.last(), production.last());
}

#[test]
fn unknown_arguments_exit_2() {
    let p = Publication::new();
    assert_eq!(p.herald(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn the_example_publication_builds_clean() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("herald.toml"), copy.path().join("herald.toml")).unwrap();
    copy_dir(&root.join("articles"), &copy.path().join("articles"));
    copy_dir(&root.join("templates"), &copy.path().join("templates"));
    let o = herald_in(copy.path(), &["check"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = herald_in(copy.path(), &["build"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let feed = parse_feed(&std::fs::read(copy.path().join("feeds/atom.xml")).unwrap());
    let mut titles: Vec<String> = feed.entries.iter().map(|e| text(&e.title)).collect();
    titles.sort();
    // Ten files: eight published, one draft, one dated 2027-06-01 09:00 (Europe/London),
    // held back until then.
    let mut expected = vec![
        "Autumn market: apples, oysters & a brass band",
        "Council sets the 2027 budget: what changes for you",
        "Harbour reopens after the summer dredging",
        "Letters: the sea wall, the bus & the bakery",
        "Library opens late on Thursdays",
        "Tide tables for December",
        "Weekend weather: gales, then calm",
        "\u{201c}Forty years on the crossing\u{201d}: an interview with the ferry captain",
    ];
    let regatta = "Summer regatta programme announced";
    let regatta_due = chrono::DateTime::parse_from_rfc3339("2027-06-01T09:00:00+01:00").unwrap();
    if chrono::Utc::now() >= regatta_due {
        expected.push(regatta);
    }
    expected.sort();
    assert_eq!(titles, expected);
    assert!(
        !titles.iter().any(|t| t.contains("(draft)")),
        "the draft is in no feed: {titles:?}"
    );
    if chrono::Utc::now() < regatta_due {
        assert!(
            !titles.iter().any(|t| t == regatta),
            "the future article is held back"
        );
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn run_stops_cleanly_on_sigterm() {
    let p = Publication::new();
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\nx\n");
    // Wait until it serves, then ask it to stop.
    let (mut child, _url) = Child::run(&p, &[]);
    child.term();
    child.line(EXIT, |l| l.contains("shutting down"));
    let status = child.wait(EXIT);
    assert_eq!(status.code(), Some(0), "{}", child.log());
}

#[test]
fn check_names_the_store_and_whether_it_answers() {
    let p = Publication::new();
    let o = p.herald(&["build"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = p.herald(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("store: "))
        .unwrap_or_else(|| panic!("no store line in {out}"));
    match super::helpers::test_database_server() {
        None => assert!(
            line.contains("SQLite file")
                && line.contains("herald.db")
                && line.ends_with("reachable, schema up to date"),
            "{line}"
        ),
        Some(_) => assert!(
            line.starts_with("store: PostgreSQL database \"herald_test_")
                && line.contains(" on 127.0.0.1:")
                && line.ends_with("reachable, schema up to date"),
            "{line}"
        ),
    }

    // A PostgreSQL server nobody listens on: a check problem, exit 2, no password shown.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = super::helpers::herald_command(p.path())
        .env(
            "HERALD_STORE_URL",
            format!("postgres://herald:hunter2@127.0.0.1:{port}/news"),
        )
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "store: PostgreSQL database \"news\" on 127.0.0.1:{port} as herald: cannot connect"
        )),
        "{err}"
    );
    assert!(
        !err.contains("hunter2") && !stdout(&o).contains("hunter2"),
        "{err}"
    );
}

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
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--site")
        .arg(p.path())
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
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--site")
        .arg(p.path())
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
    std::fs::remove_dir_all(p.path().join("subscribers")).unwrap();
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
    assert!(
        feed.entries.len() >= 8,
        "the example publication has at least eight published articles"
    );
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
    let p = Publication::with_config("[http]\nbind = \"127.0.0.1:0\"\n");
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\nx\n");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--site")
        .arg(p.path())
        .arg("run")
        .env("HERALD_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it serves, then ask it to stop.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("serving") {}
    assert!(line.contains("serving"), "{line}");
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

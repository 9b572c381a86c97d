//! What a digest looks like to its reader, sent by the real `herald` binary to a real SMTP
//! server and read back with mail-parser: the size budget under Gmail's clip with the footer
//! inside, "and N more" with a working archive link, the postal address and preferences link
//! in both parts, dates as the site's language writes them, `send --to` after an issue, and
//! the web archive's issue page.

use std::process::Output;

use chrono::{Duration, Utc};
use herald::store::Store;

use super::helpers::*;
use super::smtp::SmtpServer;

const SECRET: &str = "digests-secret-0123456789";
const ADDRESS: &str = "The Test News Company\n1 Quay Street\nSaltmarsh SM1 2AB";

fn config(extra_newsletter: &str) -> String {
    format!(
        "postal_address = \"\"\"\n{ADDRESS}\n\"\"\"\n\n[mail]\nfrom = \"News <news@news.example.com>\"\n\n[[newsletter]]\nid = \"weekly\"\ntitle = \"The Weekly\"\nschedule = \"0 7 * * Fri\"\ntimezone = \"Europe/Berlin\"\n{extra_newsletter}\n"
    )
}

/// Adds confirmed subscribers of `weekly` (the first with a name).
async fn subscribe(p: &Publication, emails: &[&str]) {
    let mut csv = String::from("email,name,newsletters,status\n");
    for (i, e) in emails.iter().enumerate() {
        let name = if i == 0 { "Ann Reader" } else { "" };
        csv.push_str(&format!("{e},{name},weekly,confirmed\n"));
    }
    let site = p.site();
    let store = Store::open(&site.store_location().unwrap()).await.unwrap();
    herald::subscribers::import::import(
        &store,
        csv.as_bytes(),
        "test.csv",
        &["weekly".into()],
        Utc::now(),
        |_| {},
    )
    .await
    .unwrap();
    store.close().await;
}

/// Writes `n` articles dated over the last hours, newest first as `a000`; titles and
/// summaries in several scripts, `long` ones as long as front matter allows in practice.
fn articles(p: &Publication, n: usize, long: bool) {
    let scripts = [
        "Ærøskøbing harbour: naïve façades, señoras and the Zürich ferry",
        "Городской совет обсуждает ремонт набережной и новые часы работы библиотеки",
        "Το λιμάνι ξανανοίγει μετά τη βυθοκόρηση του καλοκαιριού και οι βάρκες επιστρέφουν",
        "港口在夏季疏浚后重新开放，渡轮恢复每日航班，渔民欢迎这一消息",
        "إعادة افتتاح الميناء بعد أعمال التجريف الصيفية وعودة العبارات",
        "गर्मियों की ड्रेजिंग के बाद बंदरगाह फिर से खुला और नौकाएँ लौटीं",
    ];
    for i in 0..n {
        let s = scripts[i % scripts.len()];
        let (title, summary) = if long {
            (
                format!("{i:03} {s} — {s} — {s}"),
                format!("{s}. ").repeat(20),
            )
        } else {
            (
                format!("Article {i:03}"),
                format!("Summary of article {i:03}."),
            )
        };
        let date = (Utc::now() - Duration::minutes(10 + i as i64)).to_rfc3339();
        p.article(
            &format!("a{i:03}.md"),
            &format!(
                "---\ntitle: {}\ndate: {date}\nsummary: {}\nimage: https://news.example.com/img/{i}.jpg\nauthors: [\"Maren Holt\"]\n---\n{}\n",
                serde_json::to_string(&title).unwrap(),
                serde_json::to_string(&summary).unwrap(),
                format!("{s}\n\n").repeat(if long { 10 } else { 1 }),
            ),
        );
    }
}

fn herald_with(p: &Publication, smtp: &SmtpServer, args: &[&str]) -> Output {
    let o = herald_command(p.path())
        .args(args)
        .env("HERALD_SMTP_URL", format!("smtp://127.0.0.1:{}", smtp.port))
        .env("HERALD_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}{}", stdout(&o), stderr(&o));
    o
}

/// A received message, parsed.
struct Mail {
    raw: String,
    subject: String,
    html: String,
    text: String,
    list_unsubscribe: String,
}

fn parse(data: &[u8]) -> Mail {
    let m = mail_parser::MessageParser::default().parse(data).unwrap();
    let raw = String::from_utf8_lossy(data).into_owned();
    let list_unsubscribe = raw
        .lines()
        .find_map(|l| l.strip_prefix("List-Unsubscribe: <"))
        .and_then(|l| l.split('>').next())
        .expect("a List-Unsubscribe header")
        .to_string();
    Mail {
        subject: m.subject().unwrap_or_default().to_string(),
        html: m.body_html(0).unwrap().replace("\r\n", "\n"),
        text: m.body_text(0).unwrap().replace("\r\n", "\n"),
        list_unsubscribe,
        raw,
    }
}

fn mail_to(smtp: &SmtpServer, rcpt: &str) -> Mail {
    let all = smtp.messages();
    let m = all
        .iter()
        .rev()
        .find(|m| m.rcpt.iter().any(|r| r == rcpt))
        .unwrap_or_else(|| panic!("no mail to {rcpt}"));
    parse(&m.data)
}

/// The value of the first `href` whose link text is `text`.
fn href_of(html: &str, text: &str) -> String {
    let end = html
        .find(&format!(">{text}</a>"))
        .unwrap_or_else(|| panic!("no link {text:?} in\n{html}"));
    let start = html[..end].rfind("href=\"").unwrap() + 6;
    let href = &html[start..end];
    href[..href.find('"').unwrap()].replace("&amp;", "&")
}

/// The path of a public URL, to ask the local daemon for it.
fn path_of(url: &str) -> String {
    url.strip_prefix(BASE.trim_end_matches('/'))
        .unwrap_or_else(|| panic!("{url} is not under {BASE}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_long_articles_stay_under_gmails_clip_with_the_footer_inside() {
    // max_articles raised so that only the size guard stands between 200 articles and the clip.
    let p = Publication::with_config(&config("max_articles = 200\n"));
    articles(&p, 300, true);
    subscribe(&p, &["ann@example.org", "bo@example.org"]).await;
    let smtp = SmtpServer::start();
    herald_with(&p, &smtp, &["send", "weekly"]);
    assert_eq!(smtp.count(), 2);
    for rcpt in ["ann@example.org", "bo@example.org"] {
        let m = mail_to(&smtp, rcpt);
        assert!(
            m.html.len() < herald::newsletters::GMAIL_CLIP,
            "the HTML part is {} bytes",
            m.html.len()
        );
        // The footer is inside: the unsubscribe link, the preferences link and the address.
        assert_eq!(href_of(&m.html, "Unsubscribe"), m.list_unsubscribe);
        assert_eq!(href_of(&m.html, "Preferences"), m.list_unsubscribe);
        assert!(m.html.contains("1 Quay Street<br>Saltmarsh SM1 2AB"));
        // Degraded, not emptied: the newest articles are there, the rest counted and linked.
        assert!(
            m.html.contains("000 Ærøskøbing harbour"),
            "the newest article"
        );
        let more = m
            .html
            .split("And ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
            .expect("an \"And N more\" line");
        assert!((100..300).contains(&more), "{more} more");
        assert!(
            m.text
                .contains(&format!("And {more} more articles in this issue")),
            "the text part says the same:\n{}",
            m.text.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
        assert!(m.text.contains(&m.list_unsubscribe));
        assert!(m.text.contains("Saltmarsh SM1 2AB"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_articles_a_digest_says_how_many_more_and_links_to_them() {
    let p = Publication::with_config(&config(""));
    articles(&p, 40, false);
    subscribe(&p, &["ann@example.org"]).await;
    let smtp = SmtpServer::start();
    herald_with(&p, &smtp, &["send", "weekly"]);
    let m = mail_to(&smtp, "ann@example.org");
    assert!(m.html.contains("Article 029") && !m.html.contains("Article 030"));
    assert!(
        m.html
            .contains("Hello Ann Reader, here are 40 new articles")
    );
    let link = "And 10 more articles in this issue, in your browser";
    let more = href_of(&m.html, link);
    assert!(
        m.text.contains(&format!(
            "And 10 more articles in this issue, in your browser: {more}"
        )),
        "{}",
        m.text
    );
    // The link is the issue in the archive, which shows every article.
    assert_eq!(more, href_of(&m.html, "View in browser"));
    let daemon = Daemon::start(&p).await;
    let r = daemon.get(&path_of(&more)).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Article 030") && page.contains("Article 039"),
        "{page}"
    );
    assert!(!page.contains(link), "the archive's copy holds them all");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_parts_carry_the_postal_address_the_preferences_link_images_and_a_preheader() {
    let p = Publication::with_config(&config(""));
    articles(&p, 2, false);
    subscribe(&p, &["ann@example.org"]).await;
    let smtp = SmtpServer::start();
    herald_with(&p, &smtp, &["send", "weekly"]);
    let m = mail_to(&smtp, "ann@example.org");
    assert!(
        m.html
            .contains("The Test News Company<br>1 Quay Street<br>Saltmarsh SM1 2AB"),
        "{}",
        m.html
    );
    assert!(m.text.contains(ADDRESS), "{}", m.text);
    assert_eq!(href_of(&m.html, "Preferences"), m.list_unsubscribe);
    assert!(
        m.text
            .contains(&format!("Preferences: {}", m.list_unsubscribe))
    );
    assert!(
        m.text
            .contains(&format!("Unsubscribe: {}", m.list_unsubscribe))
    );
    // Article images with alt text, a layout of presentation tables, dark-mode colours.
    assert!(
        m.html.contains(
            "<img src=\"https://news.example.com/img/0.jpg\" alt=\"Article 000\" width=\"536\""
        ),
        "{}",
        m.html
    );
    assert!(m.html.contains("role=\"presentation\""));
    assert!(
        m.html
            .contains("<meta name=\"color-scheme\" content=\"light dark\">")
    );
    assert!(
        m.html
            .contains("<meta name=\"supported-color-schemes\" content=\"light dark\">")
    );
    assert!(m.html.contains("@media (prefers-color-scheme: dark)"));
    // The preheader: hidden text naming what the subject does not.
    assert!(m.subject.starts_with("The Weekly: Article 000 and 1 more"));
    let hidden = m.html.find("display: none").expect("a hidden preheader");
    assert!(m.html[hidden..].contains("Article 001"));
    assert!(!m.raw.contains("<div class=\"card\""), "tables, not divs");
}

#[test]
fn dates_read_the_way_the_sites_language_writes_them_without_double_spaces() {
    let cases = [
        ("en", "3 November 2026"),
        ("en-US", "November 3, 2026"),
        ("de", "3. November 2026"),
        ("fr", "3 novembre 2026"),
    ];
    for (language, want) in cases {
        let p = Publication::with_config(&format!("language = \"{language}\"\n{}", config("")));
        p.article(
            "a.md",
            "---\ntitle: Tides\ndate: 2026-11-03T10:00:00Z\n---\nHigh water.\n",
        );
        let text = stdout(&p.herald(&["preview", "weekly", "--text"]));
        assert!(
            text.lines().any(|l| l == want),
            "{language}: no line {want:?} in\n{text}"
        );
        for line in text.lines() {
            assert!(
                !line.trim_start().contains("  "),
                "{language}: a double space in {line:?}"
            );
        }
        let html = stdout(&p.herald(&["preview", "weekly"]));
        assert!(
            html.contains(&format!(">{want}</td>")),
            "{language}: {html}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_after_an_issue_sends_a_faithful_copy_with_harmless_links() {
    let p = Publication::with_config(&config(""));
    articles(&p, 2, false);
    subscribe(&p, &["ann@example.org", "bo@example.org"]).await;
    let smtp = SmtpServer::start();
    herald_with(&p, &smtp, &["send", "weekly"]);
    let real = mail_to(&smtp, "bo@example.org");
    let before = stdout(&herald_with(&p, &smtp, &["subscribers", "export"]));
    let status = stdout(&herald_with(&p, &smtp, &["status"]));

    let o = herald_with(&p, &smtp, &["send", "weekly", "--to", "editor@example.org"]);
    let out = stdout(&o);
    assert!(
        out.contains("issue 1 (") && out.contains("the latest"),
        "says which issue: {out}"
    );
    let copy = mail_to(&smtp, "editor@example.org");
    assert_eq!(copy.subject, real.subject, "the subject of the issue");
    assert_eq!(copy.subject, "The Weekly: Article 000 and 1 more");
    assert!(
        copy.html.contains("Here are 2 new articles") && copy.html.contains("Article 001"),
        "{}",
        copy.html
    );
    assert!(copy.text.contains("Article 001"));
    // Live links: the issue in the archive; an unsubscribe link for no one.
    let archive = href_of(&copy.html, "View in browser");
    assert_eq!(archive, href_of(&real.html, "View in browser"));
    assert!(copy.text.contains(&archive));
    assert_eq!(href_of(&copy.html, "Unsubscribe"), copy.list_unsubscribe);
    assert!(copy.list_unsubscribe.contains("/unsubscribe/"));
    assert!(copy.text.contains(&copy.list_unsubscribe));

    let daemon = Daemon::start_with(
        &p,
        herald::config::Secrets {
            secret: Some(SECRET.into()),
            ..Default::default()
        },
    )
    .await;
    let page = daemon.get(&path_of(&archive)).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Article 001"));
    let unsubscribe = path_of(&copy.list_unsubscribe);
    let page = daemon.text(&unsubscribe).await;
    assert!(page.contains("not on our list"), "{page}");
    let r = daemon
        .client
        .post(format!("{}{unsubscribe}", daemon.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Nothing to do"));
    daemon.stop().await;

    assert_eq!(
        stdout(&herald_with(&p, &smtp, &["subscribers", "export"])),
        before,
        "nobody was unsubscribed"
    );
    assert_eq!(
        stdout(&herald_with(&p, &smtp, &["status"])),
        status,
        "the ledger is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_before_any_issue_links_to_the_archive_list() {
    let p = Publication::with_config(&config(""));
    articles(&p, 2, false);
    let smtp = SmtpServer::start();
    let o = herald_with(&p, &smtp, &["send", "weekly", "--to", "editor@example.org"]);
    assert!(stdout(&o).contains("not made yet"), "{}", stdout(&o));
    let copy = mail_to(&smtp, "editor@example.org");
    assert_eq!(copy.subject, "The Weekly: Article 000 and 1 more");
    let archive = href_of(&copy.html, "View in browser");
    assert_eq!(archive, format!("{BASE}archive/weekly/"));
    let daemon = Daemon::start(&p).await;
    assert_eq!(daemon.get(&path_of(&archive)).await.status(), 200);
    daemon.stop().await;
    let o = herald_with(&p, &smtp, &["status"]);
    assert!(stdout(&o).contains("no issues yet"), "{}", stdout(&o));
}

/// The built-in digest template as it was before the web archive had its own copy: issues
/// stored then carry its footer ("You receive … at {{subscriber.email}}.", Unsubscribe).
const OLD_TEMPLATE: &str = r#"<!doctype html>
<html lang="{{site.language}}">
<head><meta charset="utf-8"><title>{{newsletter.title}}</title>
<style>.footer { font-size: 12px; }</style></head>
<body>
<div class="card">
<p class="masthead"><strong>{{site.title}}</strong> · <a href="{{archive_url}}">View in browser</a></p>
{{#each articles}}<h2><a href="{{url}}">{{title}}</a></h2><p>{{summary}}</p>{{/each}}
</div>
<p class="footer">You receive {{newsletter.title}} from {{site.title}} at {{subscriber.email}}.<br>
<a href="{{unsubscribe_url}}">Unsubscribe</a> · <a href="{{archive_url}}">View this issue in your browser</a> · <a href="{{site.base_url}}">{{site.title}}</a></p>
</body>
</html>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_issue_page_names_no_one_and_offers_a_subscribe_link() {
    let p = Publication::with_config(&config(""));
    articles(&p, 2, false);
    subscribe(&p, &["ann@example.org"]).await;
    let smtp = SmtpServer::start();
    herald_with(&p, &smtp, &["send", "weekly"]);
    let real = mail_to(&smtp, "ann@example.org");
    let archive = href_of(&real.html, "View in browser");

    // An issue stored by the old template, without a web copy.
    let site = p.site();
    let store = Store::open(&site.store_location().unwrap()).await.unwrap();
    p.write_bytes("templates/newsletter.html.hbs", OLD_TEMPLATE.as_bytes());
    let templates =
        herald::templates::Templates::load(&site.templates_dir(), chrono_tz::UTC).unwrap();
    std::fs::remove_file(p.path().join("templates/newsletter.html.hbs")).unwrap();
    let build = herald::publish::Publisher::new(site.clone(), store.clone())
        .build(Utc::now())
        .await
        .unwrap();
    let n = herald::newsletters::Newsletter::all(&site).remove(0);
    let old_at = chrono::DateTime::parse_from_rfc3339("2026-01-02T06:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let chosen: Vec<&herald::articles::Article> = build.articles.iter().collect();
    let facts = herald::newsletters::IssueFacts {
        newsletter: &n,
        scheduled: old_at,
        articles: &chosen,
        archived: true,
    };
    let renderer = herald::articles::Renderer::new(&site.config.site.base_url.0);
    let mut content = herald::newsletters::render(&site, &templates, &renderer, &facts).unwrap();
    content.web = None;
    store
        .create_issue(
            &herald::store::ledger::NewIssue {
                newsletter: "weekly",
                scheduled: old_at,
                title: "An old issue",
                articles: &[],
                content: &serde_json::to_string(&content).unwrap(),
                manual: true,
            },
            old_at,
        )
        .await
        .unwrap();
    store.close().await;

    let daemon = Daemon::start(&p).await;
    let old = format!(
        "/archive/weekly/{}",
        herald::newsletters::issue_slug(old_at)
    );
    for path in [path_of(&archive), old] {
        let r = daemon.get(&path).await;
        assert_eq!(r.status(), 200, "{path}");
        let page = r.text().await.unwrap();
        assert!(page.contains("Article 001"), "{path}: {page}");
        assert!(
            !page.contains(" at ."),
            "{path}: an empty address in\n{page}"
        );
        assert!(!page.contains("You receive"), "{path}: {page}");
        assert!(!page.contains(">Unsubscribe<"), "{path}: {page}");
        assert!(!page.contains("ann@example.org") && !page.contains("Ann Reader"));
        assert_eq!(
            href_of(&page, "Subscribe"),
            format!("{BASE}subscribe"),
            "{path}"
        );
    }
    daemon.stop().await;
}

#[test]
fn check_warns_when_newsletters_have_no_postal_address() {
    let p = Publication::with_config(
        "[[newsletter]]\nid = \"weekly\"\ntitle = \"The Weekly\"\nschedule = \"0 7 * * Fri\"\n",
    );
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\nx\n");
    let o = p.herald(&["check"]);
    assert_eq!(o.status.code(), Some(0), "a warning, not an error");
    assert!(
        stdout(&o).contains("warning: site.postal_address is not set"),
        "{}",
        stdout(&o)
    );
    let p = Publication::with_config(&config(""));
    p.article("a.md", "---\ntitle: A\ndate: 2026-05-01\n---\nx\n");
    let o = p.herald(&["check"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!stdout(&o).contains("postal_address"), "{}", stdout(&o));
}

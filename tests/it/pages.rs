//! The publication's web pages through the real daemon: article pages at their URL's path,
//! tag pages, conditional GET on both, every link herald emits (pages, feeds, digests)
//! answering when herald serves the site itself, and the wording of the sign-up pages.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::Duration;

use herald::config::Secrets;
use herald::subscribers::tokens::{Claims, Keys, Purpose};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::helpers::*;
use super::smtp::SmtpServer;

const SECRET: &str = "pages-secret-0123456789abcdef";

const IMAGE: &str = "https://images.example.org/harbour.jpg";

pub const NEWSLETTERS: &str = "
[subscribe]
requests_per_minute = 100

[[newsletter]]
id = \"weekly\"
title = \"The Weekly\"
schedule = \"0 7 * * Fri\"
timezone = \"Europe/London\"

[[newsletter]]
id = \"daily\"
title = \"Daily Briefing\"
schedule = \"30 6 * * Mon-Fri\"
";

/// A publication whose `base_url` is the address herald itself listens on: the README's
/// local setup (`HERALD_SITE_BASE_URL=http://127.0.0.1:8080/`), on a port of its own.
pub struct Local {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    listener: TcpListener,
}

impl Local {
    /// Binds a port and points the publication's `base_url` at it; articles and CLI runs
    /// (`herald send`) can follow before [`Local::start`].
    pub async fn point(p: &Publication) -> Local {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let toml = std::fs::read_to_string(p.path().join("herald.toml")).unwrap();
        std::fs::write(
            p.path().join("herald.toml"),
            toml.replace(BASE, &format!("{url}/")),
        )
        .unwrap();
        Local { url, listener }
    }

    pub async fn start(self, p: &Publication, secrets: Secrets) -> Running {
        let token = CancellationToken::new();
        let handle = tokio::spawn(herald::daemon::run(
            p.site(),
            self.listener,
            secrets,
            token.clone(),
        ));
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let up = eventually(STARTUP.as_secs_f64(), || async {
            client
                .get(format!("{}/healthz", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(
            up.is_some(),
            "the daemon did not come up within {STARTUP:?}"
        );
        Running {
            url: self.url,
            client,
            token,
            handle,
        }
    }
}

/// A daemon serving its own `base_url`; redirects are not followed.
pub struct Running {
    pub url: String,
    pub client: reqwest::Client,
    token: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(EXIT, self.handle)
            .await
            .expect("the daemon stops")
            .unwrap()
            .unwrap();
    }
}

/// The articles of the link test: every file kind, tags in several scripts, a slug in
/// another script, a relative link in a body, a draft, one dated in the future, one whose
/// `url` is on another site, and more articles than the feeds carry.
pub fn write_articles(p: &Publication, image: &str) {
    p.article(
        "harbour.md",
        &format!("---\ntitle: Harbour reopens & boats return\ndate: 2026-09-14 08:30\nupdated: 2026-09-15 10:00\ntags: [Harbour, Local]\nauthors: [\"Maren Holt <maren@example.org>\", Tom Reed]\nimage: {image}\n---\nAfter eleven weeks, the harbour is open. See [the market](autumn-market/) and [the tides](tide-tables/).\n\n<script>alert(1)</script>\n\n| Berth | Boats |\n|---|---|\n| North | 12 |\n"),
    );
    p.article(
        "2026-10-20-autumn-market.html",
        "---\ntitle: Autumn market\nslug: autumn-market\ndate: 2026-10-20\ntags: [Local, 日本語]\n---\n<p>Stalls along the quay. <a href=\"/tags/local/\">More local news</a>.</p>\n",
    );
    p.article(
        "tide-tables.txt",
        "+++\ndate = \"2026-11-03\"\ntags = [\"Harbour\"]\n+++\nTide tables\n\nHigh water at 06:12.\n",
    );
    p.article(
        "Café Olé.md",
        "---\ntitle: Café reopens\ndate: 2026-11-05\ntags: [Ünïcödé Tag]\n---\nCoffee again.\n",
    );
    p.article(
        "columns/letters.md",
        "---\ntitle: Letters to the editor\ndate: 2026-11-06\nurl: columns/letters/\n---\nDear editor.\n",
    );
    p.article(
        "elsewhere.md",
        "---\ntitle: A story on another site\ndate: 2026-11-07\nurl: https://elsewhere.example.org/story/\ntags: [Local]\n---\nElsewhere.\n",
    );
    p.article(
        "draft.md",
        "---\ntitle: Secret draft\ndate: 2026-01-01\ndraft: true\ntags: [Drafts]\n---\nNot yet.\n",
    );
    p.article(
        "future.md",
        "---\ntitle: The regatta\ndate: 2099-06-01\ntags: [Future]\n---\nLater.\n",
    );
}

/// `href="…"` values of an HTML document, entities decoded.
pub fn hrefs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("href=\"") {
        rest = &rest[i + 6..];
        let Some(end) = rest.find('"') else { break };
        out.push(
            rest[..end]
                .replace("&#x3D;", "=")
                .replace("&#x27;", "'")
                .replace("&#x60;", "`")
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        );
        rest = &rest[end..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_link_herald_emits_answers_when_herald_serves_the_site() {
    let p = Publication::with_config(&format!("{NEWSLETTERS}\n[feeds]\nitems = 3\n"));
    write_articles(&p, IMAGE);
    let local = Local::point(&p).await;
    // A digest in the outbox and in the web archive, made by the real binary.
    let o = p.herald(&[
        "subscribers",
        "add",
        "reader@example.org",
        "--confirmed",
        "--newsletter",
        "weekly",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = p.herald(&["send", "weekly"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let d = local.start(&p, Secrets::default()).await;
    let origin = Url::parse(&d.url).unwrap();

    let mut queue: VecDeque<(String, String)> = VecDeque::new();
    let push = |q: &mut VecDeque<(String, String)>, url: String, from: &str| {
        q.push_back((url, from.to_string()));
    };
    for path in ["/", "/subscribe", "/archive/weekly/"] {
        push(&mut queue, format!("{}{path}", d.url), "(start)");
    }
    for feed in ["rss.xml", "atom.xml", "feed.json"] {
        push(&mut queue, format!("{}/feeds/{feed}", d.url), "(start)");
    }
    let outbox = p.path().join("outbox");
    let emails: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(emails.len(), 1, "one digest in {}", outbox.display());
    let raw = std::fs::read(&emails[0]).unwrap();
    let mail = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let html = mail.body_html(0).unwrap().into_owned();
    let text = mail.body_text(0).unwrap().into_owned();
    let mut from_email = hrefs(&html);
    from_email.extend(
        text.split_whitespace()
            .filter(|w| w.starts_with("http"))
            .map(|w| w.trim_end_matches(['.', ',', ')', '>']).to_string()),
    );
    assert!(
        from_email.iter().any(|l| l.ends_with("/autumn-market/")),
        "the digest links its articles: {from_email:?}"
    );
    for l in from_email {
        push(&mut queue, l, "(the digest)");
    }

    let mut seen: HashSet<String> = HashSet::new();
    let mut failures = Vec::new();
    let mut external = BTreeSet::new();
    let mut pages = BTreeSet::new();
    while let Some((link, from)) = queue.pop_front() {
        let Ok(mut url) = Url::parse(&link) else {
            failures.push(format!("{link:?} (on {from}) is not a URL"));
            continue;
        };
        url.set_fragment(None);
        if url.scheme() == "mailto" {
            continue;
        }
        if url.origin() != origin.origin() {
            external.insert(url.to_string());
            continue;
        }
        if !seen.insert(url.to_string()) {
            continue;
        }
        let r = d.client.get(url.clone()).send().await.unwrap();
        if r.status() != 200 {
            failures.push(format!("{url} (linked from {from}): {}", r.status()));
            continue;
        }
        pages.insert(url.path().to_string());
        let ty = r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let body = r.bytes().await.unwrap();
        let links: Vec<String> = if ty.starts_with("text/html") {
            hrefs(&String::from_utf8_lossy(&body))
        } else if ty.contains("rss") || ty.contains("atom") || ty.contains("feed+json") {
            let feed = parse_feed(&body);
            feed.links
                .iter()
                .map(|l| l.href.clone())
                .chain(
                    feed.entries
                        .iter()
                        .flat_map(|e| e.links.iter().map(|l| l.href.clone())),
                )
                .collect()
        } else {
            Vec::new()
        };
        for l in links {
            match url.join(&l) {
                Ok(u) => push(&mut queue, u.to_string(), url.as_str()),
                Err(e) => failures.push(format!("{l:?} on {url}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "links that do not answer 200:\n{}",
        failures.join("\n")
    );
    for page in [
        "/harbour/",
        "/autumn-market/",
        "/tide-tables/",
        "/caf%C3%A9-ol%C3%A9/",
        "/columns/letters/",
        "/tags/harbour/",
        "/tags/local/",
        "/tags/%E6%97%A5%E6%9C%AC%E8%AA%9E/",
        "/tags/%C3%BCn%C3%AFc%C3%B6d%C3%A9-tag/",
        "/feeds/tags/harbour/atom.xml",
        "/subscribe",
        "/archive/weekly/",
    ] {
        assert!(pages.contains(page), "{page} was reached: {pages:#?}");
    }
    assert!(
        pages.iter().any(|p| p.starts_with("/archive/weekly/2")),
        "the archived issue: {pages:#?}"
    );
    assert!(
        pages.iter().any(|p| p.starts_with("/unsubscribe/")),
        "the digest's unsubscribe page: {pages:#?}"
    );
    assert!(
        external.contains("https://elsewhere.example.org/story/"),
        "an article on another site is linked where it lives: {external:#?}"
    );
    for hidden in ["/draft/", "/future/", "/tags/drafts/", "/tags/future/"] {
        assert!(!pages.contains(hidden), "{hidden} is not linked");
        assert_eq!(d.get(hidden).await.status(), 404, "{hidden}");
    }
    assert_eq!(
        d.get("/story/").await.status(),
        404,
        "an article elsewhere is not served here"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_article_page_shows_the_whole_article_and_answers_conditional_gets() {
    let p = Publication::with_config(&format!("{NEWSLETTERS}\n[feeds]\nitems = 1\n"));
    write_articles(&p, IMAGE);
    let local = Local::point(&p).await;
    let d = local.start(&p, Secrets::default()).await;

    let r = d.get("/harbour/").await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "public, max-age=300");
    assert_eq!(
        h["last-modified"], "Tue, 15 Sep 2026 08:00:00 GMT",
        "`updated` (10:00 in Berlin)"
    );
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 20,
        "a strong ETag: {etag}"
    );
    let html = r.text().await.unwrap();
    for needle in [
        "<h1>Harbour reopens &amp; boats return</h1>",
        "datetime=\"2026-09-14T06:30:00Z\"",
        "September 14, 2026",
        "Maren Holt",
        "Tom Reed",
        &format!("href=\"{}/tags/harbour/\" rel=\"tag\">Harbour</a>", d.url),
        "src=\"https://images.example.org/harbour.jpg\" alt=\"Harbour reopens &amp; boats return\"",
        &format!(
            "<a href=\"{}/autumn-market/\" rel=\"noopener noreferrer\">the market</a>",
            d.url
        ),
        "<td>North</td>",
        &format!("href=\"{}/subscribe\"", d.url),
        &format!(
            "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"Test News (Atom)\" href=\"{}/feeds/atom.xml\">",
            d.url
        ),
    ] {
        assert!(html.contains(needle), "{needle:?} missing in:\n{html}");
    }
    assert!(!html.contains("alert(1)"), "the content is sanitized");

    // The feeds carry one article; the others are rendered for their page all the same.
    let tides = d.get("/tide-tables/").await.text().await.unwrap();
    assert!(tides.contains("High water at 06:12."), "{tides}");

    // Conditional GET: If-None-Match wins over If-Modified-Since.
    let get = |headers: Vec<(&'static str, String)>| {
        let mut rq = d.client.get(format!("{}/harbour/", d.url));
        for (k, v) in headers {
            rq = rq.header(k, v);
        }
        rq.send()
    };
    let r = get(vec![("if-none-match", etag.clone())]).await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    assert!(r.bytes().await.unwrap().is_empty());
    let r = get(vec![(
        "if-modified-since",
        "Tue, 15 Sep 2026 08:00:00 GMT".into(),
    )])
    .await
    .unwrap();
    assert_eq!(r.status(), 304);
    let r = get(vec![
        ("if-none-match", "\"other\"".into()),
        ("if-modified-since", "Tue, 15 Sep 2026 08:00:00 GMT".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "If-None-Match decides");
    let r = get(vec![(
        "if-modified-since",
        "Mon, 14 Sep 2026 00:00:00 GMT".into(),
    )])
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = d
        .client
        .head(format!("{}/harbour/", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert!(r.bytes().await.unwrap().is_empty(), "HEAD has no body");
    // Unchanged articles, unchanged bytes.
    assert_eq!(d.get("/harbour/").await.headers()["etag"], etag.as_str());

    // Other scripts: the path as a browser sends it, or with lower-case escapes.
    for path in ["/caf%C3%A9-ol%C3%A9/", "/caf%c3%a9-ol%c3%a9/"] {
        let r = d.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.text().await.unwrap().contains("Café reopens"));
    }
    // A missing trailing slash is redirected to the article's address.
    let r = d.get("/harbour").await;
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "harbour/");
    // Nested URLs, drafts, future dates, unknown paths.
    assert_eq!(d.get("/columns/letters/").await.status(), 200);
    for path in ["/draft/", "/future/", "/no/such/page/", "/harbour/x/"] {
        let r = d.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.text().await.unwrap().contains("Not found"), "{path}");
    }
    assert_eq!(
        d.client
            .post(format!("{}/harbour/", d.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_page_lists_its_articles_newest_first_and_advertises_its_feeds() {
    let p = Publication::with_config(NEWSLETTERS);
    write_articles(&p, IMAGE);
    let local = Local::point(&p).await;
    let d = local.start(&p, Secrets::default()).await;

    let r = d.get("/tags/harbour/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        r.headers()["last-modified"],
        "Mon, 02 Nov 2026 23:00:00 GMT",
        "Tide tables, the newest article tagged Harbour, dated 2026-11-03 in Berlin"
    );
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let html = r.text().await.unwrap();
    let tides = html.find("Tide tables").expect("Tide tables listed");
    let harbour = html.find("Harbour reopens").expect("Harbour listed");
    assert!(tides < harbour, "newest first");
    assert!(!html.contains("Autumn market"), "only the tag's articles");
    for format in ["rss.xml", "atom.xml", "feed.json"] {
        let href = format!("href=\"{}/feeds/tags/harbour/{format}\"", d.url);
        let link = html
            .lines()
            .find(|l| l.starts_with("<link rel=\"alternate\"") && l.contains(&href))
            .unwrap_or_else(|| panic!("autodiscovery of {href} in:\n{html}"));
        assert!(link.contains("title=\"Test News: Harbour ("), "{link}");
    }
    let r = d
        .client
        .get(format!("{}/tags/harbour/", d.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = d
        .client
        .head(format!("{}/tags/harbour/", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], etag.as_str());

    let r = d.get("/tags/%E6%97%A5%E6%9C%AC%E8%AA%9E/").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("<h1>日本語</h1>"), "{html}");
    assert!(html.contains("/feeds/tags/%E6%97%A5%E6%9C%AC%E8%AA%9E/atom.xml"));
    assert_eq!(
        d.get("/tags/harbour").await.headers()["location"],
        "harbour/"
    );
    for missing in ["/tags/drafts/", "/tags/future/", "/tags/nothing/"] {
        assert_eq!(d.get(missing).await.status(), 404, "{missing}");
    }
    d.stop().await;

    // Without per-tag feeds, a tag page advertises only the whole publication's.
    let p = Publication::with_config("[feeds]\nper_tag = false\n");
    write_articles(&p, IMAGE);
    let local = Local::point(&p).await;
    let d = local.start(&p, Secrets::default()).await;
    let html = d.get("/tags/harbour/").await.text().await.unwrap();
    assert!(!html.contains("/feeds/tags/"), "{html}");
    assert!(html.contains(&format!("href=\"{}/feeds/atom.xml\"", d.url)));
    assert!(
        !html.contains("/subscribe"),
        "no sign-up link without newsletters"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_says_how_often_each_newsletter_comes() {
    let p = Publication::with_config(NEWSLETTERS);
    let d = Daemon::start(&p).await;
    let html = d.text("/subscribe").await;
    for (id, when) in [
        ("weekly", "Sent at 07:00, on Friday (Europe/London time)"),
        (
            "daily",
            "Sent at 06:30, on Monday, Tuesday, Wednesday, Thursday, and Friday (Europe/Berlin time)",
        ),
    ] {
        let described = format!("<p class=\"muted\" id=\"newsletter-{id}-when\">{when}</p>");
        assert!(html.contains(&described), "{described} in:\n{html}");
        assert!(
            html.contains(&format!("aria-describedby=\"newsletter-{id}-when\"")),
            "the checkbox points at its description"
        );
    }
    d.stop().await;
}

/// A subscriber made through the CLI, with an unsubscribe link for `newsletter`.
async fn subscriber_id(p: &Publication, email: &str) -> i64 {
    let store = herald::store::Store::open(&p.site().store_location().unwrap())
        .await
        .unwrap();
    let e = herald::subscribers::Email::parse(email).unwrap();
    let id = store.subscriber_by_email(&e).await.unwrap().unwrap().id;
    store.close().await;
    id
}

fn unsubscribe_token(subscriber: i64, newsletter: Option<&str>) -> String {
    Keys::from_secrets(SECRET).unwrap().sign(&Claims {
        purpose: Purpose::Unsubscribe,
        subscriber,
        newsletter: newsletter.map(str::to_string),
        nonce: None,
        expires: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_one_newsletter_says_what_still_comes() {
    let p = Publication::with_config(NEWSLETTERS);
    let o = p.herald(&[
        "subscribers",
        "add",
        "two@example.org",
        "--confirmed",
        "--newsletter",
        "weekly",
        "--newsletter",
        "daily",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = subscriber_id(&p, "two@example.org").await;
    let secrets = Secrets {
        secret: Some(SECRET.into()),
        ..Secrets::default()
    };
    let d = Daemon::start_with(&p, secrets).await;
    let post = |token: String| {
        d.client
            .post(format!("{}/unsubscribe/{token}", d.url))
            .send()
    };

    let page = post(unsubscribe_token(id, Some("weekly")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<h1>You left The Weekly</h1>"), "{page}");
    assert!(
        page.contains("You will no longer receive The Weekly. You still receive Daily Briefing."),
        "{page}"
    );
    assert!(!page.contains("is unsubscribed"), "{page}");

    // The same link again: nothing changes, and the page still says what comes.
    let page = post(unsubscribe_token(id, Some("weekly")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("already left The Weekly")
            && page.contains("You still receive Daily Briefing."),
        "{page}"
    );

    // The last one.
    let page = post(unsubscribe_token(id, Some("daily")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<h1>You are unsubscribed</h1>"), "{page}");
    assert!(
        page.contains("You will no longer receive Daily Briefing.")
            && page.contains("will get no more email from Test News"),
        "{page}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_link_opened_again_says_you_are_already_subscribed() {
    let smtp = SmtpServer::start();
    let p = Publication::with_config(NEWSLETTERS);
    let secrets = Secrets {
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        secret: Some(SECRET.into()),
        admin_token: None,
    };
    let d = Daemon::start_with(&p, secrets).await;
    let r = d
        .client
        .post(format!("{}/subscribe", d.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=again%40example.org&newsletters=weekly")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(smtp.wait_for(1, Duration::from_secs(10)), "the email comes");
    let mail = mail_parser::MessageParser::default()
        .parse(&smtp.messages()[0].data)
        .unwrap()
        .body_text(0)
        .unwrap()
        .into_owned();
    let link = mail
        .split_whitespace()
        .find(|w| w.contains("/confirm/"))
        .unwrap()
        .replace(BASE, &format!("{}/", d.url));
    let done = d.client.post(&link).send().await.unwrap();
    assert!(done.text().await.unwrap().contains("You are subscribed"));

    // Opened again from the email, and its button pressed again.
    let page = d
        .client
        .get(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let again = d
        .client
        .post(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for page in [page, again] {
        assert!(
            page.contains("<h1>You are already subscribed</h1>"),
            "{page}"
        );
        assert!(
            page.contains("again@example.org already receives The Weekly."),
            "{page}"
        );
        assert!(!page.contains("sign up again"), "{page}");
    }

    // Someone who left since is told the link is used up, and may sign up again.
    let id = subscriber_id(&p, "again@example.org").await;
    d.client
        .post(format!(
            "{}/unsubscribe/{}",
            d.url,
            unsubscribe_token(id, None)
        ))
        .send()
        .await
        .unwrap();
    let page = d
        .client
        .get(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Link already used") && page.contains("sign up again"),
        "{page}"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_check_renders_the_article_and_tag_templates_and_an_override_is_served() {
    let p = Publication::new();
    write_articles(&p, IMAGE);
    p.article(
        "feeds.md",
        "---\ntitle: Taken\ndate: 2026-11-01\nurl: feeds/taken/\n---\nx\n",
    );
    let o = p.herald(&["check"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("warning: articles/feeds.md: its address https://news.example.com/feeds/taken/ is one of herald's own pages"),
        "{}",
        stdout(&o)
    );

    p.write_bytes(
        "templates/tag.html.hbs",
        b"{{#> layout}}\n<h1>{{tag.name}}</h1>\n{{tag.nope}}\n{{/layout}}\n",
    );
    let o = p.herald(&["check"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("templates/tag.html.hbs:3: no variable `tag.nope`"),
        "{}",
        stderr(&o)
    );

    std::fs::remove_file(p.path().join("templates/tag.html.hbs")).unwrap();
    p.write_bytes(
        "templates/article.html.hbs",
        b"{{#> layout}}\n<h1 class=\"mine\">{{article.title}}</h1>\n{{#each article.tags}}<a href=\"{{url}}\">{{name}}</a>{{/each}}\n{{/layout}}\n",
    );
    let o = p.herald(&["check"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let d = Daemon::start(&p).await;
    let html = d.text("/harbour/").await;
    assert!(
        html.contains("<h1 class=\"mine\">Harbour reopens &amp; boats return</h1>"),
        "{html}"
    );
    assert!(html.contains("<a href=\"https://news.example.com/tags/harbour/\">Harbour</a>"));
    assert_eq!(d.get("/feeds/taken/").await.status(), 404);
    d.stop().await;
}

//! `herald check`: validate the configuration (already loaded by the caller), every article
//! and every template, without writing anything. Exit 0 only when all is clean.

use std::collections::BTreeMap;
use std::process::ExitCode;

use chrono::Utc;

use crate::articles::{Article, Library};
use crate::config::Site;
use crate::error::EXIT_BAD_INPUT;
use crate::newsletters::Newsletter;
use crate::templates::{Flavor, Templates};

/// Page and email templates checked against [`sample_page_context`] (the newsletter
/// templates are checked per newsletter).
const PAGE_TEMPLATES: &[(Flavor, &str)] = &[
    (Flavor::Html, "home"),
    (Flavor::Html, "article"),
    (Flavor::Html, "tag"),
    (Flavor::Html, "message"),
    (Flavor::Html, "subscribe"),
    (Flavor::Html, "confirm"),
    (Flavor::Html, "unsubscribe"),
    (Flavor::Html, "archive"),
    (Flavor::Html, "confirm_email"),
    (Flavor::Text, "confirm_email"),
    (Flavor::Text, "confirm_email_subject"),
];

/// Every variable the page templates may use, with sample values.
fn sample_page_context(site: &Site) -> serde_json::Value {
    let cfg = &site.config;
    let url = |p: &str| cfg.site.url(p);
    serde_json::json!({
        "site": {"title": cfg.site.title.0, "description": cfg.site.description(), "base_url": cfg.site.base_url.0.as_str(), "language": cfg.site.language},
        "feeds": [{"title": "Sample (RSS)", "type": "application/rss+xml", "href": url("feeds/rss.xml")}],
        "page_title": "Sample",
        "articles": [{"title": "A sample article", "url": url("sample/"), "date": "2026-05-01T09:00:00Z", "tags": [{"name": "Sample", "slug": "sample", "url": url("tags/sample/")}], "summary": "A summary."}],
        "article": {"id": "tag:example.com,2026-05-01:sample", "title": "A sample article", "url": url("sample/"), "date": "2026-05-01T09:00:00Z", "updated": "2026-05-02T09:00:00Z",
                    "authors": [{"name": "Sam Writer", "email": "sam@example.com"}], "tags": [{"name": "Sample", "slug": "sample", "url": url("tags/sample/")}],
                    "image": url("sample.jpg"), "summary": "A summary.", "content_html": "<p>A paragraph.</p>"},
        "tag": {"name": "Sample", "slug": "sample", "url": url("tags/sample/"), "count": 1,
                "feeds": [{"label": "RSS", "type": "application/rss+xml", "href": url("feeds/tags/sample/rss.xml")}]},
        "subscribe_url": url("subscribe"),
        "heading": "A heading",
        "message": "A message.",
        "newsletters": [{"id": "sample", "title": "A sample newsletter", "checked": true, "schedule": "Sent at 07:00, on Friday (UTC time)"}],
        "newsletter": {"id": "sample", "title": "A sample newsletter"},
        "form": {"email": "reader@example.com", "name": "Sam Reader"},
        "error": null,
        "email": "reader@example.com",
        "subscribed": true,
        "issues": [{"title": "A sample issue", "date": "2026-05-01T09:00:00Z", "url": url("archive/sample/2026-05-01-090000")}],
        "subscriber": {"email": "reader@example.com", "name": "Sam Reader"},
        "confirm_url": url("confirm/SAMPLE"),
        "expires_at": "2026-05-08T09:00:00Z",
    })
}

pub fn run(site: &Site) -> anyhow::Result<ExitCode> {
    let mut errors = 0usize;
    let cfg = &site.config;
    println!(
        "config: {} OK ({})",
        site.relative(&site.dir.join("herald.toml")).display(),
        cfg.site.base_url.0
    );

    // The store: which one, and whether it answers (nothing is created or migrated here).
    match site.store_location() {
        Ok(location) => {
            // On a thread of its own, so that `run` may also be called from async code.
            let probe = std::thread::scope(|s| {
                s.spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(anyhow::Error::from)
                        .and_then(|rt| rt.block_on(crate::store::Store::probe(&location)))
                })
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the store probe failed")))
            });
            match probe {
                Ok(state) => println!("store: {location}: {state}"),
                Err(e) => {
                    eprintln!("store: {location}: {e:#}");
                    errors += 1;
                }
            }
        }
        Err(e) => {
            eprintln!("store: {e:#}");
            errors += 1;
        }
    }

    let mut library = Library::for_site(site);
    let scan = library.scan();
    for p in &scan.problems {
        eprintln!("{p}");
    }
    errors += scan.problems.len();
    let now = Utc::now();
    let drafts = scan.articles.iter().filter(|a| a.draft).count();
    let scheduled = scan
        .articles
        .iter()
        .filter(|a| !a.draft && a.date.is_some_and(|d| d > now))
        .count();
    println!(
        "articles: {} read, {} good ({} drafts, {} scheduled for later), {} with problems",
        scan.articles.len() + scan.problems.len(),
        scan.articles.len(),
        drafts,
        scheduled,
        scan.problems.len()
    );
    // An article whose address herald's own pages take (`feeds/…`, `tags/…`) is not served.
    let base = &cfg.site.base_url.0;
    for a in scan.articles.iter().filter(|a| !a.draft) {
        if let Some(rel) = crate::http::site::served_path(base, &a.url)
            && crate::http::site::reserved(&rel)
        {
            println!(
                "warning: {}: its address {} is one of herald's own pages, so herald will not serve it (set `slug` or `url`)",
                a.source.display(),
                a.url
            );
        }
    }
    // Different tags that fold into one feed are worth knowing about.
    let mut by_slug: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for a in &scan.articles {
        for t in &a.tags {
            let names = by_slug.entry(&t.slug).or_default();
            if !names.contains(&t.name.as_str()) {
                names.push(&t.name);
            }
        }
    }
    for (slug, names) in &by_slug {
        if names.len() > 1 {
            println!(
                "warning: tags {} share one feed (feeds/tags/{slug}/)",
                names
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    // Templates: every page and email template rendered against a sample, so a typo fails
    // here and not in front of a reader or at the 40,000th email.
    let templates = match Templates::load(&site.templates_dir(), cfg.site.timezone.0) {
        Ok(t) => Some(t),
        Err(es) => {
            for e in &es {
                eprintln!("{e}");
            }
            errors += es.len();
            None
        }
    };
    if let Some(t) = &templates {
        let sample = sample_page_context(site);
        let mut failed = 0;
        for (flavor, name) in PAGE_TEMPLATES {
            if let Err(e) = t.render(*flavor, name, &sample) {
                eprintln!("{e}");
                failed += 1;
            }
        }
        errors += failed;
        if failed == 0 {
            println!("templates: pages and the confirmation email render");
        }
    }

    // Newsletters: schedules, next fire times, and their templates against sample articles.
    {
        let newsletters = Newsletter::all(site);
        {
            let now = Utc::now();
            let sample: Vec<Article> = scan
                .articles
                .iter()
                .take(3)
                .map(|p| Article {
                    id: crate::articles::tag_uri(&cfg.site.domain(), now.date_naive(), &p.slug),
                    date: p.date.unwrap_or(now),
                    parsed: p.clone(),
                })
                .collect();
            let sample: Vec<&Article> = sample.iter().collect();
            if !newsletters.is_empty() && cfg.site.postal_address.is_none() {
                println!(
                    "warning: site.postal_address is not set: digests are commercial email, which must show the sender's postal address (CAN-SPAM in the US, and elsewhere)"
                );
            }
            for n in &newsletters {
                println!(
                    "newsletter {} ({}): {}",
                    n.id(),
                    n.title(),
                    n.schedule.describe()
                );
                for t in n.schedule.upcoming(now, 3) {
                    println!(
                        "  next: {}  ({} UTC)",
                        t.with_timezone(&n.zone()).format("%a %Y-%m-%d %H:%M:%S %Z"),
                        t.format("%Y-%m-%d %H:%M:%S")
                    );
                }
                if let Some(t) = &templates
                    && let Err(e) = crate::newsletters::check_templates(site, t, n, &sample)
                {
                    eprintln!("{e}");
                    errors += 1;
                }
            }
        }
    }

    // Mail: the relay URL, the From address, the DKIM key.
    let secrets = crate::config::Secrets::from_env();
    match crate::mail::Transport::from_site(site, secrets.smtp_url.as_deref()) {
        Ok(t) => {
            println!("mail: {}", t.describe());
            if let crate::mail::Transport::Smtp(target) = &t
                && target.is_plaintext_remote()
            {
                println!(
                    "warning: {target} can be plaintext to a remote host: use smtps:// or ?tls=required"
                );
            }
        }
        Err(e) => {
            eprintln!("{e}");
            errors += 1;
        }
    }
    if let Err(e) = crate::mail::message::Composer::new(site) {
        eprintln!("herald.toml: {e}");
        errors += 1;
    }

    if errors > 0 {
        eprintln!("check: {errors} problem(s)");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    println!("check: all clean");
    Ok(ExitCode::SUCCESS)
}

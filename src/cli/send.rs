//! `herald send ID` (make an issue now and deliver it, with progress), its `--dry-run` and
//! `--to` forms, and `herald preview ID`. A test copy and a preview show the issue `send`
//! would send now, or the latest one when nothing is new, with links that work and an
//! unsubscribe link that changes nothing.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{SubsecRound, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::{Secrets, Site};
use crate::delivery::Delivery;
use crate::error::{BadInput, EXIT_RUNTIME};
use crate::mail::message::{Composer, Digest};
use crate::mail::{Sender, Transport};
use crate::newsletters::scheduler::{Issuer, Made};
use crate::newsletters::{IssueContent, IssueFacts, Newsletter, Recipient, issue_slug, render};
use crate::publish::{Build, Publisher};
use crate::store::Store;
use crate::store::subscribers::ListFilter;
use crate::subscribers::confirmations::load_keys;
use crate::subscribers::tokens::{Claims, Purpose};
use crate::subscribers::{Email, Status};
use crate::templates::Templates;

/// What `send` and `preview` share: the site loaded, articles read, the newsletter found.
struct Setup {
    site: Arc<Site>,
    store: Store,
    templates: Arc<Templates>,
    newsletter: Newsletter,
    build: Build,
}

async fn setup(site: Arc<Site>, id: &str) -> anyhow::Result<Setup> {
    let newsletters = Newsletter::all(&site);
    let newsletter = newsletters
        .into_iter()
        .find(|n| n.id() == id)
        .ok_or_else(|| {
            let known: Vec<&str> = site
                .config
                .newsletters
                .iter()
                .map(|n| n.id.0.as_str())
                .collect();
            BadInput(format!(
                "there is no newsletter {id:?} (configured: {})",
                known.join(", ")
            ))
        })?;
    let templates = Templates::load(&site.templates_dir(), site.config.site.timezone.0)
        .map_err(|e| BadInput(e.join("\n")))?;
    let store = Store::open(&site.store_location()?).await?;
    let build = Publisher::new(site.clone(), store.clone())
        .build(Utc::now())
        .await?;
    for p in &build.problems {
        eprintln!("warning: {p} (left out)");
    }
    Ok(Setup {
        site,
        store,
        templates: Arc::new(templates),
        newsletter,
        build,
    })
}

pub async fn send(
    site: Arc<Site>,
    id: &str,
    dry_run: bool,
    to: Option<String>,
) -> anyhow::Result<ExitCode> {
    let s = setup(site, id).await?;
    let result = if dry_run {
        dry(&s).await
    } else if let Some(to) = to {
        test_copy(&s, &to).await
    } else {
        deliver(&s).await
    };
    s.store.close().await;
    result
}

async fn dry(s: &Setup) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let issuer = Issuer::new(s.site.clone(), s.store.clone(), s.templates.clone());
    let articles = issuer
        .articles_for(&s.newsletter, now, &s.build.articles)
        .await?;
    println!(
        "newsletter {} ({}): an issue now would carry {} articles:",
        s.newsletter.id(),
        s.newsletter.title(),
        articles.len()
    );
    for a in &articles {
        println!("  {}  {}", a.date.format("%Y-%m-%d %H:%M"), a.title);
    }
    if articles.is_empty() && s.newsletter.config.skip_empty {
        println!("nothing new: no issue would be made (skip_empty = true)");
    }
    let filter = ListFilter {
        status: Some(Status::Confirmed),
        newsletter: Some(s.newsletter.id().to_string()),
        after: 0,
        limit: 10,
    };
    let first = s.store.list_subscribers(&filter).await?;
    let counts = s.store.subscriber_counts().await?;
    let total = counts
        .by_newsletter
        .get(s.newsletter.id())
        .copied()
        .unwrap_or(0);
    println!("recipients: {total} confirmed subscribers");
    for r in &first {
        println!("  {}", r.email);
    }
    if total > first.len() as i64 {
        println!("  … and {} more", total - first.len() as i64);
    }
    println!("dry run: nothing was sent and no issue was made");
    Ok(ExitCode::SUCCESS)
}

/// What a test copy or a preview is a copy of.
struct IssueCopy {
    content: IssueContent,
    /// For the output: "issue 3 (2026-11-27-070000, …)" or "the issue an issue now would be".
    what: String,
}

/// The issue `herald send ID` would send now: an unfinished one it would resume, else the
/// one it would make (rendered, not stored), else — nothing new — the latest one as stored.
/// None when there is nothing at all (no issue yet and nothing to put in one).
async fn copy_of(s: &Setup) -> anyhow::Result<Option<IssueCopy>> {
    let now = Utc::now().trunc_subsecs(0);
    let stored = |i: crate::store::ledger::Issue, why: &str| -> anyhow::Result<IssueCopy> {
        let content: IssueContent = serde_json::from_str(&i.content)
            .with_context(|| format!("reading issue {} as stored", i.id))?;
        Ok(IssueCopy {
            content,
            what: format!(
                "issue {} ({}, \"{}\"; {why})",
                i.id,
                issue_slug(i.scheduled),
                i.title
            ),
        })
    };
    let unfinished = s
        .store
        .issue_counts(None, 50, now)
        .await?
        .into_iter()
        .find(|c| c.newsletter == s.newsletter.id() && c.queued + c.sending > 0);
    if let Some(c) = unfinished
        && let Some(i) = s.store.issue(c.issue).await?
    {
        return stored(i, "unfinished: `herald send` resumes it").map(Some);
    }
    let latest = s.store.issues(s.newsletter.id(), 1).await?.pop();
    if let Some(i) = latest.as_ref().filter(|i| i.scheduled >= now) {
        // Made this very second: `herald send` now would find it made.
        return stored(i.clone(), "the latest: nothing is new since").map(Some);
    }
    let issuer = Issuer::new(s.site.clone(), s.store.clone(), s.templates.clone());
    let articles = issuer
        .articles_for(&s.newsletter, now, &s.build.articles)
        .await?;
    if articles.is_empty()
        && let Some(i) = latest
    {
        return stored(i, "the latest: nothing is new since").map(Some);
    }
    if articles.is_empty() && s.newsletter.config.skip_empty {
        return Ok(None);
    }
    let facts = IssueFacts {
        newsletter: &s.newsletter,
        scheduled: now,
        articles: &articles,
        archived: false,
    };
    let content = render(&s.site, &s.templates, &issuer.renderer, &facts).map_err(BadInput)?;
    Ok(Some(IssueCopy {
        content,
        what: format!(
            "the issue `herald send {}` would make now ({} articles, \"{}\"; not made yet)",
            s.newsletter.id(),
            articles.len(),
            facts.title()
        ),
    }))
}

/// An unsubscribe link that works and changes nothing: correctly signed, for subscriber 0,
/// which no one is (ids start at 1), so its page and its one-click POST say there is
/// nothing to unsubscribe.
async fn harmless_unsubscribe_url(s: &Setup) -> anyhow::Result<(String, String)> {
    let secrets = Secrets::from_env();
    let keys = load_keys(&s.store, secrets.secret.as_deref()).await?;
    let token = keys.sign(&Claims {
        purpose: Purpose::Unsubscribe,
        subscriber: 0,
        newsletter: Some(s.newsletter.id().to_string()),
        nonce: None,
        expires: None,
    });
    Ok((
        s.site.config.site.url(&format!("unsubscribe/{token}")),
        token,
    ))
}

async fn test_copy(s: &Setup, to: &str) -> anyhow::Result<ExitCode> {
    let email = Email::parse(to).map_err(BadInput)?;
    let Some(copy) = copy_of(s).await? else {
        println!(
            "nothing to send: {} has no issue yet and nothing new (skip_empty = true)",
            s.newsletter.id()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let composer = Composer::new(&s.site).map_err(BadInput)?;
    let (unsubscribe, token) = harmless_unsubscribe_url(s).await?;
    let secrets = Secrets::from_env();
    let transport = Transport::from_site(&s.site, secrets.smtp_url.as_deref()).map_err(BadInput)?;
    let mut sender = Sender::new(transport.clone(), s.site.config.mail.timeout.0);
    let eight_bit = sender
        .eight_bit()
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", transport.describe()))?;
    let digest = Digest {
        newsletter_id: s.newsletter.id(),
        newsletter_title: s.newsletter.title(),
        // Issue 0 is no issue: the Message-ID cannot be one a subscriber got.
        issue: 0,
        row: Utc::now().timestamp_millis(),
        content: &copy.content,
        to_email: email.as_str(),
        to_name: "",
        unsubscribe_url: &unsubscribe,
        unsubscribe_token: &token,
    };
    let out = composer.compose(&digest, eight_bit)?;
    sender
        .send(&out)
        .await
        .map_err(|e| anyhow::anyhow!("sending the test copy to {email}: {e}"))?;
    sender.close().await;
    println!(
        "sent a test copy of {} {} to {email} via {}",
        s.newsletter.title(),
        copy.what,
        transport.describe()
    );
    println!(
        "its unsubscribe link is for no subscriber and changes nothing; the ledger is unchanged"
    );
    Ok(ExitCode::SUCCESS)
}

async fn deliver(s: &Setup) -> anyhow::Result<ExitCode> {
    let now = Utc::now().trunc_subsecs(0);
    // An unfinished issue of this newsletter (stopped by Ctrl-C or a crash) is resumed, not
    // replaced by a new one.
    let unfinished = s
        .store
        .issue_counts(None, 50, now)
        .await?
        .into_iter()
        .find(|c| c.newsletter == s.newsletter.id() && c.queued + c.sending > 0);
    let issue = match unfinished {
        Some(c) => {
            println!(
                "resuming issue {} of {} ({}): {} of {} left",
                c.issue,
                c.newsletter,
                c.title,
                c.remaining(),
                c.total()
            );
            c.issue
        }
        None => {
            let issuer = Issuer::new(s.site.clone(), s.store.clone(), s.templates.clone());
            let made = std::time::Instant::now();
            match issuer
                .make(&s.newsletter, now, &s.build.articles, true, now)
                .await?
            {
                Made::New {
                    id,
                    recipients,
                    articles,
                } => {
                    println!(
                        "issue {id} of {}: {articles} articles to {recipients} subscribers (made in {:.2} s)",
                        s.newsletter.id(),
                        made.elapsed().as_secs_f64()
                    );
                    id
                }
                Made::Existing { id } => id,
                Made::Empty => {
                    println!(
                        "nothing new since the last issue of {}: nothing to send",
                        s.newsletter.id()
                    );
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    };

    let secrets = Secrets::from_env();
    let transport = Transport::from_site(&s.site, secrets.smtp_url.as_deref()).map_err(BadInput)?;
    let keys = load_keys(&s.store, secrets.secret.as_deref()).await?;
    let delivery = Delivery::start(s.site.clone(), s.store.clone(), keys, transport).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(super::run::stop_on_signal(shutdown.clone()));

    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} sent  {per_sec}  eta {eta}  {msg}",
        )
        .expect("a valid template"),
    );
    let progress = {
        let store = s.store.clone();
        let bar = bar.clone();
        let delivery = delivery.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(counts) = store.issue_counts(Some(issue), 1, Utc::now()).await
                    && let Some(c) = counts.first()
                {
                    bar.set_length(c.total() as u64);
                    bar.set_position((c.sent + c.failed + c.skipped) as u64);
                    bar.set_message(format!(
                        "{} deferred, {} failed, limit {:.0}/s",
                        c.deferred,
                        c.failed,
                        delivery.rate()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let started = std::time::Instant::now();
    let result = delivery.run(Some(issue), true, shutdown.clone()).await;
    let took = started.elapsed();
    progress.abort();
    bar.finish_and_clear();
    delivery.stop().await;
    result?;

    let c = s
        .store
        .issue_counts(Some(issue), 1, Utc::now())
        .await?
        .pop()
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let done = delivery
        .progress
        .sent
        .load(std::sync::atomic::Ordering::Relaxed);
    writeln!(
        out,
        "delivered {done} messages in {:.2} s ({:.0} messages/s)",
        took.as_secs_f64(),
        done as f64 / took.as_secs_f64().max(0.001)
    )?;
    writeln!(
        out,
        "issue {issue}: {} sent, {} failed, {} skipped, {} deferred, {} not yet sent",
        c.sent,
        c.failed,
        c.skipped,
        c.deferred,
        c.queued + c.sending
    )?;
    if shutdown.is_cancelled() {
        writeln!(
            out,
            "stopped: `herald send {}` or `herald run` resumes",
            s.newsletter.id()
        )?;
        return Ok(ExitCode::from(EXIT_RUNTIME));
    }
    if c.deferred > 0 {
        writeln!(
            out,
            "{} deferred by the relay; `herald run` retries them",
            c.deferred
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn preview(
    site: Arc<Site>,
    id: &str,
    text: bool,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let s = setup(site, id).await?;
    let result = preview_copy(&s, text, out).await;
    s.store.close().await;
    result
}

async fn preview_copy(s: &Setup, text: bool, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let Some(copy) = copy_of(s).await? else {
        eprintln!(
            "nothing to preview: {} has no issue yet and nothing new (skip_empty = true)",
            s.newsletter.id()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let (unsubscribe, _) = harmless_unsubscribe_url(s).await?;
    let r = Recipient {
        name: "Sam Reader",
        email: "reader@example.com",
        unsubscribe_url: &unsubscribe,
        preferences_url: &unsubscribe,
    };
    let v = copy.content.for_name(r.name);
    let body = if text {
        v.text.fill(&r, false)
    } else {
        v.html.fill(&r, true)
    };
    match out {
        Some(path) => {
            std::fs::write(&path, &body)
                .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
            eprintln!(
                "wrote {}: {} (subject: {})",
                path.display(),
                copy.what,
                v.subject.fill(&r, false)
            );
        }
        None => {
            eprintln!("previewing {}", copy.what);
            eprintln!("Subject: {}", v.subject.fill(&r, false));
            print!("{body}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `herald send ID` (make an issue now and deliver it, with progress), its `--dry-run` and
//! `--to` forms, and `herald preview ID`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use tokio_util::sync::CancellationToken;

use super::{BadInput, EXIT_RUNTIME};
use crate::config::{Secrets, Site};
use crate::delivery::Delivery;
use crate::mail::message::{Composer, Digest};
use crate::mail::{Sender, Transport};
use crate::newsletters::scheduler::{Issuer, Made};
use crate::newsletters::{IssueFacts, Newsletter, Recipient, render};
use crate::publish::{Build, Publisher};
use crate::store::Store;
use crate::store::subscribers::ListFilter;
use crate::subscribers::confirmations::load_keys;
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
    let newsletters = Newsletter::all(&site).map_err(BadInput)?;
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
    let store = Store::open(&site.store_path()?).await?;
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

async fn test_copy(s: &Setup, to: &str) -> anyhow::Result<ExitCode> {
    let email = Email::parse(to).map_err(BadInput)?;
    let now = Utc::now();
    let issuer = Issuer::new(s.site.clone(), s.store.clone(), s.templates.clone());
    let articles = issuer
        .articles_for(&s.newsletter, now, &s.build.articles)
        .await?;
    let facts = IssueFacts {
        newsletter: &s.newsletter,
        scheduled: now.trunc_subsecs(0),
        articles: &articles,
    };
    let content =
        render(&s.site, &s.templates, &issuer.renderer, &facts).map_err(anyhow::Error::msg)?;
    let composer = Composer::new(&s.site).map_err(BadInput)?;
    let secrets = Secrets::from_env();
    let transport = Transport::from_site(&s.site, secrets.smtp_url.as_deref()).map_err(BadInput)?;
    let mut sender = Sender::new(transport.clone(), s.site.config.mail.timeout.0);
    let eight_bit = sender
        .eight_bit()
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", transport.describe()))?;
    let unsubscribe = s.site.config.site.url("subscribe");
    let digest = Digest {
        newsletter_id: s.newsletter.id(),
        newsletter_title: s.newsletter.title(),
        issue: 0,
        row: now.timestamp_millis(),
        content: &content,
        to_email: email.as_str(),
        to_name: "",
        unsubscribe_url: &unsubscribe,
        unsubscribe_token: "test",
    };
    let out = composer.compose(&digest, eight_bit)?;
    sender
        .send(&out)
        .await
        .map_err(|e| anyhow::anyhow!("sending the test copy to {email}: {e}"))?;
    sender.close().await;
    println!(
        "sent a test copy of {} ({} articles) to {email} via {}; the ledger is unchanged",
        s.newsletter.title(),
        articles.len(),
        transport.describe()
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
    let now = Utc::now().trunc_subsecs(0);
    let issuer = Issuer::new(s.site.clone(), s.store.clone(), s.templates.clone());
    let articles = issuer
        .articles_for(&s.newsletter, now, &s.build.articles)
        .await?;
    if articles.is_empty() {
        eprintln!("note: no new articles since the last issue; previewing an empty issue");
    }
    let facts = IssueFacts {
        newsletter: &s.newsletter,
        scheduled: now,
        articles: &articles,
    };
    let content = render(&s.site, &s.templates, &issuer.renderer, &facts).map_err(BadInput)?;
    let unsubscribe = s.site.config.site.url("unsubscribe/PREVIEW");
    let r = Recipient {
        name: "Sam Reader",
        email: "reader@example.com",
        unsubscribe_url: &unsubscribe,
        preferences_url: &unsubscribe,
    };
    let v = content.for_name(r.name);
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
                "wrote {} ({} articles; subject: {})",
                path.display(),
                articles.len(),
                v.subject.fill(&r, false)
            );
        }
        None => {
            eprintln!("Subject: {}", v.subject.fill(&r, false));
            print!("{body}");
        }
    }
    s.store.close().await;
    Ok(ExitCode::SUCCESS)
}

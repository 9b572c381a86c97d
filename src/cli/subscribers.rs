//! `herald subscribers add|remove|list|import|export`: the list, from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use clap::Subcommand;

use crate::config::Site;
use crate::error::{BadInput, EXIT_BAD_INPUT};
use crate::store::Store;
use crate::store::subscribers::{Added, ListFilter};
use crate::subscribers::{Email, Evidence, Status, clean_name, import};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add an address (pending with a confirmation email, or --confirmed).
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// A newsletter id; repeat for several. Default: every newsletter.
        #[arg(long = "newsletter", value_name = "ID")]
        newsletters: Vec<String>,
        /// You hold consent already (recorded as evidence with source "cli"); no email.
        #[arg(long)]
        confirmed: bool,
    },
    /// Unsubscribe an address (it stays on the list, suppressed).
    Remove { email: String },
    /// Show subscribers as a table.
    List {
        #[arg(long)]
        status: Option<Status>,
        #[arg(long, value_name = "ID")]
        newsletter: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Import a CSV file (header row: email[,name][,newsletters][,status]).
    Import { file: PathBuf },
    /// Export every subscriber as CSV, to FILE or standard output.
    Export { file: Option<PathBuf> },
}

pub async fn run(site: Arc<Site>, cmd: Command) -> anyhow::Result<ExitCode> {
    let store = Store::open(&site.store_location()?).await?;
    let result = dispatch(&site, &store, cmd).await;
    store.close().await;
    result
}

fn newsletter_ids(site: &Site, chosen: &[String]) -> anyhow::Result<Vec<String>> {
    let configured = site.config.newsletter_ids();
    if chosen.is_empty() {
        return Ok(configured);
    }
    for c in chosen {
        if !configured.contains(c) {
            return Err(BadInput(format!(
                "there is no newsletter {c:?} (configured: {})",
                configured.join(", ")
            ))
            .into());
        }
    }
    Ok(chosen.to_vec())
}

async fn dispatch(site: &Arc<Site>, store: &Store, cmd: Command) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    match cmd {
        Command::Add {
            email,
            name,
            newsletters,
            confirmed,
        } => {
            let email = Email::parse(&email).map_err(BadInput)?;
            let name = clean_name(name.as_deref().unwrap_or("")).map_err(BadInput)?;
            let newsletters = newsletter_ids(site, &newsletters)?;
            let ev = Evidence {
                source: "cli".into(),
                ip: None,
                user_agent: None,
            };
            match store
                .add_subscriber(&email, &name, &newsletters, confirmed, &ev, now)
                .await?
            {
                Added::Created(_) if confirmed => println!("added {email} (confirmed)"),
                Added::Created(_) => {
                    println!("added {email} (pending); sending the confirmation email");
                    send_confirmations(site, store).await?;
                }
                Added::Updated(_) => println!("updated {email}"),
                Added::Unchanged(_) => println!("{email} is already on the list; nothing changed"),
                Added::Suppressed(s) => {
                    return Err(BadInput(format!(
                        "{email} is {s}: only the person can subscribe again, by signing up and confirming"
                    ))
                    .into());
                }
            }
        }
        Command::Remove { email } => {
            let email = Email::parse(&email).map_err(BadInput)?;
            if store.remove_subscriber(&email, now).await? {
                println!("{email} is unsubscribed (kept on the list so it is never mailed again)");
            } else {
                eprintln!("{email} is not on the list");
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        }
        Command::List {
            status,
            newsletter,
            limit,
        } => {
            if let Some(n) = &newsletter {
                newsletter_ids(site, std::slice::from_ref(n))?;
            }
            let rows = store
                .list_subscribers(&ListFilter {
                    status,
                    newsletter,
                    after: 0,
                    limit: limit.clamp(1, 1_000_000),
                })
                .await?;
            let w = rows
                .iter()
                .map(|r| r.email.chars().count())
                .max()
                .unwrap_or(5)
                .max(5);
            let nw = rows
                .iter()
                .map(|r| r.name.chars().count())
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "{:<w$}  {:<nw$}  {:<12}  {:<10}  NEWSLETTERS",
                "EMAIL", "NAME", "STATUS", "SINCE"
            );
            for r in &rows {
                println!(
                    "{:<w$}  {:<nw$}  {:<12}  {:<10}  {}",
                    r.email,
                    r.name,
                    r.status.as_str(),
                    r.created.format("%Y-%m-%d"),
                    r.newsletters.join(" ")
                );
            }
            let counts = store.subscriber_counts().await?;
            println!(
                "{} shown; {} in all ({})",
                rows.len(),
                counts.total,
                counts
                    .by_status
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Command::Import { file } => {
            let f = std::fs::File::open(&file)
                .map_err(|e| BadInput(format!("{}: {e}", file.display())))?;
            let total = f.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("a valid template"),
            );
            let configured = site.config.newsletter_ids();
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let report = import::import(
                store,
                std::io::BufReader::new(f),
                &name,
                &configured,
                now,
                |b| bar.set_position(b),
            )
            .await
            .map_err(|e| BadInput(format!("{e:#}")))?;
            bar.finish_and_clear();
            if let Some(all) = &report.defaults.newsletters {
                println!(
                    "no `newsletters` column: every row is subscribed to every newsletter ({})",
                    all.join(", ")
                );
            }
            for b in &report.bad {
                eprintln!("{}:{}", file.display(), b.trim_start_matches("line "));
            }
            println!(
                "{} rows: {} added, {} updated, {} unchanged, {} left suppressed, {} rejected",
                report.rows,
                report.added,
                report.updated,
                report.unchanged,
                report.kept_suppressed,
                report.bad.len()
            );
            if !report.bad.is_empty() {
                return Ok(ExitCode::from(EXIT_BAD_INPUT));
            }
        }
        Command::Export { file } => {
            let n = match &file {
                Some(path) => {
                    let tmp = path.with_extension("csv.partial");
                    let f = std::fs::File::create(&tmp)
                        .map_err(|e| BadInput(format!("{}: {e}", tmp.display())))?;
                    let n = import::export(store, std::io::BufWriter::new(f)).await?;
                    std::fs::rename(&tmp, path)?;
                    n
                }
                None => import::export(store, std::io::stdout().lock()).await?,
            };
            eprintln!("exported {n} subscribers");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends queued confirmation emails now, so `add` works without a running daemon.
async fn send_confirmations(site: &Arc<Site>, store: &Store) -> anyhow::Result<()> {
    use crate::subscribers::confirmations::{Confirmations, load_keys};
    let templates =
        crate::templates::Templates::load(&site.templates_dir(), site.config.site.timezone.0)
            .map_err(|e| BadInput(e.join("\n")))?;
    let secrets = crate::config::Secrets::from_env();
    let transport =
        crate::mail::Transport::from_site(site, secrets.smtp_url.as_deref()).map_err(BadInput)?;
    let c = Confirmations {
        site: site.clone(),
        store: store.clone(),
        keys: load_keys(store, secrets.secret.as_deref()).await?,
        templates: Arc::new(templates),
        transport: transport.clone(),
        composer: std::sync::Arc::new(crate::mail::message::Composer::new(site).map_err(BadInput)?),
        wake: Default::default(),
    };
    let mut sender = crate::mail::Sender::new(transport, site.config.mail.timeout.0);
    c.drain(&mut sender, Utc::now()).await?;
    sender.close().await;
    Ok(())
}

//! `herald status`: each recent issue's delivery counts, rate and estimated time left.

use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;

use crate::config::Site;
use crate::store::Store;

pub async fn run(site: Arc<Site>) -> anyhow::Result<ExitCode> {
    let store = Store::open(&site.store_location()?).await?;
    let counts = store.issue_counts(None, 20, Utc::now()).await?;
    let subscribers = store.subscriber_counts().await?;
    store.close().await;
    println!(
        "subscribers: {} ({})",
        subscribers.total,
        subscribers
            .by_status
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if counts.is_empty() {
        println!("no issues yet");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6}  {:<12} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  ETA",
        "ISSUE",
        "NEWSLETTER",
        "SCHEDULED",
        "QUEUED",
        "SENDING",
        "SENT",
        "DEFERRED",
        "FAILED",
        "SKIPPED",
        "RATE/s"
    );
    for c in &counts {
        let rate = c.sent_last_minute as f64 / 60.0;
        let eta = match (c.remaining(), rate) {
            (0, _) => "done".to_string(),
            (_, r) if r <= 0.0 => "-".to_string(),
            (left, r) => {
                let secs = (left as f64 / r) as u64;
                format!("{}m{:02}s", secs / 60, secs % 60)
            }
        };
        println!(
            "{:>6}  {:<12} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8.1}  {eta}",
            c.issue,
            c.newsletter,
            c.scheduled,
            c.queued,
            c.sending,
            c.sent,
            c.deferred,
            c.failed,
            c.skipped,
            rate
        );
    }
    Ok(ExitCode::SUCCESS)
}

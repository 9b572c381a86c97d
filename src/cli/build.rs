//! `herald build`: read the articles, write the feeds, report problems (exit 2 if any, and
//! when the articles folder is missing or suddenly empty: then the feeds are left alone).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use crate::config::Site;
use crate::error::EXIT_BAD_INPUT;
use crate::publish::Publisher;
use crate::store::Store;

pub async fn run(site: Arc<Site>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let store = Store::open(&site.store_location()?).await?;
    let mut publisher = Publisher::new(site.clone(), store.clone());
    let build = publisher.build(Utc::now()).await?;
    store.close().await;
    for p in &build.problems {
        eprintln!("{p}");
    }
    if let Some(reason) = &build.held {
        eprintln!("{reason}");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    let held = build.articles.len() - build.published;
    println!(
        "{} articles published{}, {} feed files in {} ({} written, {} removed) in {:.2} s",
        build.published,
        if held > 0 {
            format!(" ({held} held back: drafts or scheduled)")
        } else {
            String::new()
        },
        build.feeds.len(),
        site.relative(&site.feeds_dir()).display(),
        build.changed.len(),
        build.removed.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(due) = build.next_due {
        println!(
            "next scheduled article is due {}",
            crate::time::rfc3339(due)
        );
    }
    if !build.problems.is_empty() {
        eprintln!(
            "{} article file(s) have problems and were left out",
            build.problems.len()
        );
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    Ok(ExitCode::SUCCESS)
}

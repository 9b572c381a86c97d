//! `herald check`: validate the configuration (already loaded by the caller), every article
//! and every template, without writing anything. Exit 0 only when all is clean.

use std::collections::BTreeMap;
use std::process::ExitCode;

use chrono::Utc;

use super::EXIT_BAD_INPUT;
use crate::articles::Library;
use crate::config::Site;
use crate::templates::Templates;

pub fn run(site: &Site) -> anyhow::Result<ExitCode> {
    let mut errors = 0usize;
    let cfg = &site.config;
    println!(
        "config: {} OK ({})",
        site.relative(&site.dir.join("herald.toml")).display(),
        cfg.site.base_url.0
    );

    let mut library = Library::new(&site.dir, &cfg.site.base_url.0, cfg.site.timezone.0);
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

    match Templates::load(&site.templates_dir(), cfg.site.timezone.0) {
        Ok(_) => println!("templates: OK"),
        Err(es) => {
            for e in &es {
                eprintln!("{e}");
            }
            errors += es.len();
        }
    }

    if errors > 0 {
        eprintln!("check: {errors} problem(s)");
        return Ok(ExitCode::from(EXIT_BAD_INPUT));
    }
    println!("check: all clean");
    Ok(ExitCode::SUCCESS)
}

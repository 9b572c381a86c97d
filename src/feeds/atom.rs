//! Atom 1.0 (RFC 4287), written with `atom_syndication`, which validates nothing: every
//! required element is set here, and the tests check the output.
//!
//! Titles and summaries are `type="html"` holding escaped text: the same characters as
//! `type="text"`, without the validator's "contains HTML" guesswork on titles like `a </b>`.
//! Entry `updated` values must differ within a feed (the validator warns otherwise), so when
//! two entries share one, the older entry's is moved back a second at a time; `published`
//! keeps the true date.

use std::collections::HashSet;

use atom_syndication::{
    Category, Content, Entry, Feed, FixedDateTime, Generator, Link, Person, Text, WriteConfig,
};
use chrono::{DateTime, Duration, Utc};

use super::{Channel, Entry as FeedEntry};
use crate::articles::body::escape_html;

fn fixed(t: DateTime<Utc>) -> FixedDateTime {
    t.fixed_offset()
}

fn html_text(s: &str) -> Text {
    Text::html(escape_html(s))
}

pub fn render(ch: &Channel<'_>) -> Vec<u8> {
    let site = ch.site;
    let author = site.author();
    let mut links = vec![
        Link {
            href: ch.self_url.clone(),
            rel: "self".into(),
            mime_type: Some("application/atom+xml".into()),
            ..Default::default()
        },
        Link {
            href: ch.home_url().to_string(),
            rel: "alternate".into(),
            mime_type: Some("text/html".into()),
            ..Default::default()
        },
    ];
    if let Some(hub) = ch.hub {
        links.push(Link {
            href: hub.to_string(),
            rel: "hub".into(),
            ..Default::default()
        });
    }
    let mut used = HashSet::new();
    let entries = ch
        .entries
        .iter()
        .map(|e| {
            let mut updated = e.article.updated();
            while !used.insert(updated) {
                updated -= Duration::seconds(1);
            }
            entry(e, updated)
        })
        .collect();
    let feed = Feed {
        title: html_text(&ch.spec.title),
        id: ch.spec.id.clone(),
        updated: fixed(ch.updated()),
        authors: vec![Person {
            name: author.name.clone(),
            email: author.email.clone(),
            ..Default::default()
        }],
        generator: Some(Generator {
            value: "herald".into(),
            ..Default::default()
        }),
        links,
        subtitle: Some(html_text(&ch.spec.description)),
        entries,
        lang: Some(site.language.clone()),
        ..Default::default()
    };
    let mut out = feed
        .write_with_config(
            Vec::new(),
            WriteConfig {
                write_document_declaration: false,
                indent_size: Some(2),
            },
        )
        .expect("writing to memory cannot fail");
    let mut doc = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n".to_vec();
    doc.append(&mut out);
    doc
}

fn entry(e: &FeedEntry<'_>, updated: DateTime<Utc>) -> Entry {
    let a = e.article;
    Entry {
        title: html_text(&a.title),
        id: a.id.clone(),
        updated: fixed(updated),
        published: Some(fixed(a.date)),
        authors: a
            .authors
            .iter()
            .map(|p| Person {
                name: p.name.clone(),
                email: p.email.clone(),
                ..Default::default()
            })
            .collect(),
        categories: a
            .tags
            .iter()
            .map(|t| Category {
                term: t.name.clone(),
                ..Default::default()
            })
            .collect(),
        links: vec![Link {
            href: a.url.clone(),
            rel: "alternate".into(),
            mime_type: Some("text/html".into()),
            ..Default::default()
        }],
        summary: (!e.body.summary.is_empty()).then(|| html_text(&e.body.summary)),
        content: Some(Content {
            content_type: Some("html".into()),
            value: Some(e.body.html.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

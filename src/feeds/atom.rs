//! Atom 1.0 (RFC 4287), written with `atom_syndication`, which validates nothing: every
//! required element is set here, and the tests check the output.
//!
//! Titles, the subtitle and summaries are plain text (`type="text"`, Atom's default): feed
//! readers show them as they are, `&` and `<` included. Every `&amp;` the writer makes is then
//! written `&#x26;`, which the W3C validator takes as deliberately escaped text rather than
//! HTML. An article's image is a `link rel="enclosure"` with its media type (its length is
//! optional and unknown).
//! Entry `updated` values must differ within a feed (the validator warns otherwise), so when
//! two entries share one, the older entry's is moved back a second at a time; `published`
//! keeps the true date.

use std::collections::HashSet;

use atom_syndication::{
    Category, Content, Entry, Feed, FixedDateTime, Generator, Link, Person, Text, WriteConfig,
};
use chrono::{DateTime, Duration, Utc};

use super::{Channel, Entry as FeedEntry, hex_references, image_type};

fn fixed(t: DateTime<Utc>) -> FixedDateTime {
    t.fixed_offset()
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
        title: Text::plain(&ch.spec.title),
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
        subtitle: Some(Text::plain(&ch.spec.description)),
        entries,
        lang: Some(site.language.clone()),
        ..Default::default()
    };
    let out = feed
        .write_with_config(
            Vec::new(),
            WriteConfig {
                write_document_declaration: false,
                indent_size: Some(2),
            },
        )
        .expect("writing to memory cannot fail");
    let text = String::from_utf8(out).expect("atom_syndication writes UTF-8");
    let mut doc = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n".to_string();
    doc.push_str(&hex_references(&text, &[("&amp;", "&#x26;")]));
    doc.into_bytes()
}

fn entry(e: &FeedEntry<'_>, updated: DateTime<Utc>) -> Entry {
    let a = e.article;
    Entry {
        title: Text::plain(&a.title),
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
        links: std::iter::once(Link {
            href: a.url.clone(),
            rel: "alternate".into(),
            mime_type: Some("text/html".into()),
            ..Default::default()
        })
        .chain(a.image.as_ref().map(|image| Link {
            href: image.clone(),
            rel: "enclosure".into(),
            mime_type: image_type(image).map(str::to_string),
            ..Default::default()
        }))
        .collect(),
        summary: (!e.body.summary.is_empty()).then(|| Text::plain(e.body.summary.as_str())),
        content: Some(Content {
            content_type: Some("html".into()),
            value: Some(e.body.html.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

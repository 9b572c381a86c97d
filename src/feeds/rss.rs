//! RSS 2.0 (RSS Advisory Board 2.0.11 and its best-practices profile), written with the `rss`
//! crate.
//!
//! Plain-text elements (titles, categories, names) carry `&` and `<` as hexadecimal character
//! references (`&#x26;`, `&#x3C;`), as the RSS profile asks and the W3C validator checks;
//! the crate would write `&amp;` and `&lt;`. They pass through the crate as private-use
//! placeholder characters and are swapped for the references afterwards.

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::{Category, Channel as RssChannel, Guid, Item};

use super::{Channel, rfc822};
use crate::articles::body::escape_html;

const AMP: char = '\u{E026}';
const LT: char = '\u{E03C}';

/// Marks `&` and `<` in plain text for hexadecimal references.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => AMP,
            '<' => LT,
            AMP | LT => '\u{FFFD}',
            c => c,
        })
        .collect()
}

pub fn render(ch: &Channel<'_>) -> Vec<u8> {
    let site = ch.site;
    let author = site.author();
    let mut links = vec![Link {
        href: ch.self_url.clone(),
        rel: "self".into(),
        mime_type: Some("application/rss+xml".into()),
        ..Default::default()
    }];
    if let Some(hub) = ch.hub {
        links.push(Link {
            href: hub.to_string(),
            rel: "hub".into(),
            ..Default::default()
        });
    }
    let updated = rfc822(ch.updated());
    let channel = RssChannel {
        title: plain(&ch.spec.title),
        link: ch.home_url().to_string(),
        description: plain(&ch.spec.description),
        language: Some(site.language.clone()),
        managing_editor: author
            .email
            .as_ref()
            .map(|e| plain(&format!("{e} ({})", author.name))),
        pub_date: Some(updated.clone()),
        last_build_date: Some(updated),
        generator: Some("herald".into()),
        docs: Some("https://www.rssboard.org/rss-specification".into()),
        atom_ext: Some(AtomExtension { links }),
        items: ch.entries.iter().map(item).collect(),
        ..Default::default()
    };
    let bytes = channel
        .pretty_write_to(Vec::new(), b' ', 2)
        .expect("writing to memory cannot fail");
    let text = String::from_utf8(bytes).expect("the rss crate writes UTF-8");
    text.replace(AMP, "&#x26;")
        .replace(LT, "&#x3C;")
        .into_bytes()
}

fn item(e: &super::Entry<'_>) -> Item {
    let a = e.article;
    // One author with an email goes in <author>; otherwise every name in dc:creator
    // (never both: the validator calls that duplicate semantics).
    let (author, creators) = match a.authors.as_slice() {
        [one] if one.email.is_some() => (
            Some(plain(&format!(
                "{} ({})",
                one.email.as_deref().unwrap_or_default(),
                one.name
            ))),
            Vec::new(),
        ),
        many => (None, many.iter().map(|p| plain(&p.name)).collect()),
    };
    // <description> holds HTML; the summary is text, so it is escaped once for HTML (and
    // once more by the crate, for XML). An article with no text for a summary is described
    // by its title: the validator wants a description before content:encoded.
    let summary = if e.body.summary.is_empty() {
        &a.title
    } else {
        &e.body.summary
    };
    let description = Some(escape_html(summary));
    Item {
        title: Some(plain(&a.title)),
        link: Some(a.url.clone()),
        description,
        author,
        categories: a
            .tags
            .iter()
            .map(|t| Category {
                name: plain(&t.name),
                domain: None,
            })
            .collect(),
        guid: Some(Guid {
            value: a.id.clone(),
            permalink: a.id == a.url,
        }),
        pub_date: Some(rfc822(a.date)),
        content: Some(e.body.html.clone()),
        dublin_core_ext: if creators.is_empty() {
            None
        } else {
            Some(DublinCoreExtension {
                creators,
                ..Default::default()
            })
        },
        ..Default::default()
    }
}

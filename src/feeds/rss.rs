//! RSS 2.0 (RSS Advisory Board 2.0.11 and its best-practices profile), written with the `rss`
//! crate.
//!
//! Plain-text elements (titles, categories, names) carry `&` and `<` as hexadecimal character
//! references (`&#x26;`, `&#x3C;`), as the RSS profile asks and the W3C validator checks; the
//! crate writes `&amp;` and `&lt;`, which are rewritten outside CDATA once it is done.
//! An article's image is a Media RSS `media:content` (an `enclosure` would need the image's
//! length in bytes, which herald does not know).

use std::collections::BTreeMap;

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::extension::{Extension, ExtensionMap};
use rss::{Category, Channel as RssChannel, Guid, Item};

use super::{Channel, hex_references, image_type};
use crate::text::escape_html;
use crate::time::rfc822;

/// The Media RSS namespace (<https://www.rssboard.org/media-rss>).
const MEDIA_NS: &str = "http://search.yahoo.com/mrss/";

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
    let mut namespaces = BTreeMap::new();
    if ch.entries.iter().any(|e| e.article.image.is_some()) {
        namespaces.insert("media".to_string(), MEDIA_NS.to_string());
    }
    let channel = RssChannel {
        title: ch.spec.title.clone(),
        link: ch.home_url().to_string(),
        description: ch.spec.description.clone(),
        language: Some(site.language.clone()),
        managing_editor: author
            .email
            .as_ref()
            .map(|e| format!("{e} ({})", author.name)),
        pub_date: Some(updated.clone()),
        last_build_date: Some(updated),
        generator: Some("herald".into()),
        docs: Some("https://www.rssboard.org/rss-specification".into()),
        atom_ext: Some(AtomExtension { links }),
        items: ch.entries.iter().map(item).collect(),
        namespaces,
        ..Default::default()
    };
    let bytes = channel
        .pretty_write_to(Vec::new(), b' ', 2)
        .expect("writing to memory cannot fail");
    let text = String::from_utf8(bytes).expect("the rss crate writes UTF-8");
    hex_references(&text, &[("&amp;", "&#x26;"), ("&lt;", "&#x3C;")]).into_bytes()
}

fn item(e: &super::Entry<'_>) -> Item {
    let a = e.article;
    // One author with an email goes in <author>; otherwise every name in dc:creator
    // (never both: the validator calls that duplicate semantics).
    let (author, creators) = match a.authors.as_slice() {
        [one] if one.email.is_some() => (
            Some(format!(
                "{} ({})",
                one.email.as_deref().unwrap_or_default(),
                one.name
            )),
            Vec::new(),
        ),
        many => (None, many.iter().map(|p| p.name.clone()).collect()),
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
        title: Some(a.title.clone()),
        link: Some(a.url.clone()),
        description,
        author,
        categories: a
            .tags
            .iter()
            .map(|t| Category {
                name: t.name.clone(),
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
        extensions: a.image.as_deref().map(media_content).unwrap_or_default(),
        ..Default::default()
    }
}

/// `<media:content url="…" medium="image" type="image/…"/>`; the type is left out when the
/// extension does not tell it.
fn media_content(url: &str) -> ExtensionMap {
    let mut attrs = BTreeMap::from([
        ("url".to_string(), url.to_string()),
        ("medium".to_string(), "image".to_string()),
    ]);
    if let Some(kind) = image_type(url) {
        attrs.insert("type".to_string(), kind.to_string());
    }
    let content = Extension {
        name: "media:content".into(),
        attrs,
        ..Default::default()
    };
    BTreeMap::from([(
        "media".to_string(),
        BTreeMap::from([("content".to_string(), vec![content])]),
    )])
}

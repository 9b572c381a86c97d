//! JSON Feed 1.1 (<https://jsonfeed.org/version/1.1>): a few serde structs.

use serde::Serialize;

use super::Channel;
use crate::time::rfc3339;

#[derive(Serialize)]
struct Feed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    language: &'a str,
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub<'a>>,
    items: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Hub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    content_html: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    summary: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    date_published: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_modified: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
}

pub fn render(ch: &Channel<'_>) -> Vec<u8> {
    let site_author = ch.site.author();
    let feed = Feed {
        version: "https://jsonfeed.org/version/1.1",
        title: &ch.spec.title,
        home_page_url: ch.home_url(),
        feed_url: &ch.self_url,
        description: &ch.spec.description,
        language: &ch.site.language,
        authors: vec![Author {
            name: &site_author.name,
        }],
        hubs: ch
            .hub
            .map(|url| Hub {
                kind: "WebSub",
                url,
            })
            .into_iter()
            .collect(),
        items: ch
            .entries
            .iter()
            .map(|e| {
                let a = e.article;
                Item {
                    id: &a.id,
                    url: &a.url,
                    title: &a.title,
                    content_html: &e.body.html,
                    summary: &e.body.summary,
                    image: a.image.as_deref(),
                    date_published: rfc3339(a.date),
                    date_modified: a.parsed.updated.map(|_| rfc3339(a.updated())),
                    authors: a.authors.iter().map(|p| Author { name: &p.name }).collect(),
                    tags: a.tags.iter().map(|t| t.name.as_str()).collect(),
                }
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&feed).expect("feed structs always serialize");
    out.push(b'\n');
    out
}

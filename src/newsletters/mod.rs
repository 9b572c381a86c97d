//! Newsletters: which articles an issue carries, and the issue rendered from its templates.
//!
//! An issue is rendered once — subject, HTML (CSS inlined) and text — with placeholders where
//! each subscriber's own values go, in two variants (with and without a name, so
//! `{{#if subscriber.name}}` works). Sending then only splices a recipient's values into the
//! pre-split parts ([`Spliced`]), which costs about a microsecond instead of a template run.
//!
//! # Layout
//! - [`schedule`]: cron expressions with crontab semantics and the DST rules.
//! - [`scheduler`]: firing schedules, catching up after downtime, creating issues.

pub mod schedule;
pub mod scheduler;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::articles::{Article, Renderer};
use crate::config::{NewsletterConfig, Site};
use crate::templates::{Flavor, Templates};
use crate::text::escape_html;
pub use schedule::Schedule;

/// Placeholders for the per-subscriber values (Unicode private-use characters: never in
/// real text, untouched by HTML escaping and CSS inlining).
const NAME: char = '\u{E101}';
const EMAIL: char = '\u{E102}';
const UNSUBSCRIBE: char = '\u{E103}';
const PREFERENCES: char = '\u{E104}';

/// A configured newsletter with its parsed schedule.
#[derive(Debug, Clone)]
pub struct Newsletter {
    pub config: NewsletterConfig,
    pub schedule: Schedule,
}

impl Newsletter {
    pub fn id(&self) -> &str {
        &self.config.id.0
    }

    pub fn title(&self) -> &str {
        &self.config.title.0
    }

    pub fn zone(&self) -> Tz {
        self.schedule.zone()
    }

    /// Template base name (`newsletter` unless configured).
    pub fn template(&self) -> &str {
        self.config.template.as_deref().unwrap_or("newsletter")
    }

    /// Every newsletter of the site (schedules were parsed, in their zones, with the
    /// configuration).
    pub fn all(site: &Site) -> Vec<Newsletter> {
        site.config
            .newsletters
            .iter()
            .map(|n| Newsletter {
                config: n.clone(),
                schedule: n.schedule.clone(),
            })
            .collect()
    }

    /// Whether an article belongs in this newsletter (its tags, or every article).
    pub fn wants(&self, a: &Article) -> bool {
        let tags = &self.config.tags;
        tags.is_empty()
            || a.tags
                .iter()
                .any(|t| tags.iter().any(|want| t.slug == crate::text::slugify(want)))
    }

    /// The articles of an issue at `at`: due then, in this newsletter, dated after `since`
    /// and not after `at`; newest first.
    pub fn select<'a>(
        &self,
        articles: &'a [Article],
        since: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Vec<&'a Article> {
        let mut v: Vec<&Article> = articles
            .iter()
            .filter(|a| a.is_due(at) && a.date > since && a.date <= at && self.wants(a))
            .collect();
        v.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.id.cmp(&b.id)));
        v
    }
}

/// The archive path segment of an issue: its scheduled time, `2026-11-27-070000` (UTC).
pub fn issue_slug(scheduled: DateTime<Utc>) -> String {
    scheduled.format("%Y-%m-%d-%H%M%S").to_string()
}

pub fn parse_issue_slug(slug: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(slug, "%Y-%m-%d-%H%M%S")
        .ok()
        .map(|n| n.and_utc())
}

/// A rendered text with holes for one subscriber's values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spliced {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Part {
    Text(String),
    Name,
    Email,
    Unsubscribe,
    Preferences,
}

/// One subscriber's values.
pub struct Recipient<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub unsubscribe_url: &'a str,
    pub preferences_url: &'a str,
}

impl Spliced {
    fn split(rendered: &str) -> Spliced {
        let mut parts = Vec::new();
        let mut text = String::new();
        for c in rendered.chars() {
            let hole = match c {
                NAME => Part::Name,
                EMAIL => Part::Email,
                UNSUBSCRIBE => Part::Unsubscribe,
                PREFERENCES => Part::Preferences,
                c => {
                    text.push(c);
                    continue;
                }
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(hole);
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Spliced { parts }
    }

    /// Fills the holes; `html` escapes the values for HTML.
    pub fn fill(&self, r: &Recipient<'_>, html: bool) -> String {
        let mut out = String::with_capacity(
            self.parts
                .iter()
                .map(|p| if let Part::Text(t) = p { t.len() } else { 64 })
                .sum(),
        );
        for p in &self.parts {
            let value = match p {
                Part::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Part::Name => r.name,
                Part::Email => r.email,
                Part::Unsubscribe => r.unsubscribe_url,
                Part::Preferences => r.preferences_url,
            };
            if html {
                out.push_str(&escape_html(value));
            } else {
                out.push_str(value);
            }
        }
        out
    }
}

/// One variant of a rendered issue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub subject: Spliced,
    pub html: Spliced,
    pub text: Spliced,
}

/// A rendered issue: what is stored with it and what every message is made from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueContent {
    pub named: Variant,
    pub anonymous: Variant,
    /// The web archive's copy: every article (no size budget), no subscriber, no
    /// unsubscribe link. Issues stored before it existed have none; see
    /// [`IssueContent::archive_html`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<String>,
}

impl IssueContent {
    pub fn for_name(&self, name: &str) -> &Variant {
        if name.is_empty() {
            &self.anonymous
        } else {
            &self.named
        }
    }

    /// The HTML with no subscriber in it, for the web archive. An issue stored before the web
    /// copy existed is shown from its emailed HTML, with the sentence that named the
    /// subscriber's address left out and each unsubscribe (or preferences) link turned into
    /// a link to `subscribe_url`.
    pub fn archive_html(&self, subscribe_url: &str) -> String {
        if let Some(web) = &self.web {
            return web.clone();
        }
        let subscribe = format!("<a href=\"{}\">Subscribe</a>", escape_html(subscribe_url));
        let mut out = String::new();
        // What to drop from the start of the next text: the end of the sentence that held
        // the address, or the rest of a link that pointed at an unsubscribe URL.
        let mut drop_until: Option<&str> = None;
        for p in &self.anonymous.html.parts {
            match p {
                Part::Text(t) => {
                    let mut t = t.as_str();
                    match drop_until.take() {
                        Some("</a>") => match t.find("</a>") {
                            Some(i) => t = &t[i + 4..],
                            None => t = "",
                        },
                        Some(_) => {
                            let end = t.find(['<', '.']).unwrap_or(t.len());
                            if t[end..].starts_with('.') {
                                t = &t[end + 1..];
                            } else {
                                t = &t[end..];
                            }
                            t = t.trim_start();
                            t = t.strip_prefix("<br>").unwrap_or(t).trim_start();
                        }
                        None => {}
                    }
                    out.push_str(t);
                }
                Part::Name => {}
                Part::Email => {
                    // The text run that leads up to the address ("You receive … at ").
                    let start = out.rfind('>').map_or(0, |i| i + 1);
                    out.truncate(start);
                    drop_until = Some(".");
                }
                Part::Unsubscribe | Part::Preferences => {
                    if let Some(start) = out.rfind("<a") {
                        out.truncate(start);
                        out.push_str(&subscribe);
                        drop_until = Some("</a>");
                    }
                }
            }
        }
        out
    }
}

/// Gmail shows only the first 102 KB of a message's HTML and hides the rest behind a
/// "[Message clipped]" link, unsubscribe footer included (counted here in bytes, 1000 to the
/// kilobyte, to be on the safe side).
pub const GMAIL_CLIP: usize = 102_000;

/// The most an issue's HTML may weigh, with the longest plausible subscriber values spliced
/// in: Gmail's clip less a margin for what relays and the receiving side add.
pub const HTML_BUDGET: usize = 90_000;

/// Articles in the web archive's copy of an issue at most (a first issue of a big import can
/// hold thousands); the rest are counted and linked to the site.
const WEB_MAX_ARTICLES: usize = 500;

/// Facts about the issue being rendered.
pub struct IssueFacts<'a> {
    pub newsletter: &'a Newsletter,
    pub scheduled: DateTime<Utc>,
    pub articles: &'a [&'a Article],
    /// Whether the issue is (or will be) in the web archive: false for a test copy of an
    /// issue that is not made, whose links then go to the archive's list of issues.
    pub archived: bool,
}

impl IssueFacts<'_> {
    /// The issue's title: its first article's, and how many more.
    pub fn title(&self) -> String {
        match self.articles {
            [] => "nothing new".into(),
            [one] => one.title.clone(),
            [first, rest @ ..] => format!("{} and {} more", first.title, rest.len()),
        }
    }

    /// The preview text mail clients show after the subject: the titles the subject does
    /// not name, else the only article's summary, else the site's description.
    fn preheader(&self, first_summary: Option<&str>, site: &Site) -> String {
        let text = match self.articles {
            [] => site.config.site.description().to_string(),
            [_] => first_summary
                .filter(|s| !s.is_empty())
                .unwrap_or(site.config.site.description())
                .to_string(),
            [_, rest @ ..] => rest
                .iter()
                .take(8)
                .map(|a| a.title.as_str())
                .collect::<Vec<_>>()
                .join(" · "),
        };
        crate::text::truncate_words(&text, 140)
    }
}

/// How much of an issue a rendering shows: the size budget's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    /// Articles shown; the rest are "and N more".
    shown: usize,
    /// Of those, the first this many with image and summary; the others by title only.
    detailed: usize,
    /// Summaries cut to this many characters.
    summary_chars: Option<usize>,
    /// Titles cut to this many characters.
    title_chars: Option<usize>,
}

impl Shape {
    fn full(shown: usize) -> Shape {
        Shape {
            shown,
            detailed: shown,
            summary_chars: None,
            title_chars: None,
        }
    }

    /// The budget's steps, lightest last but one: summaries shortened, then titles only past
    /// the first ten articles, then past the first three with short titles. Fewer articles
    /// come after (see [`render`]).
    fn steps(shown: usize) -> [Shape; 4] {
        [
            Shape::full(shown),
            Shape {
                summary_chars: Some(200),
                ..Shape::full(shown)
            },
            Shape {
                detailed: shown.min(10),
                summary_chars: Some(200),
                title_chars: Some(200),
                ..Shape::full(shown)
            },
            Shape::lightest(shown),
        ]
    }

    fn lightest(shown: usize) -> Shape {
        Shape {
            shown,
            detailed: shown.min(3),
            summary_chars: Some(140),
            title_chars: Some(120),
        }
    }
}

/// An article's template values, worked out once per issue.
struct ArticleView {
    value: serde_json::Map<String, Value>,
    title: String,
    summary: String,
}

fn article_views(renderer: &Renderer, articles: &[&Article]) -> Vec<ArticleView> {
    articles
        .iter()
        .map(|a| {
            let html = renderer.html(a.kind, &a.body, &a.url);
            let summary = a
                .summary
                .clone()
                .or_else(|| crate::articles::body::summary_of(&html, 300))
                .unwrap_or_default();
            let text = html2text::from_read(html.as_bytes(), 78)
                .unwrap_or_else(|_| crate::articles::body::html_to_text(&html));
            let value = json!({
                "id": a.id,
                "title": a.title,
                "url": a.url,
                "date": crate::time::rfc3339(a.date),
                "summary": summary,
                "content_html": html,
                "content_text": text.trim_end(),
                "tags": a.tags.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                "authors": a.authors,
                "image": a.image,
                "compact": false,
            });
            let Value::Object(value) = value else {
                unreachable!("json! of an object literal is an object")
            };
            ArticleView {
                value,
                title: a.title.clone(),
                summary,
            }
        })
        .collect()
}

/// Who a rendering is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// A subscriber with a name (placeholders for name, address and links).
    Named,
    /// A subscriber without a name.
    Anonymous,
    /// The web archive: no subscriber, no unsubscribe or preferences link.
    Browser,
}

/// The template context (the README's "Templates for digests") for one audience and shape, with `subscriber`,
/// `unsubscribe_url` and `preferences_url` as placeholders for subscribers.
fn shaped_context(
    site: &Site,
    facts: &IssueFacts<'_>,
    views: &[ArticleView],
    shape: Shape,
    audience: Audience,
) -> Value {
    let cfg = &site.config;
    let n = facts.newsletter;
    let slug = issue_slug(facts.scheduled);
    let archive_url = if facts.archived {
        cfg.site.url(&format!("archive/{}/{slug}", n.id()))
    } else {
        cfg.site.url(&format!("archive/{}/", n.id()))
    };
    let articles: Vec<Value> = views
        .iter()
        .take(shape.shown)
        .enumerate()
        .map(|(i, v)| {
            let mut value = v.value.clone();
            if let Some(max) = shape.title_chars {
                value.insert(
                    "title".into(),
                    crate::text::truncate_words(&v.title, max).into(),
                );
            }
            if i >= shape.detailed {
                value.insert("compact".into(), true.into());
                for key in ["summary", "content_html", "content_text"] {
                    value.insert(key.into(), "".into());
                }
            } else if let Some(max) = shape.summary_chars {
                let short = crate::text::truncate_words(&v.summary, max);
                if short != v.summary {
                    value.insert("summary".into(), short.into());
                }
            }
            Value::Object(value)
        })
        .collect();
    let more = facts.articles.len().saturating_sub(shape.shown);
    let more_url = match audience {
        Audience::Browser => cfg.site.base_url.0.to_string(),
        _ => archive_url.clone(),
    };
    let (subscriber, unsubscribe_url, preferences_url) = match audience {
        Audience::Named => (
            json!({"email": EMAIL.to_string(), "name": NAME.to_string()}),
            UNSUBSCRIBE.to_string(),
            PREFERENCES.to_string(),
        ),
        Audience::Anonymous => (
            json!({"email": EMAIL.to_string(), "name": ""}),
            UNSUBSCRIBE.to_string(),
            PREFERENCES.to_string(),
        ),
        Audience::Browser => (
            json!({"email": "", "name": ""}),
            String::new(),
            String::new(),
        ),
    };
    let first_summary = views.first().map(|v| v.summary.as_str());
    let postal = cfg.site.postal_address.clone();
    json!({
        "site": {
            "title": cfg.site.title.0,
            "description": cfg.site.description(),
            "base_url": cfg.site.base_url.0.as_str(),
            "language": cfg.site.language,
            "postal_address": postal.clone().unwrap_or_default(),
            "postal_address_lines": postal.as_deref().map(|p| p.lines().collect::<Vec<_>>()).unwrap_or_default(),
        },
        "newsletter": {"id": n.id(), "title": n.title(), "timezone": n.zone().name()},
        "issue": {
            "slug": slug,
            "title": facts.title(),
            "date": crate::time::rfc3339(facts.scheduled),
            "count": facts.articles.len(),
            "shown": shape.shown.min(facts.articles.len()),
            "more": more,
            "more_url": more_url,
            "preheader": facts.preheader(first_summary, site),
        },
        "articles": articles,
        "subscriber": subscriber,
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "archive_url": archive_url,
        "subscribe_url": cfg.site.url("subscribe"),
        "browser": audience == Audience::Browser,
    })
}

/// Renders templates with CSS inlined.
struct Renderings<'a> {
    site: &'a Site,
    templates: &'a Templates,
    facts: &'a IssueFacts<'a>,
    views: &'a [ArticleView],
    inliner: css_inline::CSSInliner<'static>,
}

impl Renderings<'_> {
    fn html(&self, shape: Shape, audience: Audience) -> Result<String, String> {
        let ctx = shaped_context(self.site, self.facts, self.views, shape, audience);
        let html = self
            .templates
            .render(Flavor::Html, self.facts.newsletter.template(), &ctx)?;
        self.inliner
            .inline(&html)
            .map_err(|e| format!("inlining CSS: {e}"))
    }

    fn variant(
        &self,
        shape: Shape,
        audience: Audience,
        html: Option<String>,
    ) -> Result<Variant, String> {
        let n = self.facts.newsletter;
        let ctx = shaped_context(self.site, self.facts, self.views, shape, audience);
        let subject = self.templates.render_text_str(
            &format!("newsletter {:?}: subject", n.id()),
            &n.config.subject,
            &ctx,
        )?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let html = match html {
            Some(h) => h,
            None => self.html(shape, audience)?,
        };
        let text = self.templates.render(Flavor::Text, n.template(), &ctx)?;
        Ok(Variant {
            subject: Spliced::split(&subject),
            html: Spliced::split(&html),
            text: Spliced::split(&text),
        })
    }

    /// The size of `html` once the longest plausible subscriber values are spliced in.
    fn worst_size(&self, html: &str) -> usize {
        let url = self.site.config.site.base_url.0.as_str().len() + 200;
        html.len()
            + html
                .chars()
                .map(|c| match c {
                    NAME => 200,
                    EMAIL => 254,
                    UNSUBSCRIBE | PREFERENCES => url,
                    _ => 0,
                })
                .sum::<usize>()
    }

    /// The first shape whose HTML fits the budget, with that HTML.
    fn fitting(&self, most: usize) -> Result<(Shape, String), String> {
        let fits = |shape: Shape| -> Result<Option<String>, String> {
            let html = self.html(shape, Audience::Named)?;
            Ok((self.worst_size(&html) <= HTML_BUDGET).then_some(html))
        };
        for shape in Shape::steps(most) {
            if let Some(html) = fits(shape)? {
                return Ok((shape, html));
            }
        }
        // Fewer articles: the most that fit, found by bisection (size grows with the count).
        let Some(none) = fits(Shape::lightest(0))? else {
            let html = self.html(Shape::lightest(0), Audience::Named)?;
            tracing::warn!(
                "newsletter {}: the template alone renders {} bytes of HTML, more than the {HTML_BUDGET}-byte budget: Gmail will clip this digest",
                self.facts.newsletter.id(),
                self.worst_size(&html)
            );
            return Ok((Shape::lightest(0), html));
        };
        let (mut lo, mut lo_html, mut hi) = (0, none, most);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match fits(Shape::lightest(mid))? {
                Some(html) => (lo, lo_html) = (mid, html),
                None => hi = mid,
            }
        }
        Ok((Shape::lightest(lo), lo_html))
    }
}

/// Renders an issue: subject, HTML (with CSS inlined) and text, for subscribers with and
/// without a name, and the web archive's copy.
///
/// The emailed HTML stays within [`HTML_BUDGET`] whatever the issue holds: at most
/// `max_articles` are shown (the rest are "and N more", linked to the issue in the archive),
/// and when that is still too heavy, summaries are shortened, then articles past the first
/// few are shown by title only, then fewer articles are shown. The text part shows the same.
pub fn render(
    site: &Site,
    templates: &Templates,
    renderer: &Renderer,
    facts: &IssueFacts<'_>,
) -> Result<IssueContent, String> {
    let inliner = css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_style_tags(false)
        .keep_at_rules(true)
        .minify_css(true)
        .build();
    let web_count = facts.articles.len().min(WEB_MAX_ARTICLES);
    let views = article_views(renderer, &facts.articles[..web_count]);
    let r = Renderings {
        site,
        templates,
        facts,
        views: &views,
        inliner,
    };
    let most = facts
        .articles
        .len()
        .min(facts.newsletter.config.max_articles.0);
    let (shape, named_html) = r.fitting(most)?;
    let named = r.variant(shape, Audience::Named, Some(named_html))?;
    let anonymous = r.variant(shape, Audience::Anonymous, None)?;
    let web = r.html(Shape::full(web_count), Audience::Browser)?;
    Ok(IssueContent {
        named,
        anonymous,
        web: Some(web),
    })
}

/// Checks that a newsletter's templates and subject render, against a sample issue: what
/// `herald check` runs so a typo fails there and not mid-send.
pub fn check_templates(
    site: &Site,
    templates: &Templates,
    n: &Newsletter,
    sample: &[&Article],
) -> Result<(), String> {
    for flavor in [Flavor::Html, Flavor::Text] {
        if !templates.has(flavor, n.template()) {
            let ext = if flavor == Flavor::Html {
                "html"
            } else {
                "txt"
            };
            return Err(format!(
                "newsletter {:?}: no template {}.{ext}.hbs in templates/",
                n.id(),
                n.template()
            ));
        }
    }
    let renderer = Renderer::new(&site.config.site.base_url.0);
    let facts = IssueFacts {
        newsletter: n,
        scheduled: Utc::now(),
        articles: sample,
        archived: true,
    };
    render(site, templates, &renderer, &facts).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splicing_fills_every_hole_and_escapes_for_html() {
        let s = Spliced::split(&format!("Hi {NAME} <{EMAIL}> {UNSUBSCRIBE}"));
        let r = Recipient {
            name: "Ann & Bo",
            email: "a@x.org",
            unsubscribe_url: "https://x/u?a=1&b=2",
            preferences_url: "",
        };
        assert_eq!(
            s.fill(&r, false),
            "Hi Ann & Bo <a@x.org> https://x/u?a=1&b=2"
        );
        assert_eq!(
            s.fill(&r, true),
            "Hi Ann &amp; Bo <a@x.org> https://x/u?a=1&amp;b=2"
        );
    }

    #[test]
    fn an_old_issue_in_the_archive_names_no_one_and_offers_a_subscribe_link() {
        let html = format!(
            "<p class=\"footer\">You receive W from T at {EMAIL}.<br>\n<a href=\"{UNSUBSCRIBE}\">Unsubscribe</a> · <a href=\"x\">View</a></p>"
        );
        let content = IssueContent {
            anonymous: Variant {
                html: Spliced::split(&html),
                ..Variant::default()
            },
            ..IssueContent::default()
        };
        assert_eq!(
            content.archive_html("https://t/subscribe?a&b"),
            "<p class=\"footer\"><a href=\"https://t/subscribe?a&amp;b\">Subscribe</a> · <a href=\"x\">View</a></p>"
        );
    }

    #[test]
    fn issue_slugs_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-11-27T07:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(issue_slug(t), "2026-11-27-070000");
        assert_eq!(parse_issue_slug("2026-11-27-070000"), Some(t));
        assert_eq!(parse_issue_slug("nope"), None);
    }
}

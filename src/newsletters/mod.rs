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

use crate::articles::body::escape_html;
use crate::articles::{Article, Renderer};
use crate::config::{NewsletterConfig, Site};
use crate::templates::{Flavor, Templates};
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

    /// Every newsletter of the site, schedules parsed; errors name the newsletter.
    pub fn all(site: &Site) -> Result<Vec<Newsletter>, String> {
        site.config
            .newsletters
            .iter()
            .map(|n| {
                let zone = site.config.newsletter_zone(n);
                Schedule::parse(&n.schedule, zone)
                    .map(|schedule| Newsletter {
                        config: n.clone(),
                        schedule,
                    })
                    .map_err(|e| format!("newsletter {:?}: schedule {e}", n.id.0))
            })
            .collect()
    }

    /// Whether an article belongs in this newsletter (its tags, or every article).
    pub fn wants(&self, a: &Article) -> bool {
        let tags = &self.config.tags;
        tags.is_empty()
            || a.tags.iter().any(|t| {
                tags.iter()
                    .any(|want| t.slug == crate::articles::body::slugify(want))
            })
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
}

impl IssueContent {
    pub fn for_name(&self, name: &str) -> &Variant {
        if name.is_empty() {
            &self.anonymous
        } else {
            &self.named
        }
    }

    /// The HTML with no subscriber in it, for the web archive.
    pub fn archive_html(&self, subscribe_url: &str) -> String {
        self.anonymous.html.fill(
            &Recipient {
                name: "",
                email: "",
                unsubscribe_url: subscribe_url,
                preferences_url: subscribe_url,
            },
            true,
        )
    }
}

/// Facts about the issue being rendered.
pub struct IssueFacts<'a> {
    pub newsletter: &'a Newsletter,
    pub scheduled: DateTime<Utc>,
    pub articles: &'a [&'a Article],
}

impl IssueFacts<'_> {
    /// The issue's title: its first article's, and how many more.
    pub fn title(&self) -> String {
        match self.articles {
            [] => format!("{}: nothing new", self.newsletter.title()),
            [one] => one.title.clone(),
            [first, rest @ ..] => format!("{} and {} more", first.title, rest.len()),
        }
    }
}

/// The template context of DESIGN §6, with `subscriber`, `unsubscribe_url` and
/// `preferences_url` as placeholders (`named` decides whether the name is one).
pub fn context(site: &Site, renderer: &Renderer, facts: &IssueFacts<'_>, named: bool) -> Value {
    let cfg = &site.config;
    let n = facts.newsletter;
    let slug = issue_slug(facts.scheduled);
    let articles: Vec<Value> = facts
        .articles
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
            json!({
                "id": a.id,
                "title": a.title,
                "url": a.url,
                "date": crate::feeds::rfc3339(a.date),
                "summary": summary,
                "content_html": html,
                "content_text": text.trim_end(),
                "tags": a.tags.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                "authors": a.authors,
                "image": a.image,
            })
        })
        .collect();
    json!({
        "site": {
            "title": cfg.site.title.0,
            "description": cfg.site.description(),
            "base_url": cfg.site.base_url.0.as_str(),
            "language": cfg.site.language,
        },
        "newsletter": {"id": n.id(), "title": n.title(), "timezone": n.zone().name()},
        "issue": {
            "slug": slug,
            "title": facts.title(),
            "date": crate::feeds::rfc3339(facts.scheduled),
            "count": facts.articles.len(),
        },
        "articles": articles,
        "subscriber": {"email": EMAIL.to_string(), "name": if named { NAME.to_string() } else { String::new() }},
        "unsubscribe_url": UNSUBSCRIBE.to_string(),
        "preferences_url": PREFERENCES.to_string(),
        "archive_url": cfg.site.url(&format!("archive/{}/{slug}", n.id())),
    })
}

/// Renders an issue: subject, HTML (with CSS inlined) and text, in both variants.
pub fn render(
    site: &Site,
    templates: &Templates,
    renderer: &Renderer,
    facts: &IssueFacts<'_>,
) -> Result<IssueContent, String> {
    let n = facts.newsletter;
    let inliner = css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_style_tags(false)
        .keep_at_rules(true)
        .build();
    let one = |named: bool| -> Result<Variant, String> {
        let ctx = context(site, renderer, facts, named);
        let subject = templates.render_text_str(
            &format!("newsletter {:?}: subject", n.id()),
            &n.config.subject,
            &ctx,
        )?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        let html = templates.render(Flavor::Html, n.template(), &ctx)?;
        let html = inliner
            .inline(&html)
            .map_err(|e| format!("inlining CSS: {e}"))?;
        let text = templates.render(Flavor::Text, n.template(), &ctx)?;
        Ok(Variant {
            subject: Spliced::split(&subject),
            html: Spliced::split(&html),
            text: Spliced::split(&text),
        })
    };
    Ok(IssueContent {
        named: one(true)?,
        anonymous: one(false)?,
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
    fn issue_slugs_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-11-27T07:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(issue_slug(t), "2026-11-27-070000");
        assert_eq!(parse_issue_slug("2026-11-27-070000"), Some(t));
        assert_eq!(parse_issue_slug("nope"), None);
    }
}

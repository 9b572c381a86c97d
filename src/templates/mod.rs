//! Handlebars templates for pages and emails: defaults embedded in the binary, overridden by
//! files of the same name in the publication's `templates/` folder.
//!
//! `NAME.html.hbs` is registered as `NAME` in the HTML registry (escaping on) and
//! `NAME.txt.hbs` as `NAME` in the text registry (escaping off: plain-text parts and Subject
//! lines must not get `&amp;`). Both are strict: a missing variable is an error, which
//! `herald check` surfaces by rendering every template against a sample context.
//! Helpers: `date` (a date written the way the site's language writes it), `format_date`
//! (any strftime format), `truncate`, `plural`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson, handlebars_helper,
};
use serde::Serialize;

use crate::text::truncate_words;

/// The embedded defaults: (file name, source).
const DEFAULTS: &[(&str, &str)] = &[
    ("layout.html.hbs", include_str!("layout.html.hbs")),
    ("home.html.hbs", include_str!("home.html.hbs")),
    ("article.html.hbs", include_str!("article.html.hbs")),
    ("tag.html.hbs", include_str!("tag.html.hbs")),
    ("message.html.hbs", include_str!("message.html.hbs")),
    ("subscribe.html.hbs", include_str!("subscribe.html.hbs")),
    ("confirm.html.hbs", include_str!("confirm.html.hbs")),
    ("unsubscribe.html.hbs", include_str!("unsubscribe.html.hbs")),
    (
        "confirm_email.html.hbs",
        include_str!("confirm_email.html.hbs"),
    ),
    (
        "confirm_email.txt.hbs",
        include_str!("confirm_email.txt.hbs"),
    ),
    (
        "confirm_email_subject.txt.hbs",
        include_str!("confirm_email_subject.txt.hbs"),
    ),
    ("newsletter.html.hbs", include_str!("newsletter.html.hbs")),
    ("newsletter.txt.hbs", include_str!("newsletter.txt.hbs")),
    ("archive.html.hbs", include_str!("archive.html.hbs")),
];

/// Where a template came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Embedded,
    File(PathBuf),
}

/// Both registries, loaded and checked.
pub struct Templates {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    origins: BTreeMap<String, Origin>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("origins", &self.origins)
            .finish()
    }
}

/// Which registry a template belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Html,
    Text,
}

impl Templates {
    /// Loads the defaults, then every `*.html.hbs` / `*.txt.hbs` in `dir` (if it exists).
    /// Each error names the file and line.
    pub fn load(dir: &Path, zone: Tz) -> Result<Templates, Vec<String>> {
        let mut t = Templates {
            html: registry(zone, true),
            text: registry(zone, false),
            origins: BTreeMap::new(),
        };
        let mut errors = Vec::new();
        for (file, source) in DEFAULTS {
            if let Err(e) = t.add(file, source, Origin::Embedded) {
                errors.push(e);
            }
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for path in files {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if !name.ends_with(".hbs") || name.starts_with('.') {
                    continue;
                }
                match std::fs::read_to_string(&path) {
                    Ok(source) => {
                        if let Err(e) = t.add(name, &source, Origin::File(path.clone())) {
                            errors.push(e);
                        }
                    }
                    Err(e) => errors.push(format!("{}: {e}", path.display())),
                }
            }
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(errors)
        }
    }

    fn add(&mut self, file: &str, source: &str, origin: Origin) -> Result<(), String> {
        let shown = match &origin {
            Origin::Embedded => format!("(built-in) {file}"),
            Origin::File(p) => p.display().to_string(),
        };
        let (name, registry) = if let Some(n) = file.strip_suffix(".html.hbs") {
            (n, &mut self.html)
        } else if let Some(n) = file.strip_suffix(".txt.hbs") {
            (n, &mut self.text)
        } else {
            return Err(format!(
                "{shown}: template files are named NAME.html.hbs or NAME.txt.hbs"
            ));
        };
        registry
            .register_template_string(name, source)
            .map_err(|e| {
                format!(
                    "{shown}:{}: {}",
                    e.pos().map(|p| p.0).unwrap_or(1),
                    e.reason()
                )
            })?;
        let key = match registry_flavor(file) {
            Flavor::Html => format!("{name}.html"),
            Flavor::Text => format!("{name}.txt"),
        };
        self.origins.insert(key, origin);
        Ok(())
    }

    pub fn has(&self, flavor: Flavor, name: &str) -> bool {
        match flavor {
            Flavor::Html => self.html.has_template(name),
            Flavor::Text => self.text.has_template(name),
        }
    }

    /// Renders a registered template; errors name the file and line.
    pub fn render(
        &self,
        flavor: Flavor,
        name: &str,
        ctx: &impl Serialize,
    ) -> Result<String, String> {
        let reg = match flavor {
            Flavor::Html => &self.html,
            Flavor::Text => &self.text,
        };
        reg.render(name, ctx)
            .map_err(|e| self.describe(flavor, name, &e))
    }

    /// Renders a one-off template string (a Subject line) without HTML escaping.
    pub fn render_text_str(
        &self,
        what: &str,
        source: &str,
        ctx: &impl Serialize,
    ) -> Result<String, String> {
        self.text
            .render_template(source, ctx)
            .map_err(|e| format!("{what}: {}", reason(&e)))
    }

    fn describe(&self, flavor: Flavor, name: &str, e: &RenderError) -> String {
        let template = e.template_name.clone().unwrap_or_else(|| name.to_string());
        let key = match flavor {
            Flavor::Html => format!("{template}.html"),
            Flavor::Text => format!("{template}.txt"),
        };
        let file = match self.origins.get(&key) {
            Some(Origin::File(p)) => p.display().to_string(),
            _ => format!("(built-in) {key}.hbs"),
        };
        format!("{file}:{}: {}", e.line_no.unwrap_or(1), reason(e))
    }
}

fn registry_flavor(file: &str) -> Flavor {
    if file.ends_with(".txt.hbs") {
        Flavor::Text
    } else {
        Flavor::Html
    }
}

fn reason(e: &RenderError) -> String {
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(v)) => {
            format!("no variable `{v}` in this template's context")
        }
        other => other.to_string(),
    }
}

fn registry(zone: Tz, escape: bool) -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    if !escape {
        h.register_escape_fn(handlebars::no_escape);
    }
    h.register_helper("format_date", Box::new(DateHelper { zone }));
    h.register_helper("truncate", Box::new(truncate));
    h.register_helper("plural", Box::new(plural));
    h
}

handlebars_helper!(truncate: |s: str, n: u64| truncate_words(s, n as usize));
handlebars_helper!(plural: |n: i64, one: str, many: str| if n == 1 { one.to_string() } else { many.to_string() });

/// `{{format_date value "long"}}` (or `"full"`, with the day of the week): an RFC 3339
/// instant written the way the site's language writes dates ([`local_date`]; `lang=` picks
/// another language than the context's `site.language`). Any other format is strftime
/// (`{{format_date value "%d.%m.%Y %H:%M"}}`; default `%Y-%m-%d`). `tz=` picks the zone
/// (the site's by default).
struct DateHelper {
    zone: Tz,
}

impl HelperDef for DateHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let t = helper_instant(h, self.zone)?;
        let format = h
            .param(1)
            .and_then(|p| p.value().as_str())
            .unwrap_or("%Y-%m-%d");
        let length = match format {
            "long" => Some(DateLength::Long),
            "full" => Some(DateLength::Full),
            _ => None,
        };
        let out = if let Some(length) = length {
            let language = h
                .hash_get("lang")
                .and_then(|v| v.value().as_str().map(str::to_string))
                .or_else(|| {
                    ctx.data()
                        .pointer("/site/language")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "en".into());
            local_date(&t, &language, length)
        } else {
            let mut out = String::new();
            use std::fmt::Write;
            write!(out, "{}", t.format(format))
                .map_err(|_| RenderErrorReason::Other(format!("date: bad format {format:?}")))?;
            out
        };
        Ok(ScopedJson::Derived(serde_json::Value::String(out)))
    }
}

/// The instant of a date helper's first parameter (RFC 3339), in the zone of its `tz=`
/// (the site's by default).
fn helper_instant(h: &Helper<'_>, default: Tz) -> Result<DateTime<Tz>, RenderError> {
    let value = h.param(0).and_then(|p| p.value().as_str()).ok_or_else(|| {
        RenderErrorReason::ParamTypeMismatchForName("date", "0".into(), "an RFC 3339 string".into())
    })?;
    let zone = match h.hash_get("tz").and_then(|v| v.value().as_str()) {
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| RenderErrorReason::Other(format!("date: unknown time zone {name:?}")))?,
        None => default,
    };
    let t = DateTime::parse_from_rfc3339(value).map_err(|_| {
        RenderErrorReason::Other(format!("date: {value:?} is not an RFC 3339 date"))
    })?;
    Ok(t.with_timezone(&Utc).with_timezone(&zone))
}

/// How long a date is written by [`local_date`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateLength {
    /// `27 November 2026`
    Long,
    /// `Friday 27 November 2026`
    Full,
}

/// A date as the language of `language` (an RFC 5646 tag such as `en`, `en-US`, `de-AT`)
/// writes it, with one space between words:
///
/// | language | long | full |
/// |---|---|---|
/// | `en` (any region but US) | 27 November 2026 | Friday 27 November 2026 |
/// | `en-US` | November 27, 2026 | Friday, November 27, 2026 |
/// | `de` | 27. November 2026 | Freitag, 27. November 2026 |
/// | `fr` | 27 novembre 2026 (1er for the first) | vendredi 27 novembre 2026 |
/// | `es` | 27 de noviembre de 2026 | viernes, 27 de noviembre de 2026 |
/// | `it` | 27 novembre 2026 | venerdì 27 novembre 2026 |
/// | `nl` | 27 november 2026 | vrijdag 27 november 2026 |
/// | `pt` | 27 de novembro de 2026 | sexta-feira, 27 de novembro de 2026 |
/// | anything else | 2026-11-27 | 2026-11-27 |
///
/// Month and day names come from the region's locale where there is one (`de-AT` writes
/// "Jänner"), else from the language's main one.
pub fn local_date<Z: chrono::TimeZone>(
    t: &DateTime<Z>,
    language: &str,
    length: DateLength,
) -> String
where
    Z::Offset: std::fmt::Display,
{
    use chrono::Datelike;
    let mut subtags = language.split(['-', '_']);
    let lang = subtags.next().unwrap_or("").to_ascii_lowercase();
    let region = subtags
        .find(|s| s.len() == 2 && s.chars().all(|c| c.is_ascii_alphabetic()))
        .map(str::to_ascii_uppercase);
    let us = lang == "en" && matches!(region.as_deref(), Some("US" | "PH"));
    let (main, long, full) = match lang.as_str() {
        "en" if us => ("en_US", "%B %-d, %Y", "%A, %B %-d, %Y"),
        "en" => ("en_GB", "%-d %B %Y", "%A %-d %B %Y"),
        "de" => ("de_DE", "%-d. %B %Y", "%A, %-d. %B %Y"),
        "fr" => ("fr_FR", "%-d %B %Y", "%A %-d %B %Y"),
        "es" => ("es_ES", "%-d de %B de %Y", "%A, %-d de %B de %Y"),
        "it" => ("it_IT", "%-d %B %Y", "%A %-d %B %Y"),
        "nl" => ("nl_NL", "%-d %B %Y", "%A %-d %B %Y"),
        "pt" => ("pt_PT", "%-d de %B de %Y", "%A, %-d de %B de %Y"),
        _ => return t.format("%Y-%m-%d").to_string(),
    };
    let locale = region
        .and_then(|r| chrono::Locale::try_from(format!("{lang}_{r}").as_str()).ok())
        .unwrap_or_else(|| chrono::Locale::try_from(main).unwrap_or_default());
    let mut pattern = match length {
        DateLength::Long => long,
        DateLength::Full => full,
    }
    .to_string();
    // French writes the first of the month as an ordinal.
    if lang == "fr" && t.day() == 1 {
        pattern = pattern.replace("%-d", "1er");
    }
    let mut out = t.format_localized(&pattern, locale).to_string();
    // glibc's Portuguese day names are the short forms ("sexta"); writing dates, one says
    // "sexta-feira" for Monday to Friday.
    if lang == "pt"
        && length == DateLength::Full
        && (1..=5).contains(&t.weekday().num_days_from_sunday())
        && let Some(i) = out.find(',')
    {
        out.insert_str(i, "-feira");
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helpers_format_dates_truncate_and_pluralize() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.txt.hbs"),
            "{{format_date when \"%d.%m.%Y %H:%M\" tz=\"Europe/Berlin\"}} {{truncate s 9}} {{n}} {{plural n \"item\" \"items\"}} {{q}}",
        )
        .unwrap();
        let t = Templates::load(dir.path(), Tz::UTC).unwrap();
        let out = t
            .render(Flavor::Text, "t", &json!({"when": "2026-07-01T10:00:00Z", "s": "one two three four", "n": 2, "q": "a&b"}))
            .unwrap();
        assert_eq!(out, "01.07.2026 12:00 one two… 2 items a&b");
    }

    #[test]
    fn long_dates_follow_the_language_with_single_spaces() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        let nov = t("2026-11-27T07:00:00Z");
        let cases = [
            ("en", "27 November 2026", "Friday 27 November 2026"),
            ("en-GB", "27 November 2026", "Friday 27 November 2026"),
            ("en-US", "November 27, 2026", "Friday, November 27, 2026"),
            ("de", "27. November 2026", "Freitag, 27. November 2026"),
            ("fr-FR", "27 novembre 2026", "vendredi 27 novembre 2026"),
            (
                "es",
                "27 de noviembre de 2026",
                "viernes, 27 de noviembre de 2026",
            ),
            ("it", "27 novembre 2026", "venerdì 27 novembre 2026"),
            ("nl", "27 november 2026", "vrijdag 27 november 2026"),
            (
                "pt-BR",
                "27 de novembro de 2026",
                "sexta-feira, 27 de novembro de 2026",
            ),
            ("ja", "2026-11-27", "2026-11-27"),
            ("", "2026-11-27", "2026-11-27"),
        ];
        for (lang, long, full) in cases {
            assert_eq!(local_date(&nov, lang, DateLength::Long), long, "{lang}");
            assert_eq!(local_date(&nov, lang, DateLength::Full), full, "{lang}");
        }
        let first = t("2027-01-01T12:00:00Z");
        assert_eq!(
            local_date(&first, "fr", DateLength::Long),
            "1er janvier 2027"
        );
        assert_eq!(
            local_date(&first, "de-AT", DateLength::Long),
            "1. Jänner 2027"
        );
        assert_eq!(local_date(&first, "en", DateLength::Long), "1 January 2027");
        assert_eq!(
            local_date(&first, "en-US", DateLength::Long),
            "January 1, 2027"
        );
        // Saturday: no "-feira".
        let sat = t("2026-11-28T12:00:00Z");
        assert_eq!(
            local_date(&sat, "pt", DateLength::Full),
            "sábado, 28 de novembro de 2026"
        );
    }

    #[test]
    fn format_date_long_takes_the_language_of_the_context_or_lang() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.txt.hbs"),
            "{{format_date when \"long\" tz=\"America/New_York\"}}|{{format_date when \"full\" lang=\"de\"}}",
        )
        .unwrap();
        let t = Templates::load(dir.path(), Tz::UTC).unwrap();
        let out = t
            .render(
                Flavor::Text,
                "t",
                &json!({"when": "2026-07-01T02:00:00Z", "site": {"language": "en-US"}}),
            )
            .unwrap();
        assert_eq!(out, "June 30, 2026|Mittwoch, 1. Juli 2026");
        let out = t
            .render(Flavor::Text, "t", &json!({"when": "2026-07-01T02:00:00Z"}))
            .unwrap();
        assert_eq!(
            out, "30 June 2026|Mittwoch, 1. Juli 2026",
            "en without a site"
        );
    }

    #[test]
    fn a_missing_variable_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.html.hbs"), "line one\n{{nope}}\n").unwrap();
        let t = Templates::load(dir.path(), Tz::UTC).unwrap();
        let e = t.render(Flavor::Html, "t", &json!({})).unwrap_err();
        assert!(e.contains("t.html.hbs:2:"), "{e}");
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn a_syntax_error_is_reported_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.html.hbs"), "ok\n{{#if x}}\n").unwrap();
        let e = Templates::load(dir.path(), Tz::UTC).unwrap_err();
        assert!(e[0].contains("t.html.hbs"), "{e:?}");
    }

    #[test]
    fn html_escapes_and_text_does_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.html.hbs"), "{{q}}").unwrap();
        std::fs::write(dir.path().join("t.txt.hbs"), "{{q}}").unwrap();
        let t = Templates::load(dir.path(), Tz::UTC).unwrap();
        let ctx = json!({"q": "https://x/?a=1&b=<2>"});
        assert_eq!(
            t.render(Flavor::Html, "t", &ctx).unwrap(),
            "https://x/?a&#x3D;1&amp;b&#x3D;&lt;2&gt;"
        );
        assert_eq!(
            t.render(Flavor::Text, "t", &ctx).unwrap(),
            "https://x/?a=1&b=<2>"
        );
    }
}

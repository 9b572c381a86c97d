//! Handlebars templates for pages and emails: defaults embedded in the binary, overridden by
//! files of the same name in the publication's `templates/` folder.
//!
//! `NAME.html.hbs` is registered as `NAME` in the HTML registry (escaping on) and
//! `NAME.txt.hbs` as `NAME` in the text registry (escaping off: plain-text parts and Subject
//! lines must not get `&amp;`). Both are strict: a missing variable is an error, which
//! `herald check` surfaces by rendering every template against a sample context.
//! Helpers: `format_date`, `truncate`, `plural`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson, handlebars_helper,
};
use serde::Serialize;

use crate::articles::body::truncate_words;

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

/// `{{format_date value "%B %e, %Y" tz="Europe/Berlin"}}`: an RFC 3339 instant shown in a zone
/// (the site's by default) with a strftime format (default `%Y-%m-%d`).
struct DateHelper {
    zone: Tz,
}

impl HelperDef for DateHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = h.param(0).and_then(|p| p.value().as_str()).ok_or_else(|| {
            RenderErrorReason::ParamTypeMismatchForName(
                "date",
                "0".into(),
                "an RFC 3339 string".into(),
            )
        })?;
        let format = h
            .param(1)
            .and_then(|p| p.value().as_str())
            .unwrap_or("%Y-%m-%d");
        let zone = match h.hash_get("tz").and_then(|v| v.value().as_str()) {
            Some(name) => name.parse::<Tz>().map_err(|_| {
                RenderErrorReason::Other(format!("date: unknown time zone {name:?}"))
            })?,
            None => self.zone,
        };
        let t = DateTime::parse_from_rfc3339(value).map_err(|_| {
            RenderErrorReason::Other(format!("date: {value:?} is not an RFC 3339 date"))
        })?;
        let mut out = String::new();
        use std::fmt::Write;
        write!(
            out,
            "{}",
            t.with_timezone(&Utc).with_timezone(&zone).format(format)
        )
        .map_err(|_| RenderErrorReason::Other(format!("date: bad format {format:?}")))?;
        Ok(ScopedJson::Derived(serde_json::Value::String(out)))
    }
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

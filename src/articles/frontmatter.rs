//! Front matter: splitting the `---` (YAML) or `+++` (TOML) block off a file and reading its
//! keys into typed fields, with every error pointing at a line of the file.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::body::xml_safe;

/// Every key an article may carry; anything else is an error.
pub const KEYS: &[&str] = &[
    "title", "date", "updated", "id", "slug", "url", "tags", "authors", "summary", "draft", "image",
];

/// The keys as written, before any meaning is given to them.
#[derive(Debug, Default)]
pub struct FrontMatter {
    pub title: Option<String>,
    pub date: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    pub id: Option<String>,
    pub slug: Option<String>,
    pub url: Option<String>,
    pub tags: Vec<String>,
    pub authors: Vec<String>,
    /// Plain text, with HTML element tags already removed.
    pub summary: Option<String>,
    pub draft: bool,
    pub image: Option<String>,
    /// The 1-based line (within the whole file) each key was written on, for later errors.
    pub key_lines: Vec<(String, usize)>,
}

impl FrontMatter {
    /// The line `key` was written on, or 1 when it was not written.
    pub fn line(&self, key: &str) -> usize {
        self.key_lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, l)| *l)
            .unwrap_or(1)
    }
}

/// An error at a 1-based line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, LineError> {
    Err(LineError {
        line,
        message: message.into(),
    })
}

/// A front matter value, whichever syntax it came from.
#[derive(Debug, Clone)]
enum Value {
    Str(String),
    Bool(bool),
    Number(String),
    /// A TOML date or date-time, in its TOML spelling.
    Date(String),
    List(Vec<Value>),
    Other(&'static str),
}

/// The text of a file split into front matter and body.
#[derive(Debug)]
pub struct Split<'a> {
    pub front: FrontMatter,
    pub body: &'a str,
    /// The 1-based line the body starts on.
    pub body_line: usize,
}

/// Splits and parses `text`. `zone` interprets dates written without an offset.
pub fn split(text: &str, zone: Tz) -> Result<Split<'_>, LineError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().next().unwrap_or("");
    let fence = match first.trim_end() {
        "---" => "---",
        "+++" => "+++",
        _ => {
            return Ok(Split {
                front: FrontMatter::default(),
                body: text,
                body_line: 1,
            });
        }
    };
    // Find the closing fence: a line that is exactly the fence (YAML also allows `...`).
    let mut offset = first.len() + newline_len(&text[first.len()..]);
    let start = offset;
    let mut line_no = 2;
    loop {
        if offset >= text.len() {
            let kind = if fence == "---" { "YAML" } else { "TOML" };
            return err(
                1,
                format!(
                    "{kind} front matter opened here with {fence} is never closed (expected a line with just {fence})"
                ),
            );
        }
        let rest = &text[offset..];
        let line = rest.lines().next().unwrap_or("");
        let trimmed = line.trim_end();
        if trimmed == fence || (fence == "---" && trimmed == "...") {
            let raw = &text[start..offset];
            let after = offset + line.len() + newline_len(&rest[line.len()..]);
            let values = if fence == "---" {
                parse_yaml(raw)
            } else {
                parse_toml(raw)
            }
            .map_err(|e| LineError {
                line: e.line + 1,
                message: e.message,
            })?;
            let mut front = interpret(values, raw, zone).map_err(|e| LineError {
                line: e.line + 1,
                message: e.message,
            })?;
            for (_, line) in &mut front.key_lines {
                *line += 1;
            }
            return Ok(Split {
                front,
                body: &text[after.min(text.len())..],
                body_line: line_no + 1,
            });
        }
        offset += line.len() + newline_len(&rest[line.len()..]);
        line_no += 1;
    }
}

fn newline_len(s: &str) -> usize {
    if s.starts_with("\r\n") {
        2
    } else if s.starts_with('\n') {
        1
    } else {
        0
    }
}

/// Keys in the order written, with the line (within the block) each is on.
type Entries = Vec<(String, Value)>;

fn parse_yaml(raw: &str) -> Result<Entries, LineError> {
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    // libyaml often notices a problem at the start of the next line; never point past
    // the last line of the block.
    let last = raw.lines().count().max(1);
    let value: serde_norway::Value = serde_norway::from_str(raw).map_err(|e| LineError {
        line: e.location().map(|l| l.line()).unwrap_or(1).min(last),
        message: format!(
            "front matter is not valid YAML: {}",
            strip_location(&e.to_string())
        ),
    })?;
    let serde_norway::Value::Mapping(map) = value else {
        if value.is_null() {
            return Ok(Vec::new());
        }
        return err(1, "front matter must be a set of `key: value` lines");
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            return err(1, format!("front matter key {k:?} is not a string"));
        };
        out.push((key.to_string(), from_yaml(v)));
    }
    Ok(out)
}

fn strip_location(msg: &str) -> String {
    // serde_norway appends " at line N column M"; the caller reports the line itself.
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// A YAML value as a [`Value`]. Strings may spell characters XML forbids as escapes
/// (`"\u0001"`), which the filter over the whole file cannot see: they are dropped here.
fn from_yaml(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::String(s) => Value::Str(xml_safe(&s)),
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => Value::Number(n.to_string()),
        Y::Sequence(items) => Value::List(items.into_iter().map(from_yaml).collect()),
        Y::Null => Value::Other("null"),
        Y::Mapping(_) => Value::Other("a mapping"),
        Y::Tagged(t) => from_yaml(t.value),
    }
}

fn parse_toml(raw: &str) -> Result<Entries, LineError> {
    let table: toml::Table = toml::from_str(raw).map_err(|e| LineError {
        line: e
            .span()
            .map(|s| raw[..s.start.min(raw.len())].matches('\n').count() + 1)
            .unwrap_or(1),
        message: format!("front matter is not valid TOML: {}", e.message().trim()),
    })?;
    Ok(table.into_iter().map(|(k, v)| (k, from_toml(v))).collect())
}

/// A TOML value as a [`Value`], strings filtered as in [`from_yaml`].
fn from_toml(v: toml::Value) -> Value {
    use toml::Value as T;
    match v {
        T::String(s) => Value::Str(xml_safe(&s)),
        T::Boolean(b) => Value::Bool(b),
        T::Integer(n) => Value::Number(n.to_string()),
        T::Float(f) => Value::Number(f.to_string()),
        T::Datetime(d) => Value::Date(d.to_string()),
        T::Array(items) => Value::List(items.into_iter().map(from_toml).collect()),
        T::Table(_) => Value::Other("a table"),
    }
}

/// The 1-based line within `raw` where `key` is written, or 1.
fn key_line(raw: &str, key: &str) -> usize {
    raw.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches(['"', '\'']);
            l.strip_prefix(key)
                .map(|rest| {
                    let rest = rest.trim_start_matches(['"', '\'']).trim_start();
                    rest.starts_with(':') || rest.starts_with('=')
                })
                .unwrap_or(false)
        })
        .map(|i| i + 1)
        .unwrap_or(1)
}

fn interpret(entries: Entries, raw: &str, zone: Tz) -> Result<FrontMatter, LineError> {
    let mut fm = FrontMatter::default();
    for (key, value) in entries {
        let line = key_line(raw, &key);
        fm.key_lines.push((key.clone(), line));
        let text = |v: Value| -> Result<String, LineError> {
            match v {
                Value::Str(s) | Value::Number(s) | Value::Date(s) => Ok(s),
                other => err(
                    line,
                    format!("`{key}` must be text, not {}", describe(&other)),
                ),
            }
        };
        let list = |v: Value| -> Result<Vec<String>, LineError> {
            match v {
                Value::List(items) => items
                    .into_iter()
                    .map(|i| match i {
                        Value::Str(s) | Value::Number(s) => Ok(s),
                        other => err(
                            line,
                            format!(
                                "`{key}` must be a list of text, but has {}",
                                describe(&other)
                            ),
                        ),
                    })
                    .collect(),
                Value::Str(s) => Ok(vec![s]),
                other => err(
                    line,
                    format!("`{key}` must be a list, not {}", describe(&other)),
                ),
            }
        };
        let date = |v: Value| -> Result<DateTime<Utc>, LineError> {
            let s = text(v)?;
            parse_date(&s, zone).map_err(|m| LineError {
                line,
                message: format!("`{key}`: {m}"),
            })
        };
        match key.as_str() {
            "title" => fm.title = Some(text(value)?),
            "date" => fm.date = Some(date(value)?),
            "updated" => fm.updated = Some(date(value)?),
            "id" => fm.id = Some(text(value)?),
            "slug" => fm.slug = Some(text(value)?),
            "url" => fm.url = Some(text(value)?),
            "tags" => fm.tags = list(value)?,
            "authors" => fm.authors = list(value)?,
            // Summaries are plain text everywhere: a tag such as `<b>` is dropped here, as
            // in titles, rather than reaching a feed reader as markup.
            "summary" => fm.summary = Some(super::body::strip_html_tags(&text(value)?)),
            "image" => fm.image = Some(text(value)?),
            "draft" => match value {
                Value::Bool(b) => fm.draft = b,
                other => {
                    return err(
                        line,
                        format!("`draft` must be true or false, not {}", describe(&other)),
                    );
                }
            },
            _ => {
                return err(
                    line,
                    format!(
                        "unknown front matter key `{key}` (known keys: {})",
                        KEYS.join(", ")
                    ),
                );
            }
        }
    }
    Ok(fm)
}

fn describe(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("the text {s:?}"),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::Date(d) => format!("the date {d}"),
        Value::List(_) => "a list".into(),
        Value::Other(what) => (*what).into(),
    }
}

/// RFC 3339, `YYYY-MM-DD`, or `YYYY-MM-DD HH:MM[:SS]` (also with `T`) in `zone`.
pub fn parse_date(s: &str, zone: Tz) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok(d.with_timezone(&Utc));
    }
    let local = if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0).expect("midnight exists")
    } else {
        let formats = [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
        ];
        formats
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a date: write RFC 3339 (2026-05-01T09:00:00Z), 2026-05-01, or 2026-05-01 09:00"
                )
            })?
    };
    // A wall-clock time that a DST change skips is moved past the gap; a repeated one takes
    // its first occurrence.
    let resolved = zone
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .ok_or_else(|| format!("{s:?} does not exist in {zone}"))?;
    Ok(resolved.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_toml_read_the_same_keys() {
        let y = split(
            "---\ntitle: Hello\ndate: 2026-05-01\ntags: [a, b]\ndraft: true\n---\nBody\n",
            Tz::UTC,
        )
        .unwrap();
        let t = split(
            "+++\ntitle = \"Hello\"\ndate = 2026-05-01\ntags = [\"a\", \"b\"]\ndraft = true\n+++\nBody\n",
            Tz::UTC,
        )
        .unwrap();
        for s in [&y, &t] {
            assert_eq!(s.front.title.as_deref(), Some("Hello"));
            assert_eq!(
                s.front.date.unwrap().to_rfc3339(),
                "2026-05-01T00:00:00+00:00"
            );
            assert_eq!(s.front.tags, vec!["a", "b"]);
            assert!(s.front.draft);
            assert_eq!(s.body, "Body\n");
            assert_eq!(s.body_line, 7);
        }
    }

    #[test]
    fn local_dates_use_the_zone() {
        let d = parse_date("2026-07-01 09:30", chrono_tz::Europe::Berlin).unwrap();
        assert_eq!(d.to_rfc3339(), "2026-07-01T07:30:00+00:00");
        let d = parse_date("2026-07-01T09:30:00+02:00", Tz::UTC).unwrap();
        assert_eq!(d.to_rfc3339(), "2026-07-01T07:30:00+00:00");
    }

    #[test]
    fn errors_point_at_the_line() {
        let e = split("---\ntitle: x\ncolour: red\n---\n", Tz::UTC).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("colour"));
        let e = split("---\ntitle: x\ndate: yesterday\n---\n", Tz::UTC).unwrap_err();
        assert_eq!(e.line, 3);
        let e = split("---\ntitle: [unclosed\n---\n", Tz::UTC).unwrap_err();
        assert!(e.line >= 2, "{e:?}");
        let e = split("+++\ntitle = \n+++\n", Tz::UTC).unwrap_err();
        assert_eq!(e.line, 2);
        let e = split("---\ntitle: x\n", Tz::UTC).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("never closed"));
    }

    #[test]
    fn summaries_lose_element_tags_but_keep_angle_brackets() {
        let s = split(
            "---\nsummary: \"<b>Bold</b>, a<b & <3 <script>x</script>\"\n---\n",
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(s.front.summary.as_deref(), Some("Bold, a<b & <3  x "));
    }

    #[test]
    fn escaped_control_characters_are_dropped() {
        for text in [
            "---\ntitle: \"a\\u0001b\\x85c\"\ntags: [\"t\\u000bu\"]\n---\n",
            "+++\ntitle = \"a\\u0001b\\u0085c\"\ntags = [\"t\\u000Bu\"]\n+++\n",
        ] {
            let s = split(text, Tz::UTC).unwrap();
            assert_eq!(s.front.title.as_deref(), Some("abc"), "{text}");
            assert_eq!(s.front.tags, ["tu"], "{text}");
        }
    }

    #[test]
    fn no_front_matter_is_all_body() {
        let s = split("# Title\n\nText\n", Tz::UTC).unwrap();
        assert!(s.front.title.is_none());
        assert_eq!(s.body_line, 1);
    }
}

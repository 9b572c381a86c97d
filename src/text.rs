//! Plain-text helpers every layer uses: collapsing and cutting text, escaping it for HTML,
//! slugs, and showing paths and strings in messages and logs without control characters.

use std::fmt;
use std::path::Path;

pub fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cuts `s` at a word boundary so it is at most about `max` characters, adding `…`.
pub fn truncate_words(s: &str, max: usize) -> String {
    // The byte offset of the first character past `max`, if there is one.
    let Some((cut, next)) = s.char_indices().nth(max) else {
        return s.to_string();
    };
    let head = &s[..cut];
    let trimmed = if next.is_whitespace() {
        head
    } else {
        match head.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
            Some((i, _)) if head[..i].chars().count() > max / 2 => &head[..i],
            _ => head,
        }
    };
    format!(
        "{}…",
        trimmed.trim_end_matches(|c: char| matches!(c, ',' | ';' | ':' | '.') || c.is_whitespace())
    )
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    html_escape::encode_quoted_attribute(s).into_owned()
}

/// A slug: lower-case letters and digits of any script, runs of anything else folded to `-`.
pub fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut dash = false;
    for c in s.chars() {
        if c.is_alphanumeric() || c == '_' {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        } else {
            dash = true;
        }
    }
    out
}

/// A path for a message or a log line: control characters (newlines, tabs, escape bytes),
/// invisible direction marks and bytes that are not UTF-8 are written as escapes (`\n`,
/// `\u{1b}`, `\xff`), so a file name cannot forge or garble a line.
pub fn shown(path: &Path) -> Shown<'_> {
    Shown(path)
}

pub struct Shown<'a>(&'a Path);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.as_os_str().as_encoded_bytes();
        for chunk in bytes.utf8_chunks() {
            f.write_str(&escaped(chunk.valid()))?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// `s` with control characters and invisible direction marks escaped.
pub fn escaped(s: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    if !s.chars().any(hidden) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_and_keeps_words() {
        assert_eq!(truncate_words("Straße ist lang", 9), "Straße…");
        assert_eq!(truncate_words("日本語のテキスト", 3), "日本語…");
        assert_eq!(truncate_words("short", 5), "short");
        assert_eq!(truncate_words("one two three", 7), "one two…");
        assert_eq!(truncate_words("anything", 0), "…");
    }

    #[test]
    fn slugs_keep_letters_of_every_script() {
        assert_eq!(slugify("Rust & C++ / Systems"), "rust-c-systems");
        assert_eq!(slugify("日本語 タグ"), "日本語-タグ");
        assert_eq!(slugify("  Hello--World  "), "hello-world");
    }
    #[test]
    fn names_are_shown_with_their_controls_escaped() {
        assert_eq!(
            shown(Path::new("articles/a\nb\u{1b}[31m\t\u{202e}.md")).to_string(),
            "articles/a\\nb\\u{1b}[31m\\t\\u{202e}.md"
        );
        assert_eq!(
            shown(Path::new("articles/ünï.md")).to_string(),
            "articles/ünï.md"
        );
    }

    #[cfg(unix)]
    #[test]
    fn bytes_that_are_not_utf8_are_shown_in_hex() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"articles/x\xffy.md"));
        assert_eq!(shown(p).to_string(), "articles/x\\xffy.md");
    }
}

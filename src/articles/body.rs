//! Article bodies: Markdown, HTML or plain text in; sanitized HTML with absolute links and a
//! plain-text summary out. Pure functions, no I/O.

use ammonia::{Builder, UrlRelative};
use pulldown_cmark::{Options, Parser, html};
use url::Url;

/// The source syntax of an article, from its file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Markdown,
    Html,
    Text,
}

impl Kind {
    pub fn from_extension(ext: &str) -> Option<Kind> {
        match ext.to_ascii_lowercase().as_str() {
            "md" | "markdown" => Some(Kind::Markdown),
            "html" | "htm" => Some(Kind::Html),
            "txt" => Some(Kind::Text),
            _ => None,
        }
    }
}

/// Turns article bodies into safe HTML. Built once: ammonia's builder is costly to make.
pub struct Renderer {
    sanitizer: Builder<'static>,
}

impl Renderer {
    pub fn new(base: &Url) -> Renderer {
        let mut sanitizer = Builder::default();
        sanitizer
            .url_relative(UrlRelative::RewriteWithBase(base.clone()))
            // `rtc` is not on the W3C feed validator's list of safe elements.
            .rm_tags(["rtc"]);
        Renderer { sanitizer }
    }

    /// Sanitized HTML for `body` written in `kind`.
    pub fn html(&self, kind: Kind, body: &str) -> String {
        let raw = match kind {
            Kind::Markdown => markdown_to_html(body),
            Kind::Html => body.to_string(),
            Kind::Text => text_to_html(body),
        };
        xml_safe(&self.sanitizer.clean(&raw).to_string())
    }
}

fn markdown_to_html(body: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH;
    let mut out = String::with_capacity(body.len() * 3 / 2);
    html::push_html(&mut out, Parser::new_ext(body, options));
    out
}

/// Paragraphs separated by blank lines; lines inside a paragraph kept apart with `<br>`.
fn text_to_html(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 64);
    for para in paragraphs(body) {
        out.push_str("<p>");
        for (i, line) in para.iter().enumerate() {
            if i > 0 {
                out.push_str("<br>\n");
            }
            out.push_str(&escape_html(line));
        }
        out.push_str("</p>\n");
    }
    out
}

/// Groups lines into paragraphs at blank lines.
pub fn paragraphs(body: &str) -> Vec<Vec<&str>> {
    let mut paras = Vec::new();
    let mut current = Vec::new();
    for line in body.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                paras.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line.trim_end());
        }
    }
    if !current.is_empty() {
        paras.push(current);
    }
    paras
}

/// The first paragraph of sanitized HTML as plain text, shortened to about `max` characters.
pub fn summary_of(html: &str, max: usize) -> Option<String> {
    let start = find_paragraph(html)?;
    let text = collapse_ws(&html_to_text(&html[start.0..start.1]));
    if text.is_empty() {
        return None;
    }
    Some(truncate_words(&text, max))
}

/// The byte range of the first non-empty `<p>` element's inner HTML, or of the whole fragment
/// when it has no paragraph.
fn find_paragraph(html: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = html[from..].find("<p") {
        let open = from + i;
        let after = html[open + 2..].chars().next();
        if matches!(after, Some('>') | Some(' ')) {
            let inner = open + html[open..].find('>')? + 1;
            let end = html[inner..]
                .find("</p>")
                .map(|e| inner + e)
                .unwrap_or(html.len());
            if !collapse_ws(&html_to_text(&html[inner..end])).is_empty() {
                return Some((inner, end));
            }
            from = end;
        } else {
            from = open + 2;
        }
    }
    if html.trim().is_empty() {
        None
    } else {
        Some((0, html.len()))
    }
}

/// Strips tags and decodes the entities ammonia's serializer writes.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    decode_entities(&out)
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[..rest.len().min(12)].find(';');
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ if name.starts_with("#x") || name.starts_with("#X") => {
                    u32::from_str_radix(&name[2..], 16)
                        .ok()
                        .and_then(char::from_u32)
                }
                _ if name.starts_with('#') => name[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cuts `s` at a word boundary so it is at most about `max` characters, adding `…`.
pub fn truncate_words(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    let trimmed = match cut.rfind(' ') {
        Some(i) if i > max / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", trimmed.trim_end_matches([',', ';', ':', '.', ' ']))
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Removes the characters XML 1.0 forbids (C0 controls other than tab, LF and CR, and the
/// non-characters U+FFFE and U+FFFF), so no feed is ever malformed by an article.
pub fn xml_safe(s: &str) -> String {
    if !s.chars().any(forbidden_in_xml) {
        return s.to_string();
    }
    s.chars().filter(|c| !forbidden_in_xml(*c)).collect()
}

fn forbidden_in_xml(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// HTML element names: a title holding one of these as a tag (`<b>`, `</b>`, `<br/>`) has it
/// removed, as WordPress does for feed titles. Other angle brackets (`<3`, `a<b`,
/// `Vec<T>`) stay: titles are plain text.
const HTML_ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "applet",
    "area",
    "article",
    "aside",
    "audio",
    "b",
    "base",
    "basefont",
    "bdi",
    "bdo",
    "big",
    "blockquote",
    "body",
    "br",
    "button",
    "canvas",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "data",
    "datalist",
    "dd",
    "del",
    "details",
    "dfn",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "em",
    "embed",
    "fieldset",
    "figcaption",
    "figure",
    "font",
    "footer",
    "form",
    "frame",
    "frameset",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hgroup",
    "hr",
    "html",
    "i",
    "iframe",
    "img",
    "input",
    "ins",
    "kbd",
    "label",
    "legend",
    "li",
    "link",
    "main",
    "map",
    "mark",
    "menu",
    "meta",
    "meter",
    "nav",
    "noframes",
    "noscript",
    "object",
    "ol",
    "optgroup",
    "option",
    "output",
    "p",
    "param",
    "picture",
    "pre",
    "progress",
    "q",
    "rp",
    "rt",
    "ruby",
    "s",
    "samp",
    "script",
    "section",
    "select",
    "slot",
    "small",
    "source",
    "span",
    "strike",
    "strong",
    "style",
    "sub",
    "summary",
    "sup",
    "svg",
    "table",
    "tbody",
    "td",
    "template",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "time",
    "title",
    "tr",
    "track",
    "tt",
    "u",
    "ul",
    "var",
    "video",
    "wbr",
];

/// Removes HTML element tags from plain text (see [`HTML_ELEMENTS`]).
pub fn strip_html_tags(s: &str) -> String {
    if !s.contains('<') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let tag_len = tail
            .find('>')
            .filter(|end| !tail[1..*end].contains('<'))
            .and_then(|end| {
                let inner = tail[1..end].trim_start_matches('/');
                let name: String = inner
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                let after = &inner[name.len()..];
                let well_formed =
                    after.is_empty() || after.starts_with(char::is_whitespace) || after == "/";
                (well_formed && HTML_ELEMENTS.contains(&name.as_str())).then_some(end + 1)
            });
        match tag_len {
            Some(len) => {
                out.push(' ');
                rest = &tail[len..];
            }
            None => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer() -> Renderer {
        Renderer::new(&Url::parse("https://example.com/blog/").unwrap())
    }

    #[test]
    fn markdown_is_rendered_sanitized_and_absolutized() {
        let html = renderer().html(
            Kind::Markdown,
            "Hi <script>alert(1)</script> [a](/x) ![i](img/p.png)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~ <b onclick=\"x()\">b</b>",
        );
        assert!(!html.contains("script"), "{html}");
        assert!(!html.contains("onclick"), "{html}");
        assert!(html.contains("href=\"https://example.com/x\""), "{html}");
        assert!(
            html.contains("src=\"https://example.com/blog/img/p.png\""),
            "{html}"
        );
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<del>gone</del>"), "{html}");
    }

    #[test]
    fn text_becomes_paragraphs() {
        let html = renderer().html(Kind::Text, "One\ntwo & <three>\n\n\nFour\n");
        assert_eq!(
            html,
            "<p>One<br>\ntwo &amp; &lt;three&gt;</p>\n<p>Four</p>\n"
        );
    }

    #[test]
    fn the_summary_is_the_first_paragraph_as_text() {
        let s = summary_of(
            "<h2>Head</h2><p></p><p>A &amp; <em>b</em>\n c</p><p>second</p>",
            300,
        );
        assert_eq!(s.as_deref(), Some("A & b c"));
        let long = format!("<p>{}</p>", "word ".repeat(100));
        let s = summary_of(&long, 50).unwrap();
        assert!(s.ends_with('…') && s.chars().count() <= 51, "{s}");
    }

    #[test]
    fn xml_forbidden_characters_are_dropped() {
        assert_eq!(xml_safe("a\u{1}b\u{b}c\td\u{fffe}"), "abc\td");
    }

    #[test]
    fn html_tags_leave_titles_but_angle_brackets_stay() {
        assert_eq!(
            collapse_ws(&strip_html_tags("Why <em>this</em> <script>x</script>")),
            "Why this x"
        );
        assert_eq!(
            strip_html_tags("I <3 Rust, a<b, Vec<String> <br/>"),
            "I <3 Rust, a<b, Vec<String>  "
        );
        assert_eq!(strip_html_tags("<b class=\"x\">B</b>"), " B ");
    }

    #[test]
    fn slugs_keep_letters_of_every_script() {
        assert_eq!(slugify("Rust & C++ / Systems"), "rust-c-systems");
        assert_eq!(slugify("日本語 タグ"), "日本語-タグ");
        assert_eq!(slugify("  Hello--World  "), "hello-world");
    }
}

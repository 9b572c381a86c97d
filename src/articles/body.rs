//! Article bodies: Markdown, HTML or plain text in; sanitized HTML with absolute links (and
//! footnotes that point into the article's own URL) and a plain-text summary out. Pure
//! functions, no I/O. Markup is parsed, decoded and escaped by maintained crates (ammonia,
//! html5ever, html2text, html-escape); no string here is sliced at an offset that did not come
//! from `find` or `char_indices`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use ammonia::{Builder, UrlRelative};
use html2text::render::TrivialDecorator;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, CharacterTokens, EndTag, StartTag, Tag as HtmlTag, TagToken, Token, TokenSink,
    TokenSinkResult, Tokenizer,
};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, html};
use sha2::{Digest, Sha256};
use url::Url;

use crate::text::{collapse_ws, escape_html, truncate_words};

/// The start of every footnote id herald writes (`herald-fn-<article key>-<number>`): it keeps
/// them apart from the ids of the page around an article, and no other id survives sanitizing.
pub const FOOTNOTE_ID_PREFIX: &str = "herald-fn-";

/// The width html2text wraps plain text at: wide enough that no summary is ever wrapped.
const TEXT_WIDTH: usize = 4096;

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

/// Turns article bodies into safe HTML. Built once and shared by every article: ammonia's
/// builder is costly to make. What differs per article (its URL) is an argument of [`html`].
///
/// [`html`]: Renderer::html
pub struct Renderer {
    sanitizer: Builder<'static>,
}

/// Keeps only the `id`s herald wrote for footnotes; every other attribute passes.
fn only_footnote_ids<'a>(_element: &str, attribute: &str, value: &'a str) -> Option<Cow<'a, str>> {
    if attribute == "id" && !value.starts_with(FOOTNOTE_ID_PREFIX) {
        None
    } else {
        Some(Cow::Borrowed(value))
    }
}

impl Renderer {
    pub fn new(base: &Url) -> Renderer {
        let mut sanitizer = Builder::default();
        sanitizer
            .url_relative(UrlRelative::RewriteWithBase(base.clone()))
            // `rtc` is not on the W3C feed validator's list of safe elements.
            .rm_tags(["rtc"])
            // Footnote definitions are `<div id="herald-fn-…">`; an article's own ids are
            // still dropped, as they could clash with the page's.
            .add_tag_attributes("div", ["id"])
            .attribute_filter(only_footnote_ids);
        Renderer { sanitizer }
    }

    /// Sanitized HTML for `body` written in `kind`, for the article published at `page` (its
    /// absolute URL: footnote references link to `page#herald-fn-…`).
    pub fn html(&self, kind: Kind, body: &str, page: &str) -> String {
        let raw = match kind {
            Kind::Markdown => markdown_to_html(body, page),
            Kind::Html => body.to_string(),
            Kind::Text => text_to_html(body),
        };
        xml_safe(&self.sanitizer.clean(&raw).to_string())
    }
}

fn markdown_to_html(body: &str, page: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH;
    let mut notes = Footnotes::new(page);
    // Inside an image only text counts (it becomes the alt attribute).
    let mut in_image = 0usize;
    let events = Parser::new_ext(body, options).map(|event| match event {
        Event::Start(Tag::Image { .. }) => {
            in_image += 1;
            event
        }
        Event::End(TagEnd::Image) => {
            in_image = in_image.saturating_sub(1);
            event
        }
        Event::FootnoteReference(label) => {
            let n = notes.number(&label);
            if in_image > 0 {
                Event::Text(format!("[{n}]").into())
            } else {
                Event::InlineHtml(notes.reference(n).into())
            }
        }
        Event::Start(Tag::FootnoteDefinition(label)) => {
            let n = notes.number(&label);
            Event::Html(notes.definition(n).into())
        }
        Event::End(TagEnd::FootnoteDefinition) => Event::Html("</div>\n".into()),
        other => other,
    });
    let mut out = String::with_capacity(body.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// Footnote numbers and anchors for one article. pulldown-cmark would link `#label`, which
/// resolves against the site's base URL, and ammonia would drop the target's id; here each
/// reference links into the article's own URL and each definition carries the matching id,
/// unique per article so several articles on one page do not clash.
struct Footnotes {
    page: Option<Url>,
    /// Eight hex digits of the SHA-256 of the article's URL.
    key: String,
    numbers: HashMap<String, usize>,
}

impl Footnotes {
    fn new(page: &str) -> Footnotes {
        Footnotes {
            page: Url::parse(page).ok(),
            key: hex::encode(&Sha256::digest(page.as_bytes())[..4]),
            numbers: HashMap::new(),
        }
    }

    /// Footnotes are numbered in the order they are first mentioned, as pulldown-cmark does.
    fn number(&mut self, label: &str) -> usize {
        let next = self.numbers.len() + 1;
        *self.numbers.entry(label.to_string()).or_insert(next)
    }

    fn id(&self, n: usize) -> String {
        format!("{FOOTNOTE_ID_PREFIX}{}-{n}", self.key)
    }

    fn reference(&self, n: usize) -> String {
        let id = self.id(n);
        let href = match &self.page {
            Some(page) => {
                let mut url = page.clone();
                url.set_fragment(Some(&id));
                url.to_string()
            }
            None => format!("#{id}"),
        };
        format!("<sup><a href=\"{}\">{n}</a></sup>", escape_html(&href))
    }

    fn definition(&self, n: usize) -> String {
        format!("<div id=\"{}\"><sup>{n}</sup>\n", self.id(n))
    }
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
            out.push_str(&html_escape::encode_text(line));
        }
        out.push_str("</p>\n");
    }
    out
}

/// Groups lines into paragraphs at blank lines.
fn paragraphs(body: &str) -> Vec<Vec<&str>> {
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

/// The summary of sanitized HTML: the text of its first paragraph that has any (else of the
/// whole fragment), with entities decoded, white space collapsed, element tags and footnote
/// numbers left out, shortened at a word boundary to about `max` characters.
pub fn summary_of(html: &str, max: usize) -> Option<String> {
    let text = match first_paragraph(html) {
        Some(text) => text,
        None => plain_text(&html_to_text(html)),
    };
    if text.is_empty() {
        return None;
    }
    Some(truncate_words(&text, max))
}

/// Text for a summary or title: element tags removed, white space collapsed.
fn plain_text(s: &str) -> String {
    collapse_ws(&strip_html_tags(s))
}

/// The plain text of the first `<p>` with any, read with html5ever's tokenizer (which decodes
/// every entity). Inline elements add nothing, `<br>` adds a space, and footnote references
/// are skipped.
fn first_paragraph(html: &str) -> Option<String> {
    let input = BufferQueue::default();
    let tokenizer = Tokenizer::new(FirstParagraph::default(), Default::default());
    // Fed a paragraph at a time (the tokenizer takes its input in any pieces), so the rest of
    // a long article is never read once a paragraph has text.
    let mut rest = html;
    while !rest.is_empty() && tokenizer.sink.state.borrow().found.is_none() {
        let end = rest
            .find("</p>")
            .map(|i| i + "</p>".len())
            .unwrap_or(rest.len());
        input.push_back(StrTendril::from(&rest[..end]));
        rest = &rest[end..];
        let _ = tokenizer.feed(&input);
    }
    tokenizer.end();
    let state = tokenizer.sink.state.into_inner();
    state.found.or_else(|| {
        // A paragraph left open at the end of a fragment still counts.
        let text = plain_text(&state.text);
        (state.in_paragraph && !text.is_empty()).then_some(text)
    })
}

#[derive(Default)]
struct FirstParagraph {
    state: RefCell<ParagraphState>,
}

#[derive(Default)]
struct ParagraphState {
    in_paragraph: bool,
    in_footnote_reference: bool,
    text: String,
    found: Option<String>,
}

fn is_footnote_reference(tag: &HtmlTag) -> bool {
    tag.attrs.iter().any(|a| {
        &*a.name.local == "href"
            && a.value
                .find('#')
                .is_some_and(|i| a.value[i + 1..].starts_with(FOOTNOTE_ID_PREFIX))
    })
}

impl TokenSink for FirstParagraph {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut s = self.state.borrow_mut();
        if s.found.is_some() {
            return TokenSinkResult::Continue;
        }
        match token {
            TagToken(tag) => match (tag.kind, &*tag.name) {
                (StartTag, "p") => {
                    s.in_paragraph = true;
                    s.text.clear();
                }
                (EndTag, "p") => {
                    s.in_paragraph = false;
                    let text = plain_text(&s.text);
                    if !text.is_empty() {
                        s.found = Some(text);
                    }
                }
                (StartTag, "br") => s.text.push(' '),
                (StartTag, "a") => s.in_footnote_reference = is_footnote_reference(&tag),
                (EndTag, "a") => s.in_footnote_reference = false,
                _ => {}
            },
            CharacterTokens(text) if s.in_paragraph && !s.in_footnote_reference => {
                s.text.push_str(&text)
            }
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// The plain text of an HTML fragment, by html2text: entities decoded, no markup, blocks on
/// lines of their own.
pub fn html_to_text(html: &str) -> String {
    html2text::config::with_decorator(TrivialDecorator::new())
        .raw_mode(true)
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), TEXT_WIDTH)
        .unwrap_or_else(|_| {
            // html2text gave up (it has limits on nesting): keep the text, lose the layout.
            html_escape::decode_html_entities(&Builder::empty().clean(html).to_string())
                .into_owned()
        })
}

/// Removes the characters XML 1.0 forbids (C0 controls other than tab, LF and CR, and the
/// non-characters U+FFFE and U+FFFF) and the controls it discourages (DEL and the C1 range,
/// which the W3C validator warns about), so no feed is ever malformed by an article.
pub fn xml_safe(s: &str) -> String {
    xml_safe_cow(s).into_owned()
}

/// [`xml_safe`] without a copy when nothing is removed, the common case. Every article file
/// passes through here whole: a byte scan finds the only lead bytes a removed character can
/// have (C0 and DEL are single bytes, C1 starts with 0xC2, U+FFFE/F with 0xEF) and only
/// then are characters decoded. Measured on the 10,000-article multilingual corpus, the
/// char-by-char check and the copy were a tenth of a whole `herald build`.
pub fn xml_safe_cow(s: &str) -> std::borrow::Cow<'_, str> {
    let candidate = s.bytes().any(|b| {
        (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f || b == 0xc2 || b == 0xef
    });
    if !candidate || !s.chars().any(forbidden_in_xml) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(s.chars().filter(|c| !forbidden_in_xml(*c)).collect())
}

fn forbidden_in_xml(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}')
}

/// HTML element names (those of the HTML standard, older ones, and every name the W3C feed
/// validator knows): plain text holding one of these as a tag (`<b>`, `</b>`, `<br/>`) has it
/// removed, as WordPress does for feed titles. Other angle brackets (`<3`, `a<b`, `Vec<T>`)
/// stay: titles are plain text.
const HTML_ELEMENTS: &str = "a abbr acronym address applet area article aside audio b base \
    basefont bdi bdo big blink blockquote body br button canvas caption center cite code col \
    colgroup command comment data datagrid datalist dd del details dfn dialog dir div dl dt em \
    embed eventsource fieldset figcaption figure font footer form frame frameset h1 h2 h3 h4 h5 \
    h6 head header hgroup hr html i iframe img input ins isindex kbd keygen label legend li link \
    listing m main map mark marquee menu meta meter multicol nav nextid nobr noframes noscript \
    object ol optgroup option output p param picture plaintext pre progress q rp rt ruby s samp \
    script search section select slot small source span strike strong style sub summary sup svg \
    table tbody td template textarea tfoot th thead time title tr track tt u ul var video wbr xmp";

/// Inline elements: their tags vanish without a trace (`<b>x</b>, y` is `x, y`); any other
/// element's tag leaves a space (`a<br>b` is `a b`).
const INLINE_ELEMENTS: &str = "a abbr acronym b bdi bdo big blink cite code data del dfn em \
    font i ins kbd label m mark nobr q rp rt ruby s samp small span strike strong sub sup time \
    tt u var wbr";

fn is_one_of(list: &str, name: &str) -> bool {
    list.split_ascii_whitespace().any(|n| n == name)
}

/// Removes HTML element tags from plain text (see [`HTML_ELEMENTS`]), again and again until
/// none is left: taking `<b>` out of `<b class="x<b>>` leaves a tag too.
pub fn strip_html_tags(s: &str) -> String {
    let mut out = strip_tags_once(s);
    while let Some(next) = out.as_deref().and_then(strip_tags_once) {
        out = Some(next);
    }
    out.unwrap_or_else(|| s.to_string())
}

/// `s` without its element tags, or `None` when it has none.
fn strip_tags_once(s: &str) -> Option<String> {
    if !s.contains('<') {
        return None;
    }
    let mut removed = false;
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        // `rest` now starts at the `<`, a one-byte character.
        rest = &rest[open..];
        match element_tag(rest) {
            Some((len, inline)) => {
                if !inline {
                    out.push(' ');
                }
                removed = true;
                rest = &rest[len..];
            }
            None => {
                out.push('<');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    removed.then_some(out)
}

/// When `s` starts with a tag of an HTML element (`<b>`, `</b>`, `<br/>`, `<a href="x">`),
/// its length in bytes and whether the element is inline.
fn element_tag(s: &str) -> Option<(usize, bool)> {
    let inner = s.strip_prefix('<')?;
    let end = inner.find('>')?;
    let inner = &inner[..end];
    if inner.contains('<') {
        return None;
    }
    let inner = inner.strip_prefix('/').unwrap_or(inner);
    let name_len = inner
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(inner.len());
    let (name, after) = inner.split_at(name_len);
    let name = name.to_ascii_lowercase();
    let well_formed = after.is_empty() || after.starts_with(char::is_whitespace) || after == "/";
    (well_formed && is_one_of(HTML_ELEMENTS, &name))
        .then(|| (end + 2, is_one_of(INLINE_ELEMENTS, &name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "https://example.com/blog/post/";

    fn renderer() -> Renderer {
        Renderer::new(&Url::parse("https://example.com/blog/").unwrap())
    }

    #[test]
    fn markdown_is_rendered_sanitized_and_absolutized() {
        let html = renderer().html(
            Kind::Markdown,
            "Hi <script>alert(1)</script> [a](/x) ![i](img/p.png)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~ <b onclick=\"x()\" id=\"mine\">b</b> <div id=\"own\">d</div>",
            PAGE,
        );
        assert!(!html.contains("script"), "{html}");
        assert!(!html.contains("onclick"), "{html}");
        assert!(!html.contains("id="), "{html}");
        assert!(html.contains("href=\"https://example.com/x\""), "{html}");
        assert!(
            html.contains("src=\"https://example.com/blog/img/p.png\""),
            "{html}"
        );
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<del>gone</del>"), "{html}");
    }

    #[test]
    fn footnotes_link_into_the_article_and_keep_their_ids() {
        let body = "Claim[^src] and another[^2].\n\n[^src]: The source.\n[^2]: Second.\n";
        let html = renderer().html(Kind::Markdown, body, PAGE);
        let key = hex::encode(&Sha256::digest(PAGE.as_bytes())[..4]);
        for n in [1, 2] {
            let id = format!("herald-fn-{key}-{n}");
            assert!(
                html.contains(&format!(
                    "<a href=\"{PAGE}#{id}\" rel=\"noopener noreferrer\">{n}</a>"
                )),
                "{html}"
            );
            assert!(html.contains(&format!("<div id=\"{id}\">")), "{html}");
        }
        // Another article's footnotes get other ids.
        let other = renderer().html(Kind::Markdown, body, "https://example.com/blog/other/");
        assert!(!other.contains(&key), "{other}");
        // The numbers are not part of the summary.
        assert_eq!(
            summary_of(&html, 300).as_deref(),
            Some("Claim and another.")
        );
    }

    #[test]
    fn text_becomes_paragraphs() {
        let html = renderer().html(Kind::Text, "One\ntwo & <three>\n\n\nFour\n", PAGE);
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
        // No paragraph: the whole fragment, its blocks kept apart.
        let s = summary_of("<div>one</div><ul><li>two</li></ul>", 300);
        assert_eq!(s.as_deref(), Some("one two"));
        assert_eq!(summary_of("<p> </p><img src=\"x\">", 300), None);
    }

    #[test]
    fn inline_markup_leaves_no_space_before_punctuation() {
        let s = summary_of(
            "<p>hello <b>x</b>, then <a href=\"/\">left</a>. Line<br>break; &lt;b&gt; stays out</p>",
            300,
        );
        assert_eq!(
            s.as_deref(),
            Some("hello x, then left. Line break; stays out")
        );
    }

    #[test]
    fn entities_next_to_multibyte_text_decode_without_panicking() {
        let s = summary_of(
            "<p>&lt; b Straße &amp;&amp; 日本 &#x1F389; &#99999999; &#x; &lt</p>",
            300,
        );
        assert_eq!(s.as_deref(), Some("< b Straße && 日本 🎉 � &#x; <"));
    }

    #[test]
    fn xml_forbidden_characters_are_dropped() {
        assert_eq!(
            xml_safe("a\u{1}b\u{b}c\td\u{fffe}e\u{85}f\u{9f}"),
            "abc\tdef"
        );
        // Lead bytes shared with allowed characters (« is C2 AB, ﬁ is EF AC 81) change
        // nothing; DEL and U+FFFF go.
        assert!(matches!(
            xml_safe_cow("«ﬁne» ©"),
            std::borrow::Cow::Borrowed("«ﬁne» ©")
        ));
        assert_eq!(xml_safe("«a\u{7f}b\u{ffff}»\r\n"), "«ab»\r\n");
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
        assert_eq!(strip_html_tags("<b class=\"x\">B</b>, <xmp>c"), "B,  c");
        assert_eq!(strip_html_tags("<é>ß</é><"), "<é>ß</é><");
        assert_eq!(strip_html_tags("<b class=\"c<b>>x"), "x");
    }
}

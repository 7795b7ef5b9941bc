//! HTML to readable plain text, for emails that carry only an HTML body.
//!
//! This is not a browser: it is a small tokenizer that keeps what an agent and the classifier
//! need — the words, line and paragraph breaks, list items, and quoting — and drops the rest
//! (scripts, styles, comments, the head, markup). Blockquotes come out as `> ` lines so the
//! quoted-history splitter treats an HTML reply the same as a plain-text one.
//!
//! It works on `&str` and only ever slices at indices returned by `str::find` or at ASCII
//! bytes, so it cannot panic on a char boundary whatever the input.

/// Quote levels written as `> ` prefixes; deeper quotes are shown at this depth. Without a cap
/// a few hundred KiB of nested `<blockquote>` would write every line with thousands of
/// prefixes: output quadratic in the input (an email bomb).
pub(crate) const MAX_QUOTE_PREFIXES: usize = 8;

/// Text written at most, whatever the input: past it the rest is dropped (the body and the
/// quoted history are cut far below this anyway).
pub(crate) const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// Convert an HTML document or fragment to plain text with `\n` line breaks. The work and the
/// output are linear in the input: every search starts where the last one ended or is done
/// once, quote prefixes are capped, and the text stops at [`MAX_TEXT_BYTES`].
pub(crate) fn html_to_text(html: &str) -> String {
    let mut out = Writer::default();
    let lower = html.to_ascii_lowercase(); // same byte offsets as `html`
    // Where the last `</head` is: looked up once, so a thousand unclosed `<head>` tags cost
    // one search, not a thousand searches to the end.
    let last_head_close = lower.rfind("</head");
    let mut lists: Vec<Option<usize>> = Vec::new(); // None: <ul>, Some(n): <ol> at item n
    let mut i = 0;
    while i < html.len() && out.buf.len() < MAX_TEXT_BYTES {
        let Some(rel) = html[i..].find('<') else {
            out.text(&decode_entities(&html[i..]));
            break;
        };
        if rel > 0 {
            out.text(&decode_entities(&html[i..i + rel]));
        }
        i += rel;
        let rest = &lower[i..];
        if rest.starts_with("<!--") {
            i = match lower[i + 4..].find("-->") {
                Some(end) => i + 4 + end + 3,
                None => html.len(),
            };
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            i = skip_past(&lower, i, ">");
            continue;
        }
        let Some(tag) = Tag::parse(html, i) else {
            // A lone '<' ("if a < b"): it is text.
            out.text("<");
            i += 1;
            continue;
        };
        i = tag.end;
        let name = tag.name.as_str();
        if !tag.closing && matches!(name, "script" | "style" | "title" | "template" | "xml") {
            // Raw-text elements: their content is never shown. Without a closing tag a browser
            // would swallow the rest of the document too.
            i = match lower[i..].find(&format!("</{name}")) {
                Some(end) => skip_past(&lower, i + end, ">"),
                None => html.len(),
            };
            continue;
        }
        if !tag.closing && name == "head" {
            // Skip the head only when it is closed; a missing </head> must not eat the body.
            if last_head_close.is_some_and(|last| last >= i)
                && let Some(end) = lower[i..].find("</head")
            {
                i = skip_past(&lower, i + end, ">");
            }
            continue;
        }
        match name {
            "br" => out.newline(),
            // Outlook writes one <p class=MsoNormal> per line with zero margins.
            "p" if !tag.closing && tag.attrs_lower.contains("msonormal") => {
                out.ensure_line();
                out.mso_paragraph += 1;
            }
            "p" if tag.closing && out.mso_paragraph > 0 => {
                out.ensure_line();
                out.mso_paragraph -= 1;
            }
            "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "hr" | "dl" => {
                out.ensure_blank();
            }
            "pre" => {
                out.ensure_blank();
                out.pre = if tag.closing {
                    out.pre.saturating_sub(1)
                } else {
                    out.pre + 1
                };
            }
            "blockquote" => {
                out.ensure_blank();
                out.quote = if tag.closing {
                    out.quote.saturating_sub(1)
                } else {
                    out.quote + 1
                };
            }
            "ul" | "ol" => {
                out.ensure_blank();
                if tag.closing {
                    lists.pop();
                } else {
                    lists.push((name == "ol").then_some(0));
                }
            }
            "li" => {
                out.ensure_line();
                if !tag.closing {
                    let marker = match lists.last_mut() {
                        Some(Some(n)) => {
                            *n += 1;
                            format!("{n}.")
                        }
                        _ => "-".to_owned(),
                    };
                    out.text(&marker);
                    out.space();
                }
            }
            "div" | "tr" | "dt" | "dd" | "section" | "article" | "header" | "footer" | "address" | "center"
            | "form" | "fieldset" | "figure" | "figcaption" | "nav" | "main" | "aside" | "caption" | "body" => {
                out.ensure_line()
            }
            "td" | "th" => out.space(),
            _ => {}
        }
    }
    out.finish()
}

/// Index just past the next `needle` at or after `from`, or the end of the input.
fn skip_past(lower: &str, from: usize, needle: &str) -> usize {
    match lower[from..].find(needle) {
        Some(p) => from + p + needle.len(),
        None => lower.len(),
    }
}

struct Tag {
    name: String,
    closing: bool,
    attrs_lower: String,
    /// Byte index just past the closing `>`.
    end: usize,
}

impl Tag {
    /// Parse the tag starting at `html[start] == '<'`; `None` when it is not a tag.
    fn parse(html: &str, start: usize) -> Option<Tag> {
        let bytes = html.as_bytes();
        let mut i = start + 1;
        let closing = bytes.get(i) == Some(&b'/');
        if closing {
            i += 1;
        }
        if !bytes.get(i).is_some_and(u8::is_ascii_alphabetic) {
            return None;
        }
        let name_start = i;
        while bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_'))
        {
            i += 1;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        let attrs_start = i;
        // Find the closing '>' outside quoted attribute values (title="a>b").
        let mut quote: Option<u8> = None;
        while let Some(&b) = bytes.get(i) {
            match (quote, b) {
                (Some(q), _) if b == q => quote = None,
                (None, b'"' | b'\'') => quote = Some(b),
                (None, b'>') => break,
                _ => {}
            }
            i += 1;
        }
        // An unterminated tag runs to the end of the input, as in a browser.
        let attrs_end = i.min(html.len());
        let end = (i + 1).min(html.len());
        Some(Tag {
            name,
            closing,
            attrs_lower: html[attrs_start..attrs_end].to_ascii_lowercase(),
            end,
        })
    }
}

/// Accumulates text with HTML whitespace rules: runs of whitespace collapse to one space except
/// inside `<pre>`, and line starts inside a blockquote get a `> ` prefix.
#[derive(Default)]
struct Writer {
    buf: String,
    pending_space: bool,
    quote: usize,
    pre: usize,
    mso_paragraph: usize,
}

impl Writer {
    fn at_line_start(&self) -> bool {
        self.buf.is_empty() || self.buf.ends_with('\n')
    }

    fn text(&mut self, s: &str) {
        for ch in s.chars() {
            if self.pre > 0 {
                match ch {
                    '\r' => {}
                    '\n' => self.newline(),
                    _ => self.push(ch),
                }
            } else if ch.is_ascii_whitespace() {
                self.space();
            } else if ch == '\u{a0}' {
                // &nbsp; is a real space that does not collapse.
                self.push(' ');
            } else {
                self.push(ch);
            }
        }
    }

    /// A collapsible space: written before the next visible character on the same line.
    fn space(&mut self) {
        if !self.at_line_start() {
            self.pending_space = true;
        }
    }

    fn push(&mut self, ch: char) {
        if self.at_line_start() {
            for _ in 0..self.quote.min(MAX_QUOTE_PREFIXES) {
                self.buf.push_str("> ");
            }
        } else if self.pending_space {
            self.buf.push(' ');
        }
        self.pending_space = false;
        self.buf.push(ch);
    }

    fn newline(&mut self) {
        self.buf.push('\n');
        self.pending_space = false;
    }

    fn ensure_line(&mut self) {
        if !self.at_line_start() {
            self.newline();
        }
    }

    fn ensure_blank(&mut self) {
        self.ensure_line();
        if !self.buf.is_empty() && !self.buf.ends_with("\n\n") {
            self.newline();
        }
    }

    /// Trim trailing spaces on each line, keep at most one blank line in a row, and drop
    /// blank lines at both ends.
    fn finish(self) -> String {
        let mut out = String::with_capacity(self.buf.len());
        let mut blank_run = 0;
        for line in self.buf.split('\n') {
            let line = line.trim_end();
            if line.is_empty() {
                blank_run += 1;
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
                if blank_run > 0 {
                    out.push('\n');
                }
            }
            blank_run = 0;
            out.push_str(line);
        }
        out
    }
}

/// Decode character references (`&amp;`, `&#8220;`, `&#x4E2D;`). Unknown or malformed ones are
/// left as written, which is what a reader would see in a lenient browser.
pub(crate) fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // Look for the ';' within a short window only: "&&&&…" must not make this quadratic.
        // ';' is ASCII, so its byte index is a char boundary.
        let decoded = rest.as_bytes()[1..]
            .iter()
            .take(33)
            .position(|&b| b == b';')
            .filter(|&semi| semi > 0)
            .and_then(|semi| decode_entity(&rest[1..1 + semi]).map(|ch| (ch, semi + 2)));
        match decoded {
            Some((ch, consumed)) => {
                if let Some(ch) = ch {
                    out.push(ch);
                }
                rest = &rest[consumed..];
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

/// `Some(Some(ch))` for a character, `Some(None)` for a reference that stands for nothing
/// visible (soft hyphen), `None` when not a known reference.
fn decode_entity(name: &str) -> Option<Option<char>> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        return Some(Some(numeric_char(code)));
    }
    let ch = match name {
        "nbsp" => '\u{a0}',
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "shy" => return Some(None),
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "lsaquo" => '‹',
        "rsaquo" => '›',
        "middot" => '·',
        "bull" => '•',
        "times" => '×',
        "divide" => '÷',
        "deg" => '°',
        "plusmn" => '±',
        "micro" => 'µ',
        "para" => '¶',
        "sect" => '§',
        "cent" => '¢',
        "pound" => '£',
        "yen" => '¥',
        "euro" => '€',
        "curren" => '¤',
        "iexcl" => '¡',
        "iquest" => '¿',
        "ensp" => '\u{2002}',
        "emsp" => '\u{2003}',
        "thinsp" => '\u{2009}',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        "lrm" => '\u{200e}',
        "rlm" => '\u{200f}',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        "harr" => '↔',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "sup1" => '¹',
        "sup2" => '²',
        "sup3" => '³',
        "ordf" => 'ª',
        "ordm" => 'º',
        "not" => '¬',
        "agrave" => 'à',
        "aacute" => 'á',
        "acirc" => 'â',
        "atilde" => 'ã',
        "auml" => 'ä',
        "aring" => 'å',
        "aelig" => 'æ',
        "ccedil" => 'ç',
        "egrave" => 'è',
        "eacute" => 'é',
        "ecirc" => 'ê',
        "euml" => 'ë',
        "igrave" => 'ì',
        "iacute" => 'í',
        "icirc" => 'î',
        "iuml" => 'ï',
        "ntilde" => 'ñ',
        "ograve" => 'ò',
        "oacute" => 'ó',
        "ocirc" => 'ô',
        "otilde" => 'õ',
        "ouml" => 'ö',
        "oslash" => 'ø',
        "ugrave" => 'ù',
        "uacute" => 'ú',
        "ucirc" => 'û',
        "uuml" => 'ü',
        "yacute" => 'ý',
        "yuml" => 'ÿ',
        "szlig" => 'ß',
        "Agrave" => 'À',
        "Aacute" => 'Á',
        "Auml" => 'Ä',
        "Ccedil" => 'Ç',
        "Eacute" => 'É',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        _ => return None,
    };
    Some(Some(ch))
}

/// A numeric reference as browsers read it: 0x80–0x9F are Windows-1252 (Word pastes `&#150;`
/// for an en dash); NUL, surrogates and out-of-range values become U+FFFD.
fn numeric_char(code: u32) -> char {
    const CP1252: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
    ];
    match code {
        0 => char::REPLACEMENT_CHARACTER,
        0x80..=0x9f => CP1252[(code - 0x80) as usize],
        _ => char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_breaks_and_entities() {
        let html = "<p>Hello&nbsp;&nbsp;there,</p><p>line one<br>line&#x20;two &amp; <b>three</b></p>";
        assert_eq!(html_to_text(html), "Hello  there,\n\nline one\nline two & three");
    }

    #[test]
    fn scripts_styles_comments_and_head_are_dropped() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body>\
                    <script>var x = '<p>no</p>';</script><!-- <p>no</p> -->visible</body></html>";
        assert_eq!(html_to_text(html), "visible");
    }

    #[test]
    fn unclosed_head_does_not_swallow_the_body() {
        assert_eq!(html_to_text("<head><meta charset=utf-8><body>text"), "text");
    }

    #[test]
    fn lists_tables_and_blockquotes() {
        let html = "<ol><li>one</li><li>two</li></ol><ul><li>dot</li></ul>\
                    <table><tr><td>a</td><td>b</td></tr></table>\
                    <div>On Mon, X wrote:</div><blockquote><div>old</div><div>text</div></blockquote>";
        assert_eq!(
            html_to_text(html),
            "1. one\n2. two\n\n- dot\n\na b\n\nOn Mon, X wrote:\n\n> old\n> text"
        );
    }

    #[test]
    fn outlook_msonormal_paragraphs_are_lines() {
        let html = "<p class=MsoNormal>a<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p>\
                    <p class=\"MsoNormal\">b</p>";
        assert_eq!(html_to_text(html), "a\n\nb");
    }

    #[test]
    fn malformed_markup_is_text_or_dropped() {
        assert_eq!(html_to_text("a < b and c > d"), "a < b and c > d");
        assert_eq!(html_to_text("x <a title=\"1>2\">link</a> y"), "x link y");
        assert_eq!(html_to_text("text <span"), "text");
        assert_eq!(html_to_text("<!-- never closed"), "");
        assert_eq!(html_to_text("<script>never closed"), "");
        assert_eq!(html_to_text(""), "");
    }

    #[test]
    fn entity_edge_cases() {
        assert_eq!(
            decode_entities("&#150;&#0;&#xD800;&#x110000;&bogus;&amp"),
            "–\u{fffd}\u{fffd}\u{fffd}&bogus;&amp"
        );
        assert_eq!(decode_entities("a&shy;b &#20013;&#x6587;"), "ab 中文");
        assert_eq!(decode_entities("&;&#;&#x;"), "&;&#;&#x;");
        assert_eq!(decode_entities("中&文&"), "中&文&");
    }

    #[test]
    fn nested_quote_bomb_output_is_linear_in_the_input() {
        // 336 KiB of nested blockquotes, each with a line of its own (the reproduced bomb).
        let level = "<blockquote><div>quoted line</div>";
        let html = level.repeat(336 * 1024 / level.len());
        let text = html_to_text(&html);
        assert!(
            text.len() <= html.len(),
            "{} bytes of text from {} bytes of HTML",
            text.len(),
            html.len()
        );
        let deepest = text.lines().last().unwrap();
        assert_eq!(deepest, format!("{}quoted line", "> ".repeat(MAX_QUOTE_PREFIXES)));
    }

    #[test]
    fn thousands_of_unclosed_heads_are_one_search() {
        let html = format!("{}<p>hello</p>", "<head>".repeat(100_000));
        assert_eq!(html_to_text(&html), "hello");
        let html = format!("<head><title>t</title></head>{}<p>hi</p>", "<head>x".repeat(50_000));
        assert!(html_to_text(&html).ends_with("hi"));
    }

    #[test]
    fn output_is_capped() {
        let html = "<p>word</p>".repeat(MAX_TEXT_BYTES / 4);
        assert!(html_to_text(&html).len() <= MAX_TEXT_BYTES + 16);
    }

    #[test]
    fn pre_keeps_whitespace() {
        assert_eq!(html_to_text("<pre>a  b\n  c</pre>d"), "a  b\n  c\n\nd");
    }
}

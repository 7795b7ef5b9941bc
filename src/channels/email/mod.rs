//! Email channel: a raw RFC 5322 / MIME message (`message/rfc822`) to an [`IntakeRequest`].
//!
//! MIME structure, transfer encodings (quoted-printable, base64), RFC 2047 encoded words, RFC
//! 2231 parameters and charsets (UTF-8, GBK/GB2312/GB18030, Big5, …) are decoded by
//! `mail-parser` built with `full_encoding`. This module decides what the customer said:
//!
//! * `body` is the new text of the message: the plain-text alternative when there is one,
//!   otherwise the HTML converted to readable text. Quoted history below a reply
//!   ("On … wrote:", "在 … 写道：", "-----Original Message-----", the QQ mail
//!   "------------------ 原始邮件 ------------------" line, Outlook/Foxmail "From: … Sent: …" and
//!   "发件人： … 发送时间： …" header blocks, `>` lines) goes to `quoted_history`, so the
//!   classifier reads only what is new. A signature after "-- " stays in the body.
//! * `thread_ref` lists `References` (oldest first), then `In-Reply-To` unless already there
//!   (ids without angle brackets), then `ticket:<number>` for every ticket number quoted in the
//!   subject, so intake can thread the message onto its ticket.
//! * attachments become metadata only (decoded file name, content type, decoded size).
//! * legacy mailers that send raw 8-bit GBK/Big5 without declaring a charset (in headers, text
//!   parts or file names) are decoded in the charset chardetng guesses (GBK, Big5, …), when the
//!   bytes are mostly invalid UTF-8 and decode cleanly that way; otherwise the text is kept with
//!   U+FFFD. A declared charset is always applied as declared.
//!
//! Parsing never panics, whatever the bytes: `mail-parser` is best-effort and this module only
//! slices strings at boundaries it found by searching. A property test holds it to that.

use chrono::{DateTime, Utc};
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{
    Addr, Encoding, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};

use crate::channels::html::html_to_text;
use crate::channels::{push_refs, ticket_refs};
use crate::contracts::intake::{Attachment, IntakeRequest, MAX_BODY_BYTES, MAX_MESSAGE_BYTES};
use crate::core::customer::Customer;

mod charsets;
mod quoted;
#[cfg(test)]
mod tests;

use charsets::*;
pub(crate) use quoted::split_quoted;

/// The channel name this normaliser produces.
pub const CHANNEL: &str = "email";

/// Largest raw message we parse. Attachments make emails big (the bytes are parsed, then only
/// their metadata is kept), but past this the message is not a customer request we can use.
pub const MAX_RAW_EMAIL_BYTES: usize = 32 * 1024 * 1024;

/// Quoted history is kept for the agent, never classified; a very long thread is cut here (with
/// a marker) so that a short reply to it still fits in one intake message.
pub const MAX_QUOTED_HISTORY_BYTES: usize = 96 * 1024;

/// Longest attachment file name we keep, in bytes.
const MAX_FILENAME_BYTES: usize = 255;

/// Why a raw message could not become an intake request. The text names the header or part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("raw message is empty")]
    Empty,
    #[error("raw message is {size} bytes; the limit is {limit} bytes")]
    RawTooLarge { size: usize, limit: usize },
    #[error("not an RFC 5322 message: {0}")]
    NotAMessage(&'static str),
    #[error("missing `{0}` header")]
    MissingHeader(&'static str),
    #[error("header `{header}`: {problem}")]
    InvalidHeader { header: &'static str, problem: String },
    #[error("no text body and no attachments")]
    NoContent,
    #[error("body is {size} bytes (quoted history excluded); the limit is {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },
    #[error(
        "the request is {size} bytes encoded; the limit is {limit} bytes \
         (too many attachments or references)"
    )]
    EncodedTooLarge { size: usize, limit: usize },
    #[error("the message has {count} MIME parts; at most {limit} are accepted")]
    TooManyParts { count: usize, limit: usize },
    #[error("MIME parts are nested {depth} deep; at most {limit} levels are accepted")]
    NestedTooDeep { depth: usize, limit: usize },
    #[error("cannot encode the request: {0}")]
    Encode(String),
}

/// MIME parts a message may have: real mail has a handful (text, HTML, a few attachments); a
/// message of thousands of tiny parts is built to make every step after parsing expensive.
pub const MAX_MIME_PARTS: usize = 500;
/// Multipart levels inside one another (a forwarded message inside a signed reply inside an
/// alternative is 4).
pub const MAX_MIME_DEPTH: usize = 16;

/// Checks the part tree against [`MAX_MIME_PARTS`] and [`MAX_MIME_DEPTH`], in one pass over
/// the parts (each part is visited once from its parent).
fn check_structure(message: &Message<'_>) -> Result<(), EmailError> {
    let count = message.parts.len();
    if count > MAX_MIME_PARTS {
        return Err(EmailError::TooManyParts {
            count,
            limit: MAX_MIME_PARTS,
        });
    }
    let mut depth_of = vec![0usize; count];
    let mut deepest = 0;
    for id in 0..count {
        if let PartType::Multipart(children) = &message.parts[id].body {
            let depth = depth_of[id] + 1;
            deepest = deepest.max(depth);
            for child in children {
                // Children come after their parent; a malformed back-reference is ignored.
                if let Some(d) = depth_of.get_mut(*child as usize).filter(|_| *child as usize > id) {
                    *d = depth;
                }
            }
        }
    }
    if deepest > MAX_MIME_DEPTH {
        return Err(EmailError::NestedTooDeep {
            depth: deepest,
            limit: MAX_MIME_DEPTH,
        });
    }
    Ok(())
}

impl EmailError {
    /// The header the error is about, when there is one (for a structured gateway response).
    pub fn header(&self) -> Option<&'static str> {
        match self {
            EmailError::MissingHeader(h) | EmailError::InvalidHeader { header: h, .. } => Some(h),
            _ => None,
        }
    }
}

/// Header fields of which at least one must be present for the bytes to be an email at all.
const MESSAGE_HEADERS: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "received",
    "return-path",
    "reply-to",
    "in-reply-to",
    "references",
];

/// Parse a raw RFC 5322 message into an intake request for the `email` channel.
///
/// `received_at` is when the gateway received the message (the `Date` header is the sender's
/// clock and is not trusted for SLA purposes).
pub fn parse_email(raw: &[u8], received_at: DateTime<Utc>) -> Result<IntakeRequest, EmailError> {
    if raw.is_empty() {
        return Err(EmailError::Empty);
    }
    if raw.len() > MAX_RAW_EMAIL_BYTES {
        return Err(EmailError::RawTooLarge {
            size: raw.len(),
            limit: MAX_RAW_EMAIL_BYTES,
        });
    }
    let parser = MessageParser::default();
    // Raw 8-bit header bytes in a legacy charset: transcode the header section and parse again.
    let transcoded = parser
        .parse_headers(raw)
        .and_then(|m| transcode_header_section(&m, raw));
    let message = parser
        .parse(transcoded.as_deref().unwrap_or(raw))
        .ok_or(EmailError::NotAMessage("no header fields found"))?;
    if message.headers().is_empty() {
        return Err(EmailError::NotAMessage("no header fields found"));
    }
    check_structure(&message)?;
    let known = |name: &str| MESSAGE_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name));
    if !message.headers().iter().any(|h| known(h.name.as_str())) {
        return Err(EmailError::NotAMessage(
            "no message header field (From, Date, Message-ID, Subject, …) found",
        ));
    }

    let customer = sender(&message)?;
    let channel_message_id = message_id(&message)?;
    let subject = subject(&message)?;
    let thread_ref = thread_ref(&message, subject.as_deref());

    let full_text = body_text(&message);
    let (body, quoted_history) = match split_quoted(&full_text) {
        // Everything was quoted (a bare forward, a reply typed inside the quote): better to
        // classify the quote than to refuse the customer's message.
        (new, Some(_)) if new.trim().is_empty() => (full_text.trim_matches('\n').to_owned(), None),
        split => split,
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(EmailError::BodyTooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    let quoted_history = quoted_history.map(|h| truncate_history(h, MAX_QUOTED_HISTORY_BYTES));

    let attachments = attachments(&message);
    if body.trim().is_empty() && attachments.is_empty() {
        return Err(EmailError::NoContent);
    }

    let mut request = IntakeRequest {
        channel: CHANNEL.to_owned(),
        channel_message_id,
        received_at,
        customer,
        subject,
        body,
        quoted_history,
        thread_ref,
        attachments,
        submitted_by: None,
        record: None,
    };
    strip_nul_characters(&mut request);
    if request.body.trim().is_empty() && request.attachments.is_empty() {
        return Err(EmailError::NoContent);
    }
    let size = serde_json::to_vec(&request)
        .map_err(|e| EmailError::Encode(e.to_string()))?
        .len();
    if size > MAX_MESSAGE_BYTES {
        return Err(EmailError::EncodedTooLarge {
            size,
            limit: MAX_MESSAGE_BYTES,
        });
    }
    Ok(request)
}

/// A NUL character in decoded mail text is debris of a broken encoding, never the customer's
/// words, and Postgres cannot store it: drop it everywhere rather than refuse the message.
fn strip_nul_characters(r: &mut IntakeRequest) {
    fn clean(s: &mut String) {
        if s.contains('\0') {
            s.retain(|c| c != '\0');
        }
    }
    clean(&mut r.channel_message_id);
    clean(&mut r.body);
    for s in [
        &mut r.subject,
        &mut r.quoted_history,
        &mut r.thread_ref,
        &mut r.customer.name,
        &mut r.customer.email,
    ]
    .into_iter()
    .flatten()
    {
        clean(s);
    }
    for a in &mut r.attachments {
        clean(&mut a.filename);
        if let Some(ct) = &mut a.content_type {
            clean(ct);
        }
    }
}

/// `From` → customer email and display name (the first mailbox that has an address).
fn sender(message: &Message<'_>) -> Result<Customer, EmailError> {
    let Some(from) = message.from() else {
        return Err(match message.header_raw("From") {
            Some(raw) if !raw.trim().is_empty() => EmailError::InvalidHeader {
                header: "From",
                problem: format!("no mailbox could be read from {:?}", raw.trim()),
            },
            _ => EmailError::MissingHeader("From"),
        });
    };
    let addrs: Vec<&Addr<'_>> = from.iter().collect();
    let Some(addr) = addrs.iter().find(|a| a.address().is_some_and(|s| !s.trim().is_empty())) else {
        return Err(EmailError::InvalidHeader {
            header: "From",
            problem: "has no address".to_owned(),
        });
    };
    let email = addr.address().unwrap_or_default().trim().to_owned();
    // The intake contract's check, made here so the error names the header.
    if !email.contains('@') {
        return Err(EmailError::InvalidHeader {
            header: "From",
            problem: format!("{email:?} is not an email address"),
        });
    }
    let name = addr
        .name()
        .map(|n| n.trim().trim_matches(['"', '\'']).trim())
        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case(&email))
        .map(str::to_owned);
    Ok(Customer {
        name,
        email: Some(email),
        ..Customer::default()
    })
}

/// `Message-ID` without angle brackets: the idempotency key of the request.
fn message_id(message: &Message<'_>) -> Result<String, EmailError> {
    let id = match message.message_id() {
        Some(id) => id.trim().to_owned(),
        None => {
            // Present but not in `<id>` form (some scripts write bare ids): take it as written.
            let Some(raw) = message.header_raw("Message-ID") else {
                return Err(EmailError::MissingHeader("Message-ID"));
            };
            raw.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .to_owned()
        }
    };
    if id.is_empty() {
        return Err(EmailError::InvalidHeader {
            header: "Message-ID",
            problem: "is empty".to_owned(),
        });
    }
    if id.len() > 512 {
        return Err(EmailError::InvalidHeader {
            header: "Message-ID",
            problem: format!("is {} bytes; the limit is 512", id.len()),
        });
    }
    Ok(id)
}

fn subject(message: &Message<'_>) -> Result<Option<String>, EmailError> {
    let subject = message
        .subject()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Some(s) = &subject
        && s.len() > 1000
    {
        return Err(EmailError::InvalidHeader {
            header: "Subject",
            problem: format!("is {} bytes; the limit is 1000", s.len()),
        });
    }
    Ok(subject)
}

/// `References` (oldest first), then `In-Reply-To` unless already listed, then quoted ticket
/// numbers; `None` when there is none. The order matters: intake takes the last message id as
/// the newest, best anchor, and the parent is the last entry of a well-formed `References`.
fn thread_ref(message: &Message<'_>, subject: Option<&str>) -> Option<String> {
    let mut refs: Vec<String> = Vec::new();
    // References lists the oldest first: a chain longer than we keep keeps its newest ids.
    let references = message_ids(message.references());
    let newest = references.len().saturating_sub(crate::channels::MAX_REFS - 8);
    push_refs(&mut refs, references.into_iter().skip(newest));
    push_refs(&mut refs, message_ids(message.in_reply_to()));
    if let Some(subject) = subject {
        push_refs(&mut refs, ticket_refs(subject));
    }
    (!refs.is_empty()).then(|| refs.join(" "))
}

/// Message ids from an `In-Reply-To` or `References` value, without brackets or whitespace.
fn message_ids(value: &HeaderValue<'_>) -> Vec<String> {
    let clean = |s: &str| -> Vec<String> {
        // A value that failed to parse as ids arrives as text: split it ourselves.
        s.split(|c: char| c.is_whitespace() || c == ',')
            .map(|id| id.trim_start_matches('<').trim_end_matches('>'))
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match value {
        HeaderValue::Text(id) => clean(id),
        HeaderValue::TextList(ids) => ids.iter().flat_map(|id| clean(id)).collect(),
        _ => Vec::new(),
    }
}

/// The text of the message: every inline text part, HTML converted, with `\n` line ends.
fn body_text(message: &Message<'_>) -> String {
    let mut text = String::new();
    let mut ids: Vec<u32> = message.text_body.clone();
    if ids.is_empty() {
        ids.clone_from(&message.html_body);
    }
    for id in ids {
        let Some(part) = message.parts.get(id as usize) else {
            continue;
        };
        let part_text = match &part.body {
            PartType::Text(t) => redecode_undeclared(message, part).unwrap_or_else(|| t.to_string()),
            PartType::Html(h) => html_to_text(&redecode_undeclared(message, part).unwrap_or_else(|| h.to_string())),
            _ => continue,
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&part_text);
    }
    // Line ends are transport encoding, not the customer's words.
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Attachment metadata: decoded file name, content type, decoded size.
fn attachments(message: &Message<'_>) -> Vec<Attachment> {
    let mut out = Vec::new();
    for part in message.attachments() {
        let name = match part.attachment_name() {
            Some(n) if n.contains(char::REPLACEMENT_CHARACTER) => {
                Some(redecode_filename(message, part).unwrap_or_else(|| n.to_owned()))
            }
            n => n.map(str::to_owned),
        };
        let name = name.as_deref().map(clean_filename).filter(|n| !n.is_empty());
        // A cut-off body part (truncated message) is listed as an attachment by the parser;
        // it is not something the customer attached.
        if name.is_none() && part.is_encoding_problem && matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
            continue;
        }
        let filename = name.unwrap_or_else(|| fallback_name(part, out.len() + 1));
        out.push(Attachment {
            filename,
            content_type: content_type(part),
            size_bytes: Some(part.len() as u64),
            url: None,
        });
    }
    out
}

fn content_type(part: &MessagePart<'_>) -> Option<String> {
    let ct = part.content_type()?;
    let main = ct.c_type.trim().to_ascii_lowercase();
    if main.is_empty() {
        return None;
    }
    Some(match ct.c_subtype.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(sub) => format!("{main}/{}", sub.to_ascii_lowercase()),
        None => main,
    })
}

fn fallback_name(part: &MessagePart<'_>, n: usize) -> String {
    match part
        .message()
        .and_then(Message::subject)
        .map(clean_filename)
        .filter(|s| !s.is_empty())
    {
        Some(subject) => format!("{subject}.eml"),
        None if part.message().is_some() => format!("message-{n}.eml"),
        None => format!("attachment-{n}"),
    }
}

/// Keep the last path component only (a name is metadata, but whoever stores the bytes may
/// use it), drop control characters and cap the length at a char boundary.
fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut out = String::new();
    for ch in base.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + ch.len_utf8() > MAX_FILENAME_BYTES {
            break;
        }
        out.push(ch);
    }
    out.trim().to_owned()
}

/// Cut `history` to at most `limit` bytes at a line or char boundary, saying how much was cut.
fn truncate_history(history: String, limit: usize) -> String {
    if history.len() <= limit {
        return history;
    }
    let mut cut = limit;
    while !history.is_char_boundary(cut) {
        cut -= 1;
    }
    if let Some(nl) = history[..cut].rfind('\n') {
        cut = nl;
    }
    let omitted = history.len() - cut;
    format!(
        "{}\n[… quoted history truncated: {omitted} bytes omitted]",
        &history[..cut]
    )
}

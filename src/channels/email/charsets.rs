//! Legacy Chinese charsets (GBK, GB18030, Big5) in mail that does not declare them.

use super::*;

// ---------------------------------------------------------------------------------------------
// Undeclared legacy charsets

/// Decode bytes in an undeclared legacy charset. Only when they are not UTF-8 and most of their
/// non-ASCII sequences are invalid UTF-8 (one corrupt byte in a UTF-8 text must not turn the
/// whole text into mojibake), and only with a charset that decodes them without any error:
/// GB18030 (a superset of GBK and GB2312, what mainland legacy mailers send), then Big5.
pub(super) fn decode_undeclared(bytes: &[u8]) -> Option<String> {
    if std::str::from_utf8(bytes).is_ok() {
        return None;
    }
    let lossy = String::from_utf8_lossy(bytes);
    let bad = lossy.chars().filter(|&c| c == char::REPLACEMENT_CHARACTER).count();
    let good = lossy
        .chars()
        .filter(|&c| !c.is_ascii() && c != char::REPLACEMENT_CHARACTER)
        .count();
    if bad <= good {
        return None;
    }
    [encoding_rs::GB18030, encoding_rs::BIG5]
        .into_iter()
        .find_map(|enc| enc.decode_without_bom_handling_and_without_replacement(bytes))
        .map(|text| text.into_owned())
}

/// The message with its top-level header section transcoded to UTF-8, when that section holds
/// raw 8-bit text in a legacy charset (`Subject: 报价单…` in GBK bytes).
pub(super) fn transcode_header_section(headers: &Message<'_>, raw: &[u8]) -> Option<Vec<u8>> {
    // The section ends where its last field ends (`offset_body` is not set by `parse_headers`).
    let end = headers
        .parts
        .first()?
        .headers
        .iter()
        .map(|h| h.offset_end as usize)
        .max()?;
    let text = decode_undeclared(raw.get(..end)?)?;
    let mut fixed = text.into_bytes();
    fixed.extend_from_slice(raw.get(end..)?);
    Some(fixed)
}

/// A text part whose charset is missing (or labelled UTF-8) but whose bytes are legacy CJK:
/// undo the transfer encoding on the raw bytes and decode them again.
pub(super) fn redecode_undeclared(message: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    if !part.text_contents()?.contains(char::REPLACEMENT_CHARACTER) {
        return None;
    }
    let declared = part.content_type().and_then(|ct| ct.attribute("charset"));
    if declared.is_some_and(|label| charset_decoder(label.as_bytes()).is_some()) {
        return None; // a real declared charset was applied; do not second-guess it
    }
    let raw = message
        .raw_message()
        .get(part.offset_body as usize..part.offset_end as usize)?;
    let bytes = match part.encoding {
        Encoding::Base64 => base64_decode(raw)?,
        Encoding::QuotedPrintable => quoted_printable_decode(raw)?,
        Encoding::None => raw.to_vec(),
    };
    decode_undeclared(&bytes)
}

/// An attachment name written as raw 8-bit legacy bytes in the part's headers: decode those
/// header fields and read the name from them again.
pub(super) fn redecode_filename(message: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    let mut fields = Vec::new();
    for header in &part.headers {
        if matches!(header.name, HeaderName::ContentType | HeaderName::ContentDisposition) {
            let range = header.offset_field as usize..header.offset_end as usize;
            fields.extend_from_slice(message.raw_message().get(range)?);
        }
    }
    fields.extend_from_slice(b"\r\n");
    let text = decode_undeclared(&fields)?;
    let headers = MessageParser::default().parse_headers(text.as_bytes())?;
    headers.attachment_name().map(str::to_owned)
}

//! Legacy Chinese charsets (GBK, GB18030, Big5) in mail that does not declare them: guessed by
//! chardetng, decoded by encoding_rs.

use super::*;

// ---------------------------------------------------------------------------------------------
// Undeclared legacy charsets

/// How much of an undeclared text the detector reads: enough for a confident guess on any mail,
/// and a bound on the work a large attachment-sized text part can cost.
pub(super) const DETECT_BYTES: usize = 64 * 1024;

/// Fewer non-ASCII bytes than this (a dozen or two CJK characters: a name, a subject, a file
/// name) are too little for the detector to tell Chinese from Korean or Cyrillic (`报价单` in GBK
/// guesses EUC-KR, `王经理` windows-1251). In this service's mail Chinese is then the likelier
/// reading, so on so little only a Chinese guess is taken.
const FEW_NON_ASCII: usize = 64;

/// Decode bytes in an undeclared legacy charset. Only when they are not UTF-8 and most of their
/// non-ASCII sequences are invalid UTF-8 (one corrupt byte in a UTF-8 text must not turn the
/// whole text into mojibake). The charset is guessed by chardetng (Firefox's detector, on
/// encoding_rs) from at most the first [`DETECT_BYTES`]: trying GB18030 first, as this did
/// before, took every Big5 text too (Big5's byte pairs are nearly all valid GBK) and turned it
/// into mojibake. The guess is used when it decodes the bytes without error (on a short text,
/// only a Chinese guess: [`FEW_NON_ASCII`]); otherwise GB18030 (what mainland legacy mailers
/// send), then Big5, as before.
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
    let guess = guess_charset(bytes);
    let chinese = [encoding_rs::GBK, encoding_rs::GB18030, encoding_rs::BIG5].contains(&guess);
    let evidence = bytes.iter().take(DETECT_BYTES).filter(|b| !b.is_ascii()).count();
    let guess = (chinese || evidence >= FEW_NON_ASCII).then_some(guess);
    guess
        .into_iter()
        .chain([encoding_rs::GB18030, encoding_rs::BIG5])
        .find_map(|enc| enc.decode_without_bom_handling_and_without_replacement(bytes))
        .map(|text| text.into_owned())
}

/// chardetng's guess for bytes that declare no charset: no top-level domain hint (a mail's
/// sender domain says little about its charset), UTF-8 not a candidate (the caller has seen
/// the bytes are not UTF-8), at most the first [`DETECT_BYTES`] read.
pub(super) fn guess_charset(bytes: &[u8]) -> &'static encoding_rs::Encoding {
    // ISO-2022-JP is 7-bit: bytes that reach here (invalid UTF-8) are never it.
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    let head = &bytes[..bytes.len().min(DETECT_BYTES)];
    detector.feed(head, head.len() == bytes.len());
    detector.guess(None, chardetng::Utf8Detection::Deny)
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

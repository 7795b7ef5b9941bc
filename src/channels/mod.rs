//! Channel normalisers: pure functions that turn each channel's native format (a raw email, a
//! telephony call event, a chat message) into an [`IntakeRequest`](crate::contracts::intake::IntakeRequest).
//!
//! They do no I/O and hold no state, so the HTTP gateway (or any adapter that publishes directly)
//! can call them on the request path and turn their errors into a clear refusal. Every error
//! names the field or header that is wrong, because that text is what an integrator reads.
//!
//! Every request they return passes `IntakeRequest::validate` for its channel, so a refusal
//! happens here, with the channel's own vocabulary, and not later in the intake stage.

pub mod chat;
pub mod email;
mod html;
pub mod phone;

/// Ticket numbers quoted in free text, in order of appearance and without duplicates.
///
/// The grammar is that of `domain::numbering`: an optional alphabetic prefix of up to 8 letters,
/// `YYYYMM`, `-`, and a sequence of 5 to 9 digits (`202405-00012`, `SW202611-00003`). A customer
/// quotes it to continue a ticket ("Re: [202405-00012] 打印机还是不行", "工单 202611-00003"), so
/// it is a threading hint. This scanner is a little stricter than a plain pattern: the month
/// must be 01–12 and the number must not run into letters or digits on either side, which keeps
/// phone, order and part numbers of a similar shape out.
pub(crate) fn ticket_numbers(text: &str) -> Vec<String> {
    // Byte scan over ASCII only: UTF-8 continuation bytes never equal an ASCII byte, so every
    // index we slice at is a char boundary (it is next to an ASCII letter or digit).
    const MAX_PREFIX: usize = 8;
    const MIN_SEQ: usize = 5;
    const MAX_SEQ: usize = 9;
    let b = text.as_bytes();
    let digit = |k: usize| b.get(k).is_some_and(u8::is_ascii_digit);
    let mut found: Vec<String> = Vec::new();
    let mut i = 0;
    while i + 7 + MIN_SEQ <= b.len() {
        let period = (i..i + 6).all(digit) && b[i + 6] == b'-';
        // Only read the month once the bytes are known to be digits.
        let month = period && matches!((b[i + 4], b[i + 5]), (b'0', b'1'..=b'9') | (b'1', b'0'..=b'2'));
        let seq = (i + 7..).take_while(|&k| digit(k)).count();
        let end = i + 7 + seq;
        let bounded_after = b.get(end).is_none_or(|c| !c.is_ascii_alphanumeric());
        if month && (MIN_SEQ..=MAX_SEQ).contains(&seq) && bounded_after {
            let mut start = i;
            while start > 0 && i - start < MAX_PREFIX && b[start - 1].is_ascii_alphabetic() {
                start -= 1;
            }
            let bounded_before = start == 0 || !b[start - 1].is_ascii_alphanumeric();
            if bounded_before {
                let number = text[start..end].to_owned();
                if !found.contains(&number) {
                    found.push(number);
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// `Some(trimmed)` unless the value is missing or blank: integrations send `""` for "unknown"
/// as often as they leave a field out, and both mean the same thing.
pub(crate) fn non_blank(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Append `refs` to a space-separated thread reference list, skipping duplicates.
pub(crate) fn push_refs(list: &mut Vec<String>, refs: impl IntoIterator<Item = String>) {
    for r in refs {
        if !r.is_empty() && !list.contains(&r) {
            list.push(r);
        }
    }
}

/// Thread reference strings for quoted ticket numbers: `ticket:<number>`.
pub(crate) fn ticket_refs(text: &str) -> impl Iterator<Item = String> {
    ticket_numbers(text).into_iter().map(|t| format!("ticket:{t}"))
}

/// The phone-number check of the intake contract, so a normaliser refuses what intake would.
pub(crate) fn digit_count(s: &str) -> usize {
    s.chars().filter(char::is_ascii_digit).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_numbers_in_subjects() {
        assert_eq!(
            ticket_numbers("Re: [202405-00012] 打印机还是不行"),
            vec!["202405-00012"]
        );
        assert_eq!(ticket_numbers("工单 202611-00003"), vec!["202611-00003"]);
        assert_eq!(ticket_numbers("工单202611-00003进度"), vec!["202611-00003"]);
        assert_eq!(
            ticket_numbers("RE: 工单 SW202611-00003 网络中断"),
            vec!["SW202611-00003"]
        );
        assert_eq!(ticket_numbers("ticket:SLA202405-00001"), vec!["SLA202405-00001"]);
        // The sequence widens past five digits rather than wrapping.
        assert_eq!(ticket_numbers("SLA202405-123456"), vec!["SLA202405-123456"]);
        // Adjacent numbers, repeats.
        assert_eq!(
            ticket_numbers("202405-00012 202405-00013 and 202405-00012 again"),
            vec!["202405-00012", "202405-00013"]
        );
        assert_eq!(ticket_numbers("202405-00012"), vec!["202405-00012"]);
    }

    #[test]
    fn ticket_numbers_reject_near_misses() {
        // Month 13, too many or too few digits, glued to letters or digits, a 9-letter prefix.
        assert!(ticket_numbers("202413-00012").is_empty());
        assert!(ticket_numbers("1202405-00012").is_empty());
        assert!(ticket_numbers("202405-0123456789").is_empty());
        assert!(ticket_numbers("202405-0001").is_empty());
        assert!(ticket_numbers("9SW202405-00012").is_empty());
        assert!(ticket_numbers("202405-00012x").is_empty());
        assert!(ticket_numbers("ABCDEFGHI202405-00012").is_empty());
        assert!(ticket_numbers("call 13812345678").is_empty());
        assert!(ticket_numbers("订单 2024-05-06").is_empty());
        assert!(ticket_numbers("").is_empty());
    }

    #[test]
    fn non_blank_trims_and_drops_empty() {
        assert_eq!(non_blank(Some("  a b ")), Some("a b".to_owned()));
        assert_eq!(non_blank(Some(" \t")), None);
        assert_eq!(non_blank(None), None);
    }
}

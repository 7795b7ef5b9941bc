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
pub mod table;

/// Ticket numbers quoted in `text`: the one grammar is [`crate::core::numbering::find_numbers`].
pub(crate) fn ticket_numbers(text: &str) -> Vec<String> {
    crate::core::numbering::find_numbers(text)
}

/// `Some(trimmed)` unless the value is missing or blank: integrations send `""` for "unknown"
/// as often as they leave a field out, and both mean the same thing.
pub(crate) fn non_blank(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// References one message keeps: enough for any real thread, few enough that a hostile header
/// costs nothing (the intake stage looks at no more keys than this either).
pub(crate) const MAX_REFS: usize = 32;

/// Append `refs` to a space-separated thread reference list, skipping duplicates, ids longer
/// than the contract allows, and anything past [`MAX_REFS`].
pub(crate) fn push_refs(list: &mut Vec<String>, refs: impl IntoIterator<Item = String>) {
    for r in refs {
        if list.len() >= MAX_REFS {
            return;
        }
        if !r.is_empty() && r.len() <= crate::contracts::intake::MAX_THREAD_REF_TOKEN_BYTES && !list.contains(&r) {
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

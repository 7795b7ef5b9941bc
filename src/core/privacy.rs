//! Masking of personal data for logs, events and reports (SPEC §7, `138****5678`).
//!
//! The full value lives only in the ticket record; everything that leaves the database through a
//! log line, an event or a report goes through these functions.

/// Lower-case hex SHA-256: how a secret presented later (an API key, a user's token, a survey
/// link's token) is stored and looked up, never the secret itself. A fast hash is right for a
/// 256-bit random secret: there is nothing to brute-force.
pub fn secret_digest(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `13812345678` → `138****5678`; short numbers keep at most their last two digits.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(|c| c.is_ascii_digit()).collect();
    let international = phone.trim_start().starts_with('+');
    if international && digits.len() > 11 && digits.len() <= 14 {
        // +86 138 1234 5678: keep the country code, mask the national number.
        let (cc, national) = digits.split_at(digits.len() - 11);
        let national: String = national.iter().collect();
        return format!("+{} {}", cc.iter().collect::<String>(), mask_phone(&national));
    }
    let prefix = if international { "+" } else { "" };
    match digits.len() {
        0 => "****".into(),
        n if n >= 7 => {
            let head: String = digits[..3].iter().collect();
            let tail: String = digits[n - 4..].iter().collect();
            format!("{prefix}{head}****{tail}")
        }
        n => {
            let keep = n.min(2);
            let tail: String = digits[n - keep..].iter().collect();
            format!("{prefix}****{tail}")
        }
    }
}

/// `zhang.san@example.com` → `z***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// Masks every run of 7+ digits (phone-number-like) inside free text, for log lines.
pub fn mask_digits_in_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().filter(|c| c.is_ascii_digit()).count() >= 7 {
            out.push_str(&mask_phone(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Free text with the personal data a machine can spot masked: email addresses and phone-like
/// runs of 7+ digits. For what leaves the service in a log line or a dead letter's reason (a
/// serde error quotes the value it choked on; a database error can quote a row).
pub fn redact_personal(text: &str) -> String {
    static EMAIL: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+").ok());
    let without_emails = match EMAIL.as_ref() {
        Some(re) => re
            .replace_all(text, |c: &regex::Captures<'_>| mask_email(&c[0]))
            .into_owned(),
        None => text.to_owned(),
    };
    mask_digits_in_text(&without_emails)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reasons_lose_emails_and_phone_numbers_but_keep_ticket_numbers() {
        assert_eq!(
            redact_personal("field `customer.phone`: invalid type: integer `13812345678`, expected a string"),
            "field `customer.phone`: invalid type: integer `138****5678`, expected a string"
        );
        assert_eq!(
            redact_personal("duplicate zhang.san@example.com on 202612-00042"),
            "duplicate z***@example.com on 202612-00042"
        );
    }

    #[test]
    fn masks_like_the_seed_documents() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("+86 138-1234-5678"), "+86 138****5678");
        assert_eq!(mask_phone("+1 212 555 0100"), "+121****0100");
        assert_eq!(mask_phone("110"), "****10");
        assert_eq!(mask_email("zhang.san@example.com"), "z***@example.com");
        assert_eq!(
            mask_digits_in_text("call 13812345678 now, order 123"),
            "call 138****5678 now, order 123"
        );
    }

    proptest! {
        #[test]
        fn a_masked_phone_never_contains_the_middle_digits(d in "[0-9]{11}") {
            let masked = mask_phone(&d);
            prop_assert!(!masked.contains(&d[3..7]) || d[3..7] == d[7..11] || masked.contains("****"));
            prop_assert_eq!(masked.len(), 11);
        }

        #[test]
        fn masking_text_never_leaks_a_long_number(prefix in "[a-z ]{0,10}", d in "[0-9]{8,15}", suffix in "[a-z ]{0,10}") {
            let text = format!("{prefix}{d}{suffix}");
            prop_assert!(!mask_digits_in_text(&text).contains(&d));
        }
    }
}

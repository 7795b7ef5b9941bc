//! Text search terms for the work list's `q`: what a ticket's subject and body are indexed
//! under, and what a query must find (`tickets.search_terms`, a GIN-indexed array; the query is
//! "contains all of these terms").
//!
//! Chinese has no spaces between words, so a run of Han characters is indexed as its single
//! characters and its character pairs: a query of one character finds it, a query of two or
//! more is split into its pairs and finds every text holding all of them (the pairs of a phrase
//! almost always mean the phrase). Traditional characters are indexed as Simplified, so
//! "退款" finds "退款" and "退欵". Other scripts are words: letters and digits, lower-cased,
//! full-width forms folded. Postgres' own text search needs a word-splitting dictionary for
//! Chinese and `pg_trgm` ignores Han characters in the C locale; this works the same on any
//! server, in Rust, once per ticket.
//!
//! The work is linear in the text and bounded: at most [`MAX_TERMS`] distinct terms per ticket.

use crate::core::classify::normalize::{fold_char, is_cjk};
use std::collections::BTreeSet;

/// Most distinct terms kept for one ticket (a long email's later words are dropped).
pub const MAX_TERMS: usize = 4_000;
/// Longest word kept; longer runs (base64, hashes) are cut here.
pub const MAX_WORD_CHARS: usize = 40;
/// Most terms a query may have (a pasted paragraph is cut).
pub const MAX_QUERY_TERMS: usize = 32;

/// The terms a ticket is found by, sorted and distinct.
pub fn document_terms(subject: Option<&str>, body: &str) -> Vec<String> {
    let mut terms = BTreeSet::new();
    for text in subject.into_iter().chain(std::iter::once(body)) {
        if terms.len() >= MAX_TERMS {
            break;
        }
        collect(text, true, MAX_TERMS, &mut |t| {
            terms.insert(t);
        });
    }
    terms.into_iter().take(MAX_TERMS).collect()
}

/// The terms a ticket is found by its customer: `cid:` the customer id, `tel:` the phone in
/// E.164, `mail:` the email lower-cased. They hold characters no text term has, so a text
/// search never matches them by accident. Only what the channel vouches for counts (as for the
/// customer record, `core::customer::identity_key`): the customer id an integration gives, the
/// caller's number on `phone`, the sender on `email`; a number typed into a chat finds nobody's
/// tickets, so nobody's history can be padded with a stranger's ticket by claiming a contact.
pub fn identity_terms(c: &crate::core::customer::Customer, channel: &str) -> Vec<String> {
    // No whitespace inside a term: terms travel space-separated.
    let tight = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let mut out = Vec::new();
    if let Some(id) = c.customer_id.as_deref().map(tight).filter(|s| !s.is_empty()) {
        out.push(format!("cid:{id}"));
    }
    if let Some(p) = c.phone.as_deref().filter(|_| channel == "phone") {
        let p = tight(&crate::core::customer::normal_phone(p));
        if p.chars().filter(char::is_ascii_digit).count() >= 5 {
            out.push(format!("tel:{p}"));
        }
    }
    if let Some(e) = c
        .email
        .as_deref()
        .filter(|_| channel == "email")
        .map(tight)
        .filter(|e| e.contains('@'))
    {
        out.push(format!("mail:{}", e.to_lowercase()));
    }
    out
}

/// The identity terms a `customer=` filter looks for: what `q` would be as a customer id, a
/// phone or an email (a ticket holding any of them matches).
pub fn customer_query_terms(q: &str) -> Vec<String> {
    let q = q.trim();
    let mut out = Vec::new();
    let as_id = crate::core::customer::Customer {
        customer_id: Some(q.to_owned()),
        ..Default::default()
    };
    out.extend(identity_terms(&as_id, ""));
    if q.contains('@') {
        let as_mail = crate::core::customer::Customer {
            email: Some(q.to_owned()),
            ..Default::default()
        };
        out.extend(identity_terms(&as_mail, "email"));
    } else {
        let as_phone = crate::core::customer::Customer {
            phone: Some(q.to_owned()),
            ..Default::default()
        };
        out.extend(identity_terms(&as_phone, "phone"));
    }
    out
}

/// The terms a ticket must hold to match `query`; empty when the query has nothing to search
/// for (only punctuation). A run of one Han character searches the character itself.
pub fn query_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    collect(query, false, MAX_QUERY_TERMS, &mut |t| {
        if !terms.contains(&t) {
            terms.push(t);
        }
    });
    terms.truncate(MAX_QUERY_TERMS);
    terms
}

/// Splits `text` into terms. A document gives each Han character and each pair; a query gives
/// the pairs of a run (or the character alone, for a run of one).
fn collect(text: &str, document: bool, limit: usize, emit: &mut dyn FnMut(String)) {
    let mut han = String::new();
    let mut word = String::new();
    let mut emitted = 0usize;
    let flush_han = |han: &mut String, emit: &mut dyn FnMut(String), emitted: &mut usize| {
        if han.is_empty() {
            return;
        }
        let simplified = zhconv::zhconv(han, zhconv::Variant::ZhHans);
        let chars: Vec<char> = simplified.chars().filter(|c| is_cjk(*c)).collect();
        if document || chars.len() == 1 {
            for c in &chars {
                emit(c.to_string());
                *emitted += 1;
            }
        }
        for pair in chars.windows(2) {
            emit(pair.iter().collect());
            *emitted += 1;
        }
        han.clear();
    };
    let flush_word = |word: &mut String, emit: &mut dyn FnMut(String), emitted: &mut usize| {
        if !word.is_empty() {
            emit(std::mem::take(word));
            *emitted += 1;
        }
    };
    for c in text.chars() {
        if emitted >= limit.saturating_mul(3) {
            // Enough: the caller keeps `limit` distinct ones, duplicates aside.
            break;
        }
        let c = fold_char(c);
        if is_cjk(c) {
            flush_word(&mut word, emit, &mut emitted);
            han.push(c);
            // Pairs need only a bounded look-back: convert long runs in pieces, keeping the
            // last character so no pair across the cut is lost.
            if han.len() >= 3 * 256 {
                let last = han.chars().next_back();
                flush_han(&mut han, emit, &mut emitted);
                if let Some(l) = last {
                    han.push(l);
                }
            }
        } else if c.is_alphanumeric() {
            flush_han(&mut han, emit, &mut emitted);
            if word.chars().count() < MAX_WORD_CHARS {
                word.extend(c.to_lowercase());
            }
        } else {
            flush_han(&mut han, emit, &mut emitted);
            flush_word(&mut word, emit, &mut emitted);
        }
    }
    flush_han(&mut han, emit, &mut emitted);
    flush_word(&mut word, emit, &mut emitted);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn found(doc: &[String], q: &str) -> bool {
        let q = query_terms(q);
        !q.is_empty() && q.iter().all(|t| doc.contains(t))
    }

    #[test]
    fn chinese_is_found_by_any_phrase_of_it_and_traditional_by_simplified() {
        let doc = document_terms(Some("退款申请"), "我昨天在APP上付款，被扣了兩次錢，訂單號 A12345。");
        for q in ["退款", "款", "扣了两次", "扣了兩次", "付款", "app", "a12345", "订单号"] {
            assert!(found(&doc, q), "{q:?} should find it: {doc:?}");
        }
        for q in ["发票", "退货", "b999", "扣了三次"] {
            assert!(!found(&doc, q), "{q:?} should not find it");
        }
    }

    #[test]
    fn english_is_words_lower_cased_and_full_width_is_folded() {
        let doc = document_terms(None, "Router keeps REBOOTING — ＷｉＦｉ down since 9am");
        assert!(found(&doc, "rebooting wifi"));
        assert!(found(&doc, "router"));
        assert!(!found(&doc, "modem"));
        assert!(query_terms("  ,,, !!").is_empty());
    }

    #[test]
    fn a_customer_is_found_by_id_phone_in_any_form_or_email() {
        let c = crate::core::customer::Customer {
            phone: Some("138 1234 5678".into()),
            email: Some("Wang@Example.com".into()),
            customer_id: Some("C-1001".into()),
            ..Default::default()
        };
        let mut doc = identity_terms(&c, "phone");
        doc.extend(identity_terms(&c, "email"));
        for q in ["13812345678", "+86 138-1234-5678", "wang@example.com", "C-1001"] {
            assert!(customer_query_terms(q).iter().any(|t| doc.contains(t)), "{q}");
        }
        for q in ["13812345679", "li@example.com", "C-1002"] {
            assert!(!customer_query_terms(q).iter().any(|t| doc.contains(t)), "{q}");
        }
        assert!(
            query_terms("tel").iter().all(|t| !doc.contains(t)),
            "text terms never hit identities"
        );
        // A contact typed into a chat vouches for nothing; the customer id does.
        assert_eq!(identity_terms(&c, "chat"), vec!["cid:C-1001".to_owned()]);
        // No term carries a space (terms travel space-separated).
        let spaced = crate::core::customer::Customer {
            customer_id: Some("C 1 tel:+8613800000000".into()),
            ..Default::default()
        };
        assert!(identity_terms(&spaced, "chat").iter().all(|t| !t.contains(' ')));
    }

    #[test]
    fn terms_are_bounded() {
        let long: String = (0..20_000)
            .map(|i| char::from_u32(0x4E00 + (i * 7919) % 20_000).unwrap())
            .collect();
        assert!(document_terms(None, &long).len() <= MAX_TERMS);
        let words: String = (0..50_000).map(|i| format!("w{i} ")).collect();
        assert!(document_terms(None, &words).len() <= MAX_TERMS);
        assert!(query_terms(&words).len() <= MAX_QUERY_TERMS);
        assert!(
            document_terms(None, &"x".repeat(10_000))
                .iter()
                .all(|t| t.chars().count() <= MAX_WORD_CHARS)
        );
    }

    proptest! {
        /// Any piece of a short text, cut at character boundaries, finds the text.
        #[test]
        fn a_text_is_found_by_its_own_pieces(text in "[a-z0-9 退款订单网络故障投诉，。]{1,40}", a in 0usize..40, len in 1usize..10) {
            let chars: Vec<char> = text.chars().collect();
            let start = a.min(chars.len() - 1);
            let end = (start + len).min(chars.len());
            let piece: String = chars[start..end].iter().collect();
            let doc = document_terms(None, &text);
            let q = query_terms(&piece);
            // A piece that cuts a latin word in half is not a word of the text.
            let cuts_word = |i: usize| i > 0 && i < chars.len() && chars[i - 1].is_ascii_alphanumeric() && chars[i].is_ascii_alphanumeric();
            prop_assume!(!cuts_word(start) && !cuts_word(end));
            prop_assert!(q.iter().all(|t| doc.contains(t)), "{piece:?} in {text:?}");
        }
    }
}

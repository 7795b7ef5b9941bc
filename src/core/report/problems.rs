//! The most frequent problems, from the classifier's reasons on each `classified` transition.
//!
//! The classifier explains its winning category with a line such as
//! `fault 3: matched "支付失败"(+2, rule "payment or order fails"), "吗"(+0.5, question cue)`.
//! The rule names are the policy's own short descriptions of a problem ("cannot log in /
//! verify", "delay and waiting"), so counting tickets per rule of their winning category gives
//! a readable list of what customers came with, in their language's terms but without quoting
//! anyone. Question cues say nothing about the problem and are left out.

use super::{Problem, Problems, TicketRow};
use crate::core::privacy::mask_digits_in_text;
use regex::Regex;
use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

/// `"<phrase>"(+<weight>, rule "<name>"`; both strings are Rust-debug-quoted.
static RULE_HIT: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r#""((?:[^"\\]|\\.)*)"\(\+[^,()]*, rule "((?:[^"\\]|\\.)*)""#));

/// `(rule, phrase)` pairs the classifier matched for `category`, from its reasons.
pub fn rule_hits(reasons: &[String], category: &str) -> Vec<(String, String)> {
    let Ok(re) = RULE_HIT.as_ref() else {
        return Vec::new();
    };
    let head = format!("{category} ");
    reasons
        .iter()
        .filter(|line| line.starts_with(&head))
        .filter_map(|line| line.split_once(": matched ").map(|(_, hits)| hits))
        .flat_map(|hits| {
            re.captures_iter(hits)
                .map(|c| (unquote(&c[2]), unquote(&c[1])))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Undoes the `{:?}` escaping of the two characters that matter here.
fn unquote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A lexicon term rather than a regular expression: only terms read well as examples (a
/// pattern's hit is reported as its source, which nobody wants to read in a report).
pub fn is_literal(phrase: &str) -> bool {
    !phrase.contains(['(', ')', '[', ']', '{', '}', '|', '\\', '^', '$', '?', '+'])
}

/// Tickets per (category, rule), most frequent first, at most `limit`.
pub fn top_problems(tickets: &[TicketRow], limit: usize) -> Problems {
    #[derive(Default)]
    struct Tally {
        tickets: u64,
        phrases: HashMap<String, u64>,
    }
    let mut tally: HashMap<(String, String), Tally> = HashMap::new();
    let (mut no_rule, mut unclassified) = (0u64, 0u64);
    for t in tickets {
        let Some(category) = t.category.as_deref().filter(|_| !t.classifier_reasons.is_empty()) else {
            unclassified += 1;
            continue;
        };
        let hits = rule_hits(&t.classifier_reasons, category);
        if hits.is_empty() {
            no_rule += 1;
            continue;
        }
        // Once per ticket: a rule matched by three phrases is still one ticket with that problem.
        let rules: BTreeSet<&str> = hits.iter().map(|(r, _)| r.as_str()).collect();
        for rule in rules {
            let e = tally.entry((category.to_owned(), rule.to_owned())).or_default();
            e.tickets += 1;
            let phrases: BTreeSet<&str> = hits
                .iter()
                .filter(|(r, _)| r == rule)
                .map(|(_, p)| p.as_str())
                .collect();
            for p in phrases.into_iter().filter(|p| is_literal(p)) {
                *e.phrases.entry(mask_digits_in_text(p)).or_default() += 1;
            }
        }
    }
    let mut top: Vec<Problem> = tally
        .into_iter()
        .map(|((category, rule), t)| {
            let mut phrases: Vec<(String, u64)> = t.phrases.into_iter().collect();
            phrases.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            phrases.truncate(3);
            Problem {
                category,
                rule,
                tickets: t.tickets,
                phrases,
            }
        })
        .collect();
    top.sort_by(|a, b| {
        b.tickets
            .cmp(&a.tickets)
            .then_with(|| a.category.cmp(&b.category))
            .then_with(|| a.rule.cmp(&b.rule))
    });
    top.truncate(limit);
    Problems {
        top,
        no_rule,
        unclassified,
    }
}

//! Lexicon matching on normalised text: literal terms, regular-expression patterns, longest match
//! wins, and negation cues.
//!
//! Terms are indexed by their first character, so a message is scanned once and each position
//! only tries the few terms that can start there: cheap enough for thousands of messages a second
//! with thousands of terms. Overlapping term hits are resolved by keeping the longest one (in
//! characters), which is how a phrase beats the single words inside it: "退款进度" (asking about a
//! refund) wins over "退款", "not urgent" over "urgent", "没有问题" over "问题". Regular-expression
//! patterns are matched on their own and take no part in that contest.

use std::collections::HashMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::normalize::{Normalizer, is_cjk, is_word_char};

/// Words that negate what follows them within the same clause.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NegationRules {
    /// Negation cues, Chinese (matched as characters) or English (matched as whole words).
    #[serde(default)]
    pub cues: Vec<String>,
    /// How many Chinese characters before a term a Chinese cue may stand.
    #[serde(default = "default_char_window")]
    pub char_window: usize,
    /// How many English words before a term an English cue may stand.
    #[serde(default = "default_word_window")]
    pub word_window: usize,
    /// Words that contain a cue but do not negate (不过, 差不多, 不好意思).
    #[serde(default)]
    pub exceptions: Vec<String>,
}

/// How far back (in characters) a negation cue is looked for at most.
const LOOKBACK_CHARS: usize = 40;

fn default_char_window() -> usize {
    3
}
fn default_word_window() -> usize {
    3
}

/// One group of terms as the policy writes it, before compilation.
pub(crate) struct GroupSpec<'a> {
    pub(crate) label: String,
    pub(crate) terms: &'a [String],
    pub(crate) patterns: &'a [String],
    /// Whether a negation cue in front of a hit matters for this group.
    pub(crate) negatable: bool,
}

#[derive(Debug, Clone)]
struct Term {
    text: String,
    display: String,
    group: usize,
    prefix: bool,
    word_start: bool,
    word_end: bool,
    chars: usize,
}

#[derive(Debug, Clone)]
struct Pattern {
    re: Regex,
    display: String,
    group: usize,
}

/// One accepted match.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) group: usize,
    /// The term or pattern as written in the policy, for reasons.
    pub(crate) display: String,
    pub(crate) start: usize,
    /// The negation cue in front of the hit, if any.
    pub(crate) negated_by: Option<String>,
}

#[derive(Debug, Clone)]
struct Cue {
    text: String,
    english: bool,
}

/// A compiled set of term groups.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    by_first: HashMap<char, Vec<usize>>,
    terms: Vec<Term>,
    negatable: Vec<bool>,
    patterns: Vec<Pattern>,
    cues: Vec<Cue>,
    exceptions: Vec<String>,
    char_window: usize,
    word_window: usize,
}

impl Matcher {
    pub(crate) fn new(norm: &Normalizer, groups: &[GroupSpec<'_>], negation: &NegationRules) -> Result<Self, String> {
        let mut terms = Vec::new();
        let mut patterns = Vec::new();
        for (g, spec) in groups.iter().enumerate() {
            for raw in spec.terms {
                let trimmed = raw.trim();
                let (body, prefix) = match trimmed.strip_suffix('*') {
                    Some(b) => (b, true),
                    None => (trimmed, false),
                };
                let text = norm.normalize(body);
                if text.is_empty() {
                    return Err(format!("{}: term {raw:?} is empty", spec.label));
                }
                terms.push(Term {
                    word_start: text.chars().next().is_some_and(is_word_char),
                    word_end: text.chars().next_back().is_some_and(is_word_char),
                    chars: text.chars().count(),
                    text,
                    display: trimmed.to_owned(),
                    group: g,
                    prefix,
                });
            }
            for raw in spec.patterns {
                // Patterns run on normalised text: lowercase, Simplified, half-width.
                let re = Regex::new(raw).map_err(|e| format!("{}: pattern {raw:?} is invalid: {e}", spec.label))?;
                if re.is_match("") {
                    return Err(format!("{}: pattern {raw:?} matches empty text", spec.label));
                }
                patterns.push(Pattern {
                    re,
                    display: raw.clone(),
                    group: g,
                });
            }
        }
        let mut by_first: HashMap<char, Vec<usize>> = HashMap::new();
        for (i, t) in terms.iter().enumerate() {
            if let Some(c) = t.text.chars().next() {
                by_first.entry(c).or_default().push(i);
            }
        }
        let mut cues = Vec::new();
        for (i, raw) in negation.cues.iter().enumerate() {
            let text = norm.normalize(raw);
            if text.is_empty() {
                return Err(format!("negation.cues[{i}] is empty"));
            }
            let english = text.chars().all(|c| is_word_char(c) || c == '\'' || c == ' ');
            cues.push(Cue { text, english });
        }
        Ok(Matcher {
            by_first,
            terms,
            negatable: groups.iter().map(|g| g.negatable).collect(),
            patterns,
            cues,
            exceptions: negation.exceptions.iter().map(|e| norm.normalize(e)).collect(),
            char_window: negation.char_window,
            word_window: negation.word_window,
        })
    }

    /// All accepted hits in `text` (already normalised), in text order.
    pub(crate) fn find(&self, norm: &Normalizer, text: &str) -> Vec<Hit> {
        // Term candidates: (start, end, length in characters, which term).
        let mut cands: Vec<(usize, usize, usize, Source)> = Vec::new();
        let mut prev: Option<char> = None;
        for (i, c) in text.char_indices() {
            if let Some(ids) = self.by_first.get(&c) {
                let at_word_start = !prev.is_some_and(is_word_char);
                for &id in ids {
                    let t = &self.terms[id];
                    if t.word_start && !at_word_start {
                        continue;
                    }
                    if !text[i..].starts_with(t.text.as_str()) {
                        continue;
                    }
                    let mut end = i + t.text.len();
                    if t.word_end {
                        let tail_len: usize = text[end..]
                            .chars()
                            .take_while(|&c| is_word_char(c))
                            .map(char::len_utf8)
                            .sum();
                        if tail_len > 0 {
                            let tail = &text[end..end + tail_len];
                            if !t.prefix && !norm.suffixes.iter().any(|s| s == tail) {
                                continue;
                            }
                            end += tail_len;
                        }
                    }
                    cands.push((i, end, t.chars, Source::Term(id)));
                }
            }
            prev = Some(c);
        }
        // Terms compete: the longest wins and hides the shorter ones inside it. Longest first;
        // among equals the earliest, then the one listed first in the policy.
        cands.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.3.cmp(&b.3)));
        // Byte occupancy keeps overlap checks linear even for pathological input.
        let mut taken = vec![false; text.len()];
        let mut accepted: Vec<(usize, Source)> = Vec::new();
        for (start, end, _, src) in cands {
            if taken[start..end].iter().any(|&t| t) {
                continue;
            }
            taken[start..end].iter_mut().for_each(|t| *t = true);
            accepted.push((start, src));
        }
        // Patterns stand apart: a wildcard span says nothing about specificity, so a pattern
        // neither hides a term nor is hidden by one.
        for (p, pat) in self.patterns.iter().enumerate() {
            for m in pat.re.find_iter(text) {
                if !m.is_empty() {
                    accepted.push((m.start(), Source::Pattern(p)));
                }
            }
        }
        let mut hits = Vec::with_capacity(accepted.len());
        for (start, src) in accepted {
            let (group, display) = match src {
                Source::Term(id) => (self.terms[id].group, &self.terms[id].display),
                Source::Pattern(p) => (self.patterns[p].group, &self.patterns[p].display),
            };
            // Only words can be negated: "没到账!!!" does not negate the exclamation marks.
            let first = text[start..].chars().next();
            let wordlike = first.is_some_and(|c| is_cjk(c) || is_word_char(c));
            let negated_by = if self.negatable[group] && wordlike {
                self.negation_before(norm, &text[..start], first)
            } else {
                None
            };
            hits.push(Hit {
                group,
                display: display.clone(),
                start,
                negated_by,
            });
        }
        hits.sort_by_key(|h| h.start);
        hits
    }

    /// The negation cue standing shortly before the end of `prefix` (within its last clause);
    /// `next` is the first character of the hit itself.
    fn negation_before(&self, norm: &Normalizer, prefix: &str, next: Option<char>) -> Option<String> {
        if self.cues.is_empty() {
            return None;
        }
        // Negation is local: look at most a short stretch back, which also bounds the cost.
        let window_start = prefix.char_indices().rev().nth(LOOKBACK_CHARS).map_or(0, |(i, _)| i);
        let prefix = &prefix[window_start..];
        let clause_start = prefix
            .char_indices()
            .rev()
            .find(|&(_, c)| norm.is_clause_break(c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let clause = &prefix[clause_start..];
        if clause.is_empty() {
            return None;
        }
        if let Some(cue) = self.chinese_cue(clause, next) {
            return Some(cue);
        }
        // The last few words for English cues.
        let words: Vec<&str> = clause
            .split(|c: char| !(is_word_char(c) || c == '\''))
            .filter(|w| !w.is_empty())
            .collect();
        let recent = words[words.len().saturating_sub(self.word_window)..].join(" ");
        let recent_words: Vec<&str> = recent.split(' ').collect();
        self.cues
            .iter()
            .filter(|c| c.english)
            .find(|cue| {
                if cue.text.contains(' ') {
                    recent.contains(cue.text.as_str())
                } else {
                    recent_words.contains(&cue.text.as_str())
                }
            })
            .map(|c| c.text.clone())
    }

    /// A Chinese cue among the last `char_window` Han characters of `clause`. Characters that
    /// only look like negation are masked first: A-not-A questions (是不是, 有没有, 急不急) and the
    /// policy's exceptions (不过, 差不多 ...).
    fn chinese_cue(&self, clause: &str, next: Option<char>) -> Option<String> {
        let mut tail: Vec<char> = clause
            .chars()
            .rev()
            .filter(|c| !c.is_whitespace())
            .take_while(|&c| is_cjk(c))
            .take(self.char_window + 2)
            .collect();
        tail.reverse();
        let body_len = tail.len();
        if body_len == 0 {
            return None;
        }
        // One character of the hit itself, so "急不急" and exceptions at the seam are seen.
        tail.extend(next);
        let mut masked = vec![false; tail.len()];
        for ex in &self.exceptions {
            let ex: Vec<char> = ex.chars().collect();
            if ex.is_empty() || ex.len() > tail.len() {
                continue;
            }
            for i in 0..=tail.len() - ex.len() {
                if tail[i..i + ex.len()] == ex[..] {
                    masked[i..i + ex.len()].iter_mut().for_each(|m| *m = true);
                }
            }
        }
        for i in 1..tail.len().saturating_sub(1) {
            if matches!(tail[i], '不' | '没') && tail[i - 1] == tail[i + 1] {
                masked[i] = true;
            }
        }
        let first = body_len.saturating_sub(self.char_window);
        for cue in self.cues.iter().filter(|c| !c.english) {
            let cue_chars: Vec<char> = cue.text.chars().collect();
            if cue_chars.len() > body_len {
                continue;
            }
            for i in first..=body_len - cue_chars.len() {
                if tail[i..i + cue_chars.len()] == cue_chars[..] && !masked[i..i + cue_chars.len()].iter().any(|&m| m) {
                    return Some(cue.text.clone());
                }
            }
        }
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Term(usize),
    Pattern(usize),
}

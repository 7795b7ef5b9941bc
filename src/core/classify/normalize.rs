//! Text normalisation shared by classification and priority.
//!
//! Customers write Simplified and Traditional Chinese, full-width or half-width characters and
//! English in any case. Everything is folded into one form (half-width, lowercase, Simplified
//! characters, single spaces, policy rewrites applied) so that one lexicon covers all scripts.
//! Lexicon terms go through the very same pipeline when a policy is compiled, so an operator may
//! write a term in Traditional Chinese or full-width letters and it still matches.

use serde::{Deserialize, Serialize};

/// Text settings of a policy: rewrites that unify spelling and vocabulary variants, and English
/// inflection endings tolerated after a whole-word term.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextRules {
    /// `[from, to]` pairs applied in order after script conversion. English `from` strings match
    /// whole words only; Chinese ones match anywhere.
    #[serde(default)]
    pub rewrites: Vec<[String; 2]>,
    /// Endings accepted after an English term that has no `*`, e.g. `s`, `ed`, `ing`.
    #[serde(default)]
    pub english_suffixes: Vec<String>,
    /// Characters that end a clause: negation never reaches across them.
    #[serde(default)]
    pub clause_breaks: String,
}

/// Is this a Han ideograph (the CJK blocks customers actually use)?
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// A letter or digit of an alphabetic script: these form words that need boundaries.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

/// Per-character folding: full-width forms to ASCII, typographic quotes to plain ones, every kind
/// of line break to `\n` and every other space to ` `.
pub(crate) fn fold_char(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{2018}' | '\u{2019}' | '\u{2032}' => '\'',
        '\u{201C}' | '\u{201D}' => '"',
        '\r' | '\n' | '\u{2028}' | '\u{2029}' | '\u{85}' => '\n',
        c if c.is_whitespace() => ' ',
        c => c,
    }
}

#[derive(Debug, Clone)]
struct Rewrite {
    from: String,
    to: String,
    word_start: bool,
    word_end: bool,
}

/// The compiled normalisation pipeline of one policy.
#[derive(Debug, Clone)]
pub(crate) struct Normalizer {
    rewrites: Vec<Rewrite>,
    pub(crate) suffixes: Vec<String>,
    clause_breaks: Vec<char>,
}

impl Normalizer {
    pub(crate) fn new(rules: &TextRules) -> Result<Self, String> {
        let bare = Normalizer {
            rewrites: Vec::new(),
            suffixes: Vec::new(),
            clause_breaks: Vec::new(),
        };
        let mut rewrites = Vec::with_capacity(rules.rewrites.len());
        for (i, [from, to]) in rules.rewrites.iter().enumerate() {
            // Both sides go through the earlier steps (and the earlier rewrites), so a rewrite
            // written in Traditional characters or capitals still applies.
            let mut partial = bare.clone();
            partial.rewrites = rewrites.clone();
            let from_n = partial.normalize(from);
            let to_n = partial.normalize(to);
            if from_n.is_empty() {
                return Err(format!("text.rewrites[{i}]: `from` ({from:?}) is empty"));
            }
            if from_n == to_n {
                continue;
            }
            rewrites.push(Rewrite {
                word_start: from_n.chars().next().is_some_and(is_word_char),
                word_end: from_n.chars().next_back().is_some_and(is_word_char),
                from: from_n,
                to: to_n,
            });
        }
        let mut suffixes = Vec::with_capacity(rules.english_suffixes.len());
        for (i, s) in rules.english_suffixes.iter().enumerate() {
            let s = s.trim().to_lowercase();
            if s.is_empty() || !s.chars().all(is_word_char) {
                return Err(format!("text.english_suffixes[{i}]: {s:?} must be letters only"));
            }
            suffixes.push(s);
        }
        let clause_breaks = rules.clause_breaks.chars().map(fold_char).chain(['\n']).collect();
        Ok(Normalizer {
            rewrites,
            suffixes,
            clause_breaks,
        })
    }

    pub(crate) fn is_clause_break(&self, c: char) -> bool {
        self.clause_breaks.contains(&c)
    }

    /// Fold, convert to Simplified Chinese, collapse spaces and apply the rewrites.
    pub(crate) fn normalize(&self, text: &str) -> String {
        let mut folded = String::with_capacity(text.len());
        let mut has_cjk = false;
        for c in text.chars() {
            let c = fold_char(c);
            has_cjk |= is_cjk(c);
            if c.is_ascii() {
                folded.push(c.to_ascii_lowercase());
            } else {
                folded.extend(c.to_lowercase());
            }
        }
        // zhconv is the costly step: skip it for text without any Han character.
        let converted = if has_cjk {
            zhconv::zhconv(&folded, zhconv::Variant::ZhHans)
        } else {
            folded
        };
        let mut out = collapse_spaces(&converted);
        for rw in &self.rewrites {
            if out.contains(rw.from.as_str()) {
                out = apply_rewrite(&out, rw);
            }
        }
        out
    }
}

/// Runs of spaces become one space (or one `\n` when they held a line break); spaces between
/// two Han characters vanish, because speech-to-text transcripts put spaces between words.
fn collapse_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending: Option<char> = None;
    for c in text.chars() {
        if c == ' ' || c == '\n' {
            if c == '\n' || pending.is_none() {
                pending = Some(c);
            }
            continue;
        }
        if let Some(space) = pending.take() {
            let prev_cjk = out.chars().next_back().is_some_and(is_cjk);
            if out.is_empty() || (space == ' ' && prev_cjk && is_cjk(c)) {
                // leading space, or a transcript gap between Han characters: drop it
            } else {
                out.push(space);
            }
        }
        out.push(c);
    }
    out
}

fn apply_rewrite(text: &str, rw: &Rewrite) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, m) in text.match_indices(rw.from.as_str()) {
        if start < last {
            continue;
        }
        let end = start + m.len();
        let before_ok = !rw.word_start || !text[..start].chars().next_back().is_some_and(is_word_char);
        let after_ok = !rw.word_end || !text[end..].chars().next().is_some_and(is_word_char);
        if before_ok && after_ok {
            out.push_str(&text[last..start]);
            out.push_str(&rw.to);
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// The script of a message: `zh-Hans`, `zh-Hant` or `en` (also for text with no letters at all).
pub(crate) fn detect_language(text: &str) -> &'static str {
    let mut cjk = 0usize;
    let mut latin = 0usize;
    for c in text.chars() {
        if is_cjk(c) {
            cjk += 1;
        } else if c.is_alphabetic() {
            latin += 1;
        }
    }
    // A Han character carries about as much as a three-letter word: Chinese messages full of
    // "APP", "iPhone" or order numbers are still Chinese.
    if cjk == 0 || cjk * 3 < latin {
        return "en";
    }
    // NaN (nothing convertible) means the text reads the same in both scripts: call it
    // Simplified, the default script of the service.
    let hans = zhconv::is_hans_confidence(text);
    if hans < 0.5 { "zh-Hant" } else { "zh-Hans" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(rules: &TextRules, s: &str) -> String {
        Normalizer::new(rules).map(|n| n.normalize(s)).unwrap_or_default()
    }

    #[test]
    fn folds_width_case_and_script() {
        let rules = TextRules::default();
        assert_eq!(norm(&rules, "ＡＰＰ一直閃退！"), "app一直闪退!");
        assert_eq!(norm(&rules, "  Can’t   LOG in \r\n\r\n ok"), "can't log in\nok");
        assert_eq!(norm(&rules, "我 的 账号 登 不 上"), "我的账号登不上");
    }

    #[test]
    fn rewrites_respect_word_boundaries() {
        let rules = TextRules {
            rewrites: vec![
                ["cannot".into(), "can't".into()],
                ["login".into(), "log in".into()],
                ["登入".into(), "登录".into()],
                ["帳號".into(), "账号".into()],
            ],
            ..TextRules::default()
        };
        assert_eq!(norm(&rules, "I cannot LOGIN"), "i can't log in");
        assert_eq!(norm(&rules, "logins cannotx"), "logins cannotx");
        assert_eq!(norm(&rules, "帳號登入不了"), "账号登录不了");
    }

    #[test]
    fn detects_scripts() {
        assert_eq!(detect_language("我的帳號登入不了"), "zh-Hant");
        assert_eq!(detect_language("我的账号登录不了"), "zh-Hans");
        assert_eq!(detect_language("我的iPhone APP打不开"), "zh-Hans");
        assert_eq!(detect_language("My order from 王 never came"), "en");
        assert_eq!(detect_language(""), "en");
        assert_eq!(detect_language("12345 !!!"), "en");
    }
}

//! What the learned model sees in a request: character n-grams of its Chinese, words and word
//! pairs of its English, and the rules' own signals (which lexicon groups matched, which way the
//! rules lean, which priority signals fired), plus the channel. Pure functions over normalised
//! text.
//!
//! Every feature is a short string with a namespace prefix (`c:` Chinese n-gram, `w:` word, `b:`
//! word pair, `s:` word stem, `r:` rule group, `p:` priority signal, …). The model stores the
//! strings it was trained on, so an explanation can name them, and looks them up by a 64-bit
//! FNV-1a hash, so inference allocates nothing per feature.

use super::normalize::is_cjk;

/// Only this many characters of a request are read: a longer body (an email thread, a pasted
/// log) adds little evidence, and the work stays bounded by the input's size either way.
pub const MAX_CHARS: usize = 3000;

/// Longest Chinese n-gram.
const MAX_NGRAM: usize = 3;

/// English words this long or longer also yield their first [`STEM_LEN`] letters as a feature,
/// so "refunded" and "refunding" share evidence.
const STEM_FROM: usize = 7;
const STEM_LEN: usize = 5;

/// Weight of a rule or channel feature; text features share a total weight of 1.
pub const SIGNAL_VALUE: f32 = 0.5;

/// FNV-1a, 64 bits: stable across platforms and releases, which the model file relies on.
pub fn feature_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A request's features: hashes with their values, one entry per occurrence (an n-gram seen
/// twice is there twice), in text order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureVec {
    pub entries: Vec<(u64, f32)>,
}

/// Collects features by name. With `keep_names`, it also keeps each name (training and
/// explanations need them; inference does not).
#[derive(Debug, Default)]
pub struct Collector {
    /// (hash, is a signal)
    seen: Vec<(u64, bool)>,
    names: Option<Vec<(u64, String)>>,
}

impl Collector {
    pub fn new(keep_names: bool) -> Self {
        Collector {
            seen: Vec::with_capacity(512),
            names: keep_names.then(Vec::new),
        }
    }

    fn push(&mut self, name: &str, signal: bool) {
        let h = feature_hash(name);
        self.seen.push((h, signal));
        if let Some(names) = &mut self.names {
            names.push((h, name.to_owned()));
        }
    }

    /// A rule, channel or other signal feature.
    pub fn signal(&mut self, name: &str) {
        self.push(name, true);
    }

    /// The n-grams and words of normalised text (lowercase, Simplified, half-width).
    pub fn text(&mut self, normalised: &str) {
        let mut buf = String::with_capacity(32);
        let chars: Vec<char> = normalised.chars().take(MAX_CHARS).collect();
        let mut prev_word: Option<String> = None;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if is_cjk(c) {
                let start = i;
                while i < chars.len() && is_cjk(chars[i]) {
                    i += 1;
                }
                let run = &chars[start..i];
                for n in 1..=MAX_NGRAM.min(run.len()) {
                    for gram in run.windows(n) {
                        buf.clear();
                        buf.push_str("c:");
                        buf.extend(gram);
                        self.push(&buf, false);
                    }
                }
                prev_word = None;
            } else if c.is_alphanumeric() {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '\'') && !is_cjk(chars[i]) {
                    i += 1;
                }
                // Digits carry amounts and order numbers, not meaning: every run of them is "0".
                let mut word = String::with_capacity(i - start);
                for &ch in &chars[start..i] {
                    if ch.is_ascii_digit() {
                        if !word.ends_with('0') {
                            word.push('0');
                        }
                    } else if ch != '\'' {
                        word.push(ch);
                    }
                }
                if word.is_empty() {
                    continue;
                }
                buf.clear();
                buf.push_str("w:");
                buf.push_str(&word);
                self.push(&buf, false);
                let len = word.chars().count();
                if len >= STEM_FROM {
                    buf.clear();
                    buf.push_str("s:");
                    buf.extend(word.chars().take(STEM_LEN));
                    self.push(&buf, false);
                }
                if let Some(p) = &prev_word {
                    buf.clear();
                    buf.push_str("b:");
                    buf.push_str(p);
                    buf.push(' ');
                    buf.push_str(&word);
                    self.push(&buf, false);
                }
                prev_word = Some(word);
            } else {
                // Spaces keep English word pairs together; anything else ends a phrase.
                if c != ' ' {
                    prev_word = None;
                }
                if c == '!' {
                    self.push("x:!", false);
                } else if c == '?' {
                    self.push("x:?", false);
                }
                i += 1;
            }
        }
    }

    /// The distinct features with their values: text features share a total weight of 1
    /// (1/√n each, so a long email does not outvote a short chat), signals weigh
    /// [`SIGNAL_VALUE`] each.
    pub fn finish(self) -> (FeatureVec, Vec<(u64, String)>) {
        // Counts, not presence: a repeated n-gram appears once per occurrence, so no sort or
        // set is needed (the model sums over entries either way, in training as at inference).
        let text_count = self.seen.iter().filter(|e| !e.1).count();
        let text_value = if text_count == 0 {
            0.0
        } else {
            1.0 / (text_count as f32).sqrt()
        };
        let entries: Vec<(u64, f32)> = self
            .seen
            .iter()
            .map(|&(h, signal)| (h, if signal { SIGNAL_VALUE } else { text_value }))
            .collect();
        let mut names = self.names.unwrap_or_default();
        names.sort_unstable();
        names.dedup();
        (FeatureVec { entries }, names)
    }
}

/// A length bucket, so the model can tell "hello?" from a three-paragraph email.
pub fn length_bucket(chars: usize) -> &'static str {
    match chars {
        0..=9 => "len:xs",
        10..=29 => "len:s",
        30..=79 => "len:m",
        80..=199 => "len:l",
        _ => "len:xl",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(text: &str) -> Vec<String> {
        let mut c = Collector::new(true);
        c.text(text);
        c.finish().1.into_iter().map(|(_, n)| n).collect()
    }

    #[test]
    fn chinese_runs_give_one_to_three_grams() {
        let n = names("扣了两次");
        for want in ["c:扣", "c:扣了", "c:扣了两", "c:两次", "c:次"] {
            assert!(n.contains(&want.to_owned()), "{want} missing from {n:?}");
        }
        assert!(!n.iter().any(|x| x == "c:扣了两次"), "no 4-grams");
    }

    #[test]
    fn english_gives_words_pairs_stems_and_folds_digits() {
        let n = names("charged twice for order 12345, refunded");
        for want in [
            "w:charged",
            "b:charged twice",
            "w:0",
            "b:order 0",
            "s:refun",
            "w:refunded",
        ] {
            assert!(n.contains(&want.to_owned()), "{want} missing from {n:?}");
        }
        assert!(
            !n.iter().any(|x| x == "b:0 refunded"),
            "a comma ends a word pair: {n:?}"
        );
    }

    #[test]
    fn mixed_text_splits_scripts() {
        let n = names("我的account被lock了");
        for want in ["w:account", "w:lock", "c:被", "c:我的"] {
            assert!(n.contains(&want.to_owned()), "{want} missing from {n:?}");
        }
    }

    #[test]
    fn text_features_share_a_unit_norm() {
        let mut c = Collector::new(false);
        c.text("the app crashes when I open it");
        let (v, _) = c.finish();
        let norm: f32 = v.entries.iter().map(|e| e.1 * e.1).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }

    #[test]
    fn a_repeated_ngram_counts_each_time() {
        let mut c = Collector::new(false);
        c.text("退款 退款");
        let (v, _) = c.finish();
        let h = feature_hash("c:退款");
        assert_eq!(v.entries.iter().filter(|e| e.0 == h).count(), 2);
    }

    proptest! {
        // Bounded work on any input, finite values.
        #[test]
        fn any_text_gives_bounded_finite_features(s in "\\PC{0,400}") {
            let mut c = Collector::new(false);
            c.text(&s);
            c.signal("ch:chat");
            let (v, _) = c.finish();
            prop_assert!(v.entries.iter().all(|e| e.1.is_finite() && e.1 > 0.0));
            prop_assert!(v.entries.len() <= 3 * 400 + 400 * 3 + 10);
        }
    }
}

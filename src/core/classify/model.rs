//! The learned triage model: a linear classifier with two softmax heads over the same features,
//! one for the category and one for the priority the words imply. Trained by
//! `switchboard train` (see [`super::train`]) into a text file the policy names
//! (`[classification] model`).
//!
//! The file is line-oriented so a diff shows what changed: a magic line, one line of JSON (the
//! header: labels, thresholds, bias, how it was trained), then one line per feature: its name, a
//! tab, and its weights (categories first, then priorities). The version is a digest of the
//! content, so two trainings on the same data give the same file and the same version.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::features::{FeatureVec, feature_hash};

pub const MAGIC: &str = "switchboard-triage-model 1";

/// The largest weight a model file may hold.
const MAX_WEIGHT: f32 = 1000.0;

/// How one corpus file entered the training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusFile {
    pub path: String,
    pub items: usize,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
}

/// How the model was trained: enough to reproduce it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    pub corpus: Vec<CorpusFile>,
    /// Agents' corrections learned from (`--with-corrections`).
    pub corrections: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    pub l2: f64,
    /// Features seen fewer times than this in the training items were left out.
    pub min_count: usize,
    pub seed: u64,
    /// Training weight of an urgent item relative to the others.
    pub urgent_weight: f64,
    /// Cross-validated figures on the training corpus, when `--folds` asked for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_validation: Option<serde_json::Value>,
}

/// The model file's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelHeader {
    /// `triage-` and the first 12 hex digits of the content's SHA-256.
    pub version: String,
    pub categories: Vec<String>,
    /// Priority levels, most pressing first (the first is the urgent level).
    pub priorities: Vec<String>,
    /// The model calls a request urgent when P(urgent) reaches this, even if another level is
    /// more likely: a missed urgent costs more than a false one. Chosen by cross-validation.
    pub urgent_threshold: f64,
    /// One bias per output: categories, then priorities.
    pub bias: Vec<f32>,
    pub features: usize,
    pub training: TrainingInfo,
}

/// Feature keys are FNV hashes already: hashing them again would only cost time.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Index = HashMap<u64, u32, BuildHasherDefault<PreHashed>>;

/// A trained model, ready to score feature vectors.
#[derive(Debug, Clone)]
pub struct Model {
    pub header: ModelHeader,
    index: Index,
    names: Vec<String>,
    /// Row-major: `outputs()` weights per feature.
    weights: Vec<f32>,
}

/// The model's probabilities for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// In `header.categories` order; sums to 1.
    pub category: Vec<f64>,
    /// In `header.priorities` order; sums to 1.
    pub priority: Vec<f64>,
}

impl Prediction {
    /// The priority index settled on at `urgent_threshold`: urgent (0) when P(urgent) reaches
    /// it, else the likeliest of the others (ties to the more pressing).
    pub fn priority_level(&self, urgent_threshold: f64) -> usize {
        if self.priority.first().is_some_and(|&u| u >= urgent_threshold) {
            return 0;
        }
        (1..self.priority.len())
            .max_by(|&a, &b| self.priority[a].total_cmp(&self.priority[b]).then(b.cmp(&a)))
            .unwrap_or(0)
    }

    /// Category indices, most likely first.
    pub fn category_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.category.len()).collect();
        order.sort_by(|&a, &b| self.category[b].total_cmp(&self.category[a]).then(a.cmp(&b)));
        order
    }
}

fn softmax(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        for v in z.iter_mut() {
            *v /= sum;
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl Model {
    /// Assemble a model from trained parameters; the version is derived from the content.
    pub fn new(mut header: ModelHeader, names: Vec<String>, weights: Vec<f32>) -> Result<Model, String> {
        let k = header.categories.len() + header.priorities.len();
        if header.categories.len() < 2 || header.priorities.len() < 2 {
            return Err("a model needs at least two categories and two priorities".into());
        }
        if header.bias.len() != k {
            return Err(format!(
                "bias has {} values, the model has {k} outputs",
                header.bias.len()
            ));
        }
        if weights.len() != names.len() * k {
            return Err(format!(
                "{} weights for {} features × {k} outputs",
                weights.len(),
                names.len()
            ));
        }
        if !(0.0..=1.0).contains(&header.urgent_threshold) {
            return Err(format!(
                "urgent_threshold {} is not within 0..1",
                header.urgent_threshold
            ));
        }
        // Bounded weights keep every sum finite (a file with huge ones would give NaN
        // probabilities); trained weights are far below this.
        if weights
            .iter()
            .chain(&header.bias)
            .any(|w| !w.is_finite() || w.abs() > MAX_WEIGHT)
        {
            return Err(format!("a weight is not a finite number within ±{MAX_WEIGHT}"));
        }
        for (what, labels) in [("categories", &header.categories), ("priorities", &header.priorities)] {
            if labels.iter().enumerate().any(|(i, l)| labels[..i].contains(l)) {
                return Err(format!("{what} {labels:?} repeat a label"));
            }
        }
        let mut index = Index::with_capacity_and_hasher(names.len(), Default::default());
        for (row, name) in names.iter().enumerate() {
            if name.is_empty() || name.contains(['\t', '\n', '\r']) {
                return Err(format!("feature {row} has an unusable name {name:?}"));
            }
            let row = u32::try_from(row).map_err(|_| "too many features".to_owned())?;
            if index.insert(feature_hash(name), row).is_some() {
                return Err(format!("feature {name:?} appears twice (or its hash collides)"));
            }
        }
        header.features = names.len();
        let mut model = Model {
            header,
            index,
            names,
            weights,
        };
        model.header.version = format!("triage-{}", &sha256_hex(model.body_text().as_bytes())[..12]);
        Ok(model)
    }

    /// Number of outputs: categories, then priorities.
    pub fn outputs(&self) -> usize {
        self.header.categories.len() + self.header.priorities.len()
    }

    pub fn version(&self) -> &str {
        &self.header.version
    }

    /// The weights part of the file (and the bias, labels and threshold, which the version
    /// covers too).
    fn body_text(&self) -> String {
        let k = self.outputs();
        let mut out = String::with_capacity(self.names.len() * (16 + 8 * k));
        let _ = writeln!(
            out,
            "# labels {} | {} | urgent at {}",
            self.header.categories.join(","),
            self.header.priorities.join(","),
            self.header.urgent_threshold
        );
        let _ = write!(out, "# bias");
        for b in &self.header.bias {
            let _ = write!(out, " {b}");
        }
        out.push('\n');
        for (row, name) in self.names.iter().enumerate() {
            out.push_str(name);
            out.push('\t');
            for (j, w) in self.weights[row * k..(row + 1) * k].iter().enumerate() {
                if j > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{w}");
            }
            out.push('\n');
        }
        out
    }

    /// The model file's text.
    pub fn to_text(&self) -> Result<String, String> {
        let header = serde_json::to_string(&self.header).map_err(|e| e.to_string())?;
        Ok(format!("{MAGIC}\n{header}\n{}", self.body_text()))
    }

    /// Read a model file; the error names the line that is wrong.
    pub fn parse(text: &str) -> Result<Model, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l)) if l.trim() == MAGIC => {}
            _ => return Err(format!("line 1: not a triage model (expected {MAGIC:?})")),
        }
        let header: ModelHeader = match lines.next() {
            Some((_, l)) => serde_json::from_str(l).map_err(|e| format!("line 2: header: {e}"))?,
            None => return Err("line 2: the header is missing".into()),
        };
        let k = header.categories.len() + header.priorities.len();
        // The header's counts are not trusted for allocation: the lines are.
        let mut names = Vec::new();
        let mut weights = Vec::new();
        for (n, line) in lines {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (name, ws) = line
                .split_once('\t')
                .ok_or_else(|| format!("line {}: expected a feature, a tab and its weights", n + 1))?;
            let before = weights.len();
            for w in ws.split(' ') {
                weights.push(
                    w.parse::<f32>()
                        .map_err(|_| format!("line {}: {w:?} is not a number", n + 1))?,
                );
            }
            if weights.len() - before != k {
                return Err(format!(
                    "line {}: {} weights, the model has {k} outputs",
                    n + 1,
                    weights.len() - before
                ));
            }
            names.push(name.to_owned());
        }
        if names.len() != header.features {
            return Err(format!(
                "the header announces {} features, the file has {}",
                header.features,
                names.len()
            ));
        }
        let expected = header.version.clone();
        let model = Model::new(header, names, weights)?;
        if model.header.version != expected {
            return Err(format!(
                "the content does not match its version {expected} (it digests to {}): the file was edited or damaged; train it again",
                model.header.version
            ));
        }
        Ok(model)
    }

    /// Raw scores (logits) of every output.
    fn logits(&self, x: &FeatureVec) -> Vec<f64> {
        let k = self.outputs();
        let mut z: Vec<f32> = self.header.bias.clone();
        for &(h, v) in &x.entries {
            if let Some(&row) = self.index.get(&h) {
                let row = row as usize * k;
                for (zj, w) in z.iter_mut().zip(&self.weights[row..row + k]) {
                    *zj += w * v;
                }
            }
        }
        z.into_iter().map(f64::from).collect()
    }

    pub fn predict(&self, x: &FeatureVec) -> Prediction {
        let z = self.logits(x);
        let nc = self.header.categories.len();
        let mut category = z[..nc].to_vec();
        let mut priority = z[nc..].to_vec();
        softmax(&mut category);
        softmax(&mut priority);
        Prediction { category, priority }
    }

    /// The priority level the model settles on: urgent when P(urgent) reaches the threshold,
    /// else the likeliest of the others.
    pub fn priority_choice(&self, p: &Prediction) -> usize {
        p.priority_level(self.header.urgent_threshold)
    }

    /// The features that pushed output `output` up the most, with their contributions:
    /// what a person is shown as the model's reasons.
    pub fn strongest(&self, x: &FeatureVec, output: usize, n: usize) -> Vec<(String, f64)> {
        let k = self.outputs();
        let mut found: Vec<(String, f64)> = x
            .entries
            .iter()
            .filter_map(|&(h, v)| {
                let row = *self.index.get(&h)? as usize;
                let c = f64::from(self.weights[row * k + output]) * f64::from(v);
                (c > 0.0).then(|| (self.names[row].clone(), c))
            })
            .collect();
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        found.truncate(n);
        found
    }

    /// The feature names, in file order.
    pub fn feature_names(&self) -> &[String] {
        &self.names
    }
}

/// A feature name as people read it: `c:扣了两` → `扣了两`, `r:payment fails` → `rule "payment fails"`.
pub fn display_feature(name: &str) -> String {
    match name.split_once(':') {
        Some(("c" | "w" | "s", rest)) => format!("{rest:?}"),
        Some(("b", rest)) => format!("{rest:?}"),
        Some(("r", rest)) => format!("rule {rest:?}"),
        Some(("rn", rest)) => format!("negated rule {rest:?}"),
        Some(("rc", rest)) => format!("rules lean {rest}"),
        Some(("p", rest)) => format!("signal {rest:?}"),
        Some(("pn", rest)) => format!("negated signal {rest:?}"),
        Some(("ch", rest)) => format!("channel {rest}"),
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::classify::features::Collector;

    fn tiny() -> Model {
        let header = ModelHeader {
            version: String::new(),
            categories: vec!["fault".into(), "other".into()],
            priorities: vec!["urgent".into(), "low".into()],
            urgent_threshold: 0.4,
            bias: vec![0.0, 0.1, 0.0, 0.2],
            features: 0,
            training: TrainingInfo {
                corpus: vec![],
                corrections: 0,
                epochs: 1,
                learning_rate: 0.1,
                l2: 0.0,
                min_count: 1,
                seed: 1,
                urgent_weight: 1.0,
                cross_validation: None,
            },
        };
        Model::new(
            header,
            vec!["c:坏".into(), "w:thanks".into()],
            vec![2.0, -1.0, 1.5, -1.0, -1.0, 2.0, -1.0, 1.0],
        )
        .unwrap()
    }

    fn features(text: &str) -> FeatureVec {
        let mut c = Collector::new(false);
        c.text(text);
        c.finish().0
    }

    #[test]
    fn round_trips_through_text_with_a_content_version() {
        let m = tiny();
        let text = m.to_text().unwrap();
        let back = Model::parse(&text).unwrap();
        assert_eq!(back.version(), m.version());
        assert!(m.version().starts_with("triage-"));
        let x = features("机器坏了");
        assert_eq!(back.predict(&x), m.predict(&x));
        // Any edit of a weight is detected.
        let edited = text.replacen("c:坏\t2 ", "c:坏\t3 ", 1);
        assert_ne!(edited, text);
        assert!(
            Model::parse(&edited)
                .unwrap_err()
                .contains("does not match its version")
        );
    }

    #[test]
    fn predicts_from_known_features_and_ignores_unknown_ones() {
        let m = tiny();
        let p = m.predict(&features("坏"));
        assert!(p.category[0] > 0.8, "{p:?}");
        assert_eq!(m.priority_choice(&p), 0);
        let q = m.predict(&features("thanks"));
        assert!(q.category[1] > 0.8, "{q:?}");
        assert_eq!(m.priority_choice(&q), 1);
        let none = m.predict(&features("zzz"));
        assert!((none.category.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(m.strongest(&features("坏"), 0, 3)[0].0, "c:坏");
    }

    #[test]
    fn refuses_damaged_files_by_line() {
        assert!(Model::parse("hello").unwrap_err().contains("line 1"));
        let text = tiny().to_text().unwrap();
        let short = text.replacen(" -1 1.5", " 1.5", 1);
        assert!(Model::parse(&short).unwrap_err().contains("outputs"), "{short}");
    }

    #[test]
    fn refuses_repeated_labels_huge_weights_and_lying_headers() {
        let m = tiny();
        let mut h = m.header.clone();
        h.categories = vec!["fault".into(), "fault".into()];
        assert!(
            Model::new(h, m.names.clone(), m.weights.clone())
                .unwrap_err()
                .contains("repeat")
        );
        let mut w = m.weights.clone();
        w[0] = 3e38;
        assert!(
            Model::new(m.header.clone(), m.names.clone(), w)
                .unwrap_err()
                .contains("within")
        );
        // A header announcing more features than any machine holds is an error, not a panic.
        let text = m
            .to_text()
            .unwrap()
            .replacen("\"features\":2", "\"features\":18446744073709551615", 1);
        assert!(Model::parse(&text).unwrap_err().contains("announces"), "{text}");
    }
}

//! Training the triage model: multinomial logistic regression with two heads (category and
//! priority) over the features of [`super::features`], fitted by AdaGrad with L2 regularisation.
//! Deterministic: the same examples and settings give the same model, byte for byte (a seeded
//! shuffle, one thread, features in name order).
//!
//! Cross-validation (k folds, each trained on the others from scratch, vocabulary included)
//! gives honest figures on the training corpus and chooses the urgent threshold that minimises
//! the cost of errors, a missed urgent costing more than a false one.

use std::collections::HashMap;

use super::features::FeatureVec;
use super::model::{Model, ModelHeader, Prediction, TrainingInfo};
use super::triage::Triage;

/// One labelled request.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: String,
    pub subject: Option<String>,
    pub body: String,
    pub channel: String,
    pub category: String,
    pub priority: String,
    /// How much the example counts (an agent's correction may count more than a written one).
    pub weight: f64,
}

/// Training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub learning_rate: f64,
    pub l2: f64,
    pub min_count: usize,
    pub seed: u64,
    pub urgent_weight: f64,
    /// What a missed urgent costs, a false urgent costing 1.
    pub missed_urgent_cost: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 30,
            learning_rate: 0.2,
            l2: 1e-5,
            min_count: 2,
            seed: 20261205,
            urgent_weight: 2.0,
            missed_urgent_cost: 5.0,
        }
    }
}

/// Examples turned into features and label indices.
pub struct Prepared {
    pub categories: Vec<String>,
    pub priorities: Vec<String>,
    rows: Vec<FeatureVec>,
    names: HashMap<u64, String>,
    pub category: Vec<usize>,
    pub priority: Vec<usize>,
    weight: Vec<f64>,
}

impl Prepared {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Features and labels of every example; an unknown label is an error naming the example.
pub fn prepare(triage: &Triage, examples: &[Example]) -> Result<Prepared, String> {
    let categories = triage.classifier().categories().to_vec();
    let priorities = triage.prioritizer().levels().to_vec();
    let mut p = Prepared {
        rows: Vec::with_capacity(examples.len()),
        names: HashMap::new(),
        category: Vec::with_capacity(examples.len()),
        priority: Vec::with_capacity(examples.len()),
        weight: Vec::with_capacity(examples.len()),
        categories,
        priorities,
    };
    for e in examples {
        let c = p.categories.iter().position(|x| *x == e.category).ok_or_else(|| {
            format!(
                "{}: unknown category {:?} (the policy has {:?})",
                e.id, e.category, p.categories
            )
        })?;
        let l = p.priorities.iter().position(|x| *x == e.priority).ok_or_else(|| {
            format!(
                "{}: unknown priority {:?} (the policy has {:?})",
                e.id, e.priority, p.priorities
            )
        })?;
        if !(e.weight.is_finite() && e.weight > 0.0) {
            return Err(format!("{}: weight must be above 0", e.id));
        }
        let x = triage.extract(e.subject.as_deref(), &e.body, &e.channel, true);
        for (h, n) in x.names {
            p.names.entry(h).or_insert(n);
        }
        p.rows.push(x.features);
        p.category.push(c);
        p.priority.push(l);
        p.weight.push(e.weight);
    }
    Ok(p)
}

/// xorshift64*: a small deterministic generator for the shuffles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

fn softmax_into(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

/// Fit a model on the examples at `subset` (all of them for the shipped model).
pub fn fit(
    p: &Prepared,
    subset: &[usize],
    cfg: &TrainConfig,
    urgent_threshold: f64,
    info: TrainingInfo,
) -> Result<Model, String> {
    if subset.is_empty() {
        return Err("no examples to train on".into());
    }
    let nc = p.categories.len();
    let k = nc + p.priorities.len();
    // Vocabulary: features seen at least `min_count` times in the training examples, in name order so the
    // file (and its version) does not depend on hash order.
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for &i in subset {
        for &(h, _) in &p.rows[i].entries {
            *counts.entry(h).or_default() += 1;
        }
    }
    let mut kept: Vec<(&str, u64)> = counts
        .iter()
        .filter(|&(_, &n)| n >= cfg.min_count.max(1))
        .filter_map(|(h, _)| p.names.get(h).map(|name| (name.as_str(), *h)))
        .collect();
    kept.sort_unstable();
    let row_of: HashMap<u64, usize> = kept.iter().enumerate().map(|(r, &(_, h))| (h, r)).collect();
    let xs: Vec<Vec<(usize, f64)>> = subset
        .iter()
        .map(|&i| {
            p.rows[i]
                .entries
                .iter()
                .filter_map(|&(h, v)| row_of.get(&h).map(|&r| (r, f64::from(v))))
                .collect()
        })
        .collect();

    let mut w = vec![0.0f64; kept.len() * k];
    let mut g2 = vec![0.0f64; kept.len() * k];
    let mut b = vec![0.0f64; k];
    let mut gb = vec![0.0f64; k];
    let mut rng = Rng(cfg.seed | 1);
    let mut order: Vec<usize> = (0..subset.len()).collect();
    let mut z = vec![0.0f64; k];
    let eps = 1e-8;
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut order);
        for &s in &order {
            let i = subset[s];
            let x = &xs[s];
            z.copy_from_slice(&b);
            for &(r, v) in x {
                for (zj, wj) in z.iter_mut().zip(&w[r * k..(r + 1) * k]) {
                    *zj += wj * v;
                }
            }
            softmax_into(&mut z[..nc]);
            softmax_into(&mut z[nc..]);
            // Gradient of the two cross-entropies: p − y, scaled by the example's weight.
            let weight = p.weight[i];
            let prio_weight = if p.priority[i] == 0 {
                weight * cfg.urgent_weight
            } else {
                weight
            };
            z[p.category[i]] -= 1.0;
            z[nc + p.priority[i]] -= 1.0;
            for (j, zj) in z.iter_mut().enumerate() {
                *zj *= if j < nc { weight } else { prio_weight };
            }
            for &(r, v) in x {
                let base = r * k;
                for j in 0..k {
                    let grad = z[j] * v + cfg.l2 * w[base + j];
                    g2[base + j] += grad * grad;
                    w[base + j] -= cfg.learning_rate * grad / (g2[base + j].sqrt() + eps);
                }
            }
            for j in 0..k {
                gb[j] += z[j] * z[j];
                b[j] -= cfg.learning_rate * z[j] / (gb[j].sqrt() + eps);
            }
        }
    }

    // Four decimals are plenty for a linear model and keep the file small; rows that round to
    // nothing are dropped.
    let round = |v: f64| ((v * 1e4).round() / 1e4) as f32;
    let mut names = Vec::with_capacity(kept.len());
    let mut weights = Vec::with_capacity(kept.len() * k);
    for (r, &(name, _)) in kept.iter().enumerate() {
        let row: Vec<f32> = w[r * k..(r + 1) * k].iter().map(|&v| round(v)).collect();
        if row.iter().all(|&v| v == 0.0) {
            continue;
        }
        names.push(name.to_owned());
        weights.extend(row.into_iter().map(|v| if v == 0.0 { 0.0 } else { v }));
    }
    let header = ModelHeader {
        version: String::new(),
        categories: p.categories.clone(),
        priorities: p.priorities.clone(),
        urgent_threshold,
        bias: b.iter().map(|&v| round(v)).collect(),
        features: names.len(),
        training: info,
    };
    Model::new(header, names, weights)
}

/// Which fold each example falls in: a seeded shuffle dealt round-robin.
pub fn folds(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng(seed.wrapping_add(0x9e37_79b9) | 1).shuffle(&mut order);
    let mut fold = vec![0; n];
    for (pos, &i) in order.iter().enumerate() {
        fold[i] = pos % k.max(1);
    }
    fold
}

/// k-fold cross-validation: every example predicted by a model that never saw it. `progress`
/// is told each finished fold.
pub fn cross_validate(
    p: &Prepared,
    k: usize,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Prediction>, String> {
    if k < 2 {
        return Err("cross-validation needs at least 2 folds".into());
    }
    let fold = folds(p.len(), k, cfg.seed);
    let mut out: Vec<Option<Prediction>> = vec![None; p.len()];
    for f in 0..k {
        let train: Vec<usize> = (0..p.len()).filter(|&i| fold[i] != f).collect();
        let model = fit(p, &train, cfg, 0.5, TrainingInfo::new(cfg, Vec::new(), 0))?;
        for i in (0..p.len()).filter(|&i| fold[i] == f) {
            out[i] = Some(model.predict(&p.rows[i]));
        }
        progress(f + 1, k);
    }
    out.into_iter()
        .enumerate()
        .map(|(i, o)| o.ok_or_else(|| format!("example {i} was in no fold")))
        .collect()
}

/// The urgent threshold with the lowest cost on held-out predictions: each missed urgent costs
/// `missed_cost`, each false urgent 1. Ties go to the higher threshold (fewer false alarms).
pub fn choose_urgent_threshold(predictions: &[Prediction], gold_priority: &[usize], missed_cost: f64) -> f64 {
    let mut best = (f64::INFINITY, 0.5);
    for step in (5..=95).rev() {
        let t = f64::from(step) / 100.0;
        let mut cost = 0.0;
        for (p, &g) in predictions.iter().zip(gold_priority) {
            let says_urgent = p.priority.first().is_some_and(|&u| u >= t);
            match (g == 0, says_urgent) {
                (true, false) => cost += missed_cost,
                (false, true) => cost += 1.0,
                _ => {}
            }
        }
        if cost < best.0 {
            best = (cost, t);
        }
    }
    best.1
}

/// Honest figures from cross-validation, recorded in the model file.
#[derive(Debug, Clone, PartialEq)]
pub struct CvSummary {
    pub folds: usize,
    pub category_accuracy: f64,
    pub urgent_recall: f64,
    pub urgent_threshold: f64,
}

/// The whole of `switchboard train`: cross-validate with `folds` folds (≥ 2) to measure and to
/// choose the urgent threshold (0.5 without), then fit on every example. `info` says where the
/// examples came from and how (see [`TrainingInfo::new`]); the figures are added here.
pub fn train_model(
    triage: &Triage,
    examples: &[Example],
    cfg: &TrainConfig,
    folds: usize,
    mut info: TrainingInfo,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Model, Option<CvSummary>), String> {
    let prepared = prepare(triage, examples)?;
    let mut threshold = 0.5;
    let mut summary = None;
    if folds >= 2 {
        let preds = cross_validate(&prepared, folds, cfg, progress)?;
        threshold = choose_urgent_threshold(&preds, &prepared.priority, cfg.missed_urgent_cost);
        let category_ok = preds
            .iter()
            .zip(&prepared.category)
            .filter(|(p, c)| p.category_order().first() == Some(*c))
            .count();
        let (mut urgent, mut found) = (0usize, 0usize);
        for (p, &g) in preds.iter().zip(&prepared.priority) {
            if g == 0 {
                urgent += 1;
                found += usize::from(p.priority.first().is_some_and(|&u| u >= threshold));
            }
        }
        let s = CvSummary {
            folds,
            category_accuracy: category_ok as f64 / prepared.len().max(1) as f64,
            urgent_recall: found as f64 / urgent.max(1) as f64,
            urgent_threshold: threshold,
        };
        info.cross_validation = Some(serde_json::json!({
            "folds": s.folds,
            "category_accuracy": (s.category_accuracy * 1000.0).round() / 1000.0,
            "urgent_recall": (s.urgent_recall * 1000.0).round() / 1000.0,
        }));
        summary = Some(s);
    }
    let all: Vec<usize> = (0..prepared.len()).collect();
    let model = fit(&prepared, &all, cfg, threshold, info)?;
    Ok((model, summary))
}

impl TrainingInfo {
    /// What a model file records of its training: the settings and where the examples came from.
    pub fn new(cfg: &TrainConfig, corpus: Vec<super::model::CorpusFile>, corrections: usize) -> TrainingInfo {
        TrainingInfo {
            corpus,
            corrections,
            epochs: cfg.epochs,
            learning_rate: cfg.learning_rate,
            l2: cfg.l2,
            min_count: cfg.min_count,
            seed: cfg.seed,
            urgent_weight: cfg.urgent_weight,
            cross_validation: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::classify::test_support::shipped_triage;
    use crate::core::classify::triage::Triage;
    use std::sync::Arc;

    fn example(id: usize, body: &str, category: &str, priority: &str) -> Example {
        Example {
            id: format!("x{id}"),
            subject: None,
            body: body.to_owned(),
            channel: "chat".into(),
            category: category.into(),
            priority: priority.into(),
            weight: 1.0,
        }
    }

    fn corpus() -> Vec<Example> {
        let mut v = Vec::new();
        let kinds = [
            ("冰柜温度一直往上走，里面全是海鲜", "fault", "urgent"),
            ("谢谢师傅今天上门，问题解决了", "other", "low"),
            ("我们是做推广的，想跟贵司合作", "other", "low"),
            ("上周说好周一回电，到现在都没人理", "complaint", "normal"),
            ("请问会员怎么续费", "inquiry", "normal"),
            ("能不能把字体做大一点，不影响使用", "suggestion", "low"),
        ];
        for round in 0..6 {
            for (j, (body, c, p)) in kinds.iter().enumerate() {
                v.push(example(round * 10 + j, &format!("{body} {round}"), c, p));
            }
        }
        v
    }

    fn triage() -> Triage {
        shipped_triage().with_model(None).unwrap()
    }

    #[test]
    fn training_is_deterministic_and_learns_the_corpus() {
        let t = triage();
        let ex = corpus();
        let p = prepare(&t, &ex).unwrap();
        let all: Vec<usize> = (0..p.len()).collect();
        let cfg = TrainConfig::default();
        let info = || TrainingInfo::new(&cfg, vec![], 0);
        let a = fit(&p, &all, &cfg, 0.4, info()).unwrap();
        let b = fit(&p, &all, &cfg, 0.4, info()).unwrap();
        assert_eq!(a.to_text().unwrap(), b.to_text().unwrap());
        let m = Arc::new(a);
        let with = t.with_model(Some(m.clone())).unwrap();
        let c = with.classify(None, "冰柜温度一直往上走", "chat");
        assert_eq!(c.category, "fault", "{c:?}");
        assert!(c.reasons[0].contains(m.version()), "{:?}", c.reasons);
        assert_eq!(c.candidates.len(), 2);
        let other = with.classify(None, "谢谢师傅，问题解决了", "chat");
        assert_eq!(other.category, "other", "{other:?}");
    }

    #[test]
    fn unknown_labels_name_the_example() {
        let t = triage();
        let err = prepare(&t, &[example(7, "hi", "praise", "low")]).err().unwrap();
        assert!(err.contains("x7") && err.contains("praise"), "{err}");
    }

    #[test]
    fn cross_validation_predicts_every_example_once() {
        let t = triage();
        let p = prepare(&t, &corpus()).unwrap();
        let mut seen = Vec::new();
        let preds = cross_validate(&p, 3, &TrainConfig::default(), &mut |f, k| seen.push((f, k))).unwrap();
        assert_eq!(preds.len(), p.len());
        assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)]);
        let f = folds(10, 3, 1);
        assert_eq!(f.iter().filter(|&&x| x == 0).count(), 4);
    }

    #[test]
    fn a_missed_urgent_costs_more_than_a_false_one() {
        let pred = |u: f64| Prediction {
            category: vec![1.0],
            priority: vec![u, 1.0 - u, 0.0],
        };
        // Two urgent requests the model is unsure of (0.3) and a normal one it fears more (0.4).
        let preds = [pred(0.3), pred(0.3), pred(0.4)];
        let gold = [0, 0, 1];
        // Finding both is worth one false alarm…
        let t = choose_urgent_threshold(&preds, &gold, 5.0);
        assert!(t <= 0.3, "{t}");
        // …unless a miss costs less than a false alarm: then the threshold rises above them all.
        assert!(choose_urgent_threshold(&preds, &gold, 0.1) > 0.4);
    }
}

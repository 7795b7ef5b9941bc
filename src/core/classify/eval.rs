//! Offline evaluation of a policy against labelled requests (JSON lines), for `switchboard eval`
//! and for tuning: accuracy, per-category precision and recall, confusion matrices and the ids
//! that went wrong.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::triage::Triage;
use super::{ClassificationPolicy, PriorityInput, PriorityPolicy, classify, prioritize};
use crate::core::customer::Tier;

/// One labelled request, one line of the evaluation file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalItem {
    pub id: String,
    pub channel: String,
    /// The language or script the item is written in ("zh-Hans", "zh-Hant-TW", "yue", "en", …);
    /// the corpus calls it `lang`, the older sets `script`.
    #[serde(alias = "lang")]
    pub script: String,
    pub tier: Tier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    /// Expected category.
    pub category: String,
    /// Expected priority.
    pub priority: String,
}

impl EvalItem {
    /// What the priority stage would see of this item under `category`.
    pub fn priority_input<'a>(&'a self, category: &'a str) -> PriorityInput<'a> {
        PriorityInput {
            subject: self.subject.as_deref(),
            body: &self.body,
            category,
            tier: self.tier,
            channel: &self.channel,
        }
    }

    /// Parse a JSON-lines document; blank lines are skipped and errors name the line.
    pub fn parse_jsonl(text: &str) -> Result<Vec<EvalItem>, String> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", n + 1)))
            .collect()
    }
}

/// Precision and recall of one label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelStats {
    pub label: String,
    /// Items with this expected label.
    pub support: usize,
    /// Items predicted with this label.
    pub predicted: usize,
    pub correct: usize,
}

impl LabelStats {
    pub fn precision(&self) -> f64 {
        ratio(self.correct, self.predicted)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.correct, self.support)
    }
}

/// Rows are expected labels, columns predicted labels, both in `labels` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub labels: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    fn new(labels: Vec<String>) -> Self {
        let n = labels.len();
        Confusion {
            labels,
            counts: vec![vec![0; n]; n],
        }
    }

    fn index(&mut self, label: &str) -> usize {
        if let Some(i) = self.labels.iter().position(|l| l == label) {
            return i;
        }
        self.labels.push(label.to_owned());
        for row in &mut self.counts {
            row.push(0);
        }
        self.counts.push(vec![0; self.labels.len()]);
        self.labels.len() - 1
    }

    fn add(&mut self, expected: &str, got: &str) {
        let e = self.index(expected);
        let g = self.index(got);
        self.counts[e][g] += 1;
    }

    fn stats(&self) -> Vec<LabelStats> {
        (0..self.labels.len())
            .map(|i| LabelStats {
                label: self.labels[i].clone(),
                support: self.counts[i].iter().sum(),
                predicted: self.counts.iter().map(|r| r[i]).sum(),
                correct: self.counts[i][i],
            })
            .collect()
    }
}

/// Accuracy within one slice (a script or a channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceStats {
    pub total: usize,
    pub category_correct: usize,
    pub priority_correct: usize,
}

/// One item that was not classified as labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Miss {
    pub id: String,
    pub expected: String,
    pub got: String,
}

/// The result of [`evaluate`]; `Display` prints the human report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub total: usize,
    pub category_correct: usize,
    pub category_stats: Vec<LabelStats>,
    pub category_confusion: Confusion,
    /// End to end: priority computed from the predicted category.
    pub priority_correct: usize,
    /// Priority computed from the labelled category (isolates the priority rules).
    pub priority_correct_given_category: usize,
    pub priority_confusion: Confusion,
    pub by_script: BTreeMap<String, SliceStats>,
    pub by_channel: BTreeMap<String, SliceStats>,
    pub category_misses: Vec<Miss>,
    pub priority_misses: Vec<Miss>,
    /// The most pressing level, whose misses cost most.
    pub urgent_level: String,
    /// Cost of a missed urgent request; a false urgent and any other error cost 1.
    pub missed_urgent_cost: f64,
    /// Items the decision flagged for a person (`needs_triage`), and how many of the others were
    /// classified right.
    pub flagged: usize,
    pub unflagged_category_correct: usize,
}

impl EvalReport {
    pub fn category_accuracy(&self) -> f64 {
        ratio(self.category_correct, self.total)
    }
    pub fn priority_accuracy(&self) -> f64 {
        ratio(self.priority_correct, self.total)
    }

    fn urgent_stats(&self) -> Option<LabelStats> {
        let i = self
            .priority_confusion
            .labels
            .iter()
            .position(|l| *l == self.urgent_level)?;
        let c = &self.priority_confusion;
        Some(LabelStats {
            label: self.urgent_level.clone(),
            support: c.counts[i].iter().sum(),
            predicted: c.counts.iter().map(|r| r[i]).sum(),
            correct: c.counts[i][i],
        })
    }

    /// Share of urgent requests that came out urgent.
    pub fn urgent_recall(&self) -> f64 {
        self.urgent_stats().map_or(0.0, |s| s.recall())
    }

    /// The cost of every error per 100 requests: a missed urgent costs `missed_urgent_cost`, a
    /// false urgent, a wrong category and any other wrong priority 1 each. 0 is perfect.
    pub fn cost_per_100(&self) -> f64 {
        let urgent = self.urgent_stats();
        let missed = urgent.as_ref().map_or(0, |s| s.support - s.correct);
        let false_urgent = urgent.as_ref().map_or(0, |s| s.predicted - s.correct);
        let other_priority = self.total - self.priority_correct - missed.min(self.total - self.priority_correct);
        let other_priority = other_priority.saturating_sub(false_urgent);
        let category = self.total - self.category_correct;
        let cost = missed as f64 * self.missed_urgent_cost + (false_urgent + other_priority + category) as f64;
        100.0 * cost / self.total.max(1) as f64
    }
}

/// One decision under evaluation: what the classifier and the priority stage said.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub category: String,
    pub needs_triage: bool,
    pub priority: String,
    /// The priority had the category been the labelled one (isolates the priority decision).
    pub priority_given_category: String,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Classify and prioritise every item with the rules alone and compare with its labels.
pub fn evaluate(class: &ClassificationPolicy, prio: &PriorityPolicy, items: &[EvalItem]) -> EvalReport {
    evaluate_decisions(items, class.category_ids(), prio.levels.clone(), |item| {
        let c = classify(class, item.subject.as_deref(), &item.body);
        Decided {
            priority: prioritize(prio, &item.priority_input(&c.category)).priority,
            priority_given_category: prioritize(prio, &item.priority_input(&item.category)).priority,
            needs_triage: c.needs_triage,
            category: c.category,
        }
    })
}

/// Classify and prioritise every item the way the stages do (rules and model) and compare.
pub fn evaluate_triage(triage: &Triage, items: &[EvalItem]) -> EvalReport {
    let categories = triage.classifier().categories().to_vec();
    let levels = triage.prioritizer().levels().to_vec();
    evaluate_decisions(items, categories, levels, |item| {
        let c = triage.classify(item.subject.as_deref(), &item.body, &item.channel);
        Decided {
            priority: triage.prioritize(&item.priority_input(&c.category)).priority,
            priority_given_category: triage.prioritize(&item.priority_input(&item.category)).priority,
            needs_triage: c.needs_triage,
            category: c.category,
        }
    })
}

/// Compare decisions with labels: `decide` says what was decided for each item.
pub fn evaluate_decisions(
    items: &[EvalItem],
    categories: Vec<String>,
    levels: Vec<String>,
    mut decide: impl FnMut(&EvalItem) -> Decided,
) -> EvalReport {
    let urgent_level = levels.first().cloned().unwrap_or_default();
    let mut cat_conf = Confusion::new(categories);
    let mut prio_conf = Confusion::new(levels);
    let mut report = EvalReport {
        total: items.len(),
        category_correct: 0,
        category_stats: Vec::new(),
        category_confusion: Confusion::new(Vec::new()),
        priority_correct: 0,
        priority_correct_given_category: 0,
        priority_confusion: Confusion::new(Vec::new()),
        by_script: BTreeMap::new(),
        by_channel: BTreeMap::new(),
        category_misses: Vec::new(),
        priority_misses: Vec::new(),
        urgent_level,
        missed_urgent_cost: MISSED_URGENT_COST,
        flagged: 0,
        unflagged_category_correct: 0,
    };
    for item in items {
        let c = decide(item);
        let cat_ok = c.category == item.category;
        if c.needs_triage {
            report.flagged += 1;
        } else {
            report.unflagged_category_correct += usize::from(cat_ok);
        }
        let prio_ok = c.priority == item.priority;
        cat_conf.add(&item.category, &c.category);
        prio_conf.add(&item.priority, &c.priority);
        report.category_correct += usize::from(cat_ok);
        report.priority_correct += usize::from(prio_ok);
        report.priority_correct_given_category += usize::from(c.priority_given_category == item.priority);
        for (map, key) in [
            (&mut report.by_script, &item.script),
            (&mut report.by_channel, &item.channel),
        ] {
            let s = map.entry(key.clone()).or_insert(SliceStats {
                total: 0,
                category_correct: 0,
                priority_correct: 0,
            });
            s.total += 1;
            s.category_correct += usize::from(cat_ok);
            s.priority_correct += usize::from(prio_ok);
        }
        if !cat_ok {
            report.category_misses.push(Miss {
                id: item.id.clone(),
                expected: item.category.clone(),
                got: c.category.clone(),
            });
        }
        if !prio_ok {
            report.priority_misses.push(Miss {
                id: item.id.clone(),
                expected: item.priority.clone(),
                got: c.priority.clone(),
            });
        }
    }
    report.category_stats = cat_conf.stats();
    report.category_confusion = cat_conf;
    report.priority_confusion = prio_conf;
    report
}

/// A held-out item too close to a training item to count as unseen.
#[derive(Debug, Clone, PartialEq)]
pub struct NearDuplicate {
    pub id: String,
    /// The training item it resembles.
    pub of: String,
    /// Jaccard overlap of their character 4-grams.
    pub overlap: f64,
}

/// Character 4-grams of a text, letters and digits only, lowercase: what near-duplicate
/// detection compares. Bounded by the text's length.
fn shingles(item: &EvalItem) -> std::collections::HashSet<u64> {
    use super::features::feature_hash;
    let text = format!("{} {}", item.subject.as_deref().unwrap_or(""), item.body);
    let chars: Vec<char> = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    let mut out = std::collections::HashSet::new();
    if chars.len() < 4 {
        out.insert(feature_hash(&chars.iter().collect::<String>()));
    }
    for w in chars.windows(4) {
        out.insert(feature_hash(&w.iter().collect::<String>()));
    }
    out
}

/// Split evaluation items into those that may be scored and those whose text overlaps a training
/// item's by at least `overlap` (Jaccard of character 4-grams): scoring those would flatter.
pub fn split_near_duplicates(
    items: Vec<EvalItem>,
    train: &[EvalItem],
    overlap: f64,
) -> (Vec<EvalItem>, Vec<NearDuplicate>) {
    let train_shingles: Vec<_> = train.iter().map(shingles).collect();
    let mut kept = Vec::with_capacity(items.len());
    let mut dropped = Vec::new();
    for item in items {
        let s = shingles(&item);
        let best = train_shingles
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let inter = s.intersection(t).count();
                let union = s.len() + t.len() - inter;
                (i, if union == 0 { 1.0 } else { inter as f64 / union as f64 })
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, o)) if o >= overlap => dropped.push(NearDuplicate {
                id: item.id,
                of: train[i].id.clone(),
                overlap: o,
            }),
            _ => kept.push(item),
        }
    }
    (kept, dropped)
}

/// What a missed urgent request costs in [`EvalReport::cost_per_100`], any other error costing 1.
pub const MISSED_URGENT_COST: f64 = 5.0;

/// How many misclassified ids the report lists.
const MAX_LISTED: usize = 30;

fn pct(a: usize, b: usize) -> String {
    format!("{:5.1}%", 100.0 * ratio(a, b))
}

fn write_confusion(f: &mut fmt::Formatter<'_>, c: &Confusion) -> fmt::Result {
    let width = c.labels.iter().map(|l| l.chars().count()).max().unwrap_or(0).max(8);
    write!(f, "  {:<width$} |", "expected\\got")?;
    for l in &c.labels {
        write!(f, " {l:>width$}")?;
    }
    writeln!(f)?;
    for (i, row) in c.counts.iter().enumerate() {
        write!(f, "  {:<width$} |", c.labels[i], width = width.max(12))?;
        for n in row {
            write!(f, " {n:>width$}")?;
        }
        writeln!(f)?;
    }
    Ok(())
}

fn write_slices(f: &mut fmt::Formatter<'_>, title: &str, slices: &BTreeMap<String, SliceStats>) -> fmt::Result {
    writeln!(f, "{title}:")?;
    for (k, s) in slices {
        writeln!(
            f,
            "  {k:<10} n={:<5} category {}  priority {}",
            s.total,
            pct(s.category_correct, s.total),
            pct(s.priority_correct, s.total)
        )?;
    }
    Ok(())
}

fn write_misses(f: &mut fmt::Formatter<'_>, title: &str, misses: &[Miss]) -> fmt::Result {
    writeln!(f, "{title} ({}):", misses.len())?;
    for m in misses.iter().take(MAX_LISTED) {
        writeln!(f, "  {}  expected {}, got {}", m.id, m.expected, m.got)?;
    }
    if misses.len() > MAX_LISTED {
        writeln!(f, "  … and {} more", misses.len() - MAX_LISTED)?;
    }
    Ok(())
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "items: {}", self.total)?;
        writeln!(
            f,
            "category accuracy: {} ({}/{})",
            pct(self.category_correct, self.total),
            self.category_correct,
            self.total
        )?;
        writeln!(f, "per category:")?;
        for s in &self.category_stats {
            writeln!(
                f,
                "  {:<12} n={:<5} precision {}  recall {}",
                s.label,
                s.support,
                pct(s.correct, s.predicted),
                pct(s.correct, s.support)
            )?;
        }
        writeln!(f, "category confusion (rows expected, columns predicted):")?;
        write_confusion(f, &self.category_confusion)?;
        writeln!(
            f,
            "priority accuracy: {} ({}/{}); with the labelled category: {}",
            pct(self.priority_correct, self.total),
            self.priority_correct,
            self.total,
            pct(self.priority_correct_given_category, self.total)
        )?;
        writeln!(f, "priority confusion (rows expected, columns predicted):")?;
        write_confusion(f, &self.priority_confusion)?;
        if let Some(u) = self.urgent_stats() {
            writeln!(
                f,
                "{} recall: {} ({}/{} found), precision {} ({} flagged {})",
                u.label,
                pct(u.correct, u.support),
                u.correct,
                u.support,
                pct(u.correct, u.predicted),
                u.predicted,
                u.label
            )?;
        }
        writeln!(
            f,
            "cost per 100 requests: {:.1} (a missed {} costs {}, any other error 1; 0 is perfect)",
            self.cost_per_100(),
            self.urgent_level,
            self.missed_urgent_cost
        )?;
        let unflagged = self.total - self.flagged;
        writeln!(
            f,
            "needs triage: {} of {} ({}) go to people; the other {unflagged} are {} right",
            self.flagged,
            self.total,
            pct(self.flagged, self.total).trim(),
            pct(self.unflagged_category_correct, unflagged).trim()
        )?;
        write_slices(f, "by language", &self.by_script)?;
        write_slices(f, "by channel", &self.by_channel)?;
        write_misses(f, "misclassified categories", &self.category_misses)?;
        write_misses(f, "wrong priorities", &self.priority_misses)
    }
}

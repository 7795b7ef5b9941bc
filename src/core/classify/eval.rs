//! Offline evaluation of a policy against labelled requests (JSON lines), for `switchboard eval`
//! and for tuning: accuracy, per-category precision and recall, confusion matrices and the ids
//! that went wrong.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ClassificationPolicy, PriorityInput, PriorityPolicy, classify, prioritize};
use crate::core::customer::Tier;

/// One labelled request, one line of the evaluation file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalItem {
    pub id: String,
    pub channel: String,
    /// "zh-Hans" | "zh-Hant" | "en"
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
}

impl EvalReport {
    pub fn category_accuracy(&self) -> f64 {
        ratio(self.category_correct, self.total)
    }
    pub fn priority_accuracy(&self) -> f64 {
        ratio(self.priority_correct, self.total)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Classify and prioritise every item and compare with its labels.
pub fn evaluate(class: &ClassificationPolicy, prio: &PriorityPolicy, items: &[EvalItem]) -> EvalReport {
    let mut cat_conf = Confusion::new(class.category_ids());
    let mut prio_conf = Confusion::new(prio.levels.clone());
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
    };
    for item in items {
        let c = classify(class, item.subject.as_deref(), &item.body);
        let input = |category| PriorityInput {
            subject: item.subject.as_deref(),
            body: &item.body,
            category,
            tier: item.tier,
            channel: &item.channel,
        };
        let p = prioritize(prio, &input(&c.category));
        let p_gold = prioritize(prio, &input(&item.category));
        let cat_ok = c.category == item.category;
        let prio_ok = p.priority == item.priority;
        cat_conf.add(&item.category, &c.category);
        prio_conf.add(&item.priority, &p.priority);
        report.category_correct += usize::from(cat_ok);
        report.priority_correct += usize::from(prio_ok);
        report.priority_correct_given_category += usize::from(p_gold.priority == item.priority);
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
                got: p.priority.clone(),
            });
        }
    }
    report.category_stats = cat_conf.stats();
    report.category_confusion = cat_conf;
    report.priority_confusion = prio_conf;
    report
}

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
        write_slices(f, "by script", &self.by_script)?;
        write_slices(f, "by channel", &self.by_channel)?;
        write_misses(f, "misclassified categories", &self.category_misses)?;
        write_misses(f, "wrong priorities", &self.priority_misses)
    }
}

//! Classification (需求分类) and priority (优先级) of customer requests: pure functions, no I/O.
//!
//! Every rule, lexicon, weight and threshold comes from the policy file
//! (`config/policy/classification.toml`, tables `[classification]` and `[priority]`); this module
//! only knows how to apply them. Text in Simplified or Traditional Chinese or English is
//! normalised first (see [`normalize`]), then matched against weighted term groups (see
//! [`lexicon`]): the category with the highest score wins, and every decision carries
//! human-readable reasons naming the matched terms and their scores so that a supervisor can see
//! why.
//!
//! Compiling a policy (normalising every term, building the term index and the regexes) costs a
//! few milliseconds, so it happens once: [`ClassificationPolicy::compile`] returns a
//! [`Classifier`], and the convenience function [`classify`] compiles lazily on first use and
//! caches the result inside the policy value. The same holds for [`PriorityPolicy`] and
//! [`prioritize`]. Mutating a policy's public fields after its first use does not recompile it:
//! clone it (a clone starts uncompiled) or load a new policy value instead.

pub mod eval;
pub mod features;
pub mod lexicon;
pub mod model;
pub mod normalize;
pub mod priority;
pub mod train;
pub mod triage;

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct File {
        classification: ClassificationPolicy,
        priority: PriorityPolicy,
    }

    /// The shipped rules (config/policy/classification.toml) and model, read from their files
    /// the way the policy loader reads them.
    pub(crate) fn shipped_triage() -> Triage {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy");
        let text = std::fs::read_to_string(dir.join("classification.toml")).unwrap();
        let f: File = toml::from_str(&text).unwrap();
        let model = f.classification.model.as_ref().map(|m| {
            let text = std::fs::read_to_string(dir.join(m)).unwrap();
            Arc::new(Model::parse(&text).unwrap())
        });
        Triage::new(
            Arc::new(f.classification.compile().unwrap()),
            f.priority.compiled().unwrap().clone(),
            model,
            f.classification.triage_threshold,
        )
        .unwrap()
    }
}

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use lexicon::{GroupSpec, Matcher, NegationRules};
use normalize::{Normalizer, TextRules, detect_language};

pub use model::Model;
pub use priority::{Prioritizer, PriorityDecision, PriorityInput, PriorityPolicy, PrioritySignal, prioritize};
pub use triage::{ModelEstimate, Triage};

/// A lazily compiled form of a policy, cached next to it. A clone starts empty (the clone may be
/// edited before use, so it must not inherit a stale compiled form); serialising skips it;
/// `Debug` only says whether it is compiled.
pub struct CompiledCache<T>(OnceLock<Result<Arc<T>, String>>);

impl<T> Default for CompiledCache<T> {
    fn default() -> Self {
        CompiledCache(OnceLock::new())
    }
}

impl<T> Clone for CompiledCache<T> {
    fn clone(&self) -> Self {
        CompiledCache(OnceLock::new())
    }
}

impl<T> fmt::Debug for CompiledCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0.get() {
            None => "not compiled",
            Some(Ok(_)) => "compiled",
            Some(Err(_)) => "invalid",
        };
        f.write_str(state)
    }
}

impl<T> CompiledCache<T> {
    pub(crate) fn get_or_compile(&self, compile: impl FnOnce() -> Result<T, String>) -> Result<&Arc<T>, &String> {
        self.0.get_or_init(|| compile().map(Arc::new)).as_ref()
    }
}

/// One category of the taxonomy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryDef {
    /// Stable identifier stored on the ticket, e.g. `fault`.
    pub id: String,
    /// Chinese display name, e.g. `故障类`.
    pub name_zh: String,
    #[serde(default)]
    pub description: String,
}

/// A weighted group of terms and patterns that speaks for one category.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassRule {
    /// Short name shown in reasons, e.g. `cannot log in`.
    pub name: String,
    pub category: String,
    /// Score added per distinct matched term.
    pub weight: f64,
    /// Literal phrases. English ones match whole words (plus the policy's inflection endings);
    /// a trailing `*` matches any continuation (`refund*` → refunds, refunded, refunding).
    #[serde(default)]
    pub terms: Vec<String>,
    /// Regular expressions over normalised text (lowercase, Simplified, half-width).
    #[serde(default)]
    pub patterns: Vec<String>,
    /// When true, a negation cue just before a hit ("没有问题", "no error") cancels it.
    #[serde(default)]
    pub negatable: bool,
}

/// Signs that the customer is asking something.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionRules {
    /// Category that question cues score for (normally `inquiry`).
    pub category: String,
    pub weight: f64,
    #[serde(default)]
    pub terms: Vec<String>,
    #[serde(default)]
    pub patterns: Vec<String>,
}

/// The classification half of the policy file (`[classification]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationPolicy {
    pub categories: Vec<CategoryDef>,
    /// Category for a message no rule speaks for strongly enough and that is not a question.
    pub fallback: String,
    /// Category for such a message when it reads as a question.
    pub fallback_question: String,
    /// The winning score must reach this, or the fallback applies.
    pub min_score: f64,
    /// Multiplier for terms found in the subject line.
    pub subject_weight: f64,
    /// Order that breaks ties between equal scores (categories not listed come last).
    #[serde(default)]
    pub tie_break: Vec<String>,
    /// confidence = top / (top + runner-up + confidence_smoothing).
    pub confidence_smoothing: f64,
    /// Confidence reported when the fallback applies.
    pub fallback_confidence: f64,
    /// A decision less confident than this is flagged `needs_triage`: people choose the category
    /// from its top two candidates (0 never flags).
    #[serde(default)]
    pub triage_threshold: f64,
    /// The learned model (`switchboard train` writes it), relative to the policy file that
    /// names it. Absent: the rules alone decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<std::path::PathBuf>,
    #[serde(default)]
    pub text: TextRules,
    #[serde(default)]
    pub negation: NegationRules,
    pub question: QuestionRules,
    /// Phrases that score nothing but keep the words inside them from scoring ("没有问题",
    /// "no problem").
    #[serde(default)]
    pub neutral: Vec<String>,
    pub rules: Vec<ClassRule>,
    #[serde(skip)]
    compiled: CompiledCache<Classifier>,
}

/// What the rules saw of a request, for the learned model: the evidence as feature names and the
/// normalised text (subject, newline, body), so nothing is normalised twice.
#[derive(Debug, Default)]
pub(crate) struct Evidence {
    pub(crate) names: Vec<String>,
    pub(crate) text: String,
}

/// One possible category and how likely it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub category: String,
    /// 0..1
    pub probability: f64,
}

/// The result of classifying one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub category: String,
    /// 0..1: the probability of `category`.
    pub confidence: f64,
    /// "zh-Hans" | "zh-Hant" | "en"
    pub language: String,
    pub reasons: Vec<String>,
    /// The two most likely categories, best first (the first is `category`).
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Less confident than the policy's `triage_threshold`: a person should choose the category.
    #[serde(default)]
    pub needs_triage: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupKind {
    Rule,
    Question,
    Neutral,
}

#[derive(Debug, Clone)]
struct GroupInfo {
    name: String,
    kind: GroupKind,
    category: usize,
    weight: f64,
    negatable: bool,
}

/// A compiled [`ClassificationPolicy`]: build once with [`ClassificationPolicy::compile`], then
/// call [`Classifier::classify`] per message.
#[derive(Debug, Clone)]
pub struct Classifier {
    categories: Vec<String>,
    fallback: usize,
    fallback_question: usize,
    /// Tie-break rank of each category (lower wins).
    rank: Vec<usize>,
    groups: Vec<GroupInfo>,
    matcher: Matcher,
    norm: Normalizer,
    min_score: f64,
    subject_weight: f64,
    smoothing: f64,
    fallback_confidence: f64,
    triage_threshold: f64,
}

fn finite_nonneg(v: f64, field: &str) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(format!("{field} must be a finite number ≥ 0 (got {v})"))
    }
}

impl ClassificationPolicy {
    /// Check the policy; the error names the rule or field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(|_| ())
    }

    /// Category identifiers in policy order.
    pub fn category_ids(&self) -> Vec<String> {
        self.categories.iter().map(|c| c.id.clone()).collect()
    }

    /// Validate and compile the policy into a [`Classifier`].
    pub fn compile(&self) -> Result<Classifier, String> {
        if self.categories.is_empty() {
            return Err("categories: at least one category is required".into());
        }
        let mut ids: Vec<String> = Vec::new();
        for (i, c) in self.categories.iter().enumerate() {
            let id = c.id.trim();
            if id.is_empty() {
                return Err(format!("categories[{i}]: id is empty"));
            }
            if ids.iter().any(|x| x == id) {
                return Err(format!("categories[{i}]: duplicate id {id:?}"));
            }
            ids.push(id.to_owned());
        }
        let index_of = |field: &str, id: &str| {
            ids.iter()
                .position(|x| x == id)
                .ok_or_else(|| format!("{field}: unknown category {id:?} (known: {ids:?})"))
        };
        let fallback = index_of("fallback", &self.fallback)?;
        let fallback_question = index_of("fallback_question", &self.fallback_question)?;
        let mut rank: Vec<usize> = vec![usize::MAX; ids.len()];
        for (pos, id) in self.tie_break.iter().enumerate() {
            let i = index_of(&format!("tie_break[{pos}]"), id)?;
            rank[i] = rank[i].min(pos);
        }
        for (i, r) in rank.iter_mut().enumerate() {
            if *r == usize::MAX {
                *r = self.tie_break.len() + i;
            }
        }
        finite_nonneg(self.min_score, "min_score")?;
        finite_nonneg(self.subject_weight, "subject_weight")?;
        finite_nonneg(self.confidence_smoothing, "confidence_smoothing")?;
        if !(0.0..=1.0).contains(&self.triage_threshold) {
            return Err(format!(
                "triage_threshold must be within 0..1 (got {})",
                self.triage_threshold
            ));
        }
        if !(0.0..=1.0).contains(&self.fallback_confidence) {
            return Err(format!(
                "fallback_confidence must be within 0..1 (got {})",
                self.fallback_confidence
            ));
        }
        let norm = Normalizer::new(&self.text).map_err(|e| format!("classification.{e}"))?;

        let mut groups = Vec::new();
        let mut specs = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let label = format!("rules[{i}] ({:?})", r.name);
            let category = index_of(&format!("{label}.category"), &r.category)?;
            finite_nonneg(r.weight, &format!("{label}.weight"))?;
            if r.terms.is_empty() && r.patterns.is_empty() {
                return Err(format!("{label}: needs at least one term or pattern"));
            }
            groups.push(GroupInfo {
                name: r.name.clone(),
                kind: GroupKind::Rule,
                category,
                weight: r.weight,
                negatable: r.negatable,
            });
            specs.push(GroupSpec {
                label,
                terms: &r.terms,
                patterns: &r.patterns,
                negatable: r.negatable,
            });
        }
        let q = &self.question;
        groups.push(GroupInfo {
            name: "question".into(),
            kind: GroupKind::Question,
            category: index_of("question.category", &q.category)?,
            weight: q.weight,
            negatable: false,
        });
        finite_nonneg(q.weight, "question.weight")?;
        specs.push(GroupSpec {
            label: "question".into(),
            terms: &q.terms,
            patterns: &q.patterns,
            negatable: false,
        });
        groups.push(GroupInfo {
            name: "neutral".into(),
            kind: GroupKind::Neutral,
            category: fallback,
            weight: 0.0,
            negatable: false,
        });
        specs.push(GroupSpec {
            label: "neutral".into(),
            terms: &self.neutral,
            patterns: &[],
            negatable: false,
        });
        let matcher = Matcher::new(&norm, &specs, &self.negation).map_err(|e| format!("classification.{e}"))?;
        Ok(Classifier {
            categories: ids,
            fallback,
            fallback_question,
            rank,
            groups,
            matcher,
            norm,
            min_score: self.min_score,
            subject_weight: self.subject_weight,
            smoothing: self.confidence_smoothing,
            fallback_confidence: self.fallback_confidence,
            triage_threshold: self.triage_threshold,
        })
    }

    /// The compiled form, built on first use and cached in this value.
    pub fn compiled(&self) -> Result<&Arc<Classifier>, &String> {
        self.compiled.get_or_compile(|| self.compile())
    }
}

/// Classify one request with a policy (compiled on first use, see the module docs).
///
/// An invalid policy does not panic: the request gets the fallback category with the policy
/// error as its reason (the policy loader should have called `validate` before).
pub fn classify(policy: &ClassificationPolicy, subject: Option<&str>, body: &str) -> Classification {
    match policy.compiled() {
        Ok(c) => c.classify(subject, body),
        Err(e) => Classification {
            category: policy.fallback.clone(),
            confidence: 0.0,
            language: detect_language(body).to_owned(),
            reasons: vec![format!("classification policy is invalid: {e}")],
            candidates: Vec::new(),
            needs_triage: true,
        },
    }
}

fn fmt_score(v: f64) -> String {
    format!("{v:.1}")
}

impl Classifier {
    /// Category identifiers in policy order.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// Classify one request. The subject (if any) counts `subject_weight` times.
    pub fn classify(&self, subject: Option<&str>, body: &str) -> Classification {
        self.classify_noting(subject, body, None)
    }

    /// Classify, and name the evidence as model features: `r:<rule>` for each rule group that
    /// matched, `rn:<rule>` for a negated one, `q` for a question cue, `rc:<category>` for the
    /// rules' decision.
    pub(crate) fn classify_noting(
        &self,
        subject: Option<&str>,
        body: &str,
        mut evidence: Option<&mut Evidence>,
    ) -> Classification {
        let language = match subject {
            Some(s) if !s.trim().is_empty() => detect_language(&format!("{s}\n{body}")),
            _ => detect_language(body),
        };
        let subject_norm = subject.map(|s| self.norm.normalize(s)).unwrap_or_default();
        let body_norm = self.norm.normalize(body);
        let subject_end = subject_norm.len();
        let text = format!("{subject_norm}\n{body_norm}");
        let hits = self.matcher.find(&self.norm, &text);
        if let Some(ev) = evidence.as_deref_mut() {
            ev.text.clone_from(&text);
        }

        let n = self.categories.len();
        let mut scores = vec![0.0f64; n];
        // Per category: the matched terms with their contribution, for reasons.
        let mut matched: Vec<Vec<String>> = vec![Vec::new(); n];
        let mut seen: Vec<(usize, String)> = Vec::new();
        let mut ignored: Vec<String> = Vec::new();
        let mut neutral: Vec<String> = Vec::new();
        let mut is_question = false;
        for hit in &hits {
            let g = &self.groups[hit.group];
            match g.kind {
                GroupKind::Neutral => {
                    if !neutral.contains(&hit.display) {
                        neutral.push(hit.display.clone());
                    }
                    continue;
                }
                GroupKind::Question => is_question = true,
                GroupKind::Rule => {}
            }
            if let Some(ev) = evidence.as_deref_mut() {
                let name = match (g.kind, g.negatable && hit.negated_by.is_some()) {
                    (GroupKind::Question, _) => "q".to_owned(),
                    (_, true) => format!("rn:{}", g.name),
                    (_, false) => format!("r:{}", g.name),
                };
                ev.names.push(name);
            }
            if g.negatable
                && let Some(cue) = &hit.negated_by
            {
                ignored.push(format!(
                    "ignored {:?} ({}, rule {:?}): negated by {cue:?}",
                    hit.display, self.categories[g.category], g.name
                ));
                continue;
            }
            // A term counts once per message: repeating a word is not more evidence.
            let key = (g.category, hit.display.clone());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let in_subject = hit.start < subject_end;
            let w = if in_subject {
                g.weight * self.subject_weight
            } else {
                g.weight
            };
            scores[g.category] += w;
            let label = if g.kind == GroupKind::Question {
                "question cue".to_owned()
            } else {
                format!("rule {:?}", g.name)
            };
            let where_ = if in_subject { ", in subject" } else { "" };
            matched[g.category].push(format!("{:?}(+{}, {label}{where_})", hit.display, fmt_score(w)));
        }

        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(self.rank[a].cmp(&self.rank[b])));
        let top = order[0];
        let top_score = scores[top];
        let runner_up = order.get(1).map_or(0.0, |&i| scores[i]);

        let mut reasons = Vec::new();
        let (category, confidence) = if top_score >= self.min_score && top_score > 0.0 {
            let conf = top_score / (top_score + runner_up + self.smoothing);
            reasons.push(format!(
                "{} wins with {} (runner-up {}, threshold {})",
                self.categories[top],
                fmt_score(top_score),
                fmt_score(runner_up),
                fmt_score(self.min_score)
            ));
            (top, conf)
        } else {
            let (fb, why) = if is_question {
                (self.fallback_question, "reads as a question")
            } else {
                (self.fallback, "does not read as a question")
            };
            reasons.push(format!(
                "no category reached {} (best {} {}); the text {why}: fallback {}",
                fmt_score(self.min_score),
                self.categories[top],
                fmt_score(top_score),
                self.categories[fb]
            ));
            (fb, self.fallback_confidence)
        };
        for &i in &order {
            if matched[i].is_empty() {
                continue;
            }
            reasons.push(format!(
                "{} {}: matched {}",
                self.categories[i],
                fmt_score(scores[i]),
                matched[i].join(", ")
            ));
        }
        reasons.extend(ignored);
        if !neutral.is_empty() {
            let list: Vec<String> = neutral.iter().map(|t| format!("{t:?}")).collect();
            reasons.push(format!("neutral phrases (no score): {}", list.join(", ")));
        }
        let confidence = confidence.clamp(0.0, 1.0);
        if let Some(ev) = evidence {
            ev.names.push(format!("rc:{}", self.categories[category]));
        }
        // The rules' runner-up, with the probability mass the confidence leaves.
        let mut candidates = vec![Candidate {
            category: self.categories[category].clone(),
            probability: confidence,
        }];
        if let Some(&second) = order.iter().find(|&&i| i != category) {
            candidates.push(Candidate {
                category: self.categories[second].clone(),
                probability: 1.0 - confidence,
            });
        }
        Classification {
            category: self.categories[category].clone(),
            confidence,
            language: language.to_owned(),
            reasons,
            candidates,
            needs_triage: confidence < self.triage_threshold,
        }
    }
}

//! Priority (优先级) as urgency × impact (SPEC §3).
//!
//! Urgency (how soon harm happens) and impact (how much is affected) each take a level from the
//! policy. Both start at the category's defaults (a suggestion has no time pressure), then
//! lexicon signals in the text lower or raise them ("不急" lowers, "付不了款" raises) in the
//! policy's order (raising to the top level comes last, so an urgent phrase always wins), then the
//! channel and the
//! customer's tier may bump them, and the policy's matrix turns the pair into a priority level.
//! The levels themselves are policy settings: three by default, four with `critical` when the
//! policy says so.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::CompiledCache;
use super::lexicon::{GroupSpec, Hit, Matcher, NegationRules};
use super::normalize::{Normalizer, TextRules};
use super::triage::ModelEstimate;
use crate::core::customer::Tier;

/// Default application order of lowering and raising signals.
const LOWER_ORDER: i32 = 10;
const RAISE_ORDER: i32 = 40;

/// Which axis a signal moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    Urgency,
    Impact,
}

impl Dimension {
    fn as_str(self) -> &'static str {
        match self {
            Dimension::Urgency => "urgency",
            Dimension::Impact => "impact",
        }
    }
}

/// Whether a signal moves its axis up to its level or down to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    #[default]
    Raise,
    Lower,
}

/// A lexicon signal: when one of its terms occurs, urgency or impact moves to `level`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrioritySignal {
    pub name: String,
    pub dimension: Dimension,
    pub level: String,
    #[serde(default)]
    pub effect: Effect,
    /// Signals apply in ascending order (default: lowering 10, raising 40); each lowering sets
    /// its axis to at most its level, each raising to at least its level. Keep every raising to
    /// the top level last, so that an urgent phrase can never be undone.
    #[serde(default)]
    pub order: Option<i32>,
    /// Only for these categories (empty: all).
    #[serde(default)]
    pub categories: Vec<String>,
    /// When true, a negation cue just before a hit ("not urgent", "不急") cancels it.
    #[serde(default)]
    pub negatable: bool,
    /// A negated hit lowers the axis to this level instead of being ignored.
    #[serde(default)]
    pub negated_level: Option<String>,
    /// A hard signal is exact: when it fires, the learned model cannot make the request less
    /// pressing than the rules say (a hard urgent signal always wins).
    #[serde(default)]
    pub hard: bool,
    #[serde(default)]
    pub terms: Vec<String>,
    #[serde(default)]
    pub patterns: Vec<String>,
}

/// Starting urgency and impact of a category.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelDefaults {
    pub urgency: String,
    pub impact: String,
}

/// How a customer tier or a channel moves the axes: a bump of n raises by n levels (negative
/// lowers), a floor raises to at least that level. Bumps apply before floors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BumpRule {
    #[serde(default)]
    pub urgency_bump: i32,
    #[serde(default)]
    pub impact_bump: i32,
    #[serde(default)]
    pub urgency_floor: Option<String>,
    #[serde(default)]
    pub impact_floor: Option<String>,
    /// Only for these categories (empty: all).
    #[serde(default)]
    pub categories: Vec<String>,
}

#[derive(Debug, Clone)]
struct CompiledBump {
    urgency_bump: i32,
    impact_bump: i32,
    urgency_floor: Option<usize>,
    impact_floor: Option<usize>,
    categories: Vec<String>,
}

/// The priority half of the policy file (`[priority]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityPolicy {
    /// Priority levels, most pressing first (default `urgent`, `normal`, `low`).
    pub levels: Vec<String>,
    /// Urgency levels, highest first.
    pub urgency_levels: Vec<String>,
    /// Impact levels, highest first.
    pub impact_levels: Vec<String>,
    /// For each urgency level, the priority for each impact level (in `impact_levels` order).
    pub matrix: BTreeMap<String, Vec<String>>,
    /// Starting levels for a category without its own entry in `categories`.
    pub default_urgency: String,
    pub default_impact: String,
    #[serde(default)]
    pub categories: BTreeMap<String, LevelDefaults>,
    #[serde(default)]
    pub tiers: BTreeMap<Tier, BumpRule>,
    #[serde(default)]
    pub channels: BTreeMap<String, BumpRule>,
    #[serde(default)]
    pub text: TextRules,
    #[serde(default)]
    pub negation: NegationRules,
    pub signals: Vec<PrioritySignal>,
    /// Phrases that count for nothing but keep the words inside them from counting
    /// ("effective immediately" is no emergency).
    #[serde(default)]
    pub neutral: Vec<String>,
    #[serde(skip)]
    compiled: CompiledCache<Prioritizer>,
}

/// What the priority stage looks at.
#[derive(Debug, Clone, Copy)]
pub struct PriorityInput<'a> {
    pub subject: Option<&'a str>,
    pub body: &'a str,
    pub category: &'a str,
    pub tier: Tier,
    pub channel: &'a str,
}

/// The priority of one request and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityDecision {
    pub priority: String,
    pub urgency: String,
    pub impact: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone)]
struct SignalInfo {
    name: String,
    dimension: Dimension,
    level: usize,
    effect: Effect,
    order: i32,
    categories: Vec<String>,
    negatable: bool,
    negated_level: Option<usize>,
    hard: bool,
}

/// A compiled [`PriorityPolicy`]: build once with [`PriorityPolicy::compile`], then call
/// [`Prioritizer::prioritize`] per request.
#[derive(Debug, Clone)]
pub struct Prioritizer {
    levels: Vec<String>,
    urgency_levels: Vec<String>,
    impact_levels: Vec<String>,
    /// matrix[urgency][impact] → index into `levels`.
    matrix: Vec<Vec<usize>>,
    default_levels: (usize, usize),
    categories: BTreeMap<String, (usize, usize)>,
    tiers: BTreeMap<Tier, CompiledBump>,
    channels: BTreeMap<String, CompiledBump>,
    signals: Vec<SignalInfo>,
    matcher: Matcher,
    norm: Normalizer,
}

fn unique_levels(field: &str, levels: &[String]) -> Result<(), String> {
    if levels.is_empty() {
        return Err(format!("{field}: at least one level is required"));
    }
    for (i, l) in levels.iter().enumerate() {
        if l.trim().is_empty() {
            return Err(format!("{field}[{i}] is empty"));
        }
        if levels[..i].contains(l) {
            return Err(format!("{field}: duplicate level {l:?}"));
        }
    }
    Ok(())
}

fn level_index(field: &str, levels: &[String], name: &str) -> Result<usize, String> {
    levels
        .iter()
        .position(|l| l == name)
        .ok_or_else(|| format!("{field}: unknown level {name:?} (known: {levels:?})"))
}

/// Move a level index by `bump` steps towards the top (index 0), staying in range.
fn bumped(index: usize, bump: i32, len: usize) -> usize {
    let moved = index as i64 - i64::from(bump);
    moved.clamp(0, len.saturating_sub(1) as i64) as usize
}

impl PriorityPolicy {
    /// Check the policy; the error names the signal or field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(|_| ())
    }

    /// Validate and compile the policy into a [`Prioritizer`].
    pub fn compile(&self) -> Result<Prioritizer, String> {
        unique_levels("levels", &self.levels)?;
        unique_levels("urgency_levels", &self.urgency_levels)?;
        unique_levels("impact_levels", &self.impact_levels)?;
        let mut matrix = Vec::with_capacity(self.urgency_levels.len());
        for u in &self.urgency_levels {
            let row = self
                .matrix
                .get(u)
                .ok_or_else(|| format!("matrix: no row for urgency level {u:?}"))?;
            if row.len() != self.impact_levels.len() {
                return Err(format!(
                    "matrix.{u}: has {} entries, needs one per impact level {:?}",
                    row.len(),
                    self.impact_levels
                ));
            }
            let row = row
                .iter()
                .map(|p| level_index(&format!("matrix.{u}"), &self.levels, p))
                .collect::<Result<Vec<_>, _>>()?;
            matrix.push(row);
        }
        for key in self.matrix.keys() {
            if !self.urgency_levels.contains(key) {
                return Err(format!("matrix.{key}: not an urgency level"));
            }
        }
        // Higher urgency or impact must never give a lower priority, or an urgent phrase could
        // make a request wait longer.
        for (u, row) in matrix.iter().enumerate() {
            for (i, &p) in row.iter().enumerate() {
                if i + 1 < row.len() && p > row[i + 1] {
                    return Err(format!(
                        "matrix.{}: impact {:?} gives a lower priority than impact {:?}",
                        self.urgency_levels[u],
                        self.impact_levels[i],
                        self.impact_levels[i + 1]
                    ));
                }
                if u + 1 < matrix.len() && p > matrix[u + 1][i] {
                    return Err(format!(
                        "matrix: urgency {:?} gives a lower priority than urgency {:?} at impact {:?}",
                        self.urgency_levels[u],
                        self.urgency_levels[u + 1],
                        self.impact_levels[i]
                    ));
                }
            }
        }
        let default_levels = (
            level_index("default_urgency", &self.urgency_levels, &self.default_urgency)?,
            level_index("default_impact", &self.impact_levels, &self.default_impact)?,
        );
        let mut categories = BTreeMap::new();
        for (cat, d) in &self.categories {
            let u = level_index(&format!("categories.{cat}.urgency"), &self.urgency_levels, &d.urgency)?;
            let i = level_index(&format!("categories.{cat}.impact"), &self.impact_levels, &d.impact)?;
            categories.insert(cat.clone(), (u, i));
        }
        let compile_bump = |label: String, r: &BumpRule| -> Result<CompiledBump, String> {
            let floor = |field: &str, levels: &[String], v: &Option<String>| match v {
                Some(l) => level_index(&format!("{label}.{field}"), levels, l).map(Some),
                None => Ok(None),
            };
            Ok(CompiledBump {
                urgency_bump: r.urgency_bump,
                impact_bump: r.impact_bump,
                urgency_floor: floor("urgency_floor", &self.urgency_levels, &r.urgency_floor)?,
                impact_floor: floor("impact_floor", &self.impact_levels, &r.impact_floor)?,
                categories: r.categories.clone(),
            })
        };
        let mut tiers = BTreeMap::new();
        for (tier, r) in &self.tiers {
            tiers.insert(*tier, compile_bump(format!("tiers.{}", tier.as_str()), r)?);
        }
        let mut channels = BTreeMap::new();
        for (channel, r) in &self.channels {
            channels.insert(channel.clone(), compile_bump(format!("channels.{channel}"), r)?);
        }
        let norm = Normalizer::new(&self.text).map_err(|e| format!("priority.{e}"))?;
        let mut signals = Vec::with_capacity(self.signals.len());
        let mut specs = Vec::with_capacity(self.signals.len());
        for (i, s) in self.signals.iter().enumerate() {
            let label = format!("signals[{i}] ({:?})", s.name);
            let levels = match s.dimension {
                Dimension::Urgency => &self.urgency_levels,
                Dimension::Impact => &self.impact_levels,
            };
            let level = level_index(&format!("{label}.level"), levels, &s.level)?;
            let negated_level = match &s.negated_level {
                Some(l) => Some(level_index(&format!("{label}.negated_level"), levels, l)?),
                None => None,
            };
            if negated_level.is_some() && !s.negatable {
                return Err(format!("{label}: negated_level needs negatable = true"));
            }
            if s.terms.is_empty() && s.patterns.is_empty() {
                return Err(format!("{label}: needs at least one term or pattern"));
            }
            signals.push(SignalInfo {
                name: s.name.clone(),
                dimension: s.dimension,
                level,
                effect: s.effect,
                order: s.order.unwrap_or(match s.effect {
                    Effect::Lower => LOWER_ORDER,
                    Effect::Raise => RAISE_ORDER,
                }),
                categories: s.categories.clone(),
                negatable: s.negatable,
                negated_level,
                hard: s.hard,
            });
            specs.push(GroupSpec {
                label,
                terms: &s.terms,
                patterns: &s.patterns,
                negatable: s.negatable,
            });
        }
        // The neutral phrases form the last group; hits in it are skipped.
        specs.push(GroupSpec {
            label: "neutral".into(),
            terms: &self.neutral,
            patterns: &[],
            negatable: false,
        });
        let matcher = Matcher::new(&norm, &specs, &self.negation).map_err(|e| format!("priority.{e}"))?;
        Ok(Prioritizer {
            levels: self.levels.clone(),
            urgency_levels: self.urgency_levels.clone(),
            impact_levels: self.impact_levels.clone(),
            matrix,
            default_levels,
            categories,
            tiers,
            channels,
            signals,
            matcher,
            norm,
        })
    }

    /// The compiled form, built on first use and cached in this value.
    pub fn compiled(&self) -> Result<&Arc<Prioritizer>, &String> {
        self.compiled.get_or_compile(|| self.compile())
    }
}

/// Prioritise one request with a policy (compiled on first use, see the module docs).
///
/// An invalid policy does not panic: the request gets the middle level with the policy error as
/// its reason (the policy loader should have called `validate` before).
pub fn prioritize(policy: &PriorityPolicy, input: &PriorityInput) -> PriorityDecision {
    match policy.compiled() {
        Ok(p) => p.prioritize(input),
        Err(e) => {
            let pick = |v: &[String]| v.get(v.len() / 2).cloned().unwrap_or_default();
            PriorityDecision {
                priority: pick(&policy.levels),
                urgency: pick(&policy.urgency_levels),
                impact: pick(&policy.impact_levels),
                reasons: vec![format!("priority policy is invalid: {e}")],
            }
        }
    }
}

impl Prioritizer {
    /// Priority levels, most pressing first.
    pub fn levels(&self) -> &[String] {
        &self.levels
    }

    pub fn prioritize(&self, input: &PriorityInput) -> PriorityDecision {
        self.prioritize_with(input, None)
    }

    /// The signals' hits in normalised text (subject, newline, body; normalised as
    /// `[priority.text]` says, which a test keeps equal to `[classification.text]`).
    pub(crate) fn hits_in(&self, normalised: &str) -> Vec<Hit> {
        self.matcher.find(&self.norm, normalised)
    }

    /// Name the signals that hit as model features: `p:<signal>`, or `pn:<signal>` when
    /// negated. Categories are not consulted: the model learns where a signal matters.
    pub(crate) fn note_signals(&self, hits: &[Hit], out: &mut Vec<String>) {
        for hit in hits {
            if let Some(s) = self.signals.get(hit.group) {
                let prefix = if s.negatable && hit.negated_by.is_some() {
                    "pn"
                } else {
                    "p"
                };
                out.push(format!("{prefix}:{}", s.name));
            }
        }
    }

    /// The cell of the matrix closest to (`urgency`, `impact`) that gives priority `level`:
    /// the fewest steps, moving urgency before impact (impact is what tiers adjust).
    fn nearest_cell(&self, level: usize, urgency: usize, impact: usize) -> Option<(usize, usize)> {
        let mut best: Option<((usize, usize), (usize, usize))> = None;
        for (u, row) in self.matrix.iter().enumerate() {
            for (i, &p) in row.iter().enumerate() {
                if p != level {
                    continue;
                }
                let key = (u.abs_diff(urgency) + i.abs_diff(impact), i.abs_diff(impact));
                if best.is_none_or(|(k, _)| key < k) {
                    best = Some((key, (u, i)));
                }
            }
        }
        best.map(|(_, cell)| cell)
    }

    /// Prioritise, with the learned model's estimate of the level the words imply when there is
    /// one: it replaces the lexicon's urgency × impact unless a hard signal fired and says more
    /// pressing. Tier and channel adjust the result afterwards, as the policy says.
    pub fn prioritize_with(&self, input: &PriorityInput, estimate: Option<&ModelEstimate>) -> PriorityDecision {
        let subject = input.subject.map(|s| self.norm.normalize(s)).unwrap_or_default();
        let text = format!("{subject}\n{}", self.norm.normalize(input.body));
        self.decide(input, &self.hits_in(&text), estimate)
    }

    /// [`Prioritizer::prioritize_with`] on hits already found.
    pub(crate) fn decide(
        &self,
        input: &PriorityInput,
        hits: &[Hit],
        estimate: Option<&ModelEstimate>,
    ) -> PriorityDecision {
        let mut reasons = Vec::new();
        let (mut urgency, mut impact) = match self.categories.get(input.category) {
            Some(&d) => {
                reasons.push(format!(
                    "category {} starts at urgency {}, impact {}",
                    input.category, self.urgency_levels[d.0], self.impact_levels[d.1]
                ));
                d
            }
            None => {
                reasons.push(format!(
                    "category {} has no defaults: urgency {}, impact {}",
                    input.category,
                    self.urgency_levels[self.default_levels.0],
                    self.impact_levels[self.default_levels.1]
                ));
                self.default_levels
            }
        };

        // (order, effect, dimension, level, explanation, hard)
        let mut moves: Vec<(i32, Effect, Dimension, usize, String, bool)> = Vec::new();
        for hit in hits {
            let Some(s) = self.signals.get(hit.group) else {
                continue; // a neutral phrase
            };
            if !s.categories.is_empty() && !s.categories.iter().any(|c| c == input.category) {
                continue;
            }
            match (&hit.negated_by, s.negatable) {
                (Some(cue), true) => {
                    if let Some(level) = s.negated_level {
                        // A negated raise lowers early, like any lowering without an order: the
                        // calm phrases the policy lists explicitly ("不急") carry their own order.
                        let why = format!("{:?} negated by {cue:?} (signal {:?})", hit.display, s.name);
                        moves.push((LOWER_ORDER, Effect::Lower, s.dimension, level, why, false));
                    }
                }
                _ => {
                    let why = format!("{:?} (signal {:?})", hit.display, s.name);
                    moves.push((s.order, s.effect, s.dimension, s.level, why, s.hard));
                }
            }
        }
        // Stable: equal orders keep text order.
        moves.sort_by_key(|m| m.0);
        let mut hard: Option<String> = None;
        for (_, effect, dim, level, why, is_hard) in moves {
            if is_hard && effect == Effect::Raise && hard.is_none() {
                hard = Some(why.clone());
            }
            let (slot, names) = self.axis(dim, &mut urgency, &mut impact);
            match effect {
                Effect::Lower if level > *slot => {
                    *slot = level;
                    reasons.push(format!("{} lowered to {} by {why}", dim.as_str(), names[level]));
                }
                Effect::Raise if level < *slot => {
                    *slot = level;
                    reasons.push(format!("{} raised to {} by {why}", dim.as_str(), names[level]));
                }
                _ => {}
            }
        }

        if let Some(est) = estimate {
            let rules_level = self.matrix[urgency][impact];
            let said = format!(
                "model {} estimates {} ({:.0}%)",
                est.model,
                self.levels.get(est.level).map_or("?", String::as_str),
                est.probability * 100.0
            );
            match &hard {
                Some(why) if est.level > rules_level => {
                    reasons.push(format!(
                        "{said}; the hard signal {why} keeps {}",
                        self.levels[rules_level]
                    ));
                }
                _ if est.level == rules_level => reasons.push(format!("{said}, as the rules do")),
                _ => match self.nearest_cell(est.level, urgency, impact) {
                    Some((u, i)) => {
                        reasons.push(format!(
                            "{said} over the rules' {}: urgency {} → {}, impact {} → {}",
                            self.levels[rules_level],
                            self.urgency_levels[urgency],
                            self.urgency_levels[u],
                            self.impact_levels[impact],
                            self.impact_levels[i]
                        ));
                        urgency = u;
                        impact = i;
                    }
                    None => reasons.push(format!("{said}, which no cell of the matrix gives; the rules stand")),
                },
            }
        }

        let bumps = [
            (format!("channel {}", input.channel), self.channels.get(input.channel)),
            (format!("tier {}", input.tier.as_str()), self.tiers.get(&input.tier)),
        ];
        for (source, rule) in bumps {
            let Some(rule) = rule else { continue };
            if rule.categories.is_empty() || rule.categories.iter().any(|c| c == input.category) {
                self.apply_bumps(&source, rule, &mut urgency, &mut impact, &mut reasons);
            }
        }

        let priority = self.matrix[urgency][impact];
        reasons.insert(
            0,
            format!(
                "{}: urgency {} × impact {}",
                self.levels[priority], self.urgency_levels[urgency], self.impact_levels[impact]
            ),
        );
        PriorityDecision {
            priority: self.levels[priority].clone(),
            urgency: self.urgency_levels[urgency].clone(),
            impact: self.impact_levels[impact].clone(),
            reasons,
        }
    }

    fn axis<'s>(
        &'s self,
        dim: Dimension,
        urgency: &'s mut usize,
        impact: &'s mut usize,
    ) -> (&'s mut usize, &'s [String]) {
        match dim {
            Dimension::Urgency => (urgency, &self.urgency_levels),
            Dimension::Impact => (impact, &self.impact_levels),
        }
    }

    fn apply_bumps(
        &self,
        source: &str,
        rule: &CompiledBump,
        urgency: &mut usize,
        impact: &mut usize,
        reasons: &mut Vec<String>,
    ) {
        let axes = [
            (
                "urgency",
                urgency,
                &self.urgency_levels,
                rule.urgency_bump,
                rule.urgency_floor,
            ),
            (
                "impact",
                impact,
                &self.impact_levels,
                rule.impact_bump,
                rule.impact_floor,
            ),
        ];
        for (name, slot, levels, bump, floor) in axes {
            let moved = bumped(*slot, bump, levels.len());
            if moved != *slot {
                *slot = moved;
                reasons.push(format!("{source}: {name} {bump:+} → {}", levels[moved]));
            }
            if let Some(f) = floor
                && f < *slot
            {
                *slot = f;
                reasons.push(format!("{source}: {name} at least {}", levels[f]));
            }
        }
    }
}

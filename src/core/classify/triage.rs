//! Triage: the rules and the learned model together, the way the classify and prioritize stages
//! use them.
//!
//! The rules run first: their matches are features of the model, and their reasons are shown to
//! people. The model decides the category (its probability is the confidence; below the policy's
//! `triage_threshold` the ticket is flagged for a person, with the two likeliest categories) and
//! estimates the priority the words imply; a hard priority signal of the rules still wins over
//! it. Without a model, the rules alone decide, as before.

use std::sync::Arc;

use super::features::{Collector, FeatureVec, length_bucket};
use super::lexicon::Hit;
use super::model::{Model, Prediction, display_feature};
use super::{Candidate, Classification, Classifier, Evidence, Prioritizer, PriorityDecision, PriorityInput};

/// What the model says about the priority, in the policy's levels.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEstimate {
    /// The model's version, for the reasons.
    pub model: String,
    /// Index into the policy's priority levels.
    pub level: usize,
    pub probability: f64,
}

/// What prioritising reads from a request's text, worked out while classifying it: the priority
/// signals' hits and the model's estimate. A chain of stages hands it from classify to
/// prioritize, so the text is not searched and scored a second time.
#[derive(Debug, Clone)]
pub struct PriorityEvidence {
    hits: Vec<Hit>,
    estimate: ModelEstimate,
}

/// The rules and the model, compiled together.
#[derive(Debug, Clone)]
pub struct Triage {
    classifier: Arc<Classifier>,
    prioritizer: Arc<Prioritizer>,
    model: Option<Arc<Model>>,
    /// model category index → policy category index.
    category_map: Vec<usize>,
    /// model priority index → policy level index.
    level_map: Vec<usize>,
    triage_threshold: f64,
}

/// A request's model input and what the rules said about it.
pub struct Extracted {
    pub features: FeatureVec,
    /// Feature names (only when asked for).
    pub names: Vec<(u64, String)>,
    pub rules: Classification,
    /// The priority signals' hits, so prioritising does not look for them again.
    priority_hits: Vec<Hit>,
}

/// How many features a reason names.
const REASON_FEATURES: usize = 5;

impl Triage {
    /// Check that the model speaks the policy's labels: the same categories and priority levels
    /// (in any order).
    pub fn new(
        classifier: Arc<Classifier>,
        prioritizer: Arc<Prioritizer>,
        model: Option<Arc<Model>>,
        triage_threshold: f64,
    ) -> Result<Triage, String> {
        let mut category_map = Vec::new();
        let mut level_map = Vec::new();
        if let Some(m) = &model {
            let cats = classifier.categories();
            for c in &m.header.categories {
                let i = cats.iter().position(|x| x == c).ok_or_else(|| {
                    format!(
                        "model {} knows category {c:?}, the policy does not ({cats:?}): train the model again",
                        m.version()
                    )
                })?;
                category_map.push(i);
            }
            if m.header.categories.len() != cats.len() {
                return Err(format!(
                    "model {} knows categories {:?}, the policy has {cats:?}: train the model again",
                    m.version(),
                    m.header.categories
                ));
            }
            let levels = prioritizer.levels();
            if m.header.priorities.len() != levels.len() || m.header.priorities.first() != levels.first() {
                return Err(format!(
                    "model {} knows priorities {:?}, the policy has {levels:?}: train the model again",
                    m.version(),
                    m.header.priorities
                ));
            }
            for p in &m.header.priorities {
                let i = levels.iter().position(|x| x == p).ok_or_else(|| {
                    format!(
                        "model {} knows priority {p:?}, the policy does not ({levels:?})",
                        m.version()
                    )
                })?;
                level_map.push(i);
            }
        }
        Ok(Triage {
            classifier,
            prioritizer,
            model,
            category_map,
            level_map,
            triage_threshold,
        })
    }

    pub fn model(&self) -> Option<&Model> {
        self.model.as_deref()
    }

    /// The model, shared (to build another `Triage` with it).
    pub fn shared_model(&self) -> Option<Arc<Model>> {
        self.model.clone()
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    pub fn prioritizer(&self) -> &Prioritizer {
        &self.prioritizer
    }

    /// The same rules and priority levels with another model (or none): how `switchboard eval`
    /// compares.
    pub fn with_model(&self, model: Option<Arc<Model>>) -> Result<Triage, String> {
        Triage::new(
            self.classifier.clone(),
            self.prioritizer.clone(),
            model,
            self.triage_threshold,
        )
    }

    /// The model's input for one request, and the rules' classification of it.
    pub fn extract(&self, subject: Option<&str>, body: &str, channel: &str, keep_names: bool) -> Extracted {
        let mut evidence = Evidence::default();
        let rules = self.classifier.classify_noting(subject, body, Some(&mut evidence));
        let priority_hits = self.prioritizer.hits_in(&evidence.text);
        self.prioritizer.note_signals(&priority_hits, &mut evidence.names);
        // A rule or signal is evidence once, however often its words repeat: repetition must
        // not let a sender steer the model.
        evidence.names.sort_unstable();
        evidence.names.dedup();
        let mut c = Collector::new(keep_names);
        c.text(&evidence.text);
        for e in &evidence.names {
            c.signal(e);
        }
        c.signal(&format!("ch:{channel}"));
        c.signal(length_bucket(evidence.text.chars().count()));
        let (features, names) = c.finish();
        Extracted {
            features,
            names,
            rules,
            priority_hits,
        }
    }

    /// The category of one request (see the module docs).
    pub fn classify(&self, subject: Option<&str>, body: &str, channel: &str) -> Classification {
        self.classify_keeping_evidence(subject, body, channel).0
    }

    /// [`Triage::classify`], and what [`Triage::prioritize_with`] needs of the same text (`None`
    /// without a model: the rules alone prioritise, and find their own hits).
    pub fn classify_keeping_evidence(
        &self,
        subject: Option<&str>,
        body: &str,
        channel: &str,
    ) -> (Classification, Option<PriorityEvidence>) {
        let Some(model) = &self.model else {
            return (self.classifier.classify(subject, body), None);
        };
        let x = self.extract(subject, body, channel, false);
        let p = model.predict(&x.features);
        let classification = self.decide_category(model, &x, &p);
        let evidence = PriorityEvidence {
            estimate: self.estimate(model, &p),
            hits: x.priority_hits,
        };
        (classification, Some(evidence))
    }

    /// The category decision from a prediction already made (eval and cross-validation reuse it).
    pub fn decide_category(&self, model: &Model, x: &Extracted, p: &Prediction) -> Classification {
        let cats = self.classifier.categories();
        let order = p.category_order();
        let name = |j: usize| cats[self.category_map[j]].clone();
        let top = order[0];
        let confidence = p.category[top].clamp(0.0, 1.0);
        let candidates: Vec<Candidate> = order
            .iter()
            .take(2)
            .map(|&j| Candidate {
                category: name(j),
                probability: p.category[j],
            })
            .collect();
        let needs_triage = confidence < self.triage_threshold;
        let mut reasons = Vec::with_capacity(x.rules.reasons.len() + 3);
        let second = candidates
            .get(1)
            .map(|c| format!(", then {} {:.0}%", c.category, c.probability * 100.0))
            .unwrap_or_default();
        reasons.push(format!(
            "model {}: {} {:.0}%{second}",
            model.version(),
            name(top),
            confidence * 100.0
        ));
        let strongest: Vec<String> = model
            .strongest(&x.features, top, REASON_FEATURES)
            .iter()
            .map(|(f, w)| format!("{} +{w:.2}", display_feature(f)))
            .collect();
        if !strongest.is_empty() {
            reasons.push(format!("{} because of {}", name(top), strongest.join(", ")));
        }
        if needs_triage {
            reasons.push(format!(
                "below the triage threshold {:.0}%: a person chooses between {}",
                self.triage_threshold * 100.0,
                candidates
                    .iter()
                    .map(|c| c.category.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
        // The rules' own lines follow unchanged: reports read the matched lexicon groups from them.
        reasons.push(format!("the rules said {}:", x.rules.category));
        reasons.extend(x.rules.reasons.iter().cloned());
        Classification {
            category: name(top),
            confidence,
            language: x.rules.language.clone(),
            reasons,
            candidates,
            needs_triage,
        }
    }

    /// The model's priority estimate for a prediction.
    pub fn estimate(&self, model: &Model, p: &Prediction) -> ModelEstimate {
        let j = model.priority_choice(p);
        ModelEstimate {
            model: model.version().to_owned(),
            level: self.level_map[j],
            probability: p.priority[j],
        }
    }

    /// [`Triage::prioritize`], from the evidence classifying the same subject, body and channel
    /// kept; without it (or without a model), as `prioritize` does.
    pub fn prioritize_with(&self, input: &PriorityInput, evidence: Option<&PriorityEvidence>) -> PriorityDecision {
        let Some(model) = &self.model else {
            return self.prioritizer.prioritize(input);
        };
        match evidence {
            Some(e) => self.prioritizer.decide(input, &e.hits, Some(&e.estimate)),
            None => {
                let x = self.extract(input.subject, input.body, input.channel, false);
                let p = model.predict(&x.features);
                self.prioritizer
                    .decide(input, &x.priority_hits, Some(&self.estimate(model, &p)))
            }
        }
    }

    /// The priority of one request (see the module docs).
    pub fn prioritize(&self, input: &PriorityInput) -> PriorityDecision {
        self.prioritize_with(input, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::classify::model::{ModelHeader, TrainingInfo};
    use crate::core::classify::test_support::shipped_triage;
    use crate::core::classify::train::TrainConfig;
    use crate::core::customer::Tier;

    /// A model that knows no features and is sure of `category` and of the level at `level`.
    fn sure_of(t: &Triage, category: usize, level: usize) -> Arc<Model> {
        let cats = t.classifier().categories().to_vec();
        let levels = t.prioritizer().levels().to_vec();
        let mut bias = vec![0.0f32; cats.len() + levels.len()];
        bias[category] = 8.0;
        bias[cats.len() + level] = 8.0;
        let header = ModelHeader {
            version: String::new(),
            categories: cats,
            priorities: levels,
            urgent_threshold: 0.5,
            bias,
            features: 0,
            training: TrainingInfo::new(&TrainConfig::default(), Vec::new(), 0),
        };
        Arc::new(Model::new(header, Vec::new(), Vec::new()).unwrap())
    }

    fn input<'a>(body: &'a str, category: &'a str) -> PriorityInput<'a> {
        PriorityInput {
            subject: None,
            body,
            category,
            tier: Tier::Standard,
            channel: "chat",
        }
    }

    #[test]
    fn the_model_decides_with_two_candidates_and_low_confidence_is_flagged() {
        let shipped = shipped_triage();
        let t = &shipped;
        assert!(t.model().is_some(), "the shipped policy names a model");
        let c = t.classify(
            None,
            "上周说好周一派师傅上门，到今天周四了还没人来，电话也没人接",
            "chat",
        );
        assert_eq!(c.candidates.len(), 2);
        assert_eq!(c.candidates[0].category, c.category);
        assert!((c.candidates[0].probability - c.confidence).abs() < 1e-12);
        assert!(c.candidates[0].probability >= c.candidates[1].probability);
        assert!(c.reasons[0].starts_with("model triage-"), "{:?}", c.reasons);
        assert!(
            c.reasons.iter().any(|r| r.starts_with("the rules said")),
            "{:?}",
            c.reasons
        );
        // The same decision under a stricter threshold goes to people.
        let strict = Triage::new(
            t.classifier.clone(),
            t.prioritizer.clone(),
            t.model.clone(),
            (c.confidence + 0.01).min(1.0),
        )
        .unwrap();
        let flagged = strict.classify(
            None,
            "上周说好周一派师傅上门，到今天周四了还没人来，电话也没人接",
            "chat",
        );
        assert!(flagged.needs_triage);
        assert!(
            flagged.reasons.iter().any(|r| r.contains("a person chooses")),
            "{:?}",
            flagged.reasons
        );
        assert!(!c.needs_triage || c.confidence < 0.5);
    }

    /// What a chain hands from classify to prioritize decides exactly as prioritising the text
    /// again does: every channel, tier and category, hard signals and plain requests.
    #[test]
    fn prioritizing_from_the_kept_evidence_decides_as_prioritizing_again() {
        let t = shipped_triage();
        let texts = [
            "上周说好周一派师傅上门，到今天周四了还没人来，电话也没人接",
            "厨房里有很浓的煤气味，我们已经开窗了，请马上派人来",
            "电梯困人了！有人被困在电梯里",
            "发票抬头开错了，麻烦重新开一张",
            "The app crashes every time I open the order page, please fix",
            "",
        ];
        let categories: Vec<String> = t.classifier().categories().to_vec();
        for body in texts {
            for subject in [None, Some("紧急 urgent")] {
                for channel in ["phone", "chat", "email", "app"] {
                    let (c, evidence) = t.classify_keeping_evidence(subject, body, channel);
                    assert_eq!(c, t.classify(subject, body, channel));
                    assert!(evidence.is_some(), "the shipped policy has a model");
                    for category in categories.iter().chain([&c.category]) {
                        for tier in [Tier::Standard, Tier::Vip] {
                            let input = PriorityInput {
                                subject,
                                body,
                                category,
                                tier,
                                channel,
                            };
                            assert_eq!(t.prioritize_with(&input, evidence.as_ref()), t.prioritize(&input));
                        }
                    }
                }
            }
        }
        // Without a model there is no evidence to keep, and the rules decide as before.
        let rules = t.with_model(None).unwrap();
        let (_, none) = rules.classify_keeping_evidence(None, texts[1], "phone");
        assert!(none.is_none());
        let input = input(texts[1], "repair");
        assert_eq!(rules.prioritize_with(&input, None), rules.prioritize(&input));
    }

    /// The shipped triage, read once for all the cases of a property.
    fn shipped_once() -> &'static Triage {
        static SHIPPED: std::sync::OnceLock<Triage> = std::sync::OnceLock::new();
        SHIPPED.get_or_init(shipped_triage)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn any_text_prioritizes_the_same_from_its_kept_evidence(body in "[a-z煤气味电梯困人紧急投诉 ]{0,60}") {
            let t = shipped_once();
            let (c, evidence) = t.classify_keeping_evidence(None, &body, "chat");
            let input = input(&body, &c.category);
            proptest::prop_assert_eq!(t.prioritize_with(&input, evidence.as_ref()), t.prioritize(&input));
        }
    }

    #[test]
    fn the_model_moves_the_priority_but_a_hard_signal_wins() {
        let p = shipped_triage();
        let levels = p.prioritizer().levels().to_vec();
        let low = levels.iter().position(|l| l == "low").unwrap();
        let urgent = 0;
        // A model sure that everything is low…
        let t = p.with_model(Some(sure_of(&p, 1, low))).unwrap();
        // …lowers an ordinary fault the rules call normal,
        let d = t.prioritize(&input("打印机卡纸了", "fault"));
        assert_eq!(d.priority, "low", "{:?}", d.reasons);
        assert!(
            d.reasons.iter().any(|r| r.contains("over the rules' normal")),
            "{:?}",
            d.reasons
        );
        // …but not a gas smell: `danger to people` is hard.
        let d = t.prioritize(&input("楼道里一股很浓的煤气味", "fault"));
        assert_eq!(d.priority, "urgent", "{:?}", d.reasons);
        assert!(d.reasons.iter().any(|r| r.contains("hard signal")), "{:?}", d.reasons);
        // A model sure that everything is urgent raises a calm request, moving urgency first.
        let t = p.with_model(Some(sure_of(&p, 0, urgent))).unwrap();
        let d = t.prioritize(&input("打印机卡纸了", "fault"));
        assert_eq!(
            (d.priority.as_str(), d.urgency.as_str(), d.impact.as_str()),
            ("urgent", "high", "medium")
        );
        // Tier adjustments still apply after the model: a VIP's low request keeps impact ≥ medium.
        let t = p.with_model(Some(sure_of(&p, 3, low))).unwrap();
        let mut vip = input("希望字体能大一点", "suggestion");
        vip.tier = Tier::Vip;
        let d = t.prioritize(&vip);
        assert_eq!(d.impact, "medium", "{:?}", d.reasons);
    }

    #[test]
    fn a_model_that_speaks_other_labels_is_refused() {
        let p = shipped_triage();
        let m = sure_of(&p, 0, 0);
        let mut header = m.header.clone();
        header.categories[0] = "praise".into();
        let other = Model::new(header, Vec::new(), Vec::new()).unwrap();
        let err = p.with_model(Some(Arc::new(other))).unwrap_err();
        assert!(err.contains("praise") && err.contains("train the model again"), "{err}");
    }

    #[test]
    fn without_a_model_the_rules_decide_as_before() {
        let p = shipped_triage();
        let rules = p.with_model(None).unwrap();
        let c = rules.classify(None, "app登录不了，一直提示密码错误", "app");
        assert_eq!(c, p.classifier().classify(None, "app登录不了，一直提示密码错误"));
    }
}

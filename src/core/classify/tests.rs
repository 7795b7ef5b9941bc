//! Tests of the classification and priority core against the shipped policy file.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde::Deserialize;

use super::eval::{EvalItem, evaluate};
use super::*;
use crate::core::customer::Tier;

const POLICY_TOML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/policy/classification.toml"
));
const DEV_SET: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/classify_dev.jsonl"
));

#[derive(Deserialize)]
struct PolicyFile {
    classification: ClassificationPolicy,
    priority: PriorityPolicy,
}

fn policies() -> &'static PolicyFile {
    static POLICIES: OnceLock<PolicyFile> = OnceLock::new();
    POLICIES.get_or_init(|| match toml::from_str::<PolicyFile>(POLICY_TOML) {
        Ok(p) => p,
        Err(e) => panic!("policy file does not parse: {e}"),
    })
}

fn cat(subject: Option<&str>, body: &str) -> Classification {
    classify(&policies().classification, subject, body)
}

fn prio(body: &str, category: &str, tier: Tier, channel: &str) -> PriorityDecision {
    prioritize(
        &policies().priority,
        &PriorityInput {
            subject: None,
            body,
            category,
            tier,
            channel,
        },
    )
}

fn assert_category(body: &str, expected: &str) {
    let c = cat(None, body);
    assert_eq!(c.category, expected, "{body:?} → {:#?}", c.reasons);
}

#[test]
fn shipped_policy_validates() {
    let p = policies();
    p.classification.validate().unwrap();
    p.priority.validate().unwrap();
    let ids = p.classification.category_ids();
    assert_eq!(ids, ["inquiry", "fault", "complaint", "suggestion", "other"]);
    // Both halves must normalise text the same way, or a priority signal written like a
    // classification term would silently never match.
    assert_eq!(p.classification.text.rewrites, p.priority.text.rewrites);
    assert_eq!(p.classification.text.english_suffixes, p.priority.text.english_suffixes);
}

#[test]
fn classifies_simplified_chinese() {
    assert_category("我的账号登不上了，一直提示密码错误", "fault");
    assert_category("APP一打开就闪退", "fault");
    assert_category("请问你们周末几点开门？", "inquiry");
    assert_category("客服态度太差了，直接挂我电话", "complaint");
    assert_category("希望能增加一个夜间模式", "suggestion");
    assert_category("您好，我们想和贵公司谈谈商务合作", "other");
}

#[test]
fn classifies_traditional_chinese() {
    assert_category("帳號登入不了，一直跳出錯誤訊息", "fault");
    assert_category("APP一直當機", "fault");
    assert_category("請問門市營業時間到幾點？", "inquiry");
    assert_category("客服態度有夠差，問三次都不回", "complaint");
    assert_category("希望可以增加深色模式", "suggestion");
    let c = cat(None, "帳號登入不了");
    assert_eq!(c.language, "zh-Hant");
}

#[test]
fn classifies_english() {
    assert_category("I can't log in, it keeps saying wrong password", "fault");
    assert_category("app keeps crashing when I open it", "fault");
    assert_category("How do I change the email on my account?", "inquiry");
    assert_category("This is ridiculous, I want my money back", "complaint");
    assert_category("Would be nice if I could export to CSV", "suggestion");
    assert_category("We'd love to explore a partnership with your team", "other");
    assert_eq!(cat(None, "hello").language, "en");
}

#[test]
fn full_width_and_transcript_spacing_are_normalised() {
    assert_category("ＡＰＰ　一直　閃退！！", "fault");
    assert_category("我 的 账 号 登 不 上", "fault");
    assert_category("CAN'T LOG IN", "fault");
}

#[test]
fn fallback_depends_on_question() {
    let c = cat(None, "hello");
    assert_eq!(c.category, "other");
    assert!(c.reasons[0].contains("fallback"), "{:?}", c.reasons);
    let q = cat(None, "这个是红色的吗？");
    assert_eq!(q.category, "inquiry", "{:?}", q.reasons);
}

#[test]
fn negated_problem_is_not_a_fault() {
    let c = cat(None, "没有问题了，谢谢");
    assert_ne!(c.category, "fault", "{:?}", c.reasons);
    let c = cat(None, "there is no error, I just want to know the price");
    assert_eq!(c.category, "inquiry", "{:?}", c.reasons);
}

#[test]
fn reasons_name_terms_and_scores() {
    let c = cat(Some("登不上"), "login error again");
    assert_eq!(c.category, "fault");
    let all = c.reasons.join(" | ");
    assert!(all.contains("\"登不上\"(+4.5"), "{all}");
    assert!(all.contains("fault"), "{all}");
    assert!(c.confidence > 0.5 && c.confidence <= 1.0, "{}", c.confidence);
}

#[test]
fn priority_follows_the_matrix() {
    let d = prio("付款一直失败，下不了单", "fault", Tier::Standard, "app");
    assert_eq!(d.priority, "urgent", "{:?}", d.reasons);
    assert_eq!(d.urgency, "high");
    let d = prio("APP偶尔闪退", "fault", Tier::Standard, "app");
    assert_eq!(d.priority, "normal", "{:?}", d.reasons);
    let d = prio("希望增加夜间模式", "suggestion", Tier::Standard, "app");
    assert_eq!(d.priority, "low", "{:?}", d.reasons);
    let d = prio("None of our 40 staff can log in", "fault", Tier::Enterprise, "email");
    assert_eq!(d.priority, "urgent", "{:?}", d.reasons);
    assert_eq!(d.impact, "high");
    let d = prio("my account was hacked!", "fault", Tier::Standard, "chat");
    assert_eq!(d.priority, "urgent", "{:?}", d.reasons);
}

#[test]
fn calm_words_lower_urgency() {
    for body in [
        "不急，想问下有没有满减活动",
        "不着急哈，想问下发票怎么开",
        "not urgent, but what are your hours?",
    ] {
        let d = prio(body, "inquiry", Tier::Standard, "chat");
        assert_eq!(d.priority, "low", "{body}: {:?}", d.reasons);
    }
    // "不是很急" is a negated urgency word, not an urgent one.
    let d = prio("不是很急", "inquiry", Tier::Standard, "chat");
    assert_eq!(d.urgency, "low", "{:?}", d.reasons);
    // An urgent phrase wins over "not urgent".
    let d = prio("not urgent. payment failed", "fault", Tier::Standard, "chat");
    assert_eq!(d.priority, "urgent", "{:?}", d.reasons);
}

#[test]
fn product_questions_are_low_own_matters_normal() {
    // Pre-sale questions have no time pressure; the customer's own order or account does.
    assert_eq!(
        prio("这款耳机支持降噪吗", "inquiry", Tier::Standard, "chat").priority,
        "low"
    );
    assert_eq!(
        prio("is there a student discount?", "inquiry", Tier::Standard, "chat").priority,
        "low"
    );
    assert_eq!(
        prio("我的點數餘額怎麼查", "inquiry", Tier::Standard, "chat").priority,
        "normal"
    );
    assert_eq!(
        prio(
            "where is my parcel? tracking shows nothing",
            "inquiry",
            Tier::Standard,
            "chat"
        )
        .priority,
        "normal"
    );
    // ... unless the customer says there is no hurry.
    assert_eq!(
        prio("不急，我的订单什么时候发货", "inquiry", Tier::Standard, "chat").priority,
        "low"
    );
}

#[test]
fn exclamations_are_not_negated() {
    let d = prio("充值了钱扣了余额没到账!!!", "fault", Tier::Standard, "app");
    assert_eq!(d.priority, "urgent", "{:?}", d.reasons);
    // An A-not-A question is no negation: "是不是服务器挂了" still reports an outage.
    let d = prio("网站打不开，是不是服务器挂了", "fault", Tier::Standard, "chat");
    assert_eq!(d.priority, "urgent", "{:?}", d.reasons);
}

#[test]
fn tier_raises_low_impact() {
    let body = "有个小bug，不影响使用";
    assert_eq!(prio(body, "fault", Tier::Standard, "app").priority, "low");
    let d = prio(body, "fault", Tier::Vip, "app");
    assert_eq!(d.priority, "normal", "{:?}", d.reasons);
    assert!(d.reasons.iter().any(|r| r.contains("tier vip")), "{:?}", d.reasons);
}

#[test]
fn channel_bumps_apply() {
    let mut p = policies().priority.clone();
    p.channels.insert(
        "hotline".into(),
        priority::BumpRule {
            urgency_bump: 1,
            ..Default::default()
        },
    );
    let d = prioritize(
        &p,
        &PriorityInput {
            subject: None,
            body: "APP闪退",
            category: "fault",
            tier: Tier::Standard,
            channel: "hotline",
        },
    );
    assert_eq!(d.priority, "urgent", "{:?}", d.reasons);
    assert!(d.reasons.iter().any(|r| r.contains("channel hotline")));
}

#[test]
fn four_level_policy_is_expressible() {
    let four = POLICY_TOML
        .replace(
            r#"levels = ["urgent", "normal", "low"]"#,
            r#"levels = ["critical", "urgent", "normal", "low"]"#,
        )
        .replace(
            r#"high   = ["urgent", "urgent", "normal"]"#,
            r#"high   = ["critical", "urgent", "normal"]"#,
        );
    let p: PolicyFile = toml::from_str(&four).unwrap();
    p.priority.validate().unwrap();
    let d = prioritize(
        &p.priority,
        &PriorityInput {
            subject: None,
            body: "所有用户都付不了款，系统瘫痪",
            category: "fault",
            tier: Tier::Enterprise,
            channel: "phone",
        },
    );
    assert_eq!(d.priority, "critical", "{:?}", d.reasons);
}

#[test]
fn validation_names_the_bad_part() {
    let mut c = policies().classification.clone();
    c.rules[2].category = "nonsense".into();
    let e = c.validate().unwrap_err();
    assert!(e.contains("rules[2]") && e.contains("nonsense"), "{e}");

    let mut c = policies().classification.clone();
    c.rules[0].patterns = vec!["(unclosed".into()];
    let e = c.validate().unwrap_err();
    assert!(e.contains("rules[0]") && e.contains("pattern"), "{e}");

    let mut p = policies().priority.clone();
    p.matrix
        .insert("high".into(), vec!["low".into(), "urgent".into(), "urgent".into()]);
    let e = p.validate().unwrap_err();
    assert!(e.contains("matrix"), "{e}");

    let mut p = policies().priority.clone();
    p.signals[0].level = "extreme".into();
    let e = p.validate().unwrap_err();
    assert!(e.contains("signals[0]") && e.contains("extreme"), "{e}");

    // An invalid policy degrades instead of panicking.
    let r = classify(&c_invalid(), None, "anything");
    assert_eq!(r.category, "other");
    assert!(r.reasons[0].contains("invalid"));
}

fn c_invalid() -> ClassificationPolicy {
    let mut c = policies().classification.clone();
    c.min_score = f64::NAN;
    c
}

#[test]
fn dev_set_accuracy() {
    let items = EvalItem::parse_jsonl(DEV_SET).unwrap();
    assert!(items.len() >= 200, "dev set has {} items", items.len());
    let p = policies();
    let report = evaluate(&p.classification, &p.priority, &items);
    println!("{report}");
    assert!(
        report.category_accuracy() >= 0.9,
        "category accuracy {:.3} < 0.9\n{report}",
        report.category_accuracy()
    );
}

fn urgent_phrases() -> Vec<String> {
    policies()
        .priority
        .signals
        .iter()
        .filter(|s| {
            s.dimension == priority::Dimension::Urgency
                && s.effect == priority::Effect::Raise
                && s.categories.is_empty()
        })
        .flat_map(|s| s.terms.iter().map(|t| t.trim_end_matches('*').to_owned()))
        .collect()
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    let words: Vec<String> = policies()
        .classification
        .rules
        .iter()
        .flat_map(|r| r.terms.iter().take(3).cloned())
        .chain(["不", "not", "？", "，", " ", "\n", "ＡＢ", "吗"].map(String::from))
        .collect();
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        proptest::collection::vec(prop_oneof![proptest::sample::select(words), "\\PC{0,4}"], 0..12)
            .prop_map(|v| v.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn classify_is_total(subject in proptest::option::of(arbitrary_text()), body in arbitrary_text()) {
        let p = policies();
        let c = classify(&p.classification, subject.as_deref(), &body);
        prop_assert!(p.classification.category_ids().contains(&c.category));
        prop_assert!((0.0..=1.0).contains(&c.confidence));
        prop_assert!(["zh-Hans", "zh-Hant", "en"].contains(&c.language.as_str()));
        prop_assert!(!c.reasons.is_empty());
    }

    #[test]
    fn prioritize_is_total(
        body in arbitrary_text(),
        category in "\\PC{0,10}|inquiry|fault|complaint|suggestion|other",
        tier in prop_oneof![Just(Tier::Standard), Just(Tier::Vip), Just(Tier::Enterprise)],
        channel in "phone|chat|email|app|\\PC{0,6}",
    ) {
        let p = &policies().priority;
        let input = PriorityInput { subject: None, body: &body, category: &category, tier, channel: &channel };
        let d = prioritize(p, &input);
        prop_assert!(p.levels.contains(&d.priority));
        prop_assert!(p.urgency_levels.contains(&d.urgency));
        prop_assert!(p.impact_levels.contains(&d.impact));
    }

    #[test]
    fn urgent_phrase_never_lowers_priority(
        body in arbitrary_text(),
        phrase in proptest::sample::select(urgent_phrases()),
        category in "inquiry|fault|complaint|suggestion|other",
        tier in prop_oneof![Just(Tier::Standard), Just(Tier::Vip), Just(Tier::Enterprise)],
    ) {
        let p = &policies().priority;
        let rank = |level: &str| p.levels.iter().position(|l| l == level);
        let input = PriorityInput { subject: None, body: &body, category: &category, tier, channel: "chat" };
        let before = prioritize(p, &input);
        let longer = format!("{body}。{phrase}");
        let after = prioritize(p, &PriorityInput { body: &longer, ..input });
        prop_assert!(rank(&after.priority) <= rank(&before.priority),
            "{:?} → {:?} after adding {phrase:?}", before, after);
    }
}

// ---------------------------------------------------------------------------------------------
// The learned model as shipped: config/models/triage.model, named by the policy.

mod shipped_model {
    use super::super::eval::{EvalItem, evaluate_triage, split_near_duplicates};
    use super::super::model::Model;
    use super::super::train::{Example, TrainConfig, fit, prepare};
    use crate::core::classify::model::TrainingInfo;
    use crate::core::classify::test_support::shipped_triage;
    use std::path::{Path, PathBuf};

    fn root(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    fn items(dir: &str) -> Vec<EvalItem> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| EvalItem::parse_jsonl(&std::fs::read_to_string(f).unwrap()).unwrap())
            .collect()
    }

    /// The targets of the held-out evaluation (docs/PERFORMANCE.md records the figures).
    #[test]
    fn meets_the_targets_on_the_held_out_set() {
        let t = shipped_triage();
        let train = items("config/corpus/train");
        let heldout = items("config/corpus/heldout");
        assert!(heldout.len() >= 600, "the held-out set has {} items", heldout.len());
        let (scored, leaked) = split_near_duplicates(heldout, &train, 0.6);
        assert!(
            leaked.len() * 50 < scored.len(),
            "{} held-out items leak from training",
            leaked.len()
        );
        let r = evaluate_triage(&t, &scored);
        assert!(
            r.category_accuracy() >= 0.92,
            "category {:.3}\n{r}",
            r.category_accuracy()
        );
        assert!(
            r.priority_accuracy() >= 0.85,
            "priority {:.3}\n{r}",
            r.priority_accuracy()
        );
        assert!(r.urgent_recall() >= 0.95, "urgent recall {:.3}\n{r}", r.urgent_recall());
        for (lang, s) in &r.by_script {
            let acc = s.category_correct as f64 / s.total as f64;
            assert!(acc >= 0.88, "{lang}: category {acc:.3}\n{r}");
        }
    }

    /// Training is reproducible, and the shipped model is what `switchboard train` makes of the
    /// corpus and policy in the repository: edit either and this fails until the model is
    /// trained again.
    #[test]
    fn is_what_training_makes_of_the_corpus() {
        let rules = shipped_triage().with_model(None).unwrap();
        let examples: Vec<Example> = items("config/corpus/train")
            .iter()
            .map(|i| Example {
                id: i.id.clone(),
                subject: i.subject.clone(),
                body: i.body.clone(),
                channel: i.channel.clone(),
                category: i.category.clone(),
                priority: i.priority.clone(),
                weight: 1.0,
            })
            .collect();
        assert!(examples.len() >= 3000, "the corpus has {} items", examples.len());
        let shipped = Model::parse(&std::fs::read_to_string(root("config/models/triage.model")).unwrap()).unwrap();
        // The fit on the whole corpus, at the urgent threshold cross-validation chose when the
        // model was trained (`switchboard train` runs the five folds too; a test need not).
        let prepared = prepare(&rules, &examples).unwrap();
        let all: Vec<usize> = (0..prepared.len()).collect();
        let model = fit(
            &prepared,
            &all,
            &TrainConfig::default(),
            shipped.header.urgent_threshold,
            TrainingInfo::new(&TrainConfig::default(), Vec::new(), 0),
        )
        .unwrap();
        assert_eq!(
            model.version(),
            shipped.version(),
            "config/models/triage.model is stale: run `switchboard train`"
        );
    }
}

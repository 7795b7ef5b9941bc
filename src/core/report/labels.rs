//! The labels a report is rendered with (`--lang en|zh`), made from the policy.

pub use crate::core::report_policy::Lang;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a report's ids are shown as.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Labels {
    pub lang: Lang,
    pub categories: BTreeMap<String, String>,
    pub priorities: BTreeMap<String, String>,
    pub teams: BTreeMap<String, String>,
    pub targets: BTreeMap<String, String>,
    pub channels: BTreeMap<String, String>,
    /// Unsatisfied reasons: their labels in every language (the policy gives "中文 English").
    pub reasons: BTreeMap<String, String>,
}

/// The Chinese part of a bilingual name such as "一线服务 Front-line service": the words before
/// the first one written in ASCII. A name without Chinese is returned whole.
pub fn chinese_part(name: &str) -> String {
    let zh: Vec<&str> = name
        .split_whitespace()
        .take_while(|w| !w.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()))
        .collect();
    if zh.is_empty() { name.to_owned() } else { zh.join(" ") }
}

/// The English part of such a name: what follows the Chinese words (the whole name if none).
pub fn english_part(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let skip = words
        .iter()
        .take_while(|w| !w.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()))
        .count();
    if skip == 0 || skip == words.len() {
        name.to_owned()
    } else {
        words[skip..].join(" ")
    }
}

impl Labels {
    /// Labels from the policy: English shows ids (reasons by their English part), Chinese the
    /// categories' `name_zh`, the Chinese part of the teams' and reasons' names, and
    /// `[reports.labels.zh]`.
    pub fn from_policy(policy: &crate::core::policy::Policy, lang: Lang) -> Labels {
        let doc = &policy.doc;
        let reasons = &doc.lifecycle.unsatisfied_reasons;
        match lang {
            Lang::En => Labels {
                lang,
                reasons: reasons.iter().map(|(k, v)| (k.clone(), english_part(v))).collect(),
                ..Labels::default()
            },
            Lang::Zh => Labels {
                lang,
                categories: doc
                    .classification
                    .categories
                    .iter()
                    .filter(|c| !c.name_zh.trim().is_empty())
                    .map(|c| (c.id.clone(), c.name_zh.clone()))
                    .collect(),
                priorities: doc.reports.labels.zh.priorities.clone(),
                teams: doc
                    .teams
                    .iter()
                    .map(|(id, t)| (id.clone(), chinese_part(&t.name)))
                    .collect(),
                targets: doc.reports.labels.zh.targets.clone(),
                channels: doc.reports.labels.zh.channels.clone(),
                reasons: reasons.iter().map(|(k, v)| (k.clone(), chinese_part(v))).collect(),
            },
        }
    }

    fn of(map: &BTreeMap<String, String>, id: &str) -> String {
        map.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }
    pub fn category(&self, id: &str) -> String {
        Self::of(&self.categories, id)
    }
    pub fn priority(&self, id: &str) -> String {
        Self::of(&self.priorities, id)
    }
    pub fn team(&self, id: &str) -> String {
        Self::of(&self.teams, id)
    }
    pub fn target(&self, id: &str) -> String {
        Self::of(&self.targets, id)
    }
    pub fn channel(&self, id: &str) -> String {
        Self::of(&self.channels, id)
    }
    pub fn reason(&self, id: &str) -> String {
        Self::of(&self.reasons, id)
    }

    /// A heading or phrase of the report in the report's language.
    pub fn t(&self, english: &'static str) -> &'static str {
        if self.lang == Lang::En {
            return english;
        }
        ZH.iter()
            .find(|(en, _)| *en == english)
            .map(|(_, zh)| *zh)
            .unwrap_or(english)
    }
}

/// The report's fixed words in Chinese.
const ZH: &[(&str, &str)] = &[
    ("Switchboard service report", "客户服务报告"),
    ("Tickets received", "受理工单数"),
    ("Volume", "工单量"),
    ("tickets", "工单"),
    ("share", "占比"),
    ("category", "类型"),
    ("channel", "渠道"),
    ("priority", "优先级"),
    ("team", "团队"),
    ("agent", "责任人"),
    ("Handling time", "处理时长"),
    ("first response", "首次响应"),
    ("resolution (excl. waiting)", "解决（不含等待客户）"),
    ("SLA on-time rate", "SLA 及时率"),
    ("on time", "按时"),
    ("late", "超时完成"),
    ("breached", "已超时"),
    ("undecided", "未定"),
    ("rate", "比率"),
    ("Escalations", "升级"),
    ("steps", "通知次数"),
    ("acknowledged", "已确认"),
    ("none", "无"),
    ("Resolution rate", "解决率"),
    ("Customer satisfaction (1-5)", "客户满意度（1-5分）"),
    ("Repeat complaints", "重复投诉"),
    ("Most frequent problems", "高频问题"),
    ("Breakdown", "分项统计"),
    ("by", "按"),
    ("resolved", "已解决"),
    ("mean resolution", "平均解决时长"),
    ("first response on time", "首次响应及时率"),
    ("resolution on time", "解决及时率"),
    ("CSAT", "满意度"),
    (
        "Review (late, unresolved, unsatisfied)",
        "问题复盘（超时、未解决、不满意）",
    ),
    ("Unsatisfied reasons", "不满意原因"),
    ("(no reason given)", "（未标注原因）"),
    ("Suggestions for product management", "建议汇总（提交产品管理）"),
    ("late by", "超时"),
    ("still open", "未解决"),
    ("rated", "评分"),
    ("unassigned", "未分配"),
    ("Daily service roll-up", "服务日报"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilingual_names_split_into_their_chinese_and_english_parts() {
        assert_eq!(chinese_part("一线服务 Front-line service"), "一线服务");
        assert_eq!(english_part("一线服务 Front-line service"), "Front-line service");
        assert_eq!(
            chinese_part("绿色通道 Green channel (urgent, a manager coordinates)"),
            "绿色通道"
        );
        assert_eq!(chinese_part("Triage"), "Triage");
        assert_eq!(english_part("分诊"), "分诊");
        assert_eq!(english_part("其他 Other"), "Other");
    }
}

//! Message templates: purpose → language → subject and body, rendered by minijinja.
//!
//! Templates are plain text (no HTML escaping). Each is compiled and rendered against a sample
//! context when the policy loads, so a typo stops the worker at start instead of silencing a
//! message at 3 a.m.

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Every purpose a message is sent for.
pub const PURPOSES: [&str; 10] = [
    "acknowledgement",
    "reply",
    "progress_update",
    "resolution",
    "survey",
    "follow_up",
    "staff_escalation",
    "staff_urgent",
    "staff_low_rating",
    "staff_breach",
];

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Template {
    #[serde(default)]
    pub subject: String,
    pub body: String,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("no template for {0:?} in [notify.templates]")]
    Missing(String),
    #[error("template {purpose}.{language}: {message}")]
    Render {
        purpose: String,
        language: String,
        message: String,
    },
}

/// `[notify.templates.<purpose>."<language>"]`.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct Templates(pub BTreeMap<String, BTreeMap<String, Template>>);

/// A body rendered larger than this is cut: a template looping over a long list must not
/// produce an unbounded message.
const MAX_RENDERED: usize = 64 * 1024;

impl Templates {
    /// Every template compiles and renders against a sample context; unknown purposes are
    /// refused (a misspelt purpose would never be sent).
    pub fn validate(&self) -> Result<(), String> {
        for (purpose, by_language) in &self.0 {
            if !PURPOSES.contains(&purpose.as_str()) {
                return Err(format!(
                    "[notify.templates.{purpose}] is not a message Switchboard sends (one of: {})",
                    PURPOSES.join(", ")
                ));
            }
            for language in by_language.keys() {
                self.render(purpose, language, &sample_context())
                    .map_err(|e| format!("[notify.templates.{purpose}.\"{language}\"]: {e}"))?;
            }
        }
        Ok(())
    }

    /// The language to use for `wanted`: itself, else the same script family (`zh-Hant` →
    /// `zh-Hans` → any `zh`), else `en`, else whatever there is.
    fn pick<'a>(&'a self, purpose: &str, wanted: &str) -> Option<(&'a str, &'a Template)> {
        let by_language = self.0.get(purpose)?;
        let exact = by_language.get_key_value(wanted);
        let family = || {
            let base = wanted.split('-').next().unwrap_or(wanted);
            by_language
                .get_key_value(if base == "zh" { "zh-Hans" } else { base })
                .or_else(|| by_language.iter().find(|(l, _)| l.split('-').next() == Some(base)))
        };
        exact
            .or_else(family)
            .or_else(|| by_language.get_key_value("en"))
            .or_else(|| by_language.iter().next())
            .map(|(l, t)| (l.as_str(), t))
    }

    pub fn render(&self, purpose: &str, language: &str, context: &Value) -> Result<Rendered, TemplateError> {
        let (language, t) = self
            .pick(purpose, language)
            .ok_or_else(|| TemplateError::Missing(purpose.to_owned()))?;
        let env = minijinja::Environment::new();
        let failed = |e: minijinja::Error| TemplateError::Render {
            purpose: purpose.to_owned(),
            language: language.to_owned(),
            message: e.to_string(),
        };
        let mut subject = env.render_str(&t.subject, context).map_err(failed)?;
        let mut body = env.render_str(&t.body, context).map_err(failed)?;
        // A subject is one line.
        subject = subject.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        truncate(&mut subject, 998);
        truncate(&mut body, MAX_RENDERED);
        Ok(Rendered { subject, body })
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// Every field a template may use, filled in.
pub fn sample_context() -> Value {
    json!({
        "ticket": {
            "number": "202612-00001",
            "subject": "订单问题",
            "category": "fault",
            "priority": "urgent",
            "team": "technical_support",
            "assignee": "a1",
            "state": "in_progress",
            "resolution_due": "2026-12-05 18:00",
            "first_response_due": "2026-12-05 10:15",
        },
        "customer": { "name": "张三" },
        "message": "我们已经收到。",
        "result": "已修复",
        "root_cause": "配置错误",
        "survey": { "number": "202612-00001-S5", "url": "https://example.com/v1/surveys/x", "dimensions": ["overall"] },
        "follow_up": { "due": "2026-12-06 18:00", "reason": "complaint" },
        "minutes_left": 30,
        "event": "ticket.escalated",
        "reason": "resolution missed",
        "target": "resolution",
        "step": 1,
        "repeat": 0,
        "role": "supervisor",
        "rating": 1,
        "on_duty": false,
        "link": "https://example.com/desk#202612-00001",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        let t = |s: &str, b: &str| Template {
            subject: s.into(),
            body: b.into(),
        };
        let mut ack = BTreeMap::new();
        ack.insert(
            "zh-Hans".into(),
            t("已受理 {{ ticket.number }}", "您好 {{ customer.name }}"),
        );
        ack.insert(
            "en".into(),
            t("Received {{ ticket.number }}", "Hello {{ customer.name }}"),
        );
        let mut m = BTreeMap::new();
        m.insert("acknowledgement".into(), ack);
        Templates(m)
    }

    #[test]
    fn a_language_falls_back_to_its_family_then_english() {
        let t = templates();
        let ctx = sample_context();
        assert!(
            t.render("acknowledgement", "zh-Hant", &ctx)
                .unwrap()
                .subject
                .starts_with("已受理")
        );
        assert!(
            t.render("acknowledgement", "en", &ctx)
                .unwrap()
                .subject
                .starts_with("Received")
        );
        assert!(
            t.render("acknowledgement", "fr", &ctx)
                .unwrap()
                .subject
                .starts_with("Received")
        );
        assert_eq!(
            t.render("survey", "en", &ctx),
            Err(TemplateError::Missing("survey".into()))
        );
    }

    #[test]
    fn a_broken_template_or_unknown_purpose_is_refused_at_load() {
        let mut t = templates();
        t.0.get_mut("acknowledgement").unwrap().insert(
            "en".into(),
            Template {
                subject: "{{ ticket.number".into(),
                body: String::new(),
            },
        );
        assert!(t.validate().unwrap_err().contains("acknowledgement"));
        let mut t = templates();
        t.0.insert("acknowledgment".into(), BTreeMap::new());
        assert!(t.validate().unwrap_err().contains("not a message"));
    }

    #[test]
    fn a_subject_is_one_line_and_a_body_is_bounded() {
        let mut m = BTreeMap::new();
        m.insert(
            "en".to_owned(),
            Template {
                subject: "a\n b".into(),
                body: "{% for i in range(100000) %}xxxxxxxx{% endfor %}".into(),
            },
        );
        let mut all = BTreeMap::new();
        all.insert("reply".to_owned(), m);
        let r = Templates(all).render("reply", "en", &sample_context());
        match r {
            Ok(r) => {
                assert_eq!(r.subject, "a b");
                assert!(r.body.len() <= MAX_RENDERED);
            }
            // minijinja's own range limit refusing the loop is as good.
            Err(TemplateError::Render { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

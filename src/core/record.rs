//! The service record (售后服务记录, seed 000 table 1; seed 002 §2–§3 and its record table; seed
//! 003 §(三); seed 004 §(四)): the facts a ticket carries beside the customer's words, and the
//! customer's confirmation of the result (客户签字 / online "已确认"). Pure: validation against
//! the policy's custom fields, merging an agent's update, the flat columns a view or export shows.
//!
//! Who sets what: intake may set the customer's facts (product, model, when it happened, what
//! they tried, their expectation and time, their urgency, an appointment, a callback wish, custom
//! fields); the staff-only facts (helper, engineer arrival, archive date) are set by agents with
//! `update_record`. Notes and attachments stay what they are (the `note` and `attach` actions,
//! transitions): the record view lists them beside these fields.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Longest short text (product, model, helper id), in bytes.
pub const MAX_SHORT: usize = 200;
/// Longest long text (what the customer tried, their expectation), in bytes.
pub const MAX_LONG: usize = 4000;
/// Custom fields a policy may declare.
pub const MAX_CUSTOM_FIELDS: usize = 50;
/// Longest custom text field a policy may declare, in bytes.
pub const MAX_CUSTOM_TEXT: usize = 4000;

/// How urgent the customer says it is (客户紧急程度: 一般 / 紧急 / 特急). Recorded as said; it
/// does not set the priority (that is urgency × impact by the priority rules, SPEC §3) — a
/// supervisor who agrees changes it with `set_priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerUrgency {
    #[serde(alias = "一般")]
    General,
    #[serde(alias = "紧急")]
    Urgent,
    #[serde(alias = "特急")]
    Critical,
}

impl CustomerUrgency {
    pub fn label_zh(self) -> &'static str {
        match self {
            CustomerUrgency::General => "一般",
            CustomerUrgency::Urgent => "紧急",
            CustomerUrgency::Critical => "特急",
        }
    }
}

/// The service record's fields. Every field is optional; absent means not known.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecord {
    /// Product or service concerned (产品).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Device model (设备型号).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_model: Option<String>,
    /// When the problem happened (问题发生时间).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// What the customer already tried (已尝试的解决方法).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tried: Option<String>,
    /// What the customer expects (客户期望).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expectation: Option<String>,
    /// By when the customer expects it (期望解决时间).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_by: Option<DateTime<Utc>>,
    /// Urgency as the customer declared it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<CustomerUrgency>,
    /// The helper (协助人, seed 004 §(三)): an agent beside the owner who may see and work it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helper: Option<String>,
    /// On-site appointment (上门时间).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_at: Option<DateTime<Utc>>,
    /// When the engineer arrived (工程师到达时间).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engineer_arrived_at: Option<DateTime<Utc>>,
    /// The customer asked to be called back (回电).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_requested: Option<bool>,
    /// Archive date (归档日期, seed 002 record table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_on: Option<NaiveDate>,
    /// Fields the policy declares under `[record.fields.<name>]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, Value>,
}

/// Fields only staff set (refused in an intake request).
pub const STAFF_FIELDS: [&str; 3] = ["helper", "engineer_arrived_at", "archived_on"];

/// Every built-in field's name, in the order views show them.
pub const FIELDS: [&str; 12] = [
    "product",
    "device_model",
    "occurred_at",
    "tried",
    "expectation",
    "expected_by",
    "urgency",
    "helper",
    "appointment_at",
    "engineer_arrived_at",
    "callback_requested",
    "archived_on",
];

/// The type of a custom field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Number,
    Date,
    Datetime,
    Bool,
    Choice,
}

/// One custom field declared in the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// What views and exports call it (e.g. "合同号").
    pub label: String,
    /// Text: longest value in bytes (default and ceiling [`MAX_CUSTOM_TEXT`]).
    #[serde(default)]
    pub max_len: Option<usize>,
    /// Choice: the values allowed.
    #[serde(default)]
    pub choices: Vec<String>,
    /// Number: the bounds.
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

/// `[record]` of the policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordPolicy {
    #[serde(default)]
    pub fields: BTreeMap<String, CustomField>,
}

impl RecordPolicy {
    /// Checks the declarations: names, labels, a choice's choices, bounds that can be met.
    pub fn validate(&self) -> Result<(), String> {
        if self.fields.len() > MAX_CUSTOM_FIELDS {
            return Err(format!("at most {MAX_CUSTOM_FIELDS} custom fields"));
        }
        for (name, f) in &self.fields {
            let at = format!("[record.fields.{name}]");
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(format!("{at}: a field name is 1 to 64 of a-z, 0-9 and _"));
            }
            if FIELDS.contains(&name.as_str()) {
                return Err(format!("{at}: {name} is a built-in field of the record"));
            }
            if f.label.trim().is_empty() || f.label.len() > MAX_SHORT {
                return Err(format!("{at}: label must be 1 to {MAX_SHORT} bytes"));
            }
            if f.kind != FieldType::Text && f.max_len.is_some() {
                return Err(format!("{at}: max_len applies to type = \"text\" only"));
            }
            if f.kind != FieldType::Choice && !f.choices.is_empty() {
                return Err(format!("{at}: choices apply to type = \"choice\" only"));
            }
            if f.kind != FieldType::Number && (f.min.is_some() || f.max.is_some()) {
                return Err(format!("{at}: min and max apply to type = \"number\" only"));
            }
            if let Some(m) = f.max_len
                && (m == 0 || m > MAX_CUSTOM_TEXT)
            {
                return Err(format!("{at}: max_len must be 1 to {MAX_CUSTOM_TEXT}"));
            }
            if f.kind == FieldType::Choice {
                if f.choices.is_empty() {
                    return Err(format!("{at}: a choice field needs `choices`"));
                }
                if f.choices.iter().any(|c| c.trim().is_empty() || c.len() > MAX_SHORT) {
                    return Err(format!("{at}: each choice is 1 to {MAX_SHORT} bytes"));
                }
            }
            if let (Some(lo), Some(hi)) = (f.min, f.max)
                && lo > hi
            {
                return Err(format!("{at}: min {lo} is above max {hi}"));
            }
        }
        Ok(())
    }
}

/// A field of the record that is wrong, and why: the dead letter's or the 400's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `record.{field}`: {problem}")]
pub struct RecordError {
    pub field: String,
    pub problem: String,
}

fn wrong<T>(field: &str, problem: impl Into<String>) -> Result<T, RecordError> {
    Err(RecordError {
        field: field.to_owned(),
        problem: problem.into(),
    })
}

fn text(field: &str, v: &Option<String>, limit: usize) -> Result<(), RecordError> {
    if let Some(s) = v {
        if s.trim().is_empty() {
            return wrong(field, "must not be empty (leave it out, or clear it)");
        }
        if s.len() > limit {
            return wrong(field, format!("{} bytes; the limit is {limit}", s.len()));
        }
        if s.contains('\0') {
            return wrong(field, "contains a NUL character (U+0000), which cannot be stored");
        }
    }
    Ok(())
}

fn plausible(field: &str, v: &Option<DateTime<Utc>>) -> Result<(), RecordError> {
    use chrono::Datelike as _;
    match v {
        Some(at) if !(2000..=2999).contains(&at.year()) => wrong(
            field,
            format!("{} is not a plausible time (years 2000 to 2999)", at.to_rfc3339()),
        ),
        _ => Ok(()),
    }
}

impl ServiceRecord {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self == &ServiceRecord::default()
    }

    /// Checks every field's size and every custom field against its declaration.
    pub fn validate(&self, policy: &RecordPolicy) -> Result<(), RecordError> {
        text("product", &self.product, MAX_SHORT)?;
        text("device_model", &self.device_model, MAX_SHORT)?;
        text("tried", &self.tried, MAX_LONG)?;
        text("expectation", &self.expectation, MAX_LONG)?;
        text("helper", &self.helper, MAX_SHORT)?;
        for (f, v) in [
            ("occurred_at", &self.occurred_at),
            ("expected_by", &self.expected_by),
            ("appointment_at", &self.appointment_at),
            ("engineer_arrived_at", &self.engineer_arrived_at),
        ] {
            plausible(f, v)?;
        }
        for (name, value) in &self.custom {
            let field = format!("custom.{name}");
            let Some(decl) = policy.fields.get(name) else {
                let known: Vec<&str> = policy.fields.keys().map(String::as_str).collect();
                return wrong(
                    &field,
                    if known.is_empty() {
                        "the policy declares no custom fields ([record.fields.<name>])".to_owned()
                    } else {
                        format!("not declared in the policy; declared: {}", known.join(", "))
                    },
                );
            };
            check_custom(&field, decl, value)?;
        }
        Ok(())
    }

    /// Refuses staff-only fields (an intake request speaks for the customer).
    pub fn customer_settable(&self) -> Result<(), RecordError> {
        let set = [
            ("helper", self.helper.is_some()),
            ("engineer_arrived_at", self.engineer_arrived_at.is_some()),
            ("archived_on", self.archived_on.is_some()),
        ];
        match set.iter().find(|(_, on)| *on) {
            Some((f, _)) => wrong(f, "is set by agents (action update_record), not in an intake request"),
            None => Ok(()),
        }
    }

    /// This record with `set`'s fields written over it and the fields named in `clear` removed
    /// (a built-in name or `custom.<name>`), and the names of the fields that changed.
    pub fn merged(&self, set: &ServiceRecord, clear: &[String]) -> Result<(ServiceRecord, Vec<String>), RecordError> {
        let mut after = self.clone();
        macro_rules! over {
            ($($f:ident),*) => {$(
                if set.$f.is_some() { after.$f = set.$f.clone(); }
            )*};
        }
        over!(
            product,
            device_model,
            occurred_at,
            tried,
            expectation,
            expected_by,
            urgency,
            helper,
            appointment_at,
            engineer_arrived_at,
            callback_requested,
            archived_on
        );
        for (k, v) in &set.custom {
            after.custom.insert(k.clone(), v.clone());
        }
        for name in clear {
            if set.custom.contains_key(name.strip_prefix("custom.").unwrap_or("")) || set_names(set).contains(name) {
                return wrong(name, "is both set and cleared");
            }
            if let Some(c) = name.strip_prefix("custom.") {
                after.custom.remove(c);
                continue;
            }
            match name.as_str() {
                "product" => after.product = None,
                "device_model" => after.device_model = None,
                "occurred_at" => after.occurred_at = None,
                "tried" => after.tried = None,
                "expectation" => after.expectation = None,
                "expected_by" => after.expected_by = None,
                "urgency" => after.urgency = None,
                "helper" => after.helper = None,
                "appointment_at" => after.appointment_at = None,
                "engineer_arrived_at" => after.engineer_arrived_at = None,
                "callback_requested" => after.callback_requested = None,
                "archived_on" => after.archived_on = None,
                _ => {
                    return wrong(
                        name,
                        format!("no such field to clear; fields: {}, custom.<name>", FIELDS.join(", ")),
                    );
                }
            }
        }
        let before = serde_json::to_value(self).unwrap_or_default();
        let now = serde_json::to_value(&after).unwrap_or_default();
        let mut changed: Vec<String> = FIELDS
            .iter()
            .filter(|f| before.get(**f) != now.get(**f))
            .map(|f| (*f).to_owned())
            .collect();
        let keys: std::collections::BTreeSet<&String> = self.custom.keys().chain(after.custom.keys()).collect();
        changed.extend(
            keys.into_iter()
                .filter(|k| self.custom.get(*k) != after.custom.get(*k))
                .map(|k| format!("custom.{k}")),
        );
        Ok((after, changed))
    }

    /// The record as (label, value) columns for views and exports: every built-in field, then
    /// each custom field the policy declares, by its label; empty where not known.
    pub fn columns(&self, policy: &RecordPolicy) -> Vec<(String, String)> {
        let t = |v: &Option<DateTime<Utc>>| v.map(|d| d.to_rfc3339()).unwrap_or_default();
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut out = vec![
            ("product".to_owned(), s(&self.product)),
            ("device_model".to_owned(), s(&self.device_model)),
            ("occurred_at".to_owned(), t(&self.occurred_at)),
            ("tried".to_owned(), s(&self.tried)),
            ("expectation".to_owned(), s(&self.expectation)),
            ("expected_by".to_owned(), t(&self.expected_by)),
            (
                "urgency".to_owned(),
                self.urgency.map(|u| u.label_zh().to_owned()).unwrap_or_default(),
            ),
            ("helper".to_owned(), s(&self.helper)),
            ("appointment_at".to_owned(), t(&self.appointment_at)),
            ("engineer_arrived_at".to_owned(), t(&self.engineer_arrived_at)),
            (
                "callback_requested".to_owned(),
                self.callback_requested.map(|b| b.to_string()).unwrap_or_default(),
            ),
            (
                "archived_on".to_owned(),
                self.archived_on.map(|d| d.to_string()).unwrap_or_default(),
            ),
        ];
        for (name, decl) in &policy.fields {
            let v = match self.custom.get(name) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            out.push((decl.label.clone(), v));
        }
        out
    }
}

fn set_names(set: &ServiceRecord) -> Vec<String> {
    let v = serde_json::to_value(set).unwrap_or_default();
    FIELDS
        .iter()
        .filter(|f| v.get(**f).is_some())
        .map(|f| (*f).to_owned())
        .collect()
}

fn check_custom(field: &str, decl: &CustomField, value: &Value) -> Result<(), RecordError> {
    match (decl.kind, value) {
        (FieldType::Text, Value::String(s)) => {
            let limit = decl.max_len.unwrap_or(MAX_CUSTOM_TEXT).min(MAX_CUSTOM_TEXT);
            text(field, &Some(s.clone()), limit)
        }
        (FieldType::Number, Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if decl.min.is_some_and(|lo| x < lo) || decl.max.is_some_and(|hi| x > hi) {
                return wrong(
                    field,
                    format!(
                        "{x} is outside {} to {}",
                        decl.min.map(|v| v.to_string()).unwrap_or("-∞".into()),
                        decl.max.map(|v| v.to_string()).unwrap_or("∞".into())
                    ),
                );
            }
            Ok(())
        }
        (FieldType::Date, Value::String(s)) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(_) => Ok(()),
            Err(_) => wrong(field, format!("{s:?} is not a date (YYYY-MM-DD)")),
        },
        (FieldType::Datetime, Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(d) => plausible(field, &Some(d.with_timezone(&Utc))),
            Err(_) => wrong(
                field,
                format!("{s:?} is not an RFC 3339 time (2026-05-10T10:00:00+08:00)"),
            ),
        },
        (FieldType::Bool, Value::Bool(_)) => Ok(()),
        (FieldType::Choice, Value::String(s)) if decl.choices.contains(s) => Ok(()),
        (FieldType::Choice, Value::String(s)) => {
            wrong(field, format!("{s:?} is not one of: {}", decl.choices.join(", ")))
        }
        (kind, _) => wrong(
            field,
            format!(
                "must be {} ({})",
                match kind {
                    FieldType::Text | FieldType::Choice => "a string",
                    FieldType::Number => "a number",
                    FieldType::Date => "a date string",
                    FieldType::Datetime => "a time string",
                    FieldType::Bool => "true or false",
                },
                decl.label
            ),
        ),
    }
}

/// How the customer confirmed the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmMethod {
    /// Online: the customer pressed "已确认" (an integration reports it for them).
    Online,
    /// The customer signed the record or the service confirmation form (客户签字).
    Signature,
    /// Confirmed on the phone, recorded by the agent.
    Phone,
}

/// The customer's confirmation of the result: its own fact, not the agent's closing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    pub at: DateTime<Utc>,
    pub method: ConfirmMethod,
    /// Who recorded it (`customer:<key>` for an integration, `agent:<id>`, …).
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> RecordPolicy {
        toml::from_str(
            r#"
            [fields.contract_no]
            type = "text"
            label = "合同号"
            max_len = 8
            [fields.units]
            type = "number"
            label = "台数"
            min = 1.0
            max = 100.0
            [fields.visit_day]
            type = "date"
            label = "上门日期"
            [fields.signed_at]
            type = "datetime"
            label = "签约时间"
            [fields.warranty]
            type = "bool"
            label = "保修期内"
            [fields.line]
            type = "choice"
            label = "产品线"
            choices = ["printer", "router"]
            "#,
        )
        .unwrap()
    }

    fn with(custom: Value) -> ServiceRecord {
        ServiceRecord {
            custom: serde_json::from_value(custom).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn the_sample_policy_is_valid_and_custom_values_are_checked_by_type() {
        let p = policy();
        p.validate().unwrap();
        let ok = with(json!({"contract_no": "HT-1", "units": 3, "visit_day": "2026-05-11",
            "signed_at": "2026-05-10T10:00:00+08:00", "warranty": true, "line": "printer"}));
        ok.validate(&p).unwrap();
        for (bad, field, says) in [
            (json!({"contract_no": "HT-123456"}), "custom.contract_no", "limit is 8"),
            (json!({"contract_no": 7}), "custom.contract_no", "a string"),
            (json!({"units": 0}), "custom.units", "outside 1 to 100"),
            (json!({"units": "3"}), "custom.units", "a number"),
            (json!({"visit_day": "11/05/2026"}), "custom.visit_day", "YYYY-MM-DD"),
            (json!({"signed_at": "yesterday"}), "custom.signed_at", "RFC 3339"),
            (json!({"warranty": "yes"}), "custom.warranty", "true or false"),
            (json!({"line": "phone"}), "custom.line", "printer, router"),
            (json!({"colour": "red"}), "custom.colour", "declared: contract_no"),
        ] {
            let e = with(bad.clone()).validate(&p).unwrap_err();
            assert_eq!(e.field, field, "{bad}");
            assert!(e.to_string().contains(says), "{bad}: {e}");
            assert!(e.to_string().starts_with(&format!("field `record.{field}`")), "{e}");
        }
    }

    #[test]
    fn built_in_fields_are_bounded() {
        let p = RecordPolicy::default();
        let r = ServiceRecord {
            product: Some("x".repeat(MAX_SHORT + 1)),
            ..Default::default()
        };
        assert_eq!(r.validate(&p).unwrap_err().field, "product");
        let r = ServiceRecord {
            tried: Some("重启".repeat(MAX_LONG)),
            ..Default::default()
        };
        assert_eq!(r.validate(&p).unwrap_err().field, "tried");
        let r = ServiceRecord {
            expectation: Some("  ".into()),
            ..Default::default()
        };
        assert_eq!(r.validate(&p).unwrap_err().field, "expectation");
        let r: ServiceRecord = serde_json::from_value(json!({"occurred_at": "1970-01-01T00:00:00Z"})).unwrap();
        assert_eq!(r.validate(&p).unwrap_err().field, "occurred_at");
        let e = with(json!({"x": 1})).validate(&p).unwrap_err();
        assert!(e.problem.contains("declares no custom fields"), "{e}");
    }

    #[test]
    fn urgency_is_read_in_chinese_or_english_and_unknown_fields_are_refused() {
        let r: ServiceRecord = serde_json::from_value(json!({"urgency": "特急"})).unwrap();
        assert_eq!(r.urgency, Some(CustomerUrgency::Critical));
        let r: ServiceRecord = serde_json::from_value(json!({"urgency": "urgent"})).unwrap();
        assert_eq!(r.urgency, Some(CustomerUrgency::Urgent));
        assert!(serde_json::from_value::<ServiceRecord>(json!({"urgency": "very"})).is_err());
        assert!(serde_json::from_value::<ServiceRecord>(json!({"colour": "red"})).is_err());
    }

    #[test]
    fn intake_may_not_set_staff_fields() {
        for f in STAFF_FIELDS {
            let r: ServiceRecord = serde_json::from_value(json!({ f: match f {
                "archived_on" => json!("2026-05-01"),
                "helper" => json!("a2"),
                _ => json!("2026-05-01T10:00:00Z"),
            }}))
            .unwrap();
            assert_eq!(r.customer_settable().unwrap_err().field, f);
        }
        let r: ServiceRecord = serde_json::from_value(json!({"product": "P1", "callback_requested": true})).unwrap();
        r.customer_settable().unwrap();
    }

    #[test]
    fn merging_sets_clears_and_names_what_changed() {
        let before: ServiceRecord =
            serde_json::from_value(json!({"product": "P1", "tried": "restart", "custom": {"units": 2}})).unwrap();
        let set: ServiceRecord =
            serde_json::from_value(json!({"product": "P2", "helper": "a2", "custom": {"line": "router"}})).unwrap();
        let (after, changed) = before.merged(&set, &["tried".into(), "custom.units".into()]).unwrap();
        assert_eq!(after.product.as_deref(), Some("P2"));
        assert_eq!(after.tried, None);
        assert_eq!(after.helper.as_deref(), Some("a2"));
        assert!(!after.custom.contains_key("units"));
        assert_eq!(changed, ["product", "tried", "helper", "custom.line", "custom.units"]);
        // Setting what is already there changes nothing.
        let (_, none) = after.merged(&set, &[]).unwrap();
        assert!(none.is_empty());
        assert_eq!(before.merged(&set, &["colour".into()]).unwrap_err().field, "colour");
        assert_eq!(before.merged(&set, &["product".into()]).unwrap_err().field, "product");
    }

    #[test]
    fn columns_show_every_field_and_custom_ones_by_label() {
        let p = policy();
        let r: ServiceRecord =
            serde_json::from_value(json!({"urgency": "紧急", "custom": {"contract_no": "HT-1", "units": 3}})).unwrap();
        let cols = r.columns(&p);
        assert_eq!(cols.len(), FIELDS.len() + p.fields.len());
        assert!(cols.contains(&("urgency".into(), "紧急".into())));
        assert!(cols.contains(&("合同号".into(), "HT-1".into())));
        assert!(cols.contains(&("台数".into(), "3".into())));
        assert!(cols.contains(&("保修期内".into(), String::new())));
    }

    #[test]
    fn bad_declarations_are_refused_naming_the_field() {
        for (toml_text, says) in [
            ("[fields.a]\ntype = \"choice\"\nlabel = \"A\"", "needs `choices`"),
            (
                "[fields.a]\ntype = \"text\"\nlabel = \"A\"\nmax_len = 0",
                "max_len must be",
            ),
            (
                "[fields.a]\ntype = \"number\"\nlabel = \"A\"\nmax_len = 5",
                "max_len applies",
            ),
            (
                "[fields.a]\ntype = \"number\"\nlabel = \"A\"\nmin = 5.0\nmax = 1.0",
                "above max",
            ),
            ("[fields.Bad]\ntype = \"bool\"\nlabel = \"A\"", "a-z"),
            ("[fields.product]\ntype = \"text\"\nlabel = \"A\"", "built-in"),
            ("[fields.a]\ntype = \"bool\"\nlabel = \"\"", "label"),
        ] {
            let p: RecordPolicy = toml::from_str(toml_text).unwrap();
            let e = p.validate().unwrap_err();
            assert!(e.contains(says), "{toml_text}: {e}");
            assert!(e.starts_with("[record.fields."), "{e}");
        }
        assert!(toml::from_str::<RecordPolicy>("[fields.a]\ntype = \"colour\"\nlabel = \"A\"").is_err());
    }
}

//! Phone channel: a call event from the telephony platform (IVR, ACD, voicemail) to an
//! [`IntakeRequest`].
//!
//! A call becomes a request in one of two ways:
//! * it carries the customer's words — the transcript of an answered call or the transcription
//!   of a voicemail — which become the body, verbatim;
//! * it carries none — a missed or abandoned call, or a voicemail whose transcription failed —
//!   and becomes a callback request whose body says so in Chinese and English, with the line and
//!   IVR choice, so that classification and the agent know what the caller wanted.
//!
//! The IVR choice is also the subject (`IVR: 2 故障报修`), because it is often the only hint of
//! the category. The caller's number goes to `customer.phone` and never into the body or the
//! subject (numbers are masked wherever they are not needed).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{digit_count, non_blank};
use crate::contracts::intake::{IntakeRequest, MAX_BODY_BYTES, MAX_MESSAGE_BYTES};
use crate::core::customer::{Customer, Tier};

/// The channel name this normaliser produces.
pub const CHANNEL: &str = "phone";

/// Values telephony platforms put in the caller-number field when the number is not presented.
const WITHHELD: &[&str] = &[
    "anonymous",
    "unknown",
    "withheld",
    "private",
    "restricted",
    "unavailable",
    "匿名",
    "未知",
    "隐藏号码",
    "私人号码",
];

/// How the call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallOutcome {
    /// An agent talked to the caller.
    Answered,
    /// Nobody answered (out of hours, all agents busy until the platform gave up).
    Missed,
    /// The caller hung up while waiting in the queue.
    Abandoned,
    /// The caller left a voicemail.
    Voicemail,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Missed => "missed",
            CallOutcome::Abandoned => "abandoned",
            CallOutcome::Voicemail => "voicemail",
        }
    }
}

/// A call event as the telephony integration posts it (JSON, unknown fields refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallEvent {
    /// The platform's call id: the idempotency key.
    pub call_id: String,
    /// Caller number as presented (`+86 138 0013 8000`), or a withheld marker (`anonymous`).
    pub caller_number: String,
    /// The number or line name the customer dialled (hotline, VIP line, …).
    pub line_called: String,
    /// The IVR menu choice, as a key and/or label (`2`, `2 故障报修`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivr_choice: Option<String>,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: CallOutcome,
    /// Speech-to-text of the conversation (answered calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// Speech-to-text of the voicemail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voicemail_text: Option<String>,
    /// Known when the platform matched the number or the IVR asked for an account number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

/// Why a call event could not become an intake request. The text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The JSON did not decode; serde's message names the missing or unknown field.
    #[error("malformed call event: {0}")]
    Malformed(String),
    #[error("field `{field}`: {problem}")]
    Invalid { field: &'static str, problem: String },
}

impl PhoneError {
    /// The field the error is about, when it is known.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            PhoneError::Invalid { field, .. } => Some(field),
            PhoneError::Malformed(_) => None,
        }
    }
}

fn invalid(field: &'static str, problem: impl Into<String>) -> PhoneError {
    PhoneError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// Decode a call event from JSON (for a gateway that does not decode it itself).
pub fn parse_call_event(json: &[u8]) -> Result<CallEvent, PhoneError> {
    serde_json::from_slice(json).map_err(|e| PhoneError::Malformed(e.to_string()))
}

/// Turn a call event into an intake request for the `phone` channel.
///
/// `received_at` is when the gateway received the event.
pub fn normalize_call(ev: &CallEvent, received_at: DateTime<Utc>) -> Result<IntakeRequest, PhoneError> {
    let call_id = ev.call_id.trim();
    if call_id.is_empty() {
        return Err(invalid("call_id", "must not be empty"));
    }
    if call_id.len() > 512 {
        return Err(invalid(
            "call_id",
            format!("is {} bytes; the limit is 512", call_id.len()),
        ));
    }
    let line = ev.line_called.trim();
    if line.is_empty() {
        return Err(invalid("line_called", "must not be empty"));
    }
    if line.len() > 200 {
        return Err(invalid(
            "line_called",
            format!("is {} bytes; the limit is 200", line.len()),
        ));
    }
    if let Some(ended) = ev.ended_at
        && ended < ev.started_at
    {
        return Err(invalid(
            "ended_at",
            format!("{ended} is before started_at {}", ev.started_at),
        ));
    }
    let ivr = non_blank(ev.ivr_choice.as_deref());
    if let Some(ivr) = &ivr
        && ivr.len() > 200
    {
        return Err(invalid(
            "ivr_choice",
            format!("is {} bytes; the limit is 200", ivr.len()),
        ));
    }

    let phone = caller_number(&ev.caller_number)?;
    let customer_id = non_blank(ev.customer_id.as_deref());
    if phone.is_none() && customer_id.is_none() {
        return Err(invalid(
            "caller_number",
            format!(
                "is withheld ({:?}) and no customer_id is given: nobody to call back",
                ev.caller_number
            ),
        ));
    }

    let body = match spoken_text(ev)? {
        Some(text) => text,
        None if ev.outcome == CallOutcome::Answered => {
            return Err(invalid(
                "transcript",
                "an answered call needs a transcript (none was given)",
            ));
        }
        None => callback_body(ev.outcome, line, ivr.as_deref()),
    };

    let request = IntakeRequest {
        channel: CHANNEL.to_owned(),
        channel_message_id: call_id.to_owned(),
        received_at,
        customer: Customer {
            name: non_blank(ev.customer_name.as_deref()),
            phone,
            email: None,
            customer_id,
            tier: ev.tier,
        },
        subject: ivr.map(|choice| format!("IVR: {choice}")),
        body,
        quoted_history: None,
        thread_ref: None,
        attachments: Vec::new(),
        submitted_by: None,
        // A call nobody answered asks to be called back (回电): the service record says so.
        record: (ev.outcome != CallOutcome::Answered).then(|| crate::core::record::ServiceRecord {
            callback_requested: Some(true),
            ..Default::default()
        }),
    };
    let size = serde_json::to_vec(&request)
        .map_err(|e| PhoneError::Malformed(e.to_string()))?
        .len();
    if size > MAX_MESSAGE_BYTES {
        // Only an enormous customer_name or customer_id can get here: the body is capped.
        return Err(invalid(
            "customer_name",
            format!("the request is {size} bytes encoded; the limit is {MAX_MESSAGE_BYTES}"),
        ));
    }
    Ok(request)
}

/// The caller's number, `None` when withheld; an error when it cannot be a phone number.
fn caller_number(raw: &str) -> Result<Option<String>, PhoneError> {
    let number = raw.trim();
    if number.is_empty() || WITHHELD.iter().any(|w| number.eq_ignore_ascii_case(w)) {
        return Ok(None);
    }
    if let Some(bad) = number.chars().find(|c| !(c.is_ascii_digit() || " +-().".contains(*c))) {
        return Err(invalid(
            "caller_number",
            format!("{number:?} contains {bad:?}; expected digits, spaces and + - ( ) ."),
        ));
    }
    let digits = digit_count(number);
    if !(3..=20).contains(&digits) {
        return Err(invalid(
            "caller_number",
            format!("{number:?} has {digits} digits; expected 3 to 20"),
        ));
    }
    Ok(Some(number.to_owned()))
}

/// The customer's own words: the voicemail text for a voicemail, the transcript otherwise, and
/// the other one after it when both are present and differ. Kept verbatim.
fn spoken_text(ev: &CallEvent) -> Result<Option<String>, PhoneError> {
    let present = |v: &Option<String>| v.as_ref().filter(|s| !s.trim().is_empty()).cloned();
    let transcript = present(&ev.transcript);
    let voicemail = present(&ev.voicemail_text);
    for (field, text) in [("transcript", &transcript), ("voicemail_text", &voicemail)] {
        if let Some(text) = text
            && text.len() > MAX_BODY_BYTES
        {
            return Err(invalid(
                field,
                format!("is {} bytes; the limit is {MAX_BODY_BYTES}", text.len()),
            ));
        }
    }
    let text = match (transcript, voicemail) {
        (Some(t), Some(v)) if t.trim() == v.trim() => Some(t),
        (Some(t), Some(v)) if ev.outcome == CallOutcome::Voicemail => {
            Some(format!("{v}\n\n通话记录 / Transcript:\n{t}"))
        }
        (Some(t), Some(v)) => Some(format!("{t}\n\n语音留言 / Voicemail:\n{v}")),
        (t, v) => t.or(v),
    };
    if let Some(text) = &text
        && text.len() > MAX_BODY_BYTES
    {
        return Err(invalid(
            "transcript",
            format!(
                "transcript and voicemail_text together are {} bytes; the limit is {MAX_BODY_BYTES}",
                text.len()
            ),
        ));
    }
    Ok(text)
}

/// The body of a callback request: what happened, in Chinese and English, with the line and the
/// IVR choice (the only hints of what the caller wanted).
fn callback_body(outcome: CallOutcome, line: &str, ivr: Option<&str>) -> String {
    let what = match outcome {
        CallOutcome::Abandoned => "来电在排队时挂断，请回电 / Abandoned call — please call back",
        CallOutcome::Voicemail => {
            "语音留言未能转写，请收听并回电 / Voicemail without transcription — please listen and call back"
        }
        CallOutcome::Missed | CallOutcome::Answered => "未接来电，请回电 / Missed call — please call back",
    };
    match ivr {
        Some(choice) => format!("{what} (line {line}, IVR choice {choice})"),
        None => format!("{what} (line {line}, no IVR choice)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 6, h, m, s).single().unwrap()
    }

    fn event(outcome: CallOutcome) -> CallEvent {
        CallEvent {
            call_id: "call-20240506-0001".into(),
            caller_number: "+86 138 0013 8000".into(),
            line_called: "400-820-1234".into(),
            ivr_choice: Some("2 故障报修".into()),
            started_at: at(1, 0, 0),
            ended_at: Some(at(1, 1, 30)),
            outcome,
            transcript: None,
            voicemail_text: None,
            customer_name: None,
            customer_id: None,
            tier: None,
        }
    }

    fn ok(ev: &CallEvent) -> IntakeRequest {
        let r = normalize_call(ev, at(1, 2, 0)).unwrap();
        assert_eq!(r.validate(&["phone".to_owned()]), Ok(()), "{r:?}");
        r
    }

    fn err(ev: &CallEvent) -> PhoneError {
        normalize_call(ev, at(1, 2, 0)).unwrap_err()
    }

    #[test]
    fn answered_call_with_transcript() {
        let mut ev = event(CallOutcome::Answered);
        ev.transcript =
            Some("  客户：我们的收银系统从早上开始就登不上了，提示密码错误。\n坐席：好的，我帮您查一下。 ".into());
        ev.customer_name = Some("王女士".into());
        ev.customer_id = Some("C-10086".into());
        ev.tier = Some(Tier::Vip);
        let r = ok(&ev);
        assert_eq!(r.channel, "phone");
        assert_eq!(r.channel_message_id, "call-20240506-0001");
        assert_eq!(r.received_at, at(1, 2, 0));
        assert_eq!(
            r.customer,
            Customer {
                name: Some("王女士".into()),
                phone: Some("+86 138 0013 8000".into()),
                email: None,
                customer_id: Some("C-10086".into()),
                tier: Some(Tier::Vip),
            }
        );
        assert_eq!(r.subject.as_deref(), Some("IVR: 2 故障报修"));
        // Verbatim: not trimmed.
        assert_eq!(r.body, ev.transcript.unwrap());
        assert_eq!(r.thread_ref, None);
        assert_eq!(r.quoted_history, None);
    }

    #[test]
    fn voicemail_text_is_the_body() {
        let mut ev = event(CallOutcome::Voicemail);
        ev.voicemail_text = Some("你好，我是三号店的，打印机又坏了，麻烦回个电话。".into());
        ev.ivr_choice = None;
        let r = ok(&ev);
        assert_eq!(r.body, "你好，我是三号店的，打印机又坏了，麻烦回个电话。");
        assert_eq!(r.subject, None);
    }

    #[test]
    fn both_texts_are_kept_primary_first() {
        let mut ev = event(CallOutcome::Voicemail);
        ev.voicemail_text = Some("请回电".into());
        ev.transcript = Some("（系统提示音）".into());
        assert_eq!(ok(&ev).body, "请回电\n\n通话记录 / Transcript:\n（系统提示音）");
        ev.outcome = CallOutcome::Answered;
        assert_eq!(ok(&ev).body, "（系统提示音）\n\n语音留言 / Voicemail:\n请回电");
        ev.transcript = Some(" 请回电 ".into());
        assert_eq!(ok(&ev).body, " 请回电 ");
    }

    #[test]
    fn missed_call_becomes_a_callback_request() {
        let r = ok(&event(CallOutcome::Missed));
        assert_eq!(r.record.as_ref().and_then(|x| x.callback_requested), Some(true));
        assert_eq!(
            ok(&event(CallOutcome::Voicemail))
                .record
                .and_then(|x| x.callback_requested),
            Some(true)
        );
        assert_eq!(
            r.body,
            "未接来电，请回电 / Missed call — please call back (line 400-820-1234, IVR choice 2 故障报修)"
        );
        assert_eq!(r.subject.as_deref(), Some("IVR: 2 故障报修"));
        assert_eq!(r.customer.phone.as_deref(), Some("+86 138 0013 8000"));
        assert!(!r.body.contains("138"), "the caller's number stays out of the body");
    }

    #[test]
    fn abandoned_call_without_ivr_choice() {
        let mut ev = event(CallOutcome::Abandoned);
        ev.ivr_choice = Some("   ".into());
        ev.transcript = Some(" \n ".into());
        let r = ok(&ev);
        assert_eq!(
            r.body,
            "来电在排队时挂断，请回电 / Abandoned call — please call back (line 400-820-1234, no IVR choice)"
        );
        assert_eq!(r.subject, None);
    }

    #[test]
    fn voicemail_without_text_asks_to_listen() {
        let r = ok(&event(CallOutcome::Voicemail));
        assert!(
            r.body
                .starts_with("语音留言未能转写，请收听并回电 / Voicemail without transcription"),
            "{}",
            r.body
        );
        assert!(r.body.ends_with("(line 400-820-1234, IVR choice 2 故障报修)"));
    }

    #[test]
    fn withheld_number_with_a_known_customer() {
        let mut ev = event(CallOutcome::Missed);
        ev.caller_number = "Anonymous".into();
        ev.customer_id = Some("C-1".into());
        let r = ok(&ev);
        assert_eq!(r.customer.phone, None);
        assert_eq!(r.customer.customer_id.as_deref(), Some("C-1"));
    }

    /// The field an error must name, and the change to a valid event that causes it.
    type Case = (&'static str, Box<dyn Fn(&mut CallEvent)>);

    #[test]
    fn every_error_names_its_field() {
        let cases: Vec<Case> = vec![
            ("call_id", Box::new(|e| e.call_id = "  ".into())),
            ("call_id", Box::new(|e| e.call_id = "x".repeat(513))),
            ("line_called", Box::new(|e| e.line_called = String::new())),
            ("line_called", Box::new(|e| e.line_called = "L".repeat(201))),
            ("ended_at", Box::new(|e| e.ended_at = Some(at(0, 59, 59)))),
            ("ivr_choice", Box::new(|e| e.ivr_choice = Some("9".repeat(201)))),
            ("caller_number", Box::new(|e| e.caller_number = "withheld".into())),
            ("caller_number", Box::new(|e| e.caller_number = "".into())),
            ("caller_number", Box::new(|e| e.caller_number = "12".into())),
            ("caller_number", Box::new(|e| e.caller_number = "1".repeat(21))),
            (
                "caller_number",
                Box::new(|e| e.caller_number = "sip:alice@example.com".into()),
            ),
            ("transcript", Box::new(|e| e.outcome = CallOutcome::Answered)),
            (
                "transcript",
                Box::new(|e| e.transcript = Some("话".repeat(MAX_BODY_BYTES / 3 + 1))),
            ),
            (
                "voicemail_text",
                Box::new(|e| e.voicemail_text = Some("x".repeat(MAX_BODY_BYTES + 1))),
            ),
            (
                "transcript",
                Box::new(|e| {
                    e.transcript = Some("a".repeat(MAX_BODY_BYTES - 10));
                    e.voicemail_text = Some("b".repeat(MAX_BODY_BYTES - 10));
                }),
            ),
            (
                "customer_name",
                Box::new(|e| e.customer_name = Some("名".repeat(MAX_MESSAGE_BYTES / 3 + 1))),
            ),
        ];
        for (field, change) in cases {
            let mut ev = event(CallOutcome::Missed);
            change(&mut ev);
            let e = err(&ev);
            assert_eq!(e.field(), Some(field), "{e}");
            assert!(e.to_string().starts_with(&format!("field `{field}`: ")), "{e}");
        }
    }

    #[test]
    fn error_messages_read_well() {
        let mut ev = event(CallOutcome::Answered);
        assert_eq!(
            err(&ev).to_string(),
            "field `transcript`: an answered call needs a transcript (none was given)"
        );
        ev.caller_number = "anonymous".into();
        ev.transcript = Some("hi".into());
        assert_eq!(
            err(&ev).to_string(),
            "field `caller_number`: is withheld (\"anonymous\") and no customer_id is given: nobody to call back"
        );
    }

    #[test]
    fn json_decoding() {
        let json = br#"{"call_id":"c1","caller_number":"13800138000","line_called":"hotline",
            "ivr_choice":"3","started_at":"2024-05-06T01:00:00Z","ended_at":null,"outcome":"abandoned",
            "tier":"enterprise"}"#;
        let ev = parse_call_event(json).unwrap();
        assert_eq!(ev.outcome, CallOutcome::Abandoned);
        assert_eq!(ev.tier, Some(Tier::Enterprise));
        let r = ok(&ev);
        assert_eq!(
            r.body,
            "来电在排队时挂断，请回电 / Abandoned call — please call back (line hotline, IVR choice 3)"
        );
        assert_eq!(r.customer.tier, Some(Tier::Enterprise));
        // Round trip.
        assert_eq!(parse_call_event(&serde_json::to_vec(&ev).unwrap()).unwrap(), ev);
    }

    #[test]
    fn json_errors_name_the_field() {
        let unknown = br#"{"call_id":"c1","caller_number":"138","line_called":"l","started_at":"2024-05-06T01:00:00Z",
            "outcome":"missed","queue":"vip"}"#;
        let e = parse_call_event(unknown).unwrap_err();
        assert!(e.to_string().contains("unknown field `queue`"), "{e}");
        let missing = br#"{"call_id":"c1","line_called":"l","started_at":"2024-05-06T01:00:00Z","outcome":"missed"}"#;
        assert!(
            parse_call_event(missing)
                .unwrap_err()
                .to_string()
                .contains("missing field `caller_number`")
        );
        let outcome = br#"{"call_id":"c1","caller_number":"138","line_called":"l","started_at":"2024-05-06T01:00:00Z",
            "outcome":"busy"}"#;
        let e = parse_call_event(outcome).unwrap_err();
        assert!(e.to_string().contains("unknown variant `busy`"), "{e}");
        assert_eq!(e.field(), None);
        assert!(matches!(parse_call_event(b"not json"), Err(PhoneError::Malformed(_))));
    }

    fn outcome() -> impl Strategy<Value = CallOutcome> {
        prop_oneof![
            Just(CallOutcome::Answered),
            Just(CallOutcome::Missed),
            Just(CallOutcome::Abandoned),
            Just(CallOutcome::Voicemail),
        ]
    }

    proptest! {
        /// Whatever the event, the result is a refusal or a request intake accepts.
        #[test]
        fn accepted_events_are_valid_requests(
            call_id in "\\PC{0,20}",
            caller in "[0-9 +()a-z-]{0,16}",
            line in "\\PC{0,10}",
            ivr in proptest::option::of("\\PC{0,10}"),
            outcome in outcome(),
            transcript in proptest::option::of("\\PC{0,40}"),
            voicemail in proptest::option::of("\\PC{0,40}"),
            customer_id in proptest::option::of("[a-zA-Z0-9 -]{0,8}"),
        ) {
            let mut ev = event(outcome);
            ev.call_id = call_id;
            ev.caller_number = caller;
            ev.line_called = line;
            ev.ivr_choice = ivr;
            ev.transcript = transcript;
            ev.voicemail_text = voicemail;
            ev.customer_id = customer_id;
            if let Ok(r) = normalize_call(&ev, at(1, 2, 0)) {
                prop_assert_eq!(r.validate(&["phone".to_owned()]), Ok(()));
            }
        }
    }
}

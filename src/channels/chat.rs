//! Chat channel: one visitor message from a web, app or mini-program chat session to an
//! [`IntakeRequest`].
//!
//! Every message of a session carries `thread_ref = chat:<session_id>`, so intake appends the
//! later messages of a session to the ticket the first one opened; a ticket number typed in the
//! text (`我的工单号是 202405-00012`) is added as `ticket:<number>`.
//!
//! Chat visitors are often anonymous. The intake contract needs a contact, so a visitor with no
//! phone, email or customer id is attributed to the session: `customer_id =
//! chat-visitor:<session_id>`, which keeps the request valid and lets agents answer in the chat.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{digit_count, non_blank, push_refs, ticket_refs};
use crate::contracts::intake::{Attachment, IntakeRequest, MAX_BODY_BYTES, MAX_MESSAGE_BYTES};
use crate::core::customer::{Customer, Tier};

/// The channel name this normaliser produces.
pub const CHANNEL: &str = "chat";

/// Chat platforms the widget runs on.
pub const PLATFORMS: &[&str] = &["web", "app", "mini-program"];

/// Longest session id we accept; it becomes part of a thread reference.
const MAX_SESSION_ID_BYTES: usize = 256;

/// What the chat widget knows about the visitor; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Visitor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
}

/// One message a visitor sent in a chat session (JSON, unknown fields refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub session_id: String,
    /// The chat platform's message id: the idempotency key.
    pub message_id: String,
    pub sent_at: DateTime<Utc>,
    #[serde(default)]
    pub visitor: Visitor,
    /// What the visitor typed; may be empty when the message is only an image or a file.
    #[serde(default)]
    pub text: String,
    /// `web`, `app` or `mini-program`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Files and images the visitor sent, stored by the chat platform (metadata and URL only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// Why a chat message could not become an intake request. The text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The JSON did not decode; serde's message names the missing or unknown field.
    #[error("malformed chat message: {0}")]
    Malformed(String),
    /// `field` is a path such as `visitor.email` or `attachments[1].filename`.
    #[error("field `{field}`: {problem}")]
    Invalid { field: String, problem: String },
}

impl ChatError {
    /// The field the error is about, when it is known.
    pub fn field(&self) -> Option<&str> {
        match self {
            ChatError::Invalid { field, .. } => Some(field),
            ChatError::Malformed(_) => None,
        }
    }
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> ChatError {
    ChatError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Decode a chat message from JSON (for a gateway that does not decode it itself).
pub fn parse_chat_message(json: &[u8]) -> Result<ChatMessage, ChatError> {
    serde_json::from_slice(json).map_err(|e| ChatError::Malformed(e.to_string()))
}

/// Turn a chat message into an intake request for the `chat` channel.
///
/// `received_at` is when the gateway received the message.
pub fn normalize_chat(m: &ChatMessage, received_at: DateTime<Utc>) -> Result<IntakeRequest, ChatError> {
    let session_id = m.session_id.trim();
    if session_id.is_empty() {
        return Err(invalid("session_id", "must not be empty"));
    }
    // The session id becomes one token of thread_ref, which intake splits at whitespace and
    // commas and trims of angle brackets.
    if let Some(bad) = session_id
        .chars()
        .find(|&c| c.is_whitespace() || matches!(c, ',' | '<' | '>'))
    {
        return Err(invalid("session_id", format!("{session_id:?} contains {bad:?}")));
    }
    if session_id.len() > MAX_SESSION_ID_BYTES {
        return Err(invalid(
            "session_id",
            format!("is {} bytes; the limit is {MAX_SESSION_ID_BYTES}", session_id.len()),
        ));
    }
    let message_id = m.message_id.trim();
    if message_id.is_empty() {
        return Err(invalid("message_id", "must not be empty"));
    }
    if message_id.len() > 512 {
        return Err(invalid(
            "message_id",
            format!("is {} bytes; the limit is 512", message_id.len()),
        ));
    }
    if let Some(platform) = &m.platform
        && !PLATFORMS.contains(&platform.trim())
    {
        return Err(invalid(
            "platform",
            format!("{platform:?} is not one of {}", PLATFORMS.join(", ")),
        ));
    }

    let customer = customer(&m.visitor, session_id)?;

    for (i, a) in m.attachments.iter().enumerate() {
        if a.filename.trim().is_empty() {
            return Err(invalid(format!("attachments[{i}].filename"), "must not be empty"));
        }
    }
    // The customer's own words, verbatim.
    let body = m.text.clone();
    if body.trim().is_empty() && m.attachments.is_empty() {
        return Err(invalid("text", "must not be empty (unless attachments are present)"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(invalid(
            "text",
            format!("is {} bytes; the limit is {MAX_BODY_BYTES}", body.len()),
        ));
    }

    let mut refs = vec![format!("chat:{session_id}")];
    push_refs(&mut refs, ticket_refs(&body));

    let request = IntakeRequest {
        channel: CHANNEL.to_owned(),
        channel_message_id: message_id.to_owned(),
        received_at,
        customer,
        subject: None,
        body,
        quoted_history: None,
        thread_ref: Some(refs.join(" ")),
        attachments: m.attachments.clone(),
        submitted_by: None,
        record: None,
    };
    let size = serde_json::to_vec(&request)
        .map_err(|e| ChatError::Malformed(e.to_string()))?
        .len();
    if size > MAX_MESSAGE_BYTES {
        return Err(invalid(
            "attachments",
            format!("the request is {size} bytes encoded; the limit is {MAX_MESSAGE_BYTES}"),
        ));
    }
    Ok(request)
}

/// The visitor as a customer, with the intake contract's contact checks made here so the error
/// names the visitor's field; an anonymous visitor is attributed to the session.
fn customer(v: &Visitor, session_id: &str) -> Result<Customer, ChatError> {
    let email = non_blank(v.email.as_deref());
    if let Some(email) = &email
        && !email.contains('@')
    {
        return Err(invalid("visitor.email", format!("{email:?} is not an email address")));
    }
    let phone = non_blank(v.phone.as_deref());
    if let Some(phone) = &phone
        && digit_count(phone) < 3
    {
        return Err(invalid("visitor.phone", format!("{phone:?} has fewer than 3 digits")));
    }
    let mut customer_id = non_blank(v.customer_id.as_deref());
    if email.is_none() && phone.is_none() && customer_id.is_none() {
        customer_id = Some(format!("chat-visitor:{session_id}"));
    }
    Ok(Customer {
        name: non_blank(v.name.as_deref()),
        phone,
        email,
        customer_id,
        tier: v.tier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 6, 2, 0, s).single().unwrap()
    }

    fn message(text: &str) -> ChatMessage {
        ChatMessage {
            session_id: "s-7f3a9c".into(),
            message_id: "m-000042".into(),
            sent_at: at(0),
            visitor: Visitor::default(),
            text: text.into(),
            platform: Some("mini-program".into()),
            attachments: Vec::new(),
        }
    }

    fn ok(m: &ChatMessage) -> IntakeRequest {
        let r = normalize_chat(m, at(1)).unwrap();
        assert_eq!(r.validate(&["chat".to_owned()]), Ok(()), "{r:?}");
        r
    }

    fn err(m: &ChatMessage) -> ChatError {
        normalize_chat(m, at(1)).unwrap_err()
    }

    #[test]
    fn anonymous_visitor_is_attributed_to_the_session() {
        let r = ok(&message("  你好，小程序下单一直转圈，付不了款  "));
        assert_eq!(r.channel, "chat");
        assert_eq!(r.channel_message_id, "m-000042");
        assert_eq!(r.received_at, at(1));
        assert_eq!(
            r.customer,
            Customer {
                customer_id: Some("chat-visitor:s-7f3a9c".into()),
                ..Customer::default()
            }
        );
        assert_eq!(r.body, "  你好，小程序下单一直转圈，付不了款  ");
        assert_eq!(r.thread_ref.as_deref(), Some("chat:s-7f3a9c"));
        assert_eq!(r.subject, None);
        assert_eq!(r.quoted_history, None);
        assert!(r.attachments.is_empty());
    }

    #[test]
    fn known_visitor_keeps_their_contacts() {
        let mut m = message("I can't log in");
        m.visitor = Visitor {
            name: Some(" Jane ".into()),
            phone: Some("138 0013 8000".into()),
            email: Some("jane@example.com".into()),
            customer_id: Some("C-42".into()),
            tier: Some(Tier::Enterprise),
        };
        let r = ok(&m);
        assert_eq!(
            r.customer,
            Customer {
                name: Some("Jane".into()),
                phone: Some("138 0013 8000".into()),
                email: Some("jane@example.com".into()),
                customer_id: Some("C-42".into()),
                tier: Some(Tier::Enterprise),
            }
        );
    }

    #[test]
    fn a_phone_alone_is_enough_contact() {
        let mut m = message("hi");
        m.visitor.phone = Some("13800138000".into());
        m.visitor.email = Some("  ".into());
        let r = ok(&m);
        assert_eq!(r.customer.customer_id, None);
        assert_eq!(r.customer.email, None);
    }

    #[test]
    fn quoted_ticket_number_joins_the_thread() {
        let r = ok(&message("我的工单号是 202405-00012，还没人联系我"));
        assert_eq!(r.thread_ref.as_deref(), Some("chat:s-7f3a9c ticket:202405-00012"));
    }

    #[test]
    fn image_only_message_is_accepted() {
        let mut m = message("");
        m.attachments = vec![Attachment {
            filename: "截图.jpg".into(),
            content_type: Some("image/jpeg".into()),
            size_bytes: Some(183_204),
            url: Some("https://files.example/chat/s-7f3a9c/1.jpg".into()),
        }];
        let r = ok(&m);
        assert_eq!(r.body, "");
        assert_eq!(r.attachments, m.attachments);
    }

    #[test]
    fn every_platform_and_none() {
        for p in PLATFORMS {
            let mut m = message("hi");
            m.platform = Some((*p).to_owned());
            ok(&m);
        }
        let mut m = message("hi");
        m.platform = None;
        ok(&m);
    }

    /// The field an error must name, and the change to a valid message that causes it.
    type Case = (&'static str, Box<dyn Fn(&mut ChatMessage)>);

    #[test]
    fn every_error_names_its_field() {
        fn big_attachment(i: usize) -> Attachment {
            Attachment {
                filename: format!("{i}-{}", "f".repeat(1000)),
                content_type: None,
                size_bytes: None,
                url: None,
            }
        }
        let cases: Vec<Case> = vec![
            ("session_id", Box::new(|m| m.session_id = " ".into())),
            ("session_id", Box::new(|m| m.session_id = "a b".into())),
            ("session_id", Box::new(|m| m.session_id = "a,b".into())),
            ("session_id", Box::new(|m| m.session_id = "s".repeat(257))),
            ("message_id", Box::new(|m| m.message_id = String::new())),
            ("message_id", Box::new(|m| m.message_id = "m".repeat(513))),
            ("platform", Box::new(|m| m.platform = Some("wechat".into()))),
            (
                "visitor.email",
                Box::new(|m| m.visitor.email = Some("jane.example.com".into())),
            ),
            ("visitor.phone", Box::new(|m| m.visitor.phone = Some("n/a".into()))),
            ("text", Box::new(|m| m.text = " \n ".into())),
            ("text", Box::new(|m| m.text = "字".repeat(MAX_BODY_BYTES / 3 + 1))),
            (
                "attachments[1].filename",
                Box::new(|m| {
                    m.attachments = vec![big_attachment(0), big_attachment(1)];
                    m.attachments[1].filename = " ".into();
                }),
            ),
            (
                "attachments",
                Box::new(|m| m.attachments = (0..300).map(big_attachment).collect()),
            ),
        ];
        for (field, change) in cases {
            let mut m = message("hi");
            change(&mut m);
            let e = err(&m);
            assert_eq!(e.field(), Some(field), "{e}");
            assert!(e.to_string().starts_with(&format!("field `{field}`: ")), "{e}");
        }
    }

    #[test]
    fn error_messages_read_well() {
        let mut m = message("hi");
        m.platform = Some("wechat".into());
        assert_eq!(
            err(&m).to_string(),
            "field `platform`: \"wechat\" is not one of web, app, mini-program"
        );
        let m = message("");
        assert_eq!(
            err(&m).to_string(),
            "field `text`: must not be empty (unless attachments are present)"
        );
    }

    #[test]
    fn json_decoding() {
        let json = r#"{"session_id":"s1","message_id":"m1","sent_at":"2024-05-06T02:00:00Z",
            "visitor":{"name":"访客","tier":"vip"},"text":"在吗？","platform":"web",
            "attachments":[{"filename":"a.png","content_type":"image/png","size_bytes":10,"url":"https://x/a.png"}]}"#;
        let m = parse_chat_message(json.as_bytes()).unwrap();
        let r = ok(&m);
        assert_eq!(r.customer.name.as_deref(), Some("访客"));
        assert_eq!(r.customer.tier, Some(Tier::Vip));
        assert_eq!(r.customer.customer_id.as_deref(), Some("chat-visitor:s1"));
        assert_eq!(r.attachments.len(), 1);
        assert_eq!(parse_chat_message(&serde_json::to_vec(&m).unwrap()).unwrap(), m);
        // Only the required fields.
        let minimal = br#"{"session_id":"s1","message_id":"m1","sent_at":"2024-05-06T02:00:00Z","text":"hi"}"#;
        assert_eq!(ok(&parse_chat_message(minimal).unwrap()).body, "hi");
    }

    #[test]
    fn json_errors_name_the_field() {
        let unknown =
            br#"{"session_id":"s1","message_id":"m1","sent_at":"2024-05-06T02:00:00Z","text":"hi","room":"x"}"#;
        assert!(
            parse_chat_message(unknown)
                .unwrap_err()
                .to_string()
                .contains("unknown field `room`")
        );
        let visitor = br#"{"session_id":"s1","message_id":"m1","sent_at":"2024-05-06T02:00:00Z","text":"hi",
            "visitor":{"openid":"o1"}}"#;
        assert!(
            parse_chat_message(visitor)
                .unwrap_err()
                .to_string()
                .contains("unknown field `openid`")
        );
        let missing = br#"{"session_id":"s1","sent_at":"2024-05-06T02:00:00Z","text":"hi"}"#;
        let e = parse_chat_message(missing).unwrap_err();
        assert!(e.to_string().contains("missing field `message_id`"), "{e}");
        assert_eq!(e.field(), None);
        let when = br#"{"session_id":"s1","message_id":"m1","sent_at":"yesterday","text":"hi"}"#;
        assert!(matches!(parse_chat_message(when), Err(ChatError::Malformed(_))));
    }

    proptest! {
        /// Whatever the message, the result is a refusal or a request intake accepts.
        #[test]
        fn accepted_messages_are_valid_requests(
            session_id in "\\PC{0,12}",
            message_id in "\\PC{0,12}",
            text in "\\PC{0,60}",
            email in proptest::option::of("\\PC{0,12}"),
            phone in proptest::option::of("[0-9a-z +-]{0,12}"),
            customer_id in proptest::option::of("\\PC{0,8}"),
            platform in proptest::option::of("web|app|mini-program|wechat|"),
            files in proptest::collection::vec("\\PC{0,8}", 0..3),
        ) {
            let mut m = message(&text);
            m.session_id = session_id;
            m.message_id = message_id;
            m.visitor = Visitor { email, phone, customer_id, ..Visitor::default() };
            m.platform = platform;
            m.attachments = files
                .into_iter()
                .map(|filename| Attachment { filename, content_type: None, size_bytes: None, url: None })
                .collect();
            if let Ok(r) = normalize_chat(&m, at(1)) {
                prop_assert_eq!(r.validate(&["chat".to_owned()]), Ok(()));
                prop_assert!(r.thread_ref.unwrap_or_default().starts_with("chat:"));
            }
        }
    }
}

//! Email over SMTP (lettre, async on tokio; TLS is rustls on aws-lc-rs with the system's root
//! certificates). A [`Mail`] is one plain-text UTF-8 message with the threading headers that
//! keep a ticket's mails in one conversation in the customer's mail program: its own
//! `Message-ID`, `In-Reply-To` the message it answers and `References` the thread so far.
//!
//! One [`Mailer::send`] is one SMTP session (connect, EHLO, STARTTLS or implicit TLS, AUTH,
//! MAIL, RCPT, DATA, QUIT) within the mailer's timeout; its outcome is an [`Attempt`]: the
//! server's 2xx after DATA is delivered, a 5xx rejected (the address or the message will never
//! be taken), a 4xx, a refused or broken connection, a TLS failure or the deadline retried. A
//! failed login (530, 535) is retried too, though it is a 5xx: it is the mailer's settings that
//! are wrong, not the mail, and the mail should go out once they are fixed.
//!
//! Every mail says `Auto-Submitted: auto-generated` (RFC 3834) unless its headers say otherwise
//! (`auto-replied` for an acknowledgement), so vacation responders do not answer it.

use super::{Attempt, quote};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MessageBuilder};
use lettre::transport::smtp::Error as LettreError;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// One outgoing mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Without angle brackets, e.g. "sb.SLA202612-00001.4.ack@switchboard.local".
    pub message_id: String,
    /// The recipient's address.
    pub to: String,
    pub to_name: Option<String>,
    pub subject: String,
    /// The `text/plain; charset=utf-8` body.
    pub text: String,
    /// Without angle brackets.
    pub in_reply_to: Option<String>,
    /// Without angle brackets, oldest first.
    pub references: Vec<String>,
    /// Extra headers, e.g. ("X-Switchboard-Ticket", number), ("Auto-Submitted", "auto-replied").
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("invalid SMTP URL {url}: {message}")]
    BadUrl { url: String, message: String },
    #[error("invalid from address {from:?}: {message}")]
    BadFrom { from: String, message: String },
}

/// Sends mail through one SMTP server as one sender.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
    /// The server as reasons name it (`smtp://host:port`, no credentials).
    server: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Headers a mail's fields set: an extra header may not replace them.
const OWN_HEADERS: [&str; 11] = [
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "content-type",
    "content-transfer-encoding",
];

impl Mailer {
    /// `url`: `smtp://host:port` (plain, for a local relay), `smtp://host:port?tls=required`
    /// (STARTTLS), `smtps://user:pass@host:465` (implicit TLS); user and password are
    /// percent-decoded. `from`: "Name <addr>" or "addr". `timeout` bounds each whole send.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Mailer, SmtpError> {
        let shown = super::display_url(url);
        let bad_url = |message: String| SmtpError::BadUrl {
            url: shown.clone(),
            message,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad_url(e.to_string()))?;
        if !matches!(parsed.scheme(), "smtp" | "smtps") {
            return Err(bad_url("the scheme must be smtp or smtps".into()));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| bad_url(e.to_string()))?
            .timeout(Some(timeout))
            .build();
        let from_box: Mailbox = from
            .trim()
            .parse()
            .map_err(|e: lettre::address::AddressError| SmtpError::BadFrom {
                from: from.to_owned(),
                message: e.to_string(),
            })?;
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(Mailer {
            transport,
            from: from_box,
            timeout,
            server: format!("{}://{}{port}", parsed.scheme(), parsed.host_str().unwrap_or_default()),
        })
    }

    /// The domain of the from address, for Message-IDs.
    pub fn from_domain(&self) -> &str {
        self.from.email.domain()
    }

    /// The from mailbox as it appears in the `From` header.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Sends one mail: SMTP 2xx after DATA is delivered; 5xx rejected (530 and 535, a failed
    /// login, retried); 4xx, connection and TLS errors and the deadline retried; a malformed
    /// `to` or header rejected without connecting.
    pub async fn send(&self, mail: &Mail) -> Attempt {
        let message = match self.message(mail) {
            Ok(m) => m,
            Err(reason) => return Attempt::Rejected { reason, status: None },
        };
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(response)) => Attempt::Delivered {
                status: Some(u16::from(response.code())),
            },
            Ok(Err(e)) => self.judge(&e),
            Err(_) => Attempt::Retry {
                reason: format!(
                    "sending to {} timed out after {}s",
                    self.server,
                    self.timeout.as_secs_f64()
                ),
                status: None,
                retry_after: None,
            },
        }
    }

    /// The message as it goes on the wire, or why it cannot be built.
    pub fn message(&self, mail: &Mail) -> Result<Message, String> {
        let address: Address = mail
            .to
            .trim()
            .parse()
            .map_err(|e| format!("invalid recipient address {:?}: {e}", short(&mail.to)))?;
        let to = Mailbox::new(mail.to_name.clone().filter(|n| !n.trim().is_empty()), address);
        let mut builder = MessageBuilder::new()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(bracketed(&mail.message_id, "Message-ID")?))
            .header(ContentType::TEXT_PLAIN);
        if let Some(parent) = &mail.in_reply_to {
            builder = builder.in_reply_to(bracketed(parent, "In-Reply-To")?);
        }
        if !mail.references.is_empty() {
            let refs = mail
                .references
                .iter()
                .map(|r| bracketed(r, "References"))
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.references(refs.join(" "));
        }
        let mut auto_submitted = false;
        for (name, value) in &mail.headers {
            let lower = name.to_ascii_lowercase();
            if OWN_HEADERS.contains(&lower.as_str()) {
                return Err(format!(
                    "header {name} is set from the mail's fields, not as an extra header"
                ));
            }
            auto_submitted |= lower == "auto-submitted";
            let header = HeaderName::new_from_ascii(name.clone())
                .map_err(|_| format!("invalid header name {:?}", short(name)))?;
            if value.contains(['\r', '\n']) {
                return Err(format!("header {name} has a line break"));
            }
            builder = builder.raw_header(HeaderValue::new(header, value.clone()));
        }
        if !auto_submitted {
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ));
        }
        builder
            .body(mail.text.clone())
            .map_err(|e| format!("cannot build the mail: {e}"))
    }

    fn judge(&self, e: &LettreError) -> Attempt {
        let status = e.status().map(u16::from);
        let detail = std::error::Error::source(e)
            .map(|s| quote(s.to_string().as_bytes()))
            .unwrap_or_default();
        let with_detail = |what: String| {
            if detail.is_empty() {
                what
            } else {
                format!("{what}: {detail}")
            }
        };
        match status {
            Some(code @ (530 | 535)) => Attempt::Retry {
                reason: with_detail(format!(
                    "SMTP {code} from {}: login refused (check the credentials)",
                    self.server
                )),
                status,
                retry_after: None,
            },
            Some(code) if e.is_permanent() => Attempt::Rejected {
                reason: with_detail(format!("SMTP {code} from {}", self.server)),
                status,
            },
            Some(code) => Attempt::Retry {
                reason: with_detail(format!("SMTP {code} from {}", self.server)),
                status,
                retry_after: None,
            },
            None => {
                let what = if e.is_timeout() {
                    format!("sending to {} timed out", self.server)
                } else if e.is_tls() {
                    format!("TLS with {} failed", self.server)
                } else if e.is_response() {
                    format!("{} answered something that is not SMTP", self.server)
                } else {
                    format!("cannot send through {}", self.server)
                };
                Attempt::Retry {
                    reason: with_detail(what),
                    status: None,
                    retry_after: None,
                }
            }
        }
    }
}

/// `<id>` for a header, refusing an id that would break the header (empty, spaces, brackets,
/// non-ASCII). Brackets given anyway are taken off first.
fn bracketed(id: &str, header: &str) -> Result<String, String> {
    let bare = id.trim().trim_start_matches('<').trim_end_matches('>');
    let valid = !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    if valid {
        Ok(format!("<{bare}>"))
    } else {
        Err(format!("invalid {header} {:?}", short(id)))
    }
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    fn mailer() -> Mailer {
        Mailer::new(
            "smtp://127.0.0.1:2525",
            "Switchboard 客服 <support@switchboard.local>",
            Duration::from_secs(5),
        )
        .unwrap()
    }

    fn mail() -> Mail {
        Mail {
            message_id: "sb.SLA202612-00001.4.ack@switchboard.local".into(),
            to: "wang@example.com".into(),
            to_name: Some("王小明".into()),
            subject: "您的工单 SLA202612-00001 已受理".into(),
            text: "您好，我们已收到您的请求。\n工单号：SLA202612-00001\n".into(),
            in_reply_to: Some("CAFxyz@mail.example.com".into()),
            references: vec!["root@mail.example.com".into(), "CAFxyz@mail.example.com".into()],
            headers: vec![("X-Switchboard-Ticket".into(), "SLA202612-00001".into())],
        }
    }

    fn parsed(m: &Message) -> (Vec<u8>, String) {
        let raw = m.formatted();
        let text = String::from_utf8_lossy(&raw).into_owned();
        (raw, text)
    }

    #[test]
    fn urls_and_senders_are_checked() {
        assert_eq!(mailer().from_domain(), "switchboard.local");
        for ok in [
            "smtp://127.0.0.1:25",
            "smtp://relay.example.com:587?tls=required",
            "smtps://user:p%40ss@smtp.example.com:465",
        ] {
            Mailer::new(ok, "a@b.example", Duration::from_secs(1)).unwrap();
        }
        for bad in ["http://x", "smtp://", "not a url", "smtp://x?tls=sometimes"] {
            assert!(
                matches!(
                    Mailer::new(bad, "a@b.example", Duration::from_secs(1)),
                    Err(SmtpError::BadUrl { .. })
                ),
                "{bad}"
            );
        }
        let err = Mailer::new("smtps://user:hunter2@h:465?tls=x", "x", Duration::from_secs(1)).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(matches!(
            Mailer::new("smtp://h:25", "not an address", Duration::from_secs(1)),
            Err(SmtpError::BadFrom { .. })
        ));
        let m = Mailer::new("smtp://h:25", "ops@example.org", Duration::from_secs(1)).unwrap();
        assert_eq!(m.from_domain(), "example.org");
    }

    #[test]
    fn a_mail_carries_its_threading_headers_and_chinese_text() {
        let m = mailer().message(&mail()).unwrap();
        let (raw, text) = parsed(&m);
        assert!(
            text.contains("Message-ID: <sb.SLA202612-00001.4.ack@switchboard.local>\r\n"),
            "{text}"
        );
        assert!(text.contains("In-Reply-To: <CAFxyz@mail.example.com>\r\n"), "{text}");
        assert!(
            text.contains("References: <root@mail.example.com> <CAFxyz@mail.example.com>\r\n"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-generated\r\n"), "{text}");
        assert!(text.contains("X-Switchboard-Ticket: SLA202612-00001\r\n"), "{text}");
        assert!(text.contains("Date: "), "{text}");
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(parsed.subject(), Some("您的工单 SLA202612-00001 已受理"));
        assert_eq!(
            parsed.body_text(0).as_deref().map(|t| t.replace("\r\n", "\n")),
            Some("您好，我们已收到您的请求。\n工单号：SLA202612-00001\n".to_owned())
        );
        let to = parsed.to().and_then(|a| a.first()).unwrap();
        assert_eq!(to.name(), Some("王小明"));
        assert_eq!(to.address(), Some("wang@example.com"));
        let from = parsed.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.name(), Some("Switchboard 客服"));
        assert!(parsed.content_type().is_some_and(|c| {
            c.ctype() == "text"
                && c.subtype() == Some("plain")
                && c.attribute("charset")
                    .is_some_and(|cs| cs.eq_ignore_ascii_case("utf-8"))
        }));
    }

    #[test]
    fn a_given_auto_submitted_replaces_the_default() {
        let mut m = mail();
        m.headers.push(("Auto-Submitted".into(), "auto-replied".into()));
        let (_, text) = parsed(&mailer().message(&m).unwrap());
        assert!(text.contains("Auto-Submitted: auto-replied\r\n"), "{text}");
        assert!(!text.contains("auto-generated"), "{text}");
    }

    #[test]
    fn malformed_mails_are_refused_before_sending() {
        let refuse = |change: &dyn Fn(&mut Mail), what: &str| {
            let mut m = mail();
            change(&mut m);
            let err = mailer().message(&m).unwrap_err();
            assert!(err.contains(what), "{err}");
        };
        refuse(&|m| m.to = "not an address".into(), "invalid recipient address");
        refuse(&|m| m.to = "a@b\r\nBcc: x@y".into(), "invalid recipient address");
        refuse(&|m| m.message_id = "has space@x".into(), "invalid Message-ID");
        refuse(&|m| m.message_id = String::new(), "invalid Message-ID");
        refuse(&|m| m.in_reply_to = Some("a>b".into()), "invalid In-Reply-To");
        refuse(&|m| m.references.push("x y".into()), "invalid References");
        refuse(
            &|m| m.headers.push(("Bcc".into(), "x@y".into())),
            "set from the mail's fields",
        );
        refuse(&|m| m.headers.push(("X Bad".into(), "v".into())), "invalid header name");
        refuse(
            &|m| m.headers.push(("X-Evil".into(), "a\r\nBcc: x@y".into())),
            "line break",
        );
        // Brackets given anyway are not doubled.
        let mut m = mail();
        m.message_id = "<a@b>".into();
        let (_, text) = parsed(&mailer().message(&m).unwrap());
        assert!(text.contains("Message-ID: <a@b>\r\n"), "{text}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_and_a_bad_address_rejected() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let m = Mailer::new(
            &format!("smtp://127.0.0.1:{port}"),
            "a@b.example",
            Duration::from_secs(5),
        )
        .unwrap();
        let a = m.send(&mail()).await;
        assert!(
            matches!(&a, Attempt::Retry { status: None, reason, .. } if reason.contains(&format!("smtp://127.0.0.1:{port}"))),
            "{a:?}"
        );
        let mut bad = mail();
        bad.to = "nobody".into();
        assert!(matches!(m.send(&bad).await, Attempt::Rejected { status: None, .. }));
    }
}

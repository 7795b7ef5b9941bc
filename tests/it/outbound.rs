//! The outbound transports against real servers on this machine: email through aiosmtpd
//! (`common::smtp`), signed webhooks to an HTTP receiver (`common::receiver`), and a port
//! nobody listens on. No broker or database is involved: a transport only sends.

use crate::common;

use chrono::Utc;
use common::receiver::Receiver;
use common::smtp::SmtpSink;
use std::time::Duration;
use switchboard::outbound::Attempt;
use switchboard::outbound::client::http_client;
use switchboard::outbound::post::{SignedPost, post_signed};
use switchboard::outbound::signing::new_secret;
use switchboard::outbound::smtp::{Mail, Mailer};

fn ack_mail(to: &str) -> Mail {
    Mail {
        message_id: "sb.SLA202612-00001.4.ack@switchboard.local".into(),
        to: to.into(),
        to_name: Some("王小明".into()),
        subject: "回复：您的工单 SLA202612-00001 已受理".into(),
        text: "王先生您好：\n\n我们已收到您关于退款的请求，工单号 SLA202612-00001。\n客服将在 4 小时内答复。\n".into(),
        in_reply_to: Some("CAF=abc123@mail.example.com".into()),
        references: vec!["root.1@mail.example.com".into(), "CAF=abc123@mail.example.com".into()],
        headers: vec![
            ("X-Switchboard-Ticket".into(), "SLA202612-00001".into()),
            ("Auto-Submitted".into(), "auto-replied".into()),
        ],
    }
}

#[tokio::test]
async fn a_chinese_mail_arrives_with_its_threading_headers() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(
        &sink.url(),
        "Switchboard 客服 <support@switchboard.local>",
        Duration::from_secs(10),
    )
    .expect("mailer");
    assert_eq!(mailer.from_domain(), "switchboard.local");

    let mail = ack_mail("wang@example.com");
    let attempt = mailer.send(&mail).await;
    assert_eq!(attempt, Attempt::Delivered { status: Some(250) });

    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.subject.as_deref(), Some(mail.subject.as_str()));
    assert_eq!(m.to, vec!["wang@example.com".to_owned()]);
    assert_eq!(
        m.message_id.as_deref(),
        Some("sb.SLA202612-00001.4.ack@switchboard.local")
    );
    assert_eq!(m.in_reply_to, vec!["CAF=abc123@mail.example.com".to_owned()]);
    assert_eq!(
        m.references,
        vec![
            "root.1@mail.example.com".to_owned(),
            "CAF=abc123@mail.example.com".to_owned()
        ]
    );
    assert_eq!(
        m.text.as_deref().map(|t| t.replace("\r\n", "\n")),
        Some(mail.text.clone()),
        "the Chinese body survives the trip"
    );
    assert_eq!(
        m.header("Message-ID").as_deref(),
        Some("<sb.SLA202612-00001.4.ack@switchboard.local>")
    );
    assert_eq!(m.header("Auto-Submitted").as_deref(), Some("auto-replied"));
    assert_eq!(m.header("X-Switchboard-Ticket").as_deref(), Some("SLA202612-00001"));
    assert!(m.header("Date").is_some(), "a Date header");
    let subject = m.header("Subject").unwrap_or_default();
    assert!(
        subject.is_ascii() && subject.contains("=?utf-8?"),
        "RFC 2047: {subject}"
    );
    let content_type = m.header("Content-Type").unwrap_or_default().to_ascii_lowercase();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("charset=utf-8"),
        "{content_type}"
    );
}

#[tokio::test]
async fn smtp_refusals_are_judged_by_their_class() {
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&sink.url(), "support@switchboard.local", Duration::from_secs(10)).expect("mailer");

    let permanent = mailer.send(&ack_mail("reject@example.com")).await;
    assert!(
        matches!(&permanent, Attempt::Rejected { status: Some(550), reason } if reason.contains("SMTP 550")),
        "{permanent:?}"
    );
    let transient = mailer.send(&ack_mail("later@example.com")).await;
    assert!(
        matches!(&transient, Attempt::Retry { status: Some(451), .. }),
        "{transient:?}"
    );
    let malformed = mailer.send(&ack_mail("not-an-address")).await;
    assert!(
        matches!(&malformed, Attempt::Rejected { status: None, .. }),
        "{malformed:?}"
    );
    // Nothing of these three was stored; the next good one is.
    assert_eq!(
        mailer.send(&ack_mail("ok@example.com")).await,
        Attempt::Delivered { status: Some(250) }
    );
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await.len(), 1);
}

#[tokio::test]
async fn a_signed_post_is_retried_until_the_receiver_takes_it() {
    let secret = new_secret();
    let receiver = Receiver::start(Some(secret.clone()), 2).await;
    let client = http_client(Duration::from_secs(10)).expect("client");
    let body = r#"{"type":"ticket.assigned","data":{"number":"SLA202612-00001","subject":"退款"}}"#.as_bytes();
    let url = receiver.url("/hooks/tickets?token=abc");
    let extra = [("x-switchboard-event", "ticket.assigned".to_owned())];
    let post = SignedPost {
        url: &url,
        msg_id: "msg_SLA202612-00001.4",
        secret: Some(&secret),
        body,
        content_type: "application/json",
        extra_headers: &extra,
    };

    for n in 1..=2 {
        let attempt = post_signed(&client, &post, Utc::now()).await;
        assert!(
            matches!(&attempt, Attempt::Retry { status: Some(500), reason, .. }
                if reason.starts_with("HTTP 500 from http://127.0.0.1:") && !reason.contains("token=abc")),
            "attempt {n}: {attempt:?}"
        );
    }
    let attempt = post_signed(&client, &post, Utc::now()).await;
    assert_eq!(attempt, Attempt::Delivered { status: Some(204) });

    let hits = receiver.hits();
    assert_eq!(hits.len(), 3);
    assert!(
        hits.iter().all(|h| h.verified),
        "every attempt carried a valid signature: {hits:#?}"
    );
    assert!(
        hits.iter()
            .all(|h| h.id.as_deref() == Some("msg_SLA202612-00001.4") && h.body == body && h.path == "/hooks/tickets")
    );
    assert_eq!(hits.iter().map(|h| h.answered).collect::<Vec<_>>(), vec![500, 500, 204]);
    assert_eq!(hits[2].content_type.as_deref(), Some("application/json"));
    assert!(hits[2].signature.as_deref().is_some_and(|s| s.starts_with("v1,")));

    // Without a secret: no signature, and so nothing for the receiver to verify.
    let plain = SignedPost {
        secret: None,
        msg_id: "msg_plain",
        ..post
    };
    assert_eq!(
        post_signed(&client, &plain, Utc::now()).await,
        Attempt::Retry {
            reason: format!("HTTP 500 from {}", receiver.url("/hooks/tickets")),
            status: Some(500),
            retry_after: None
        }
    );
    let last = receiver.hits().pop().expect("a hit");
    assert!(last.signature.is_none() && !last.verified && last.id.as_deref() == Some("msg_plain"));
}

#[tokio::test]
async fn a_gone_endpoint_and_a_closed_port() {
    let receiver = Receiver::start(None, 0).await;
    receiver.set_status(410);
    let client = http_client(Duration::from_secs(5)).expect("client");
    let url = receiver.url("/old");
    let post = SignedPost {
        url: &url,
        msg_id: "msg_1",
        secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        body: b"{}",
        content_type: "application/json",
        extra_headers: &[],
    };
    assert_eq!(
        post_signed(&client, &post, Utc::now()).await,
        Attempt::Gone {
            reason: format!("HTTP 410 from {url}")
        }
    );
    receiver.set_status(404);
    assert!(matches!(
        post_signed(&client, &post, Utc::now()).await,
        Attempt::Rejected { status: Some(404), .. }
    ));

    let closed = format!("http://127.0.0.1:{}/hook", common::process::free_port());
    let refused = post_signed(&client, &SignedPost { url: &closed, ..post }, Utc::now()).await;
    assert!(
        matches!(&refused, Attempt::Retry { status: None, retry_after: None, reason }
            if reason.starts_with(&format!("cannot connect to {closed}"))),
        "{refused:?}"
    );
}

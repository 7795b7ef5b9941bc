//! Group-chat robots: a notification with a title and a text, posted to a WeCom (企业微信),
//! DingTalk (钉钉) or Feishu (飞书) group's custom-robot webhook in its documented format.
//!
//! | robot | body | signature (with a secret) | success |
//! |---|---|---|---|
//! | WeCom | `{"msgtype":"markdown","markdown":{"content":"**title**\ntext"}}` | none (the key is in the URL) | `errcode` 0 |
//! | DingTalk | `{"msgtype":"markdown","markdown":{"title":…,"text":"#### title\n\ntext"}}` | `&timestamp=<ms>&sign=<urlencoded base64 HMAC-SHA256(key=secret, "{ms}\n{secret}")>` in the URL | `errcode` 0 |
//! | Feishu | `{"msg_type":"text","content":{"text":"title\ntext"}}` | `timestamp` (seconds, a string) and `sign` = base64 HMAC-SHA256(key="{ts}\n{secret}", empty message) in the body | `code` 0 (legacy `StatusCode` 0) |
//!
//! These APIs answer HTTP 200 with an error code in the body, so the verdict reads the body:
//! a rate limit (WeCom 45009, DingTalk 130101, Feishu 9499 and 11232) is retried, any other
//! non-zero code is rejected (a wrong key, a bad signature, a keyword the robot requires). A
//! robot's URL holds its token (`?key=`, `?access_token=`, `/hook/<token>`), so reasons name
//! only the robot and its host.

use super::post::{check_url, post};
use super::{Attempt, judge_status, quote};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Robot {
    /// `we_com` (also read as `wecom`).
    #[serde(alias = "wecom")]
    WeCom,
    /// `ding_talk` (also read as `dingtalk`).
    #[serde(alias = "dingtalk")]
    DingTalk,
    Feishu,
}

impl Robot {
    pub fn label(self) -> &'static str {
        match self {
            Robot::WeCom => "WeCom",
            Robot::DingTalk => "DingTalk",
            Robot::Feishu => "Feishu",
        }
    }

    /// The error codes that mean "too many messages, later".
    fn rate_limited(self, code: i64) -> bool {
        match self {
            Robot::WeCom => code == 45009,
            Robot::DingTalk => code == 130101,
            Robot::Feishu => code == 9499 || code == 11232,
        }
    }
}

/// WeCom refuses markdown content over 4096 bytes (UTF-8).
const WECOM_MAX_CONTENT: usize = 4096;
/// DingTalk and Feishu take far more; a ticket notification is short, but a runaway text
/// should not be refused whole.
const MAX_TEXT: usize = 16 * 1024;

/// `text` cut to at most `max` bytes on a character boundary, with "…" when cut.
fn clip(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let ellipsis = "…";
    let mut end = max.saturating_sub(ellipsis.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &text[..end])
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// DingTalk's `sign`: base64 of HMAC-SHA256 over "{timestamp_ms}\n{secret}" keyed by the
/// secret (URL-encoded when it is put in the query).
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    STANDARD.encode(hmac_sha256(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    ))
}

/// Feishu's `sign`: base64 of HMAC-SHA256 keyed by "{timestamp}\n{secret}" over nothing.
pub fn feishu_sign(secret: &str, timestamp_s: i64) -> String {
    STANDARD.encode(hmac_sha256(format!("{timestamp_s}\n{secret}").as_bytes(), b""))
}

/// The request body for a markdown/text notification with a title and text.
pub fn payload(robot: Robot, title: &str, text: &str, secret: Option<&str>, now: DateTime<Utc>) -> Value {
    match robot {
        Robot::WeCom => json!({
            "msgtype": "markdown",
            "markdown": {"content": clip(format!("**{title}**\n{text}"), WECOM_MAX_CONTENT)},
        }),
        Robot::DingTalk => json!({
            "msgtype": "markdown",
            "markdown": {
                "title": title,
                // The title is only the notification's preview: the message shows the text.
                "text": clip(format!("#### {title}\n\n{text}"), MAX_TEXT),
            },
        }),
        Robot::Feishu => {
            let mut body = json!({
                "msg_type": "text",
                "content": {"text": clip(format!("{title}\n{text}"), MAX_TEXT)},
            });
            if let (Some(secret), Some(fields)) = (secret, body.as_object_mut()) {
                let ts = now.timestamp();
                fields.insert("timestamp".into(), Value::String(ts.to_string()));
                fields.insert("sign".into(), Value::String(feishu_sign(secret, ts)));
            }
            body
        }
    }
}

/// The URL to POST to (DingTalk's signing adds `&timestamp=…&sign=…` to the query when a
/// secret is set). A URL that does not parse is returned as it is ([`send`] rejects it).
pub fn url(robot: Robot, url: &str, secret: Option<&str>, now: DateTime<Utc>) -> String {
    match (robot, secret) {
        (Robot::DingTalk, Some(secret)) => match reqwest::Url::parse(url) {
            Ok(mut u) => {
                let ts = now.timestamp_millis();
                u.query_pairs_mut()
                    .append_pair("timestamp", &ts.to_string())
                    .append_pair("sign", &dingtalk_sign(secret, ts));
                u.to_string()
            }
            Err(_) => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// The robot's error code and message from its answer, if the answer has one.
fn code_of(robot: Robot, body: &[u8]) -> Option<(i64, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let field = |code: &str, msg: &str| {
        let c = v.get(code)?.as_i64()?;
        let m = v.get(msg).and_then(Value::as_str).unwrap_or_default();
        Some((c, quote(m.as_bytes())))
    };
    match robot {
        Robot::WeCom | Robot::DingTalk => field("errcode", "errmsg"),
        Robot::Feishu => field("code", "msg").or_else(|| field("StatusCode", "StatusMessage")),
    }
}

fn judge(robot: Robot, status: u16, retry_after: Option<std::time::Duration>, whom: &str, body: &[u8]) -> Attempt {
    let code = code_of(robot, body);
    if let Some((c, msg)) = &code
        && robot.rate_limited(*c)
    {
        return Attempt::Retry {
            reason: format!("{whom} is rate-limited: code {c}: {msg}"),
            status: Some(status),
            retry_after: retry_after.map(|d| d.min(super::MAX_RETRY_AFTER)),
        };
    }
    if !(200..300).contains(&status) {
        return judge_status(status, retry_after, whom, body);
    }
    match code {
        Some((0, _)) => Attempt::Delivered { status: Some(status) },
        Some((c, msg)) => Attempt::Rejected {
            reason: format!("{whom} refused the message: code {c}: {msg}"),
            status: Some(status),
        },
        None => {
            let field = match robot {
                Robot::Feishu => "code",
                Robot::WeCom | Robot::DingTalk => "errcode",
            };
            Attempt::Rejected {
                reason: format!("HTTP {status} from {whom} without an {field}: {}", quote(body)),
                status: Some(status),
            }
        }
    }
}

/// Judges the robot's answer: these APIs answer HTTP 200 with an error code in the body
/// (WeCom/DingTalk `errcode` 0 = ok; Feishu `code` 0 = ok, or legacy `StatusCode` 0).
pub fn verdict(robot: Robot, status: u16, body: &[u8]) -> Attempt {
    judge(robot, status, None, &format!("the {} robot", robot.label()), body)
}

/// Sends one notification to a robot and judges the answer.
pub async fn send(
    client: &reqwest::Client,
    robot: Robot,
    url: &str,
    secret: Option<&str>,
    title: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Attempt {
    let target = match check_url(&self::url(robot, url, secret, now)) {
        Ok(u) => u,
        Err(Attempt::Rejected { status, .. }) => {
            // The URL holds the robot's token: name the robot, not the URL.
            return Attempt::Rejected {
                reason: format!("invalid {} robot URL", robot.label()),
                status,
            };
        }
        Err(other) => return other,
    };
    let whom = format!(
        "the {} robot at {}",
        robot.label(),
        target.host_str().unwrap_or_default()
    );
    let body = payload(robot, title, text, secret, now).to_string();
    let headers = [("content-type", "application/json; charset=utf-8".to_owned())];
    match post(client, target, &headers, body.as_bytes(), &whom, now).await {
        Ok(answer) => match answer.body_error {
            // The status alone does not tell whether a robot took it.
            Some(e) if (200..300).contains(&answer.status) => Attempt::Retry {
                reason: e,
                status: Some(answer.status),
                retry_after: None,
            },
            _ => judge(robot, answer.status, answer.retry_after, &whom, &answer.body),
        },
        Err(attempt) => attempt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_599_360_473_123).unwrap()
    }

    #[test]
    fn wecom_sends_markdown_content() {
        let p = payload(
            Robot::WeCom,
            "SLA 告警",
            "工单 **SLA202612-00001** 即将超时",
            Some("x"),
            now(),
        );
        assert_eq!(
            p,
            json!({"msgtype": "markdown", "markdown": {"content": "**SLA 告警**\n工单 **SLA202612-00001** 即将超时"}})
        );
        let long = payload(Robot::WeCom, "t", &"长".repeat(3000), None, now());
        let content = long["markdown"]["content"].as_str().unwrap();
        assert!(content.len() <= WECOM_MAX_CONTENT && content.ends_with('…'));
    }

    #[test]
    fn dingtalk_sends_markdown_with_a_title() {
        let p = payload(Robot::DingTalk, "SLA 告警", "工单即将超时", Some("x"), now());
        assert_eq!(
            p,
            json!({"msgtype": "markdown", "markdown": {"title": "SLA 告警", "text": "#### SLA 告警\n\n工单即将超时"}})
        );
    }

    #[test]
    fn feishu_sends_text_and_signs_in_the_body() {
        let plain = payload(Robot::Feishu, "SLA 告警", "工单即将超时", None, now());
        assert_eq!(
            plain,
            json!({"msg_type": "text", "content": {"text": "SLA 告警\n工单即将超时"}})
        );
        let signed = payload(Robot::Feishu, "SLA 告警", "工单即将超时", Some("demo-secret"), now());
        assert_eq!(signed["timestamp"], "1599360473");
        assert_eq!(signed["sign"], feishu_sign("demo-secret", 1_599_360_473));
        assert_eq!(signed["content"], plain["content"]);
    }

    #[test]
    fn signatures_match_the_documented_algorithms() {
        // Computed independently: python3 -c 'import hmac,hashlib,base64;
        //   print(base64.b64encode(hmac.new(b"1599360473\ndemo-secret", b"", hashlib.sha256).digest()))'
        assert_eq!(
            feishu_sign("demo-secret", 1_599_360_473),
            "3/MaVZ8JLIy4TUG+7KSFJqvUkTKd+HWY8g+56DZWq8s="
        );
        // … and hmac.new(b"SECdemo", b"1599360473123\nSECdemo", hashlib.sha256).
        assert_eq!(
            dingtalk_sign("SECdemo", 1_599_360_473_123),
            "1HQs9f3cSAHzovKqY78he1KVa4lpHx38oe3kOWE08vc="
        );
    }

    #[test]
    fn dingtalk_signs_in_the_url_and_the_others_leave_it() {
        let base = "https://oapi.dingtalk.com/robot/send?access_token=abc";
        let signed = url(Robot::DingTalk, base, Some("SECdemo"), now());
        let sign = dingtalk_sign("SECdemo", 1_599_360_473_123);
        let encoded: String = url_encode(&sign);
        assert_eq!(signed, format!("{base}&timestamp=1599360473123&sign={encoded}"));
        assert_eq!(url(Robot::DingTalk, base, None, now()), base);
        let wecom = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k";
        assert_eq!(url(Robot::WeCom, wecom, Some("s"), now()), wecom);
        let feishu = "https://open.feishu.cn/open-apis/bot/v2/hook/t";
        assert_eq!(url(Robot::Feishu, feishu, Some("s"), now()), feishu);
    }

    fn url_encode(s: &str) -> String {
        s.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
    }

    #[test]
    fn answers_are_judged_by_their_codes() {
        let ok = |a: Attempt| a == Attempt::Delivered { status: Some(200) };
        assert!(ok(verdict(Robot::WeCom, 200, br#"{"errcode":0,"errmsg":"ok"}"#)));
        assert!(ok(verdict(Robot::DingTalk, 200, br#"{"errcode":0,"errmsg":"ok"}"#)));
        assert!(ok(verdict(
            Robot::Feishu,
            200,
            br#"{"code":0,"msg":"success","data":{}}"#
        )));
        assert!(ok(verdict(
            Robot::Feishu,
            200,
            br#"{"Extra":null,"StatusCode":0,"StatusMessage":"success"}"#
        )));

        let retry = |a: &Attempt| matches!(a, Attempt::Retry { .. });
        for (robot, body) in [
            (
                Robot::WeCom,
                &br#"{"errcode":45009,"errmsg":"api freq out of limit"}"#[..],
            ),
            (Robot::DingTalk, br#"{"errcode":130101,"errmsg":"send too fast"}"#),
            (Robot::Feishu, br#"{"code":9499,"msg":"too many request"}"#),
            (Robot::Feishu, br#"{"code":11232,"msg":"frequency limited"}"#),
        ] {
            let a = verdict(robot, 200, body);
            assert!(retry(&a), "{robot:?}: {a:?}");
            assert!(a.reason().contains("rate-limited"), "{a:?}");
        }

        let a = verdict(
            Robot::WeCom,
            200,
            br#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
        );
        assert_eq!(
            a,
            Attempt::Rejected {
                reason: "the WeCom robot refused the message: code 93000: invalid webhook url".into(),
                status: Some(200)
            }
        );
        let a = verdict(Robot::DingTalk, 200, br#"{"errcode":310000,"errmsg":"sign not match"}"#);
        assert!(matches!(a, Attempt::Rejected { .. }), "{a:?}");
        let a = verdict(
            Robot::Feishu,
            200,
            br#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
        );
        assert!(matches!(a, Attempt::Rejected { .. }), "{a:?}");
        // The error code is in the body, not in `errcode` where WeCom puts it.
        let a = verdict(Robot::Feishu, 200, br#"{"errcode":0}"#);
        assert!(
            matches!(&a, Attempt::Rejected { reason, .. } if reason.contains("without a")),
            "{a:?}"
        );
        let a = verdict(Robot::WeCom, 200, b"<html>ok</html>");
        assert!(matches!(a, Attempt::Rejected { .. }), "{a:?}");

        // HTTP statuses still count.
        assert!(retry(&verdict(Robot::WeCom, 502, b"bad gateway")));
        assert!(matches!(
            verdict(Robot::Feishu, 404, b""),
            Attempt::Rejected { status: Some(404), .. }
        ));
        assert!(retry(&verdict(
            Robot::Feishu,
            400,
            br#"{"code":11232,"msg":"frequency limited"}"#
        )));
    }

    #[tokio::test]
    async fn a_bad_url_is_rejected_without_naming_its_token() {
        let client = super::super::client::http_client(std::time::Duration::from_secs(5)).unwrap();
        let a = send(&client, Robot::WeCom, "ftp://x/?key=SECRET", None, "t", "x", now()).await;
        assert_eq!(
            a,
            Attempt::Rejected {
                reason: "invalid WeCom robot URL".into(),
                status: None
            }
        );
    }

    #[test]
    fn robots_are_named_in_snake_case() {
        assert_eq!(serde_json::to_value(Robot::WeCom).unwrap(), "we_com");
        assert_eq!(serde_json::to_value(Robot::DingTalk).unwrap(), "ding_talk");
        assert_eq!(serde_json::from_value::<Robot>(json!("feishu")).unwrap(), Robot::Feishu);
        assert_eq!(serde_json::from_value::<Robot>(json!("wecom")).unwrap(), Robot::WeCom);
        assert_eq!(
            serde_json::from_value::<Robot>(json!("dingtalk")).unwrap(),
            Robot::DingTalk
        );
    }
}

//! The email normaliser's unit and property tests, on real messages from `tests/fixtures/email`.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 6, 1, 2, 3).single().unwrap_or_default()
}

/// Parse, and hold every accepted request to the intake contract.
fn parse(raw: &[u8]) -> Result<IntakeRequest, EmailError> {
    let result = parse_email(raw, at());
    if let Ok(request) = &result {
        assert_eq!(request.validate(&["email".to_owned()]), Ok(()), "{request:?}");
        let encoded = serde_json::to_vec(request).unwrap();
        assert!(encoded.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(
            IntakeRequest::decode(&encoded, &["email".to_owned()]).as_ref(),
            Ok(request)
        );
    }
    result
}

fn ok(raw: &[u8]) -> IntakeRequest {
    parse(raw).unwrap()
}

fn att(filename: &str, content_type: &str, size: u64) -> Attachment {
    Attachment {
        filename: filename.to_owned(),
        content_type: Some(content_type.to_owned()),
        size_bytes: Some(size),
        url: None,
    }
}

const ALTERNATIVE_UTF8: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/alternative_utf8.eml"
));
const GB2312_BASE64: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/gb2312_base64.eml"
));
const GBK_QP: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/email/gbk_qp.eml"));
const BIG5_SUBJECT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/big5_subject.eml"
));
const HTML_ONLY: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/html_only.eml"
));
const MIXED_ATTACHMENTS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/mixed_attachments.eml"
));
const REPLY_ENGLISH: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/reply_english.eml"
));
const QQ_REPLY_ZH: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/qq_reply_zh.eml"
));
const FOXMAIL_REPLY_ZH: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/foxmail_reply_zh.eml"
));
const TICKET_SUBJECT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/ticket_subject.eml"
));
const OUTLOOK_REPLY: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/outlook_reply.eml"
));
const TRUNCATED_MULTIPART: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/truncated_multipart.eml"
));
const NO_HEADERS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/no_headers.eml"
));
const MISSING_MESSAGE_ID: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/missing_message_id.eml"
));
const GARBAGE: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/email/garbage.eml"));
const UNDECLARED_GBK: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/email/undeclared_gbk.eml"
));

const FIXTURES: &[&[u8]] = &[
    ALTERNATIVE_UTF8,
    GB2312_BASE64,
    GBK_QP,
    BIG5_SUBJECT,
    HTML_ONLY,
    MIXED_ATTACHMENTS,
    REPLY_ENGLISH,
    QQ_REPLY_ZH,
    FOXMAIL_REPLY_ZH,
    TICKET_SUBJECT,
    OUTLOOK_REPLY,
    TRUNCATED_MULTIPART,
    NO_HEADERS,
    MISSING_MESSAGE_ID,
    GARBAGE,
    UNDECLARED_GBK,
];

#[test]
fn multipart_alternative_utf8_prefers_plain_text_and_keeps_signature() {
    let r = ok(ALTERNATIVE_UTF8);
    assert_eq!(r.channel, "email");
    assert_eq!(r.channel_message_id, "3f2c9a1e-8b7d-4c1a-9e55-1d2f3a4b5c6d@example.com");
    assert_eq!(r.received_at, at());
    assert_eq!(
        r.customer,
        Customer {
            name: Some("张三".into()),
            email: Some("zhangsan@example.com".into()),
            ..Customer::default()
        }
    );
    assert_eq!(r.subject.as_deref(), Some("订单系统无法下单，支付失败"));
    assert_eq!(
        r.body,
        "你好，\n\n我们的订单系统从今天上午 9 点开始无法下单，页面提示“支付失败，请稍后重试”。\n\
         影响了所有门店，请尽快处理！\n\n订单号：SO-20240506-0193\n\n-- \n张三\n某某科技有限公司 IT 部"
    );
    assert_eq!(r.quoted_history, None);
    assert_eq!(r.thread_ref, None);
    assert!(r.attachments.is_empty());
}

#[test]
fn gb2312_base64_subject_from_and_body() {
    let r = ok(GB2312_BASE64);
    assert_eq!(
        r.channel_message_id,
        "6b3c1f2a.1a2b.18f5a3c9d11.Coremail.lisi@163.example"
    );
    assert_eq!(r.customer.name.as_deref(), Some("李四"));
    assert_eq!(r.customer.email.as_deref(), Some("lisi@163.example"));
    assert_eq!(r.subject.as_deref(), Some("发票开具咨询"));
    assert_eq!(
        r.body,
        "您好：\n\n我司上个月的订单需要开具增值税专用发票，请问需要提供哪些资料？\n开票信息如下：\n\
         单位名称：某某贸易有限公司\n纳税人识别号：91310000MA1FL0XXXX\n\n谢谢！\n李四"
    );
    assert_eq!(r.quoted_history, None);
    assert_eq!(r.thread_ref, None);
}

#[test]
fn gbk_quoted_printable_with_a_gbk_only_character() {
    // 喆 is in GBK but not in GB2312; the Q-encoded From and the QP body both carry it.
    let r = ok(GBK_QP);
    assert_eq!(r.channel_message_id, "20240508102145.A1B2C3@example.net");
    assert_eq!(r.customer.name.as_deref(), Some("张喆"));
    assert_eq!(r.customer.email.as_deref(), Some("zhangzhe@example.net"));
    assert_eq!(r.subject.as_deref(), Some("账户被冻结 无法登录"));
    assert_eq!(
        r.body,
        "客服你好，\n\n我的账户（用户名：zhangzhe_88）今天突然被冻结了，登录时提示“账户异常=风险”。\n\
         我没有做过任何违规操作，请帮忙解冻，谢谢。\n\n张喆"
    );
}

#[test]
fn big5_subject_name_and_body() {
    let r = ok(BIG5_SUBJECT);
    assert_eq!(
        r.channel_message_id,
        "000001daa1b2c3d4$e5f60718$293a4b5c@example.com.tw"
    );
    assert_eq!(r.customer.name.as_deref(), Some("陳大文"));
    assert_eq!(r.customer.email.as_deref(), Some("david.chen@example.com.tw"));
    assert_eq!(r.subject.as_deref(), Some("帳號無法登入，請協助"));
    assert_eq!(
        r.body,
        "您好，\n\n我的帳號從昨天開始無法登入，畫面顯示「密碼錯誤」，但密碼確定是正確的。\n請協助處理，謝謝。\n\n陳大文"
    );
}

#[test]
fn html_only_body_becomes_readable_text() {
    let r = ok(HTML_ONLY);
    assert_eq!(r.channel_message_id, "html-only-7781@acme.example");
    assert_eq!(r.customer.name.as_deref(), Some("王五"));
    assert_eq!(r.subject.as_deref(), Some("打印任务卡住"));
    assert_eq!(
        r.body,
        "您好，\n\n我们在使用 “智能打印机 P200” 时遇到问题：\n打印任务一直显示<等待中>，重启后也不行…\n\n\
         - 型号：P200 & P200-Pro\n- 固件版本：v2.3.1\n\n报错代码：E-1024 — 见附件截图。\n\n\
         联系人 王五\n电话 139-0000-1111\n\nThanks & regards,\n王五 © ACME™"
    );
    assert_eq!(r.quoted_history, None);
}

#[test]
fn multipart_mixed_attachments_are_metadata_with_decoded_names() {
    let r = ok(MIXED_ATTACHMENTS);
    assert_eq!(r.channel_message_id, "202405100930002611234@example.org");
    assert_eq!(r.customer.name.as_deref(), Some("周八"));
    assert_eq!(r.subject.as_deref(), Some("发票和报错截图"));
    assert_eq!(
        r.body,
        "附件是发票和报错截图，请查收。\n打印机型号 P200，报错 E-1024。\n\n周八"
    );
    assert_eq!(
        r.attachments,
        vec![
            att("发票.pdf", "application/pdf", 142),
            att("报错截图.png", "image/png", 69),
            att("日志.txt", "text/plain", 96),
        ]
    );
}

#[test]
fn english_reply_threads_and_splits_quoted_history() {
    let r = ok(REPLY_ENGLISH);
    assert_eq!(r.channel_message_id, "CAGy9+def456UVW@mail.gmail.example");
    assert_eq!(r.customer.name.as_deref(), Some("Jane Doe"));
    assert_eq!(r.customer.email.as_deref(), Some("jane.doe@gmail.example"));
    assert_eq!(r.subject.as_deref(), Some("Re: Printer still offline"));
    assert_eq!(
        r.thread_ref.as_deref(),
        Some("202405-00012.1715000000@switchboard.example CAFx8=abc123XYZ@mail.gmail.example")
    );
    assert_eq!(
        r.body,
        "Hi,\n\nThanks for the quick answer. I tried restarting the printer as you suggested\n\
         but it still shows \"offline\" on every laptop in the office.\n\nJane"
    );
    assert_eq!(
        r.quoted_history.as_deref(),
        Some(
            "On Mon, May 6, 2024 at 6:02 PM Switchboard Support <\nsupport@switchboard.example> wrote:\n\n\
             > Hello Jane,\n>\n> Please restart the printer and tell us whether the problem persists.\n>\n\
             > Best regards,\n> Switchboard Support\n>"
        )
    );
}

#[test]
fn english_reply_html_alternative_splits_the_same_way() {
    // The Gmail HTML part: the blockquote comes out as `>` lines after the attribution.
    let message = MessageParser::default().parse(REPLY_ENGLISH).unwrap();
    let html = message.body_html(0).unwrap();
    let (body, history) = split_quoted(&html_to_text(&html));
    assert_eq!(
        body,
        "Hi,\n\nThanks for the quick answer. I tried restarting the printer as you suggested \
         but it still shows \"offline\" on every laptop in the office.\n\nJane"
    );
    assert_eq!(
        history.as_deref(),
        Some(
            "On Mon, May 6, 2024 at 6:02 PM Switchboard Support <support@switchboard.example> wrote:\n\n\
             > Hello Jane,\n\n> Please restart the printer and tell us whether the problem persists.\n\n\
             > Best regards,\n> Switchboard Support"
        )
    );
}

#[test]
fn qq_mail_reply_gb18030_with_original_mail_block() {
    let r = ok(QQ_REPLY_ZH);
    assert_eq!(
        r.channel_message_id,
        "tencent_5A1B2C3D4E5F60718293A4B5C6D7E8F9A508@qq.example"
    );
    assert_eq!(r.customer.name.as_deref(), Some("小王"));
    assert_eq!(r.customer.email.as_deref(), Some("12345678@qq.example"));
    assert_eq!(r.subject.as_deref(), Some("回复：打印机无法连接"));
    // In-Reply-To and References carry the same id: listed once.
    assert_eq!(
        r.thread_ref.as_deref(),
        Some("202405-00007.1714980000@switchboard.example")
    );
    assert_eq!(r.body, "还是不行，今天早上又断开了三次。");
    assert_eq!(
        r.quoted_history.as_deref(),
        Some(
            "------------------ 原始邮件 ------------------\n\
             发件人: \"客服中心\"<support@switchboard.example>;\n\
             发送时间: 2024年5月6日(星期一) 下午3:20\n\
             收件人: \"小王\"<12345678@qq.example>;\n\
             主题: 回复：打印机无法连接\n\n\n\n\
             您好，请尝试重新安装驱动后再试。"
        )
    );
}

#[test]
fn qq_mail_html_alternative_splits_at_the_nbsp_separator() {
    let message = MessageParser::default().parse(QQ_REPLY_ZH).unwrap();
    let html = message.body_html(0).unwrap();
    let (body, history) = split_quoted(&html_to_text(&html));
    assert_eq!(body, "还是不行，今天早上又断开了三次。");
    assert!(
        history
            .unwrap()
            .starts_with("------------------ 原始邮件 ------------------\n发件人: ")
    );
}

#[test]
fn foxmail_reply_with_chinese_header_block() {
    let r = ok(FOXMAIL_REPLY_ZH);
    assert_eq!(r.channel_message_id, "202405071005412257319@corp.example");
    assert_eq!(r.customer.name.as_deref(), Some("赵六"));
    assert_eq!(r.subject.as_deref(), Some("回复: 打印机无法连接"));
    assert_eq!(
        r.thread_ref.as_deref(),
        Some("202405-00009.1714980500@switchboard.example")
    );
    assert_eq!(r.body, "你好，驱动已经重装，问题依旧。\n\n附上日志截图。\n\n\n赵六");
    assert_eq!(
        r.quoted_history.as_deref(),
        Some(
            "发件人： 客服中心\n发送时间： 2024-05-06 15:20\n收件人： 赵六\n主题： 回复: 打印机无法连接\n\
             您好，请尝试重新安装驱动后再试。"
        )
    );
}

#[test]
fn ticket_number_in_subject_becomes_a_thread_ref() {
    let r = ok(TICKET_SUBJECT);
    assert_eq!(r.channel_message_id, "e1f2a3b4@corp.example");
    assert_eq!(
        r.customer,
        Customer {
            email: Some("zhaoliu@corp.example".into()),
            ..Customer::default()
        }
    );
    assert_eq!(r.subject.as_deref(), Some("Re: [202405-00012] 打印机还是不行"));
    assert_eq!(r.thread_ref.as_deref(), Some("ticket:202405-00012"));
    assert_eq!(r.body, "打印机今天又卡纸了，型号 P200。");
}

#[test]
fn outlook_html_only_reply_with_from_sent_block_and_prefixed_ticket() {
    let r = ok(OUTLOOK_REPLY);
    assert_eq!(
        r.channel_message_id,
        "AM0PR01MB1234A1B2C3D4E5F6A7B8C9D0E1F2A3B4@AM0PR01MB1234.eurprd01.prod.outlook.example"
    );
    assert_eq!(r.customer.name.as_deref(), Some("孙七"));
    assert_eq!(r.customer.email.as_deref(), Some("sunqi@factory.example"));
    assert_eq!(r.subject.as_deref(), Some("RE: 工单 SW202611-00003 网络中断"));
    assert_eq!(
        r.thread_ref.as_deref(),
        Some("202611-00003.1794900000@switchboard.example ticket:SW202611-00003")
    );
    assert_eq!(
        r.body,
        "您好，\n\n网络从昨晚 23:00 起又中断了，整个三楼都无法上网，影响生产，请紧急处理！\n\n孙七"
    );
    assert_eq!(
        r.quoted_history.as_deref(),
        Some(
            "From: Switchboard Support <support@switchboard.example>\n\
             Sent: Thursday, November 12, 2026 10:05 AM\nTo: 孙七 <sunqi@factory.example>\n\
             Subject: 工单 SW202611-00003 网络中断\n\n您好，我们已重启交换机，请确认是否恢复。"
        )
    );
}

#[test]
fn truncated_multipart_keeps_the_complete_text_part() {
    let r = ok(TRUNCATED_MULTIPART);
    assert_eq!(r.channel_message_id, "trunc-8841@example.com");
    assert_eq!(r.customer.name.as_deref(), Some("Li Lei"));
    assert_eq!(r.subject.as_deref(), Some("Refund request for order 8841"));
    assert_eq!(r.body, "I want a refund for order 8841, the blender arrived broken.");
    // The cut-off HTML alternative is not an attachment.
    assert!(r.attachments.is_empty());
}

#[test]
fn no_headers_is_not_a_message() {
    assert_eq!(
        parse(NO_HEADERS),
        Err(EmailError::NotAMessage("no header fields found"))
    );
}

#[test]
fn garbage_is_not_a_message() {
    let err = parse(GARBAGE).unwrap_err();
    assert!(matches!(err, EmailError::NotAMessage(_)), "{err:?}");
    assert!(err.to_string().starts_with("not an RFC 5322 message"));
}

#[test]
fn missing_message_id_names_the_header() {
    let err = parse(MISSING_MESSAGE_ID).unwrap_err();
    assert_eq!(err, EmailError::MissingHeader("Message-ID"));
    assert_eq!(err.to_string(), "missing `Message-ID` header");
    assert_eq!(err.header(), Some("Message-ID"));
}

#[test]
fn undeclared_gbk_headers_body_and_filename() {
    let r = ok(UNDECLARED_GBK);
    assert_eq!(r.channel_message_id, "ERP.20240513.000123@erp.example");
    assert_eq!(r.customer.name.as_deref(), Some("王经理"));
    assert_eq!(r.customer.email.as_deref(), Some("manager.wang@erp.example"));
    assert_eq!(r.subject.as_deref(), Some("报价单有误，请核对"));
    assert_eq!(
        r.body,
        "你好，\n\n贵司 5 月 10 日发来的报价单（编号 QT-2405-118）中单价有误，第 3 行应为 1,280 元。\n\
         请核对后重新发送。\n\n王经理\n采购部"
    );
    assert_eq!(r.attachments, vec![att("报价单.xls", "application/vnd.ms-excel", 48)]);
}

#[test]
fn mislabelled_utf8_part_with_gbk_bytes_is_redecoded() {
    let mut raw = b"From: a@example.com\r\nMessage-ID: <a@b>\r\nContent-Type: text/plain; charset=utf-8\r\n\
                    Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    // "打印机坏了" in GBK, base64.
    raw.extend_from_slice(b"tPLTobv6u7XBy\r\nw==\r\n");
    assert_eq!(ok(&raw).body, "打印机坏了");
}

#[test]
fn utf8_with_one_corrupt_byte_is_not_turned_into_mojibake() {
    let mut raw =
        b"From: a@example.com\r\nMessage-ID: <a@b>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
    raw.extend_from_slice("打印机坏了，".as_bytes());
    raw.push(0xff);
    raw.extend_from_slice("请尽快修理".as_bytes());
    assert_eq!(ok(&raw).body, "打印机坏了，\u{fffd}请尽快修理");
}

fn simple(headers: &str, body: &str) -> Vec<u8> {
    format!("{headers}\r\n\r\n{body}").into_bytes()
}

#[test]
fn empty_input() {
    assert_eq!(parse(b""), Err(EmailError::Empty));
    assert_eq!(EmailError::Empty.to_string(), "raw message is empty");
}

#[test]
fn missing_and_unreadable_from() {
    let raw = simple("Message-ID: <a@b>\r\nSubject: hi", "hello");
    assert_eq!(parse(&raw), Err(EmailError::MissingHeader("From")));
    let raw = simple("From: Undisclosed recipients\r\nMessage-ID: <a@b>", "hello");
    let err = parse(&raw).unwrap_err();
    assert_eq!(err.header(), Some("From"), "{err}");
    let raw = simple("From: <not-an-address>\r\nMessage-ID: <a@b>", "hello");
    let err = parse(&raw).unwrap_err();
    assert_eq!(err.header(), Some("From"), "{err}");
}

#[test]
fn message_id_forms() {
    let raw = simple("From: a@example.com\r\nMessage-ID: bare-id-1@host", "hello");
    assert_eq!(ok(&raw).channel_message_id, "bare-id-1@host");
    let raw = simple("From: a@example.com\r\nMessage-ID: <>", "hello");
    assert_eq!(parse(&raw).unwrap_err().header(), Some("Message-ID"));
    let long = format!("From: a@example.com\r\nMessage-ID: <{}@h>", "x".repeat(600));
    assert_eq!(parse(&simple(&long, "hello")).unwrap_err().header(), Some("Message-ID"));
}

#[test]
fn no_text_and_no_attachments() {
    let raw = simple(
        "From: a@example.com\r\nMessage-ID: <a@b>\r\nSubject: empty",
        "  \r\n\r\n",
    );
    let err = parse(&raw).unwrap_err();
    assert_eq!(err, EmailError::NoContent);
    assert_eq!(err.to_string(), "no text body and no attachments");
}

#[test]
fn attachment_only_is_accepted_with_an_empty_body() {
    let raw = "From: a@example.com\r\nMessage-ID: <a@b>\r\nMIME-Version: 1.0\r\n\
               Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n\
               Content-Type: image/jpeg\r\nContent-Disposition: attachment; filename=\"C:\\\\photos\\\\IMG_0001.JPG\"\r\n\
               Content-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n--XX--\r\n";
    let r = ok(raw.as_bytes());
    assert_eq!(r.body, "");
    assert_eq!(r.attachments, vec![att("IMG_0001.JPG", "image/jpeg", 6)]);
}

#[test]
fn forwarded_message_attachment_is_named_after_its_subject() {
    let raw = "From: a@example.com\r\nMessage-ID: <a@b>\r\nMIME-Version: 1.0\r\n\
               Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n\
               Content-Type: text/plain; charset=utf-8\r\n\r\n见附件邮件。\r\n--XX\r\n\
               Content-Type: message/rfc822\r\n\r\nFrom: b@example.com\r\nSubject: 原来的投诉\r\n\r\nold\r\n--XX--\r\n";
    let r = ok(raw.as_bytes());
    assert_eq!(r.body, "见附件邮件。");
    assert_eq!(r.attachments.len(), 1);
    assert_eq!(r.attachments[0].filename, "原来的投诉.eml");
    assert_eq!(r.attachments[0].content_type.as_deref(), Some("message/rfc822"));
}

#[test]
fn body_over_the_limit_is_an_error_not_a_truncation() {
    let raw = simple("From: a@example.com\r\nMessage-ID: <a@b>", &"日志行\r\n".repeat(7000));
    let err = parse(&raw).unwrap_err();
    assert_eq!(
        err,
        EmailError::BodyTooLarge {
            size: 7000 * 10 - 1,
            limit: MAX_BODY_BYTES
        }
    );
    assert!(err.to_string().contains("the limit is 65536 bytes"));
}

#[test]
fn long_quoted_history_is_cut_with_a_marker() {
    let quote = "> 很久以前的邮件内容，一遍又一遍地引用。\r\n".repeat(4000);
    let raw = simple(
        "From: a@example.com\r\nMessage-ID: <a@b>",
        &format!("好的，谢谢。\r\n\r\nOn Mon, X wrote:\r\n{quote}"),
    );
    let r = ok(&raw);
    assert_eq!(r.body, "好的，谢谢。");
    let history = r.quoted_history.unwrap();
    assert!(history.starts_with("On Mon, X wrote:\n> 很久以前"));
    assert!(history.len() <= MAX_QUOTED_HISTORY_BYTES + 64);
    assert!(
        history.ends_with("bytes omitted]"),
        "{}",
        &history[history.len() - 80..]
    );
}

#[test]
fn too_many_attachments_exceed_the_encoded_limit() {
    let mut raw =
        String::from("From: a@example.com\r\nMessage-ID: <a@b>\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n");
    for n in 0..3000 {
        raw.push_str(&format!(
            "--XX\r\nContent-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"{n:04}-a-rather-long-file-name-for-a-scan.bin\"\r\n\r\nx\r\n"
        ));
    }
    raw.push_str("--XX--\r\n");
    let err = parse(raw.as_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            EmailError::TooManyParts {
                limit: MAX_MIME_PARTS,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn raw_message_over_the_limit() {
    let raw = vec![b'a'; MAX_RAW_EMAIL_BYTES + 1];
    assert_eq!(
        parse(&raw),
        Err(EmailError::RawTooLarge {
            size: MAX_RAW_EMAIL_BYTES + 1,
            limit: MAX_RAW_EMAIL_BYTES
        })
    );
}

#[test]
fn overlong_subject_names_the_header() {
    let headers = format!(
        "From: a@example.com\r\nMessage-ID: <a@b>\r\nSubject: {}",
        "投诉".repeat(200)
    );
    let err = parse(&simple(&headers, "hello")).unwrap_err();
    assert_eq!(err.header(), Some("Subject"));
    assert_eq!(err.to_string(), "header `Subject`: is 1200 bytes; the limit is 1000");
}

#[test]
fn plain_ticket_number_and_references_in_order() {
    let raw = simple(
        "From: a@example.com\r\nMessage-ID: <a@b>\r\nIn-Reply-To: <p2@x>\r\n\
         References: <p1@x> <p2@x>\r\nSubject: 工单 202611-00003",
        "还是连不上",
    );
    assert_eq!(ok(&raw).thread_ref.as_deref(), Some("p1@x p2@x ticket:202611-00003"));
    // A parent missing from References is appended after them.
    let raw = simple(
        "From: a@example.com\r\nMessage-ID: <a@b>\r\nIn-Reply-To: <p3@x>\r\nReferences: <p1@x>",
        "hello",
    );
    assert_eq!(ok(&raw).thread_ref.as_deref(), Some("p1@x p3@x"));
}

#[test]
fn split_outlook_original_message_separator() {
    let (body, history) = split_quoted("Still broken.\n\n-----Original Message-----\nFrom: S\nSent: Mon\n\nold");
    assert_eq!(body, "Still broken.");
    assert_eq!(
        history.as_deref(),
        Some("-----Original Message-----\nFrom: S\nSent: Mon\n\nold")
    );
}

#[test]
fn split_outlook_underscore_line_and_header_block() {
    let text =
        "Please hurry.\n\n________________________________\n发件人: 客服中心\n发送时间: 2024年5月6日 10:00\n\nold";
    let (body, history) = split_quoted(text);
    assert_eq!(body, "Please hurry.");
    assert!(history.unwrap().starts_with("________________________________\n发件人"));
}

#[test]
fn split_chinese_attribution_without_quote_marks() {
    let (body, history) =
        split_quoted("收到，谢谢！\n\n在 2024年5月6日 15:20，客服中心 <support@x.com> 写道：\n您好，已处理。");
    assert_eq!(body, "收到，谢谢！");
    assert_eq!(
        history.as_deref(),
        Some("在 2024年5月6日 15:20，客服中心 <support@x.com> 写道：\n您好，已处理。")
    );
    // Gmail's Chinese form, wrapped over two lines.
    let (body, history) = split_quoted("好的\n\n客服中心 <support@x.com> 于2024年5月6日周一\n15:20写道：\n> 旧\n");
    assert_eq!(body, "好的");
    assert_eq!(
        history.as_deref(),
        Some("客服中心 <support@x.com> 于2024年5月6日周一\n15:20写道：\n> 旧")
    );
    let (body, history) = split_quoted("好的\n\n在 2024年5月6日 15:20，客服中心\n<support@x.com> 寫道：\n舊內容");
    assert_eq!(body, "好的");
    assert_eq!(
        history.as_deref(),
        Some("在 2024年5月6日 15:20，客服中心\n<support@x.com> 寫道：\n舊內容")
    );
}

#[test]
fn split_interleaved_bottom_posting() {
    let text = "Jane wrote:\n> Is it plugged in?\n\nYes it is.\n\n> Which model?\n\nP200.\n";
    let (body, history) = split_quoted(text);
    assert_eq!(body, "Yes it is.\n\nP200.");
    assert_eq!(
        history.as_deref(),
        Some("Jane wrote:\n> Is it plugged in?\n\n> Which model?")
    );
}

#[test]
fn split_leaves_lookalikes_in_the_body() {
    // A weak attribution with no quote below, a lone From: line, a signature.
    let text = "My colleague wrote:\nthe printer is broken.\nFrom: Shanghai office\n-- \nLi";
    assert_eq!(split_quoted(text), (text.to_owned(), None));
}

#[test]
fn everything_quoted_keeps_the_text_as_body() {
    let raw = simple(
        "From: a@example.com\r\nMessage-ID: <a@b>",
        "-----Original Message-----\r\nFrom: x\r\nSent: y\r\n\r\nplease help",
    );
    let r = ok(&raw);
    assert_eq!(r.body, "-----Original Message-----\nFrom: x\nSent: y\n\nplease help");
    assert_eq!(r.quoted_history, None);
}

#[test]
fn hostile_shapes_stay_linear() {
    // Each of these was quadratic in a first draft; at this size quadratic takes minutes.
    let blanks = format!("hi\r\n> q\r\n{}> q\r\nend", "\r\n".repeat(400_000));
    let raw = simple("From: a@example.com\r\nMessage-ID: <a@b>", &blanks);
    assert_eq!(ok(&raw).body, "hi\n\nend");
    let ampersands = simple(
        "From: a@example.com\r\nMessage-ID: <a@b>\r\nContent-Type: text/html",
        &"&".repeat(60_000),
    );
    assert_eq!(ok(&ampersands).body.len(), 60_000);
    let attributions = format!("x\n\n{}", "On Mon, a@b wrote:\n".repeat(100_000));
    assert_eq!(split_quoted(&attributions).0, "x");
}

#[test]
fn every_fixture_either_parses_or_errs() {
    for raw in FIXTURES {
        let _ = parse(raw);
    }
}

fn mutate(raw: &[u8], edits: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut out = raw.to_vec();
    for &(kind, pos, byte) in edits {
        if out.is_empty() {
            out.push(byte);
            continue;
        }
        let pos = pos % out.len();
        match kind % 4 {
            0 => out[pos] ^= byte | 1,
            1 => out.insert(pos, byte),
            2 => out.truncate(pos),
            _ => {
                // Splice in a byte sequence that MIME parsers look for.
                const TOKENS: &[&[u8]] = &[
                    b"\r\n--",
                    b"=?",
                    b"?=",
                    b"=\r\n",
                    b"boundary=",
                    b"\r\n\r\n",
                    b"<",
                    b"&#x",
                    b";",
                ];
                let token = TOKENS[byte as usize % TOKENS.len()];
                out.splice(pos..pos, token.iter().copied());
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&raw);
    }

    #[test]
    fn never_panics_on_mutated_fixtures(
        fixture in 0..FIXTURES.len(),
        edits in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
    ) {
        let _ = parse(&mutate(FIXTURES[fixture], &edits));
    }

    #[test]
    fn never_panics_on_header_soup(
        lines in proptest::collection::vec(
            "(From|To|Subject|Message-ID|In-Reply-To|References|Content-Type|Content-Transfer-Encoding|MIME-Version): [ -~\u{80}-\u{10ffff}]{0,60}",
            0..10,
        ),
        body in "[ -~\u{4e00}-\u{4e80}\r\n<>&;=?]{0,400}",
    ) {
        let raw = format!("{}\r\n\r\n{body}", lines.join("\r\n"));
        let _ = parse(raw.as_bytes());
    }

    #[test]
    fn html_conversion_never_panics(html in "[ -~\u{a0}-\u{ff}\u{4e00}-\u{4e20}\n]{0,300}") {
        let _ = html_to_text(&html);
        let _ = split_quoted(&html);
    }
}

/// The reproduced bomb: 336 KiB of HTML nested `<blockquote>`, each quoting a line.
fn nested_quote_email(levels: usize) -> Vec<u8> {
    let mut html = String::from("<p>Please look at the thread below.</p>");
    for _ in 0..levels {
        html.push_str("<blockquote><div>On Mon, someone wrote:</div>");
    }
    format!(
        "From: a@example.com\r\nMessage-ID: <bomb@x>\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    )
    .into_bytes()
}

#[test]
fn email_bomb_nested_quotes_cost_work_and_memory_linear_in_the_message() {
    let raw = nested_quote_email(336 * 1024 / 48);
    assert!(raw.len() > 300 * 1024);
    let r = ok(&raw);
    assert_eq!(r.body, "Please look at the thread below.");
    let history = r.quoted_history.unwrap_or_default();
    assert!(history.len() <= MAX_QUOTED_HISTORY_BYTES + 64, "{}", history.len());
    // The text before splitting is what the parser holds in memory: bounded by the input.
    let message = MessageParser::default().parse(&raw[..]).unwrap();
    assert!(body_text(&message).len() <= raw.len());
}

fn multipart(parts: usize) -> Vec<u8> {
    let mut raw = String::from(
        "From: a@example.com\r\nMessage-ID: <parts@x>\r\nSubject: many\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    for n in 0..parts {
        raw.push_str(&format!("--b\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n"));
    }
    raw.push_str("--b--\r\n");
    raw.into_bytes()
}

#[test]
fn email_bomb_thousands_of_mime_parts_is_refused_naming_the_limit() {
    assert!(parse(&multipart(20)).is_ok());
    let err = parse(&multipart(MAX_MIME_PARTS + 10)).unwrap_err();
    assert!(matches!(err, EmailError::TooManyParts { .. }), "{err}");
    assert!(err.to_string().contains("MIME parts"), "{err}");
}

#[test]
fn email_bomb_deeply_nested_multiparts_is_refused_naming_the_limit() {
    let nested = |depth: usize| {
        let mut raw =
            String::from("From: a@example.com\r\nMessage-ID: <deep@x>\r\nSubject: deep\r\nMIME-Version: 1.0\r\n");
        for d in 0..depth {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{d}\"\r\n\r\n--b{d}\r\n"
            ));
        }
        raw.push_str("Content-Type: text/plain\r\n\r\nhello\r\n");
        for d in (0..depth).rev() {
            raw.push_str(&format!("--b{d}--\r\n"));
        }
        raw.into_bytes()
    };
    assert_eq!(ok(&nested(3)).body, "hello");
    let err = parse(&nested(MAX_MIME_DEPTH + 4)).unwrap_err();
    assert!(matches!(err, EmailError::NestedTooDeep { .. }), "{err}");
}

/// A plain-text mail whose headers and part declare no charset, with `body` as raw 8-bit bytes.
fn undeclared(subject: &[u8], body: &[u8]) -> Vec<u8> {
    let mut raw = b"From: a@example.com\r\nMessage-ID: <u@b>\r\nSubject: ".to_vec();
    raw.extend_from_slice(subject);
    raw.extend_from_slice(
        b"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    raw.extend_from_slice(body);
    raw
}

const TRADITIONAL: &str = "您好，我上週在貴公司網站訂購的印表機至今尚未收到，訂單編號 TW-2024-0613。\n\
    請問何時可以出貨？如果無法在本週內送達，請協助辦理退款。謝謝！\n\n陳先生\n台北市";
const SIMPLIFIED: &str = "您好，我上周在贵公司网站订购的打印机至今还没有收到，订单编号 CN-2024-0613。\n\
    请问什么时候可以发货？如果本周内无法送达，请帮忙办理退款。谢谢！\n\n陈先生\n北京市";

#[test]
fn undeclared_big5_is_detected_not_read_as_gbk() {
    let (body, _, unmappable) = encoding_rs::BIG5.encode(TRADITIONAL);
    assert!(!unmappable);
    let (subject, _, _) = encoding_rs::BIG5.encode("印表機未收到");
    let r = ok(&undeclared(&subject, &body));
    assert_eq!(r.body, TRADITIONAL);
    assert_eq!(r.subject.as_deref(), Some("印表機未收到"));
}

#[test]
fn undeclared_gbk_is_still_gbk() {
    let (body, _, unmappable) = encoding_rs::GBK.encode(SIMPLIFIED);
    assert!(!unmappable);
    let (subject, _, _) = encoding_rs::GBK.encode("打印机没收到");
    let r = ok(&undeclared(&subject, &body));
    assert_eq!(r.body, SIMPLIFIED);
    assert_eq!(r.subject.as_deref(), Some("打印机没收到"));
}

#[test]
fn undeclared_utf8_is_left_as_it_is() {
    let r = ok(&undeclared("打印机没收到".as_bytes(), TRADITIONAL.as_bytes()));
    assert_eq!(r.body, TRADITIONAL);
    assert_eq!(r.subject.as_deref(), Some("打印机没收到"));
    assert_eq!(super::charsets::decode_undeclared(SIMPLIFIED.as_bytes()), None);
}

#[test]
fn the_detector_reads_only_a_bounded_head_of_a_large_text() {
    // A head of Big5 as long as the detector reads, then four times as much GBK: were the tail
    // read, its weight would make the guess GBK (as it is for the tail alone).
    let repeat = |text: &str, enc: &'static encoding_rs::Encoding, len: usize| {
        let (one, _, _) = enc.encode(text);
        let mut out = Vec::new();
        while out.len() < len {
            out.extend_from_slice(&one);
        }
        out
    };
    let n = super::charsets::DETECT_BYTES;
    let tail = repeat(SIMPLIFIED, encoding_rs::GBK, 4 * n);
    assert_eq!(super::charsets::guess_charset(&tail), encoding_rs::GBK);
    let mut big = repeat(TRADITIONAL, encoding_rs::BIG5, n);
    big.extend_from_slice(&tail);
    assert_eq!(super::charsets::guess_charset(&big), encoding_rs::BIG5);
}

#[test]
fn undeclared_latin_text_with_enough_to_go_on_is_read_as_latin() {
    let text = "Bonjour, ma commande n°4512 n'est pas arrivée : le numéro de suivi indiqué ne répond pas. \
                Merci de vérifier où elle se trouve. Très cordialement, Hélène Lefèvre, Besançon.\n"
        .repeat(8);
    let (body, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!unmappable);
    assert!(body.iter().filter(|b| !b.is_ascii()).count() >= 64);
    assert_eq!(ok(&undeclared(b"commande", &body)).body, text.trim_end());
}

#[test]
fn a_charset_nobody_knows_is_treated_as_undeclared() {
    let (body, _, _) = encoding_rs::BIG5.encode(TRADITIONAL);
    let mut raw = b"From: a@example.com\r\nMessage-ID: <x@b>\r\nContent-Type: text/plain; charset=x-mystery\r\n\
                    Content-Transfer-Encoding: 8bit\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(&body);
    assert_eq!(ok(&raw).body, TRADITIONAL);
}

/// Short texts give the detector little to go on, and GBK byte pairs are mostly valid Big5 too:
/// typical short subjects and names of mainland mail must still come out as GBK. (`谢谢` is
/// left out: its GBK bytes happen to be valid UTF-8, which is taken as it is.)
#[test]
fn short_undeclared_gbk_subjects_are_read_as_gbk() {
    let subjects = [
        "报价单",
        "王经理",
        "打印机没收到",
        "订单问题",
        "退款申请",
        "发票",
        "投诉",
        "账号无法登录",
        "快递丢了",
        "请尽快处理",
        "货物破损",
        "产品质量问题",
        "咨询",
        "售后服务",
        "合同",
        "会议通知",
        "你好",
        "紧急",
        "故障报告",
        "网络中断",
        "密码重置",
        "升级失败",
        "客户投诉：服务态度差",
        "关于退货的问题",
        "张三",
        "李四的订单",
        "北京市朝阳区",
        "上海分公司",
        "月度报表",
        "手机屏幕碎了",
        "充值没到账",
    ];
    let mut wrong = Vec::new();
    for s in subjects {
        let (bytes, _, _) = encoding_rs::GBK.encode(s);
        let decoded = super::charsets::decode_undeclared(&bytes);
        if decoded.as_deref() != Some(s) {
            wrong.push(format!(
                "{s} -> {decoded:?} (guess {})",
                super::charsets::guess_charset(&bytes).name()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} misread:\n{}",
        wrong.len(),
        subjects.len(),
        wrong.join("\n")
    );
}

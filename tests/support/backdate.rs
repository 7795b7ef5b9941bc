//! Tickets written straight into Postgres with chosen timestamps, for tests whose figures must
//! be exact (reports) or whose tickets must be years old (retention). The rows look like the
//! pipeline's: a message, a thread key, one transition per state change with the same actors
//! and details, pauses, escalations.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tokio_postgres::GenericClient;

#[derive(Debug, Clone)]
pub struct OldTicket {
    pub number: String,
    pub channel: String,
    pub customer: Value,
    pub body: String,
    pub category: String,
    pub priority: String,
    pub team: Option<String>,
    pub received_at: DateTime<Utc>,
    /// Classifier reasons for the `classified` transition (none: no such transition).
    pub reasons: Option<Vec<String>>,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub pauses: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub rating: Option<i16>,
    /// (target, acknowledged, steps sent)
    pub escalations: Vec<(String, bool, usize)>,
    /// Find or create the `customers` row (by the first of intake's match keys) and point
    /// `customer_ref` at it, as intake does; off for a schema older than V5.
    pub link_customer: bool,
}

impl OldTicket {
    pub fn new(number: &str, received_at: DateTime<Utc>) -> OldTicket {
        OldTicket {
            number: number.into(),
            channel: "chat".into(),
            customer: json!({"customer_id": format!("C-{number}")}),
            body: "我的订单怎么还没发货？".into(),
            category: "inquiry".into(),
            priority: "normal".into(),
            team: Some("front_line".into()),
            received_at,
            reasons: None,
            first_responded_at: None,
            pauses: Vec::new(),
            resolved_at: None,
            closed_at: None,
            rating: None,
            escalations: Vec::new(),
            link_customer: true,
        }
    }

    /// Responded after `fr`, resolved after `res`, closed an hour later.
    pub fn closed(mut self, fr: Duration, res: Duration) -> OldTicket {
        self.first_responded_at = Some(self.received_at + fr);
        self.resolved_at = Some(self.received_at + res);
        self.closed_at = Some(self.received_at + res + Duration::hours(1));
        self
    }

    pub fn state(&self) -> &'static str {
        match (self.closed_at, self.resolved_at, self.first_responded_at) {
            (Some(_), _, _) => "closed",
            (None, Some(_), _) => "resolved",
            _ if self.pauses.last().is_some_and(|p| p.1.is_none()) => "waiting_for_customer",
            (None, None, Some(_)) => "in_progress",
            _ => "assigned",
        }
    }
}

struct Tr {
    from: Option<&'static str>,
    to: &'static str,
    at: DateTime<Utc>,
    actor: &'static str,
    reason: String,
    details: Value,
}

/// Inserts the ticket and everything around it; returns its id.
pub async fn insert<C: GenericClient>(c: &C, t: &OldTicket) -> i64 {
    let state = t.state();
    let mut trs: Vec<Tr> = Vec::new();
    let mut cur = "received";
    trs.push(Tr {
        from: None,
        to: "received",
        at: t.received_at,
        actor: "intake",
        reason: "received on chat".into(),
        details: json!({}),
    });
    let s = Duration::seconds(1);
    if let Some(reasons) = &t.reasons {
        trs.push(Tr {
            from: Some(cur),
            to: "classified",
            at: t.received_at + s,
            actor: "classify",
            reason: format!("category {}", t.category),
            details: json!({"category": t.category, "confidence": 0.9, "language": "zh-Hans", "reasons": reasons}),
        });
        cur = "classified";
    }
    for (to, actor, n) in [("prioritized", "prioritize", 2), ("assigned", "assign", 3)] {
        trs.push(Tr {
            from: Some(cur),
            to,
            at: t.received_at + s * n,
            actor,
            reason: to.into(),
            details: json!({}),
        });
        cur = to;
    }
    let lifecycle =
        |from: &'static str, to: &'static str, at, action: &str, event: &str, reason: String, data: Value| Tr {
            from: Some(from),
            to,
            at,
            actor: "agent:fl-1",
            reason,
            details: json!({"action": action, "event": event, "data": data}),
        };
    if let Some(at) = t.first_responded_at {
        trs.push(lifecycle(
            cur,
            "in_progress",
            at,
            "respond",
            "responded",
            "first response by agent:fl-1".into(),
            json!({"first_response": true, "message": "请拨打 13812345678 联系我们"}),
        ));
        cur = "in_progress";
    }
    for (from, until) in &t.pauses {
        trs.push(lifecycle(
            cur,
            "waiting_for_customer",
            *from,
            "wait_for_customer",
            "waiting",
            "waiting for the customer: 请提供订单截图".into(),
            json!({"reason": "请提供订单截图"}),
        ));
        cur = "waiting_for_customer";
        if let Some(u) = until {
            trs.push(lifecycle(
                cur,
                "in_progress",
                *u,
                "customer_replied",
                "customer_replied",
                "the customer replied".into(),
                json!({"message": "截图在附件，我的邮箱 zhang.san@example.com"}),
            ));
            cur = "in_progress";
        }
    }
    for (target, _, steps) in &t.escalations {
        let at = t.received_at + Duration::minutes(31);
        trs.push(Tr {
            from: Some(cur),
            to: cur,
            at,
            actor: "escalate",
            reason: format!("SLA target {target} missed"),
            details: json!({"target": target, "due": at, "late_by_seconds": 0}),
        });
        for step in 0..*steps {
            trs.push(Tr {
                from: Some(cur),
                to: cur,
                at: at + Duration::minutes(30 * step as i64),
                actor: "escalate",
                reason: format!("{target} missed: escalated to sup (supervisor, step 1)"),
                details: json!({"target": target, "step": 1, "repeat": step, "notify": "supervisor", "notified": "sup"}),
            });
        }
    }
    if let Some(at) = t.resolved_at {
        trs.push(lifecycle(
            cur,
            "resolved",
            at,
            "resolve",
            "resolved",
            "resolved by agent:fl-1: 已退款到 13812345678 的账户".into(),
            json!({"result": "已退款到 13812345678 的账户", "root_cause": "仓库漏发", "notes": null}),
        ));
        cur = "resolved";
    }
    if let Some(at) = t.closed_at {
        if let Some(r) = t.rating {
            trs.push(lifecycle(
                cur,
                cur,
                at,
                "rate",
                "rated",
                format!("rated {r}/5 by customer"),
                json!({"score": r, "comment": "张三很满意", "reason": "slow"}),
            ));
        }
        trs.push(lifecycle(
            cur,
            "closed",
            at,
            "close",
            "closed",
            "closed".into(),
            json!({"reason": null}),
        ));
    }
    let version = trs.len() as i32;
    let resolution = t
        .resolved_at
        .map(|at| json!({"result": "已退款到 13812345678 的账户", "by": "agent:fl-1", "at": at}));
    let id: i64 = c
        .query_one(
            "INSERT INTO tickets (number, channel, channel_message_id, customer, subject, body, language, category,
                 category_confidence, priority, state, team, sla_rule, received_at, assigned_at, version,
                 first_responded_at, last_update_at, resolved_at, closed_at, resolution, rating, rating_comment)
             VALUES ($1, $2, $1, $3, '关于订单', $4, 'zh-Hans', $5, 0.9, $6, $7, $8, 'normal', $9, $9, $10,
                     $11, $11, $12, $13, $14, $15, CASE WHEN $15::smallint IS NULL THEN NULL ELSE '张三很满意' END)
             RETURNING id",
            &[
                &t.number,
                &t.channel,
                &t.customer,
                &t.body,
                &t.category,
                &t.priority,
                &state,
                &t.team,
                &t.received_at,
                &version,
                &t.first_responded_at,
                &t.resolved_at,
                &t.closed_at,
                &resolution,
                &t.rating,
            ],
        )
        .await
        .expect("insert ticket")
        .get(0);
    if t.link_customer {
        link_customer(c, id, &t.customer).await;
    }
    c.execute(
        "INSERT INTO ticket_messages (ticket_id, channel, channel_message_id, received_at, subject, body, quoted_history, attachments)
         VALUES ($1, $2, $3, $4, '关于订单', $5, '> 以前的邮件 13812345678', '[{\"filename\": \"张三身份证.jpg\"}]')",
        &[&id, &t.channel, &t.number, &t.received_at, &t.body],
    )
    .await
    .expect("insert message");
    c.execute(
        "INSERT INTO thread_keys (key, ticket_id) VALUES ($1, $2)",
        &[&format!("chat:{}", t.number), &id],
    )
    .await
    .expect("insert thread key");
    for (seq, tr) in trs.iter().enumerate() {
        c.execute(
            "INSERT INTO ticket_transitions (ticket_id, seq, from_state, to_state, at, actor, reason, policy_version, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'test', $8)",
            &[&id, &(seq as i32 + 1), &tr.from, &tr.to, &tr.at, &tr.actor, &tr.reason, &tr.details],
        )
        .await
        .expect("insert transition");
    }
    for (from, until) in &t.pauses {
        c.execute(
            "INSERT INTO ticket_pauses (ticket_id, started_at, ended_at) VALUES ($1, $2, $3)",
            &[&id, from, until],
        )
        .await
        .expect("insert pause");
    }
    for (target, acknowledged, steps) in &t.escalations {
        let breached = t.received_at + Duration::minutes(31);
        let ack = acknowledged.then(|| breached + Duration::minutes(5));
        c.execute(
            "INSERT INTO escalations (ticket_id, target, ladder, breached_at, last_step, last_repeat, last_fired_at, acknowledged_at)
             VALUES ($1, $2, 'normal', $3, 0, $4, $3, $5)",
            &[&id, target, &breached, &(*steps as i32 - 1), &ack],
        )
        .await
        .expect("insert escalation");
        c.execute(
            "INSERT INTO sla_timers (ticket_id, purpose, due_at, state, fired_at) VALUES ($1, $2, $3, 'fired', $3)",
            &[&id, &format!("breach:{target}"), &breached],
        )
        .await
        .expect("insert timer");
    }
    id
}

/// The customer record intake would have matched or created, by its most reliable key.
async fn link_customer<C: GenericClient>(c: &C, ticket_id: i64, customer: &Value) {
    let Ok(who) = serde_json::from_value::<switchboard::core::customer::Customer>(customer.clone()) else {
        return;
    };
    let Some(key) = switchboard::core::customer::match_keys(&who).into_iter().next() else {
        return;
    };
    let (kind, value) = key.split_once(':').expect("key kind");
    let column = match kind {
        "id" => "customer_id",
        "phone" => "phone",
        _ => "email",
    };
    let found = c
        .query_opt(&format!("SELECT id FROM customers WHERE {column} = $1"), &[&value])
        .await
        .expect("find customer");
    let id: i64 = match found {
        Some(r) => r.get(0),
        None => c
            .query_one(
                "INSERT INTO customers (customer_id, phone, email, name, tier) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &who.customer_id,
                    &who.phone.as_deref().map(switchboard::core::customer::normal_phone),
                    &who.email.as_deref().map(str::to_lowercase),
                    &who.name,
                    &who.tier.map(|t| t.as_str()),
                ],
            )
            .await
            .expect("insert customer")
            .get(0),
    };
    c.execute("UPDATE tickets SET customer_ref = $2 WHERE id = $1", &[&ticket_id, &id])
        .await
        .expect("link customer");
}

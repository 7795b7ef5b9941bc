//! RabbitMQ: connections, the topology, publishing with confirms, and dead letters.

pub mod dead;
pub mod dead_queue;
pub mod events_log;
pub mod links;
pub mod publisher;
pub mod rotation;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
// Transitional re-export for the tools still moving out (bench); the home is `contracts`.
use crate::contracts::StageName;
#[doc(hidden)]
pub use crate::contracts::{Exchange, Outgoing};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(
        "RabbitMQ at {target} is unreachable: {source}. Is it running? Start it with `rabbitmq-server -detached` (or `docker compose up -d rabbitmq`), or point SWITCHBOARD_AMQP_URL at it"
    )]
    Unreachable { target: String, source: lapin::Error },
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused (nacked) message {0}")]
    Nacked(String),
    #[error("message {0} could not be routed (no queue bound); run `switchboard setup`")]
    Unroutable(String),
    #[error("queue {queue} does not exist: {hint}")]
    NoQueue { queue: String, hint: &'static str },
    #[error("the broker cancelled the consumer (queue deleted or node going down)")]
    ConsumerClosed,
    #[error("no AMQP URL configured")]
    NoUrl,
    #[error("the connection to RabbitMQ was lost")]
    ConnectionLost,
    #[error("the broker did not confirm {what} within {after:?} (a memory or disk alarm blocks publishers?)")]
    ConfirmTimeout { what: String, after: std::time::Duration },
    #[error(
        "RabbitMQ at {target} did not answer within {after:?}. Is the address right and the node up? Check SWITCHBOARD_AMQP_URL"
    )]
    ConnectTimeout { target: String, after: std::time::Duration },
}

/// Longest wait for one node to accept a connection before trying the next.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `amqp://user:secret@host:5672/%2f` → `host:5672`, for messages that must not leak secrets.
pub fn display_url(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Connects to the first reachable node of `urls`, in order. Long-running workers use
/// [`rotation::Rotation`] instead, which moves on to the next node after losing one.
pub async fn connect(urls: &[String], name: &str) -> Result<Connection, BusError> {
    let mut last = None;
    for url in urls {
        match rotation::connect_one(url, name).await {
            Ok(conn) => return Ok(conn),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(BusError::NoUrl))
}

/// A channel in confirm mode: every publish on it is acknowledged by the broker.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel, BusError> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// Names of every exchange and queue, all under one prefix so tests can run side by side.
#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    pub delivery_limit: u32,
    /// The events log's retention: its `x-max-age` (`7D`) …
    pub events_log_max_age: String,
    /// … and its `x-max-length-bytes`.
    pub events_log_max_bytes: u64,
}

impl Topology {
    /// A topology with the default retention of the events log.
    pub fn new(prefix: impl Into<String>, delivery_limit: u32) -> Self {
        Topology {
            prefix: prefix.into(),
            delivery_limit,
            events_log_max_age: crate::config::DEFAULT_EVENTS_LOG_MAX_AGE.into(),
            events_log_max_bytes: crate::config::DEFAULT_EVENTS_LOG_MAX_BYTES,
        }
    }

    /// The topology the settings describe: prefix, delivery limit, the events log's retention.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Topology {
            events_log_max_age: settings.events_log_max_age.clone(),
            events_log_max_bytes: settings.events_log_max_bytes,
            ..Topology::new(settings.topology_prefix.clone(), settings.delivery_limit)
        }
    }

    pub fn exchange(&self, e: Exchange) -> String {
        let suffix = match e {
            Exchange::Intake => "intake",
            Exchange::Work => "work",
            Exchange::Events => "events",
            Exchange::Actions => "actions",
            Exchange::Dlx => "dlx",
        };
        format!("{}.{suffix}", self.prefix)
    }

    pub fn queue(&self, stage: &str) -> String {
        format!("{}.{stage}", self.prefix)
    }

    pub fn dead_queue(&self) -> String {
        self.queue("dead")
    }

    /// The events log: a stream of every event published, bound to the events exchange with `#`.
    pub fn events_log(&self) -> String {
        self.queue("events.log")
    }

    /// The events log's arguments. Segments are a twentieth of its size, between 1 MiB and
    /// 100 MiB: the broker removes old events a whole segment at a time, so small segments keep
    /// the size and age close to their limits.
    fn events_log_args(&self) -> FieldTable {
        let segment = (self.events_log_max_bytes / 20).clamp(EVENTS_LOG_SEGMENT_MIN, EVENTS_LOG_SEGMENT_MAX);
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("stream".into()));
        args.insert(
            "x-max-age".into(),
            AMQPValue::LongString(self.events_log_max_age.as_str().into()),
        );
        args.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(i64::try_from(self.events_log_max_bytes).unwrap_or(i64::MAX)),
        );
        args.insert(
            "x-stream-max-segment-size-bytes".into(),
            AMQPValue::LongLongInt(i64::try_from(segment).unwrap_or(i64::MAX)),
        );
        args
    }

    fn quorum_args(&self, dead_letter: bool) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        if dead_letter {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(self.delivery_limit as i32),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(self.exchange(Exchange::Dlx).into()),
            );
            // At-least-once dead-lettering: a poison message is never dropped on its way out.
            args.insert(
                "x-dead-letter-strategy".into(),
                AMQPValue::LongString("at-least-once".into()),
            );
            args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
        }
        args
    }

    /// Declares everything idempotently, on channels of its own. Safe to run from every worker
    /// at start.
    pub async fn declare(&self, conn: &lapin::Connection) -> Result<(), BusError> {
        self.declare_dead_queue(conn).await?;
        self.declare_events_log(conn).await?;
        let ch = conn.create_channel().await?;
        let declared = self.declare_on(&ch).await;
        let _ = ch.close(200, "declared".into()).await;
        declared
    }

    /// The dead-letter queue, with its length limit ([`DEAD_LETTER_MAX`]; past it the oldest
    /// dead letters are dropped, `drop-head`, so a flood of garbage cannot fill the broker's
    /// disk or stop the stages). A queue declared by a version without the limit keeps its
    /// arguments (the broker refuses to change them): it is used as it is, with a warning that
    /// says how to add the limit by policy.
    async fn declare_dead_queue(&self, conn: &lapin::Connection) -> Result<(), BusError> {
        let ch = conn.create_channel().await?;
        let mut args = self.quorum_args(false);
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(DEAD_LETTER_MAX as i64));
        args.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(DEAD_LETTER_MAX_BYTES as i64),
        );
        args.insert("x-overflow".into(), AMQPValue::LongString("drop-head".into()));
        // Dead letters are whole requests, contacts included: they are not kept for ever.
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(DEAD_LETTER_TTL_MS as i64),
        );
        let opts = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        match ch.queue_declare(self.dead_queue().into(), opts, args).await {
            Ok(_) => {
                let _ = ch.close(200, "declared".into()).await;
                Ok(())
            }
            // 406 PRECONDITION_FAILED: the queue exists with other arguments.
            Err(e) if matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 406) => {
                tracing::warn!(
                    queue = %self.dead_queue(),
                    "the dead-letter queue was declared without a length limit and expiry by an earlier version; add them with: rabbitmqctl set_policy switchboard-dead '^{}$' '{{\"max-length\":{DEAD_LETTER_MAX},\"max-length-bytes\":{DEAD_LETTER_MAX_BYTES},\"overflow\":\"drop-head\",\"message-ttl\":{DEAD_LETTER_TTL_MS}}}' --apply-to queues",
                    self.dead_queue().replace('.', "\\.")
                );
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The events log (a durable stream), on a channel of its own. A log declared with other
    /// retention (the settings changed) keeps it, since the broker refuses to change a queue's
    /// arguments: it is used as it is, with a warning that says how to change it by policy.
    async fn declare_events_log(&self, conn: &lapin::Connection) -> Result<(), BusError> {
        let ch = conn.create_channel().await?;
        let opts = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        match ch
            .queue_declare(self.events_log().into(), opts, self.events_log_args())
            .await
        {
            Ok(_) => {
                let _ = ch.close(200, "declared".into()).await;
                Ok(())
            }
            Err(e) if matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 406) => {
                tracing::warn!(
                    queue = %self.events_log(),
                    error = %e,
                    "the events log exists with other retention arguments, which the broker does not change, so it keeps its own. A policy can lower them (the broker applies the smaller of the two): rabbitmqctl set_policy switchboard-events-log '^{}$' '{{\"max-age\":\"{}\",\"max-length-bytes\":{}}}' --apply-to queues; to raise them, delete the log (its events go with it) and run `switchboard setup`",
                    self.events_log().replace('.', "\\."),
                    self.events_log_max_age,
                    self.events_log_max_bytes,
                );
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn declare_on(&self, ch: &Channel) -> Result<(), BusError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let exchanges = [
            (Exchange::Intake, ExchangeKind::Topic),
            (Exchange::Work, ExchangeKind::Direct),
            (Exchange::Events, ExchangeKind::Topic),
            (Exchange::Actions, ExchangeKind::Topic),
            (Exchange::Dlx, ExchangeKind::Fanout),
        ];
        for (e, kind) in exchanges {
            ch.exchange_declare(self.exchange(e).into(), kind, durable, FieldTable::default())
                .await?;
        }
        let qopts = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_bind(
            self.dead_queue().into(),
            self.exchange(Exchange::Dlx).into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        ch.queue_bind(
            self.events_log().into(),
            self.exchange(Exchange::Events).into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        for stage in StageName::consumers() {
            let Some(binding) = stage.binding() else { continue };
            ch.queue_declare(self.queue(stage.as_str()).into(), qopts, self.quorum_args(true))
                .await?;
            ch.queue_bind(
                self.queue(stage.as_str()).into(),
                self.exchange(binding.exchange).into(),
                binding.pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }

    /// Removes every exchange and queue of this prefix (test clean-up).
    pub async fn delete(&self, ch: &Channel) -> Result<(), BusError> {
        let queues = StageName::consumers().map(|s| self.queue(s.as_str()));
        for q in queues.chain([self.dead_queue(), self.events_log()]) {
            ch.queue_delete(q.into(), QueueDeleteOptions::default()).await?;
        }
        for e in [
            Exchange::Intake,
            Exchange::Work,
            Exchange::Events,
            Exchange::Actions,
            Exchange::Dlx,
        ] {
            ch.exchange_delete(self.exchange(e).into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }

    /// Messages ready in a queue (passive declare; no management plugin needed).
    pub async fn depth(&self, ch: &Channel, queue: &str) -> Result<u32, BusError> {
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(q.message_count())
    }
}

/// The CloudEvents `type` of an event body, read without building its tree.
#[derive(serde::Deserialize)]
struct EventType<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: std::borrow::Cow<'a, str>,
}

/// The AMQP properties of an outgoing message: persistent, typed, with its id and headers.
pub fn properties(m: &Outgoing) -> BasicProperties {
    {
        let content_type = if m.exchange == Exchange::Events {
            "application/cloudevents+json"
        } else {
            "application/json"
        };
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(content_type.into())
            .with_message_id(m.message_id.as_str().into())
            .with_timestamp(chrono::Utc::now().timestamp() as u64);
        // An event's CloudEvents type rides in the AMQP `type` too, for consumers that route or
        // filter without parsing the body (a replay's routing key is its queue's name).
        if m.exchange == Exchange::Events
            && let Ok(EventType { kind }) = m.body.decode::<EventType>()
            && !kind.is_empty()
        {
            props = props.with_type(kind.as_ref().into());
        }
        if !m.headers.is_empty() {
            let mut table = FieldTable::default();
            for (k, v) in &m.headers {
                table.insert(ShortString::from(k.as_str()), AMQPValue::LongString(v.as_str().into()));
            }
            props = props.with_headers(table);
        }
        props
    }
}

/// A message handed to the broker whose confirm has not been awaited yet.
#[must_use = "a publish is only safe once its confirm has been awaited"]
pub struct Pending {
    confirm: lapin::PublisherConfirm,
    /// What errors call the message (its id, or a description).
    what: String,
}

/// Bounds of the events log's segment size (see `Topology::events_log_args`).
const EVENTS_LOG_SEGMENT_MIN: u64 = 1024 * 1024;
const EVENTS_LOG_SEGMENT_MAX: u64 = 100 * 1024 * 1024;

/// Dead letters the dead-letter queue keeps, and their bytes; past either the oldest go.
pub const DEAD_LETTER_MAX: u32 = 100_000;
pub const DEAD_LETTER_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// How long a dead letter is kept (30 days): long enough to inspect and replay, not for ever,
/// since it holds the whole request, contacts included.
pub const DEAD_LETTER_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

/// Longest wait for one confirm. A broker under a memory or disk alarm blocks publishers
/// (`connection.blocked`) and confirms nothing until the alarm clears; past this the caller
/// gives up, reconnects, and the unacknowledged inputs are redelivered (publishes are
/// idempotent by message id), instead of hanging for ever on a broker that stopped answering.
pub const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl Pending {
    async fn confirmation(self) -> Result<(lapin::Confirmation, String), BusError> {
        match tokio::time::timeout(CONFIRM_TIMEOUT, self.confirm).await {
            Ok(c) => Ok((c?, self.what)),
            Err(_) => Err(BusError::ConfirmTimeout {
                what: self.what,
                after: CONFIRM_TIMEOUT,
            }),
        }
    }

    /// Waits for the broker: `Ok` once it holds the message durably; an error if it refused
    /// (nack), for a mandatory publish no queue took it (returned), or no confirm came within
    /// [`CONFIRM_TIMEOUT`].
    pub async fn confirmed(self) -> Result<(), BusError> {
        let (confirmation, what) = self.confirmation().await?;
        if confirmation.is_nack() {
            return Err(BusError::Nacked(what));
        }
        if confirmation.take_message().is_some() {
            return Err(BusError::Unroutable(what));
        }
        Ok(())
    }

    /// Like [`Pending::confirmed`], but a returned message is not an error (a dead letter with
    /// no dead-letter queue bound has nowhere else to go either).
    pub async fn accepted(self) -> Result<(), BusError> {
        let (confirmation, what) = self.confirmation().await?;
        if confirmation.is_nack() {
            return Err(BusError::Nacked(what));
        }
        Ok(())
    }
}

/// Awaiting a `Pending` is [`Pending::accepted`]: the broker took the message.
impl std::future::IntoFuture for Pending {
    type Output = Result<(), BusError>;
    type IntoFuture = futures::future::BoxFuture<'static, Result<(), BusError>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.accepted())
    }
}

/// The one place a message is put on the broker. `ch` must be in confirm mode
/// ([`confirm_channel`]); the returned [`Pending`] says when the broker holds it. Sends can be
/// pipelined: send many, then await their confirms.
pub async fn send(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    payload: &[u8],
    props: BasicProperties,
    what: impl Into<String>,
) -> Result<Pending, BusError> {
    let what = what.into();
    let publish = ch.basic_publish(
        exchange.into(),
        routing_key.into(),
        BasicPublishOptions {
            mandatory,
            ..Default::default()
        },
        payload,
        props,
    );
    let confirm = match tokio::time::timeout(CONFIRM_TIMEOUT, publish).await {
        Ok(c) => c?,
        Err(_) => {
            return Err(BusError::ConfirmTimeout {
                what,
                after: CONFIRM_TIMEOUT,
            });
        }
    };
    Ok(Pending { confirm, what })
}

/// Publishes every message, then waits for all confirms (pipelined, not one round trip each).
/// Every message is mandatory: a missing queue is an error, not a silent drop. Events too: the
/// events log is bound to every one of them, so an event no queue takes means the topology is
/// missing, and the event would be lost for every consumer, later ones included.
pub async fn publish_all(ch: &Channel, topo: &Topology, messages: &[Outgoing]) -> Result<(), BusError> {
    let mut pending = Vec::with_capacity(messages.len());
    for m in messages {
        let exchange = topo.exchange(m.exchange);
        pending.push(
            send(
                ch,
                &exchange,
                &m.routing_key,
                true,
                m.body.as_bytes(),
                properties(m),
                &m.message_id,
            )
            .await?,
        );
    }
    for p in pending {
        p.confirmed().await?;
    }
    Ok(())
}

/// Publishes raw bytes with confirm (intake adapters, replays, tests).
pub async fn publish_raw(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    props: BasicProperties,
) -> Result<(), BusError> {
    send(ch, exchange, routing_key, true, payload, props, routing_key)
        .await?
        .confirmed()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(display_url("amqp://guest:secret@10.0.0.1:5672/%2f"), "10.0.0.1:5672");
        assert_eq!(display_url("amqp://localhost"), "localhost");
    }

    #[test]
    fn names_share_the_prefix() {
        let t = Topology::new("t_abc", 5);
        assert_eq!(t.exchange(Exchange::Work), "t_abc.work");
        assert_eq!(t.queue("classify"), "t_abc.classify");
        assert_eq!(t.dead_queue(), "t_abc.dead");
        assert_eq!(t.events_log(), "t_abc.events.log");
    }

    #[test]
    fn the_events_log_is_a_stream_kept_by_age_and_size() {
        let mut t = Topology::new("t_abc", 5);
        let args = t.events_log_args();
        let get = |args: &FieldTable, k: &str| args.inner().get(k).cloned();
        assert_eq!(get(&args, "x-queue-type"), Some(AMQPValue::LongString("stream".into())));
        assert_eq!(get(&args, "x-max-age"), Some(AMQPValue::LongString("7D".into())));
        assert_eq!(get(&args, "x-max-length-bytes"), Some(AMQPValue::LongLongInt(10 << 30)));
        assert_eq!(
            get(&args, "x-stream-max-segment-size-bytes"),
            Some(AMQPValue::LongLongInt(100 << 20))
        );
        t.events_log_max_bytes = 1 << 20;
        let small = t.events_log_args();
        assert_eq!(
            get(&small, "x-stream-max-segment-size-bytes"),
            Some(AMQPValue::LongLongInt(1 << 20))
        );
    }
}

//! Dead letters: messages that cannot be processed, kept with the reason why.
//!
//! A stage publishes the original bytes and properties to the dead-letter exchange with
//! `x-switchboard-*` headers, then acks the original; the broker's own dead-lettering (delivery
//! limit exceeded) lands in the same queue with its `x-death` header.

use super::{BusError, Exchange, Topology};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};

pub const REASON: &str = "x-switchboard-reason";
pub const STAGE: &str = "x-switchboard-stage";
pub const ORIGINAL_EXCHANGE: &str = "x-switchboard-original-exchange";
pub const ORIGINAL_ROUTING_KEY: &str = "x-switchboard-original-routing-key";
pub const FAILED_AT: &str = "x-switchboard-failed-at";
/// Header that names a dead letter (set by [`dead_letter_properties`]).
pub const DEAD_ID: &str = "x-switchboard-dead-id";

/// Builds the properties of a dead letter: the original ones plus why and where it failed.
pub fn dead_letter_properties(
    original: &BasicProperties,
    stage: &str,
    exchange: &str,
    routing_key: &str,
    reason: &str,
) -> BasicProperties {
    let mut headers = original.headers().clone().unwrap_or_default();
    let mut put = |k: &str, v: &str| {
        headers.insert(ShortString::from(k), AMQPValue::LongString(v.into()));
    };
    // Reasons can quote a whole serde error; keep headers small.
    let reason: String = reason.chars().take(1000).collect();
    put(REASON, &reason);
    put(STAGE, stage);
    put(ORIGINAL_EXCHANGE, exchange);
    put(ORIGINAL_ROUTING_KEY, routing_key);
    put(FAILED_AT, &chrono::Utc::now().to_rfc3339());
    // A name for the operator (`switchboard dead show ID`): message ids can be missing or repeat.
    let id = uuid::Uuid::new_v4().simple().to_string();
    put(DEAD_ID, &id[..12]);
    original.clone().with_headers(headers).with_delivery_mode(2)
}

/// Publishes a dead letter; the caller awaits the confirm.
pub async fn publish(
    ch: &Channel,
    topo: &Topology,
    data: &[u8],
    props: BasicProperties,
) -> Result<super::Pending, BusError> {
    super::send(ch, &topo.exchange(Exchange::Dlx), "", true, data, props, "dead letter").await
}

/// Reads a string header, whichever AMQP string type carries it.
pub fn header_str(headers: &FieldTable, key: &str) -> Option<String> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        other => Some(format!("{other:?}")),
    }
}

/// Why a dead letter is dead: our own header, or the broker's `x-death` record.
pub fn reason_of(props: &BasicProperties) -> String {
    let Some(headers) = props.headers() else {
        return "unknown (no headers)".into();
    };
    if let Some(r) = header_str(headers, REASON) {
        return r;
    }
    if let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death")
        && let Some(AMQPValue::FieldTable(first)) = deaths.as_slice().first()
    {
        let why = header_str(first, "reason").unwrap_or_default();
        let queue = header_str(first, "queue").unwrap_or_default();
        return match why.as_str() {
            "delivery_limit" => format!(
                "delivery limit exceeded on {queue}: the message failed repeatedly (a worker crashed or kept retrying it)"
            ),
            other => format!("dead-lettered by the broker from {queue}: {other}"),
        };
    }
    "unknown".into()
}

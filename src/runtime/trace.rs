//! Distributed tracing: the W3C `traceparent` each message carries, and the spans a process
//! exports when `SWITCHBOARD_OTLP_ENDPOINT` is set (installed by `runtime::telemetry`).
//!
//! A request's trace starts at the gateway (from the HTTP request's `traceparent`, or new) or
//! at whoever published the intake message (its AMQP `traceparent` header). Each stage opens one
//! span per message it takes, as a child of the message's `traceparent`; everything the stage
//! publishes for that message carries the span's context (`Outgoing::carry_trace`), and the
//! ledger stores it with the outputs, so a redelivery re-publishes the same trace context. A
//! batch gets a span of its own that links to each message's span.
//!
//! Exporting off (the default), no span is made: a message's `traceparent` is passed on as it
//! came, so the next hop (or a collector behind another service) still sees one trace.

use crate::contracts::outgoing::TRACEPARENT;
use lapin::BasicProperties;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Called by `telemetry` once the OTLP pipeline is installed.
pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether this process makes and exports spans.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The OpenTelemetry context a well-formed `traceparent` names; `None` for anything else (a
/// malformed header starts a new trace rather than failing the message).
pub fn remote_context(traceparent: &str) -> Option<opentelemetry::Context> {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.trim().to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// `traceparent` if well-formed, normalised as the propagator writes it.
pub fn valid(traceparent: &str) -> Option<String> {
    remote_context(traceparent).and_then(|cx| inject(&cx))
}

fn inject(cx: &opentelemetry::Context) -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The `traceparent` header of an AMQP message, if it has a well-formed one. Only a string
/// header of a sensible length is read: a publisher's table, array or megabyte string is not
/// formatted or copied, just ignored.
pub fn from_amqp(props: &BasicProperties) -> Option<String> {
    use lapin::types::AMQPValue;
    let text = match props.headers().as_ref()?.inner().get(TRACEPARENT)? {
        AMQPValue::LongString(s) if s.as_bytes().len() <= MAX_TRACEPARENT => s.to_string(),
        AMQPValue::ShortString(s) if s.as_str().len() <= MAX_TRACEPARENT => s.as_str().to_owned(),
        _ => return None,
    };
    valid(&text)
}

/// A `traceparent` is 55 characters; allow for a future version's few more, not for a flood.
const MAX_TRACEPARENT: usize = 256;

/// The span's context as a `traceparent`, when exporting (an unexported span has none).
pub fn traceparent_of(span: &Span) -> Option<String> {
    if !exporting() {
        return None;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    inject(&cx)
}

/// One unit of work in a trace: its span (disabled when not exporting) and the `traceparent`
/// what it publishes carries.
pub struct Work {
    pub span: Span,
    pub traceparent: Option<String>,
}

/// What a span does, in OpenTelemetry's terms (the span's kind).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A stage processing a message it consumed.
    Consume,
    /// The gateway publishing a request it accepted.
    Publish,
}

/// Opens the span of one piece of work — a stage handling a message, the gateway taking a
/// request — as the child of `incoming` (a `traceparent`), or as the root of a new trace; named
/// `process <stage>` or `publish <stage>`. Not exporting, no span: `incoming` is what the
/// work's outputs carry on.
pub fn start(kind: Kind, stage: &str, message_id: &str, incoming: Option<&str>) -> Work {
    if !exporting() {
        return Work {
            span: Span::none(),
            traceparent: incoming.and_then(valid),
        };
    }
    let (verb, otel_kind) = match kind {
        Kind::Consume => ("process", "consumer"),
        Kind::Publish => ("publish", "producer"),
    };
    let otel_name = format!("{verb} {stage}");
    let span = tracing::info_span!(
        "message",
        otel.name = otel_name.as_str(),
        otel.kind = otel_kind,
        stage,
        messaging.system = "rabbitmq",
        messaging.message.id = message_id,
    );
    // An explicit empty parent makes a message without a trace the root of a new one, whatever
    // span happens to be current.
    let parent = incoming.and_then(remote_context).unwrap_or_default();
    let _ = span.set_parent(parent);
    let traceparent = traceparent_of(&span);
    Work { span, traceparent }
}

/// Links a batch's span to the span of each message in it (a batch serves many traces; each
/// message's own span carries its trace on). Call before the batch span is first entered.
pub fn link_batch(batch_span: &Span, messages: &[Work]) {
    if !exporting() {
        return;
    }
    for m in messages {
        let cx = m.span.context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            batch_span.add_link(sc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::StageName;
    use lapin::types::{AMQPValue, FieldTable};

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn only_a_well_formed_traceparent_is_carried() {
        assert_eq!(valid(TP).as_deref(), Some(TP));
        assert_eq!(valid(&format!(" {TP} ")).as_deref(), Some(TP));
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(valid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_amqp_header_is_read_and_not_exporting_passes_it_on() {
        let mut headers = FieldTable::default();
        headers.insert(TRACEPARENT.into(), AMQPValue::LongString(TP.into()));
        let props = BasicProperties::default().with_headers(headers);
        assert_eq!(from_amqp(&props).as_deref(), Some(TP));
        assert_eq!(from_amqp(&BasicProperties::default()), None);
        // Not a string, or a flood: ignored, not formatted.
        for hostile in [
            AMQPValue::FieldArray(vec![AMQPValue::LongString(TP.into())].into()),
            AMQPValue::LongLongInt(7),
            AMQPValue::LongString(format!("{TP}{}", " ".repeat(100_000)).into()),
        ] {
            let mut headers = FieldTable::default();
            headers.insert(TRACEPARENT.into(), hostile);
            assert_eq!(from_amqp(&BasicProperties::default().with_headers(headers)), None);
        }
        // No exporter in unit tests: the work carries the incoming context unchanged.
        let work = start(Kind::Consume, StageName::Classify.as_str(), "m-1", Some(TP));
        assert_eq!(work.traceparent.as_deref(), Some(TP));
        assert!(work.span.is_none());
        assert_eq!(
            start(Kind::Consume, StageName::Intake.as_str(), "m-2", None).traceparent,
            None
        );
    }
}

//! The stages by name: which queue each consumes, how that queue is bound, and which stage comes
//! next. This table is the one place a stage's name is spelled; the topology, the queue lists,
//! the health report, the metrics labels and the work messages' routing keys all come from it.
//! (What each stage *does* is registered in `crate::stages::registry`.)

use super::Exchange;

/// Every stage a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum StageName {
    Intake,
    Classify,
    Prioritize,
    Assign,
    /// Fired SLA timers → breaches and escalation steps.
    Escalate,
    /// Actions on tickets: respond, resolve, rate, …
    Lifecycle,
    /// Events → the deliveries they call for: staff notifications, messages to customers,
    /// webhook posts.
    Notify,
    /// Claims due SLA timers (not a queue consumer).
    Scheduler,
    /// Sends due deliveries (not a queue consumer).
    Deliver,
}

/// The name of every stage queue (the dead-letter queue aside), in pipeline order.
pub const QUEUES: [&str; 7] = [
    StageName::Intake.as_str(),
    StageName::Classify.as_str(),
    StageName::Prioritize.as_str(),
    StageName::Assign.as_str(),
    StageName::Escalate.as_str(),
    StageName::Lifecycle.as_str(),
    StageName::Notify.as_str(),
];

/// How a stage's queue is bound: the exchange it takes messages from and the routing key (or
/// topic pattern) that selects them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub exchange: Exchange,
    pub pattern: &'static str,
}

impl StageName {
    pub const ALL: [StageName; 9] = [
        StageName::Intake,
        StageName::Classify,
        StageName::Prioritize,
        StageName::Assign,
        StageName::Escalate,
        StageName::Lifecycle,
        StageName::Notify,
        StageName::Scheduler,
        StageName::Deliver,
    ];
    /// The intake → assigned pipeline only.
    pub const PIPELINE: [StageName; 4] = [
        StageName::Intake,
        StageName::Classify,
        StageName::Prioritize,
        StageName::Assign,
    ];

    /// The name: queue suffix, metrics label, transition actor, work message routing key.
    pub const fn as_str(self) -> &'static str {
        match self {
            StageName::Intake => "intake",
            StageName::Classify => "classify",
            StageName::Prioritize => "prioritize",
            StageName::Assign => "assign",
            StageName::Escalate => "escalate",
            StageName::Lifecycle => "lifecycle",
            StageName::Notify => "notify",
            StageName::Scheduler => "scheduler",
            StageName::Deliver => "deliver",
        }
    }

    pub fn parse(name: &str) -> Option<StageName> {
        StageName::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Where the stage's queue takes its messages from; `None` for a stage without a queue.
    pub const fn binding(self) -> Option<Binding> {
        match self {
            StageName::Intake => Some(Binding {
                exchange: Exchange::Intake,
                pattern: "intake.*",
            }),
            StageName::Lifecycle => Some(Binding {
                exchange: Exchange::Actions,
                pattern: "action.*",
            }),
            // Every event: webhook subscriptions may ask for any of them.
            StageName::Notify => Some(Binding {
                exchange: Exchange::Events,
                pattern: "#",
            }),
            // Work messages are routed by the receiving stage's name.
            StageName::Classify | StageName::Prioritize | StageName::Assign | StageName::Escalate => Some(Binding {
                exchange: Exchange::Work,
                pattern: self.as_str(),
            }),
            StageName::Scheduler | StageName::Deliver => None,
        }
    }

    /// The stage a ticket goes to after this one, on the work exchange.
    pub const fn next(self) -> Option<StageName> {
        match self {
            StageName::Intake => Some(StageName::Classify),
            StageName::Classify => Some(StageName::Prioritize),
            StageName::Prioritize => Some(StageName::Assign),
            _ => None,
        }
    }

    /// The stages that consume a queue, in pipeline order.
    /// The stage a ticket in `state` waits for, if the pipeline still owes it a step
    /// (received → classify, classified → prioritize, prioritized → assign).
    pub fn awaited_in(state: crate::core::state::TicketState) -> Option<StageName> {
        use crate::core::state::TicketState as S;
        match state {
            S::Received => Some(StageName::Classify),
            S::Classified => Some(StageName::Prioritize),
            S::Prioritized => Some(StageName::Assign),
            _ => None,
        }
    }

    pub fn consumers() -> impl Iterator<Item = StageName> {
        StageName::ALL.into_iter().filter(|s| s.binding().is_some())
    }
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_consumer_has_one_binding() {
        for s in StageName::ALL {
            assert_eq!(StageName::parse(s.as_str()), Some(s));
        }
        let queues: Vec<&str> = StageName::consumers().map(StageName::as_str).collect();
        assert_eq!(queues, QUEUES);
        // The pipeline is a chain of work messages: every hop lands on a work-bound queue.
        for s in StageName::PIPELINE {
            if let Some(next) = s.next() {
                assert_eq!(next.binding().map(|b| b.exchange), Some(Exchange::Work));
            }
        }
    }
}

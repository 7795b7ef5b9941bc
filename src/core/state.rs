//! The ticket state machine (SPEC §6): which state changes are allowed, and why not.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    Received,
    Classified,
    Prioritized,
    Queued,
    Assigned,
    InProgress,
    WaitingForCustomer,
    Resolved,
    Closed,
}

impl TicketState {
    pub const ALL: [TicketState; 9] = [
        TicketState::Received,
        TicketState::Classified,
        TicketState::Prioritized,
        TicketState::Queued,
        TicketState::Assigned,
        TicketState::InProgress,
        TicketState::WaitingForCustomer,
        TicketState::Resolved,
        TicketState::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Received => "received",
            TicketState::Classified => "classified",
            TicketState::Prioritized => "prioritized",
            TicketState::Queued => "queued",
            TicketState::Assigned => "assigned",
            TicketState::InProgress => "in_progress",
            TicketState::WaitingForCustomer => "waiting_for_customer",
            TicketState::Resolved => "resolved",
            TicketState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<TicketState> {
        TicketState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Open tickets count against an agent's load and can receive thread replies.
    pub fn is_open(self) -> bool {
        self != TicketState::Closed
    }

    /// Whether `self → to` is a legal transition. Same-state "transitions" are never legal:
    /// escalations and notes are recorded as events, not state changes.
    pub fn can_become(self, to: TicketState) -> bool {
        use TicketState::*;
        matches!(
            (self, to),
            (Received, Classified)
                | (Classified, Prioritized)
                | (Prioritized, Assigned)
                | (Prioritized, Queued)
                | (Queued, Assigned)
                | (Assigned, Queued)
                // Transferred to another team's queue.
                | (InProgress, Queued)
                | (WaitingForCustomer, Queued)
                // Merged into another ticket as its duplicate.
                | (Queued, Closed)
                | (Assigned, Closed)
                | (InProgress, Closed)
                | (WaitingForCustomer, Closed)
                // Reopened with nobody assigned (a merged duplicate): back to the queue.
                | (Resolved, Queued)
                | (Closed, Queued)
                | (Assigned, InProgress)
                | (Assigned, WaitingForCustomer)
                | (Assigned, Resolved)
                | (InProgress, WaitingForCustomer)
                | (WaitingForCustomer, InProgress)
                | (InProgress, Resolved)
                | (WaitingForCustomer, Resolved)
                | (Resolved, InProgress)
                | (Resolved, Closed)
                | (Closed, InProgress)
        )
    }
}

impl std::fmt::Display for TicketState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_pipeline_path_is_allowed() {
        use TicketState::*;
        let path = [
            Received,
            Classified,
            Prioritized,
            Assigned,
            InProgress,
            Resolved,
            Closed,
        ];
        for w in path.windows(2) {
            assert!(w[0].can_become(w[1]), "{} → {}", w[0], w[1]);
        }
        assert!(Prioritized.can_become(Queued) && Queued.can_become(Assigned));
    }

    #[test]
    fn names_round_trip() {
        for s in TicketState::ALL {
            assert_eq!(TicketState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
    }

    proptest! {
        #[test]
        fn no_state_transitions_to_itself(i in 0usize..9) {
            let s = TicketState::ALL[i];
            prop_assert!(!s.can_become(s));
        }

        #[test]
        fn nothing_goes_back_to_received(i in 0usize..9) {
            prop_assert!(!TicketState::ALL[i].can_become(TicketState::Received));
        }
    }
}

//! The counts behind the gauges no message path updates: open tickets by state and team, and
//! each team's load. Cheap: an indexed count over open tickets and the small agents table.

use super::{Db, StoreError};
use crate::core::state::TicketState;

/// Open tickets as `(state, team or "none", count)`.
pub async fn open_tickets(db: &Db) -> Result<Vec<(String, String, i64)>, StoreError> {
    let client = db.pool.get().await?;
    let open: Vec<String> = TicketState::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .map(|s| s.as_str().to_owned())
        .collect();
    // `state = ANY(open states)` rather than `<> 'closed'`: the state index then skips the
    // closed tickets, which only grow.
    let rows = client
        .query(
            "SELECT state, coalesce(team, 'none'), count(*) FROM tickets WHERE state = ANY($1) GROUP BY 1, 2",
            &[&open],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// Each team's `(team, open assigned tickets, capacity, agents online)`.
pub async fn team_loads(db: &Db) -> Result<Vec<(String, i64, i64, i64)>, StoreError> {
    let client = db.pool.get().await?;
    let rows = client
        .query(
            "SELECT team, sum(open_tickets)::bigint, sum(max_open)::bigint,
                    count(*) FILTER (WHERE presence = 'online')
             FROM agent_loads GROUP BY team",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
}

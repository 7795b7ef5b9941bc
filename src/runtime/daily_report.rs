//! The daily roll-up, run beside the SLA scheduler: at `[reports.daily] at` (policy time zone)
//! it makes the day's report and queues it for the people the policy names, through the
//! deliveries the deliver stage sends. The ledger row (`report_runs`) is written in the same
//! transaction as the deliveries, so two schedulers, or one restarted, send it once per day.

use crate::core::policy::Policy;
use crate::core::report::daily;
use crate::core::report::{Period, PeriodSpec};
use crate::store::{Db, StoreError, reports};
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The ledger's kind for the daily roll-up.
pub const KIND: &str = "daily";
/// How often the job looks whether the roll-up is due.
pub const EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DailyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the daily roll-up's period: {0}")]
    Period(#[from] crate::core::report::PeriodError),
    #[error("{0}")]
    Policy(String),
}

/// Makes and queues the roll-up if it is due at `now` and not made yet. Returns the day and the
/// number of deliveries queued when this call made it; `None` when not due, not configured, or
/// already made (here or by another scheduler).
pub async fn run_once(
    db: &Db,
    policy: &Policy,
    mail_domain: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<(NaiveDate, usize)>, DailyError> {
    let Some(cfg) = &policy.doc.reports.daily else {
        return Ok(None);
    };
    let at = cfg.time().map_err(DailyError::Policy)?;
    let Some(day) = daily::due_day(now, policy.tz, at) else {
        return Ok(None);
    };
    if reports::run_recorded(db, KIND, day).await? {
        return Ok(None);
    }
    let period = Period::resolve(PeriodSpec::Day(day), now, policy.tz)?;
    let report = reports::report(db, policy, &period, now).await?;
    let labels = crate::core::report::labels::Labels::from_policy(policy, cfg.lang);
    let (subject, text) = daily::message(&report, &labels);
    let planned = daily::plan(day, &cfg.notify, &policy.doc.notify, &subject, &text, mail_domain);
    if planned.is_empty() {
        warn!(%day, roles = ?cfg.notify, "the daily roll-up reaches nobody: give the roles' people an email (and smtp_url) or a robot");
    }
    if reports::record_run(db, KIND, day, &planned, now).await? {
        metrics::counter!("switchboard_daily_reports_total").increment(1);
        info!(%day, deliveries = planned.len(), "daily roll-up queued");
        Ok(Some((day, planned.len())))
    } else {
        Ok(None)
    }
}

/// Runs until `shutdown`, looking every [`EVERY`] whether the roll-up is due.
pub async fn run(db: Db, policy: Arc<Policy>, mail_domain: Option<String>, shutdown: CancellationToken) {
    if policy.doc.reports.daily.is_none() {
        return;
    }
    loop {
        if let Err(e) = run_once(&db, &policy, mail_domain.as_deref(), Utc::now()).await {
            warn!(error = %e, "the daily roll-up failed; trying again shortly");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

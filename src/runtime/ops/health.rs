//! Readiness state shared by the stage runners and the `/readyz` endpoint.
//!
//! The runners report what they have (a broker connection, consumers consuming); `/readyz`
//! compares that with what each runner was asked to run, and pings Postgres. Stage logic knows
//! nothing of it: only the shared consumer loop (`pipeline::run_stage`) and the scheduler write
//! here.

use crate::core::calendar::{PublicHolidays, WARN_FROM_MONTH, missing_year_message};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What one runner (a stage, or the scheduler) has right now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Component {
    /// Consumers it was asked to run (0 for the scheduler, which consumes nothing).
    pub expected_consumers: usize,
    /// Consumers currently inside `basic_consume` and taking deliveries.
    pub consuming: usize,
    /// Whether it holds an open connection to RabbitMQ.
    pub broker_connected: bool,
}

/// Per-process health, shared as `Arc<Health>` (one per `App`).
#[derive(Debug, Default)]
pub struct Health {
    components: Mutex<BTreeMap<String, Component>>,
    /// The policy's public holidays and its zone, watched for a missing coming year.
    holidays: Mutex<Option<(PublicHolidays, chrono_tz::Tz)>>,
}

/// One readiness check: whether it passed, and in words what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn pass(detail: impl Into<String>) -> Check {
        Check {
            ok: true,
            detail: detail.into(),
        }
    }

    pub fn fail(detail: impl Into<String>) -> Check {
        Check {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// The `/readyz` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Names of the failed checks, so a probe's log line says which one at a glance.
    pub failed: Vec<&'static str>,
    pub checks: BTreeMap<&'static str, Check>,
    /// Things an operator must see to that do not stop the process from serving (e.g. the
    /// coming year's public holidays are not declared).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub warnings: BTreeMap<&'static str, String>,
}

impl Readiness {
    pub fn from_checks(checks: Vec<(&'static str, Check)>) -> Readiness {
        let failed: Vec<&'static str> = checks.iter().filter(|(_, c)| !c.ok).map(|(n, _)| *n).collect();
        Readiness {
            ready: failed.is_empty(),
            failed,
            checks: checks.into_iter().collect(),
            warnings: BTreeMap::new(),
        }
    }
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Component>> {
        // The map holds plain counters: a panic elsewhere cannot leave it half-updated.
        self.components.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a runner that must be connected, with `consumers` consumers, for the process
    /// to be ready. Called once when the runner starts.
    pub fn register(&self, name: &str, consumers: usize) {
        let mut map = self.lock();
        let c = map.entry(name.to_owned()).or_default();
        c.expected_consumers = consumers;
    }

    /// The runner `name` got (true) or lost (false) its broker connection.
    pub fn set_connected(&self, name: &str, connected: bool) {
        self.lock().entry(name.to_owned()).or_default().broker_connected = connected;
    }

    /// Counts a consumer of `name` as consuming until the returned guard is dropped, however
    /// the consumer ends (shutdown, broker error, panic).
    pub fn consumer_started(self: &Arc<Self>, name: &str) -> ConsumerGuard {
        self.lock().entry(name.to_owned()).or_default().consuming += 1;
        ConsumerGuard {
            health: self.clone(),
            name: name.to_owned(),
        }
    }

    /// Watches the policy's public holidays: [`Self::warnings`] then says when the current
    /// year, or from October on the next one, is not declared. Logs the warning at once.
    pub fn watch_public_holidays(&self, declared: PublicHolidays, tz: chrono_tz::Tz, now: DateTime<Utc>) {
        *self.holidays.lock().unwrap_or_else(|p| p.into_inner()) = Some((declared, tz));
        if let Some(w) = self.warnings(now).get("calendar") {
            tracing::warn!("{w}");
        }
    }

    /// Warnings at `now` (not failures: `/readyz` still answers 200). Also sets the gauge
    /// `switchboard_calendar_missing_year` (the missing year, 0 when none).
    pub fn warnings(&self, now: DateTime<Utc>) -> BTreeMap<&'static str, String> {
        let mut out = BTreeMap::new();
        let guard = self.holidays.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((declared, tz)) = guard.as_ref() {
            let missing = declared.missing_year(now.with_timezone(tz).date_naive(), WARN_FROM_MONTH);
            metrics::gauge!("switchboard_calendar_missing_year").set(missing.map_or(0.0, f64::from));
            if let Some(year) = missing {
                out.insert("calendar", missing_year_message(year));
            }
        }
        out
    }

    pub fn components(&self) -> BTreeMap<String, Component> {
        self.lock().clone()
    }

    /// The broker and consumer checks (Postgres is pinged by the endpoint itself).
    pub fn runtime_checks(&self) -> Vec<(&'static str, Check)> {
        let map = self.components();
        if map.is_empty() {
            let none = "no stage is running in this process yet";
            return vec![("broker", Check::fail(none)), ("consumers", Check::fail(none))];
        }
        let disconnected: Vec<&str> = map
            .iter()
            .filter(|(_, c)| !c.broker_connected)
            .map(|(n, _)| n.as_str())
            .collect();
        let broker = if disconnected.is_empty() {
            Check::pass(format!("connected ({})", join_names(map.keys().map(String::as_str))))
        } else {
            Check::fail(format!(
                "not connected to RabbitMQ: {} (reconnecting with backoff; see the log)",
                disconnected.join(", ")
            ))
        };
        let counts: Vec<String> = map
            .iter()
            .filter(|(_, c)| c.expected_consumers > 0)
            .map(|(n, c)| format!("{n} {}/{}", c.consuming, c.expected_consumers))
            .collect();
        let short = map
            .values()
            .any(|c| c.expected_consumers > 0 && c.consuming < c.expected_consumers);
        let consumers = if short {
            Check::fail(format!(
                "consumers short of the configured number: {}",
                counts.join(", ")
            ))
        } else if counts.is_empty() {
            Check::pass("no queue consumers in this process")
        } else {
            Check::pass(format!("consuming: {}", counts.join(", ")))
        };
        vec![("broker", broker), ("consumers", consumers)]
    }
}

fn join_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// Holds one consumer's place in the count; dropping it takes the consumer out.
#[derive(Debug)]
pub struct ConsumerGuard {
    health: Arc<Health>,
    name: String,
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        if let Some(c) = self.health.lock().get_mut(&self.name) {
            c.consuming = c.consuming.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[test]
    fn the_coming_year_is_due_from_october_and_the_current_one_always() {
        let h = Health::default();
        let mut declared = PublicHolidays::default();
        declared.years.insert(2026, None);
        h.watch_public_holidays(declared, chrono_tz::Asia::Shanghai, Utc::now());
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap();
        assert!(h.warnings(at(2026, 9, 30)).is_empty());
        let w = h.warnings(at(2026, 10, 1));
        assert!(w["calendar"].contains("for 2027"), "{w:?}");
        // Asia/Shanghai: 2026-09-30 16:00Z is already October 1 there.
        assert!(
            !h.warnings(Utc.with_ymd_and_hms(2026, 9, 30, 16, 0, 0).unwrap())
                .is_empty()
        );
        assert!(h.warnings(at(2027, 1, 2))["calendar"].contains("for 2027"));
    }

    use super::*;

    fn check<'a>(checks: &'a [(&'static str, Check)], name: &str) -> &'a Check {
        &checks.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn nothing_registered_is_not_ready() {
        let h = Health::new();
        let checks = h.runtime_checks();
        assert!(!check(&checks, "broker").ok);
        assert!(!check(&checks, "consumers").ok);
    }

    #[test]
    fn ready_only_when_connected_with_every_consumer() {
        let h = Health::new();
        h.register("intake", 2);
        h.register("scheduler", 0);
        let checks = h.runtime_checks();
        assert!(!check(&checks, "broker").ok);
        assert!(check(&checks, "broker").detail.contains("intake"), "{checks:?}");

        h.set_connected("intake", true);
        h.set_connected("scheduler", true);
        let one = h.consumer_started("intake");
        let checks = h.runtime_checks();
        assert!(check(&checks, "broker").ok);
        let consumers = check(&checks, "consumers");
        assert!(!consumers.ok);
        assert!(consumers.detail.contains("intake 1/2"), "{consumers:?}");

        let two = h.consumer_started("intake");
        assert!(h.runtime_checks().iter().all(|(_, c)| c.ok));

        // A consumer that stops (its guard dropped) makes the process unready again.
        drop(two);
        assert!(!check(&h.runtime_checks(), "consumers").ok);
        drop(one);
        assert_eq!(h.components()["intake"].consuming, 0);
    }

    #[test]
    fn readiness_names_the_failed_checks() {
        let r = Readiness::from_checks(vec![
            ("broker", Check::pass("connected")),
            ("postgres", Check::fail("timed out")),
        ]);
        assert!(!r.ready);
        assert_eq!(r.failed, vec!["postgres"]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["checks"]["postgres"]["detail"], "timed out");
    }
}

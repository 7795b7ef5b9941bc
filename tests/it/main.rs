//! The ordinary integration tests, in one binary: one link instead of one per file. Each test
//! works in its own queue prefix and Postgres schema, so they run in parallel.
//!
//! Binaries of their own: `tests/chaos.rs` and `tests/recovery.rs` stop and restart the shared
//! RabbitMQ and Postgres (cargo runs test binaries one after another, so nothing else runs
//! meanwhile), and `tests/cluster.rs` needs the three-node cluster (`scripts/cluster-proof`).

#[path = "../support/backdate.rs"]
mod backdate;
#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod bad_day;
mod bad_input;
mod calendar;
mod chain;
mod cli;
mod compose;
mod conformance;
mod connections;
mod contracts;
mod dashboard;
mod dead_letters;
mod desk;
mod docs;
mod effectively_once;
mod events_log;
mod gateway;
mod groups;
mod kubernetes;
mod milestones;
mod notify;
mod ops_endpoints;
mod outbound;
mod people;
mod pipeline;
mod record;
mod replies;
mod reports;
mod retention;
mod security;
mod shutdown;
mod sla;
mod traces;
mod triage;

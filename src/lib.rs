//! Switchboard: a contact center's request flow on RabbitMQ and Postgres.
//!
//! Requests from every channel become tickets that are classified, prioritized, assigned and
//! watched against their SLA. The crate is a functional core (`domain`, `classify`, `policy`)
//! inside an imperative shell (`bus`, `store`, `pipeline`, `stages`, `app`).

pub mod api;
pub mod app;
pub mod bench;
pub mod bus;
pub mod classify;
pub mod config;
pub mod demo;
pub mod domain;
pub mod events;
pub mod gateway;
pub mod lifecycle;
pub mod ops;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod scheduler;
pub mod stages;
pub mod store;
pub mod telemetry;

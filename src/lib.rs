//! Switchboard: a contact center's request flow on RabbitMQ and Postgres.
//!
//! Requests from every channel become tickets that are classified, prioritized, assigned and
//! watched against their SLA.
//!
//! # Layout
//!
//! Layers, lowest first. A module imports only from layers below it (or its own); the tests in
//! `src/layout_tests.rs` read every path and fail on an upward edge, on SQL outside `store`, on
//! a publish outside `bus`, and on a stage name spelled outside `contracts`.
//!
//! - [`core`] — the domain: plain data and pure functions (tickets, states, routing, SLA clocks,
//!   calendars, escalation ladders, classification, reports, the policy). No I/O, no clock reads.
//! - [`contracts`] — every message on the wire: intake requests, work and drain messages, timer
//!   and action messages, the CloudEvents, the outgoing envelope.
//! - [`channels`] — each channel's native format (raw email, phone call events, chat messages)
//!   turned into an intake request. Pure.
//! - [`config`] — settings from file and environment, and loading the policy files.
//! - [`store`] (Postgres, every SQL statement), [`bus`] (RabbitMQ, the one publisher) and
//!   [`outbound`] (webhooks, chat robots and email: one delivery attempt each). None imports
//!   another; `outbound` imports only `core` and `contracts`.
//! - [`runtime`] — the consumer loop every stage runs in, the scheduler and outbox relay, health,
//!   metrics, logging. Takes the parts it needs, never the whole application.
//! - [`stages`] — one module per stage and the registry that lists them.
//! - [`http`] — every HTTP route: intake, the ticket API, the dashboard.
//! - [`app`] — wiring: only it (with the binaries) knows every layer.

pub mod app;
pub mod bus;
pub mod channels;
pub mod config;
pub mod contracts;
pub mod core;
pub mod http;
pub mod outbound;
pub mod runtime;
pub mod stages;
pub mod store;

#[cfg(test)]
mod layout_tests;

//! What runs the stages: the consumer loop (`runner`), the timer scheduler and outbox relay
//! (`scheduler`), health and metrics endpoints (`ops`), logging (`telemetry`).

pub mod backoff;
pub mod daily_report;
pub mod deliver;
pub mod ops;
pub mod relay;
pub mod runner;
pub mod scheduler;
pub mod services;
pub mod telemetry;
pub mod trace;

pub use services::Services;

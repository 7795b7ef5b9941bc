//! The functional core: plain data and pure functions, tested without a broker or a database.
//! Nothing here does I/O or reads the clock: the time is always a parameter.

pub mod access;
pub mod actions;
pub mod backoff;
pub mod calendar;
pub mod classify;
pub mod customer;
pub mod escalation;
pub mod groups;
pub mod notify;
pub mod numbering;
pub mod policy;
pub mod privacy;
pub mod record;
pub mod report;
pub mod report_policy;
pub mod retention;
pub mod routing;
pub mod search;
pub mod sla;
pub mod state;
pub mod ticket;

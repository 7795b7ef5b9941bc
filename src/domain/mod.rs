//! The functional core: plain data and pure functions, tested without a broker or a database.

pub mod calendar;
pub mod escalation;
pub mod intake;
pub mod lifecycle;
pub mod numbering;
pub mod privacy;
pub mod retention;
pub mod routing;
pub mod sla;
pub mod state;
pub mod ticket;

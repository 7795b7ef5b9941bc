//! The gateway's load generator and HTTP client (moving to the tools crate).

pub mod client;
pub mod loadgen;
pub use crate::channels as normalize;

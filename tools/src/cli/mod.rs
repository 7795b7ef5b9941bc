//! Subcommands of `switchboard-tools`.

pub mod bench;
pub mod demo;
pub mod loadgen;

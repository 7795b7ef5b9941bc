//! Subcommands of `switchboard-tools`.

pub mod bench;
pub mod bench_list;
pub mod demo;
pub mod loadgen;

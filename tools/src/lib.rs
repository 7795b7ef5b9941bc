//! Tools around Switchboard that are not part of the running service: the benchmarks (the
//! pipeline's, and the work list's on a large table), the HTTP load generator and its client,
//! and the sample traffic of the demo (also used by the integration tests). They use the
//! `switchboard` library like any other client; nothing in the library depends on them.

pub mod bench;
pub mod bench_list;
pub mod client;
pub mod demo;
pub mod loadgen;

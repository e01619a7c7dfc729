//! Integration tests whose verdicts rest on measured time: the open model's schedule
//! under a stall, the probed visibility lag, notification latency under an injected
//! delay, and the soak's growth slope. They run in a
//! binary of their own, one test at a time (`support::alone`): `cargo test` runs test
//! binaries one after another, so nothing else loads the machine while they measure.
//! (In the `it` binary, dozens of concurrent tests on two cores once gave the plain
//! mock a "significant" p99 rise that was other tests' load, not the server. Alone, the
//! in-process mock still drifts up 25-58 % in about one 8 s run of four, which is why a
//! significant rise must at least double p99: `report::growth::RELATIVE_RISE`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

/// The helpers under the name the `it` binary's tests use.
mod run {
    pub use crate::support::{Ran, assert_valid_report, run, scenario};
}

mod notify_latency;
mod open_model;
mod soak;
mod visibility;

//! Integration tests: one binary, real loopback sockets on port 0. Tests whose verdicts
//! rest on measured time live in the `timing` binary, which runs alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod arch;
mod auth;
mod check;
mod cli;
mod client;
mod hostile;
mod interrupt;
mod mapping;
mod mock;
mod mock_profile;
mod mock_smart;
mod notify;
mod probe;
mod profile;
mod proxy;
mod real_server;
mod report;
mod retry_after;
mod run;
mod safety;
mod scale;
mod scoring;
mod soak_keep;
#[path = "../support/mod.rs"]
mod support;
mod synth;
mod transaction;

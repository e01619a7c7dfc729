//! Integration tests: one binary, real loopback sockets on port 0.
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
mod open_model;
mod probe;
mod profile;
mod proxy;
mod real_server;
mod report;
mod retry_after;
mod run;
mod scale;
mod scoring;
mod synth;
mod visibility;

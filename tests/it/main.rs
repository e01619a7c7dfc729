//! Integration tests: one binary, real loopback sockets on port 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod check;
mod cli;
mod client;
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
mod run;
mod scoring;
mod synth;

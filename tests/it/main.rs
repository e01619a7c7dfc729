//! Integration tests: one binary, real loopback sockets on port 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod check;
mod cli;
mod client;
mod mock;
mod profile;
mod proxy;
mod report;
mod run;
mod scoring;
mod synth;

//! Integration tests: one binary, real loopback sockets on port 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod check;
mod client;

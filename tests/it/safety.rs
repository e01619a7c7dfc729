//! Tool safety and resource limits: the control endpoints (`/__fhirsurge/…`) of the mock
//! and the proxy under a token or closed (`control`), and the binary's clear messages when
//! a port is taken or file descriptors run out (`limits`).

mod control;
mod limits;

//! Tool safety and resource limits: the control endpoints (`/__fhirsurge/…`) of the mock
//! and the proxy under a token or closed (`control`), and the binary's clear messages when
//! a port is taken or file descriptors run out (`limits`) or the disk fills (`disk`), and
//! bodies kept only when asked, redacted (`bodies`).

mod bodies;
mod control;
mod disk;
mod limits;

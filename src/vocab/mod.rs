//! The shared vocabulary, the crate's floor: what several modules must agree on and none
//! of them owns — the kinds of finding, how an interaction ended and in which phase, the
//! ledger of injected faults with the request header that ties them to interactions, the
//! kinds of fault, what a history keeps, the shapes of subscriptions and notifications, the harness identifier
//! prefix, file locations for errors, and the
//! derivation of every random stream from the run seed. Uses no other module of the crate.

pub mod control;
pub mod fault;
pub mod finding;
pub mod interaction;
pub mod keep;
pub mod ledger;
pub mod notification;
pub mod seed;
pub mod slo;
pub mod soak;
pub mod source;

/// Identifier systems of everything the harness writes start with this; a run's own
/// namespace is `urn:fhirsurge:<run id>` unless the scenario names one.
pub const HARNESS_PREFIX: &str = "urn:fhirsurge:";

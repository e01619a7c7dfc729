//! fhirsurge: proves whether a FHIR/EHR integration is ready for production.
//!
//! A scenario drives seeded synthetic encounters against a FHIR R4 endpoint (a real EHR
//! test environment, any FHIR server, or the built-in mock EHR), injects faults, records a
//! three-valued history of every interaction, and checks it for lost, altered, duplicated
//! and stale writes. See `DESIGN.md` for the module map; arrows point down that table.

pub mod check;
pub mod cli;
pub mod fault;
pub mod fhir;
pub mod history;
pub mod metrics;
pub mod mock;
pub mod notify;
pub mod probe;
pub mod profile;
pub mod report;
pub mod run;
pub mod scenario;
pub mod synth;
pub mod vocab;

pub use vocab::{HARNESS_PREFIX, source};

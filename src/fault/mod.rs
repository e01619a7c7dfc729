//! Fault injection on the wire: the fault proxy that moves real bytes between the harness
//! and a target, injecting TCP and HTTP faults. The fault specs and the ledger it records
//! into are the shared vocabulary's (re-exported here). Uses `vocab` only.

pub mod proxy;

pub use crate::vocab::fault::{Group, Kind, Spec, SpecError, SpecFile, Stream, Window};
pub use crate::vocab::ledger::{Entry, Ledger, REQUEST_HEADER};

//! Fault injection: the fault specs scenarios carry and the pure decisions behind them,
//! and the fault proxy that moves real bytes between the harness and a target.
//! Depends on no other module of the crate.

pub mod ledger;
pub mod proxy;
pub mod spec;

pub use ledger::{Entry, Ledger, REQUEST_HEADER};
pub use spec::{Spec, SpecError, Stream, Window};

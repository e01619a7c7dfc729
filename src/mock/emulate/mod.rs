//! Behaving as the EHR of a profile (`profiles/*.toml`; us-core when none is named), so
//! that a vendor can rehearse against "Epic" or "eClinicalWorks" offline. Every request
//! of the mock's FHIR API takes this path. Only the profile's data drives it: there is no
//! vendor name in this code.
//!
//! What is emulated, and where:
//! - `gate` (every routed request, before its handler): rate limits (a sliding window; a
//!   clock-aligned window that locks the client out for the rest of it; a token bucket
//!   when a burst is declared; answered by slowing down, dropping the connection, or the
//!   catalogue entry with or without `Retry-After`), daily caps with a published number,
//!   `down` and `read_only` maintenance windows, a tenancy search parameter, and
//!   interactions the profile says a type (or the server) does not support;
//! - `amend`: DELETE and JSON Patch where the type supports them, `If-Match` as for
//!   updates;
//! - `writes`: the create status and body (`Prefer` honoured or not), `Location` (absolute,
//!   relative, none; versioned or not), `ETag` (none, `W/"n"`, opaque), `If-Match`
//!   (unsupported, optional, required) with the profile's stale/missing errors, replays
//!   (refused, or answered with the existing record), holding areas, and the write rules
//!   of `rules` (refusals, then drops, rewrites, truncations and remaps);
//! - `search` and `paging`: required search parameters, page sizes, result caps (refused,
//!   or truncated with a warning entry), `next` links in the EHR's style and their expiry,
//!   duplicates across pages and short pages.
//!
//! Refusals carry the profile's status, envelope and vendor code (`refusal`). An
//! interaction a profile does not support answers 405 `not-supported` in its envelope: no
//! profile documents what its EHR answers then.
//!
//! Decisions made where the sources leave room: a resource in a holding area is readable
//! by id at once and joins searches after `visible_after` (never without it; healing does
//! not release it: it is not a fault); links that expire without a documented life live
//! [`paging::DEFAULT_LIFE`], measured from the original search; an `unpublished` rate
//! limit has no numbers to enforce and is not emulated, nor is a daily cap without one;
//! `lockout = "none"` without a burst is a sliding window. A `transform` rewrite marks
//! the element with the [`rules::TRANSFORMED`] extension. The mock is one client of one
//! tenant, so `scope` does not matter. Not emulated: sandbox wipes, id templates, what
//! happens to unsupported elements, per-type CapabilityStatements, `_include`.
//!
//! Every quirk is deterministic (session ids come from the seed). The declared
//! transformations are not recorded in the ground-truth ledger: the checker tells them
//! from faults with `Profile::expected_changes`. Silent faults still apply on top.

mod amend;
mod element;
mod gate;
mod paging;
mod rate;
mod refusal;
mod rules;
mod search;
mod writes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use amend::{JSON_PATCH, delete, patch};
pub use gate::layer;
pub use search::search;
pub use writes::{create, read, update, vread};

use crate::profile::{Profile, RatePolicy};
use paging::Pages;
use rate::{DailyCounts, Limiter};

/// The emulated EHR's state beside the store.
#[derive(Debug)]
pub struct Emulation {
    pub profile: Arc<Profile>,
    start: Instant,
    /// Wall-clock time at `start`, since the Unix epoch.
    wall_at_start: Duration,
    pages: Pages,
    limiter: Option<Mutex<Limiter>>,
    daily: Mutex<DailyCounts>,
    /// Replay keys of stored creates → their id.
    replays: Mutex<HashMap<String, String>>,
}

impl Emulation {
    pub fn new(profile: Arc<Profile>, seed: u64, start: Instant) -> Emulation {
        let wall_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let limiter = match &profile.rate_limit.policy {
            RatePolicy::Limited(limit) => Some(Mutex::new(Limiter::new(limit))),
            RatePolicy::None | RatePolicy::Unpublished { .. } => None,
        };
        Emulation {
            pages: Pages::new(profile.paging.next.clone(), seed),
            start,
            wall_at_start: wall_now.saturating_sub(start.elapsed()),
            limiter,
            daily: Mutex::default(),
            replays: Mutex::default(),
            profile,
        }
    }

    /// Time since the mock started.
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Wall-clock time since the Unix epoch, read from the monotonic clock.
    fn wall(&self) -> Duration {
        self.wall_at_start + self.elapsed()
    }

    fn replays(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.replays.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

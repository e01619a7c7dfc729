//! The built-in mock EHR: a stateful FHIR R4 JSON server kept in memory, versioned and
//! sharded, with silent write-back failures switched on by probability and a ground-truth
//! ledger of every fault that reached the harness.
//!
//! It always runs an EHR profile (`Config::profile`, the shipped `us-core` baseline when
//! none is named) through one path: the profile's gate, write answers and paging
//! (`emulate`) over one store, and a CapabilityStatement (`capability`) and SMART
//! configuration generated from the same profile, so `fhirsurge probe --profile P`
//! agrees with the mock running P. With us-core and no faults it behaves as a correct
//! FHIR server: opaque ids, `versionId` per write, `If-Match` and `If-None-Exist`
//! (atomic), read/vread/history, indexed searches with stable paging (Patient
//! demographics matched on the resource, `demographic`), transaction (all-or-nothing,
//! `urn:uuid:` references resolved) and batch Bundles, DELETE (a tombstone version: 410
//! Gone after, in `_history`, out of searches) and JSON Patch (`amend`, `patch`). The
//! rules it enforces beyond JSON shape (answered 422): an Observation needs `status` and
//! `code`. An interaction the profile does not support answers 405 with an
//! OperationOutcome.
//!
//! Silent failures (`silent::KINDS`) apply to single creates and updates (a conditional
//! create only when it creates); `partial_transaction` applies to transaction Bundles;
//! batch entries are never faulted. Several faults may fire on one write: `ack_and_drop`
//! then excludes the others; `strip`/`remap` combine; one after-commit failure applies.
//! `delayed_visibility` hides the whole resource from searches (also after an update),
//! never from reads by id or conditional-create matching. `stale_read` is recorded each
//! time a stale version is served, not when armed. After `set_faults_enabled(false)`
//! nothing fires and open `delayed_visibility` / `stale_read` windows end.
//!
//! Every interaction on a resource writes an AuditEvent (IHE BALP, `audit`), served
//! by `AuditEvent` searches unless the configuration hides it; `audit_drop` and
//! `audit_wrong` falsify that trail and `leak` adds another patient's resource to a
//! patient-scoped search, each in the ledger. `fill_latency` holds every request longer
//! the more resources the mock stores (`fill`): a server that slows as it fills.
//!
//! With `Config::smart`, SMART Backend Services (`smart`) guards the FHIR API;
//! `scope_bypass` lets a share of out-of-scope requests through, each in the ledger.
//! Without it, a profile with SMART still has its SMART configuration served (its front
//! door), with a token endpoint that says the mock issues no tokens.
//!
//! Uses `vocab` (fault specs, the ledger, interaction kinds, seeds) and `profile` (the
//! emulated EHR's behaviour); no other module of the crate.

mod amend;
pub mod audit;
mod bundle;
mod capability;
mod conn;
mod demographic;
mod emulate;
mod fill;
mod http;
mod index;
pub mod notify;
mod outcome;
mod patch;
mod render;
mod search;
mod silent;
pub mod smart;
mod store;
mod transaction;
mod versions;
mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;

use crate::profile::{self, Profile};
use crate::vocab::fault::{Spec, SpecError};
use crate::vocab::ledger::Ledger;
pub use conn::serve;
use index::Index;
use store::Store;

/// How to build the mock.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Run clock start; fault windows and ledger times are relative to it.
    pub start: Instant,
    /// (position in the scenario, spec); label = `spec.label(position)`.
    pub faults: Vec<(usize, Spec)>,
    /// Identifier systems starting with this are the harness's.
    pub harness_system_prefix: String,
    /// Lock shards of the store and of the indexes.
    pub shards: usize,
    /// `_count` when a search gives none (at most [`MAX_PAGE`]), unless the profile
    /// says otherwise.
    pub page_size: usize,
    /// SMART Backend Services in front of the FHIR API (`None`: no auth; the SMART
    /// configuration of a profile with SMART is still served, see `discovery`).
    pub smart: Option<smart::Config>,
    /// The EHR the mock behaves as; `None` = [`profile::DEFAULT`].
    pub profile: Option<Arc<Profile>>,
    /// The audit trail: how it is exposed, the agent of unauthenticated requests.
    pub audit: audit::Config,
    /// How notifications are delivered to subscribers (attempts, backoff, timeout).
    pub notify: notify::Policy,
    /// Who may use `/__fhirsurge/…` (open: the in-process mock on loopback).
    pub control: crate::vocab::control::Access,
    /// CA certificates trusted, besides the system roots, when delivering notifications
    /// over https (a subscriber's test CA).
    pub notify_roots: Vec<reqwest::Certificate>,
}

/// The largest page a search returns.
pub const MAX_PAGE: usize = 200;

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 0,
            start: Instant::now(),
            faults: Vec::new(),
            harness_system_prefix: "urn:fhirsurge:".into(),
            shards: 16,
            page_size: 20,
            smart: None,
            profile: None,
            audit: audit::Config::default(),
            notify: notify::Policy::default(),
            control: crate::vocab::control::Access::default(),
            notify_roots: Vec::new(),
        }
    }
}

/// Why a mock cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mock: fault `{label}`: {source}")]
    Fault { label: String, source: SpecError },
    #[error("mock: `shards` must be at least 1")]
    Shards,
    #[error("mock: `page_size` must be between 1 and {MAX_PAGE}, got {0}")]
    PageSize(usize),
    #[error(transparent)]
    Smart(#[from] smart::Error),
    #[error("mock: {0}")]
    Profile(#[from] crate::profile::Error),
}

/// A running mock EHR. Cloning shares it.
#[derive(Clone)]
pub struct Ehr {
    shared: Arc<Shared>,
}

/// The state behind an [`Ehr`].
struct Shared {
    seed: u64,
    start: Instant,
    prefix: String,
    page_size: usize,
    store: Store,
    index: Index,
    faults: Vec<silent::Fault>,
    faults_on: AtomicBool,
    ledger: Ledger,
    capability: Bytes,
    smart: Option<smart::Authority>,
    /// The EHR profile the mock behaves as, and the state that behaviour keeps.
    emulation: emulate::Emulation,
    /// One AuditEvent per interaction (IHE BALP).
    audit: audit::Trail,
    /// Subscriptions and notification delivery.
    notifier: notify::Notifier,
    /// Who may use `/__fhirsurge/…`.
    control: crate::vocab::control::Access,
}

impl Shared {
    fn faults_on(&self) -> bool {
        self.faults_on.load(Ordering::Relaxed)
    }
}

impl Ehr {
    /// Builds an empty mock; refuses a fault spec it does not understand.
    pub fn new(config: Config) -> Result<Ehr, Error> {
        if config.shards == 0 {
            return Err(Error::Shards);
        }
        if !(1..=MAX_PAGE).contains(&config.page_size) {
            return Err(Error::PageSize(config.page_size));
        }
        let (notify_faults, faults): (Vec<_>, Vec<_>) = config
            .faults
            .into_iter()
            .partition(|(_, spec)| spec.group() == crate::vocab::fault::Group::Notify);
        let ledger = Ledger::new(config.start);
        let notifier = notify::Notifier::new(
            notify_faults,
            config.seed,
            config.start,
            ledger.clone(),
            config.notify,
            config.notify_roots,
        )
        .map_err(|(label, source)| Error::Fault { label, source })?;
        let profile = match config.profile {
            Some(p) => p,
            None => Arc::new(Profile::load(profile::DEFAULT)?),
        };
        let faults = faults
            .into_iter()
            .map(|(position, spec)| {
                let label = spec.label(position);
                silent::Fault::new(position, spec).map_err(|source| Error::Fault { label, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let shared = Shared {
            seed: config.seed,
            start: config.start,
            prefix: config.harness_system_prefix,
            page_size: config.page_size,
            store: Store::new(config.shards, config.seed),
            index: Index::new(config.shards),
            faults,
            faults_on: AtomicBool::new(true),
            ledger,
            capability: capability::statement(&profile),
            smart: config.smart.map(smart::Authority::new).transpose()?,
            emulation: emulate::Emulation::new(profile, config.seed, config.start),
            audit: audit::Trail::new(config.audit),
            notifier,
            control: config.control,
        };
        Ok(Ehr {
            shared: Arc::new(shared),
        })
    }

    /// Who may use the control endpoints (`/__fhirsurge/…`).
    pub fn control(&self) -> &crate::vocab::control::Access {
        &self.shared.control
    }

    /// Every fault injected so far.
    pub fn ledger(&self) -> &Ledger {
        &self.shared.ledger
    }

    /// `false` heals: no fault fires any more and open visibility windows end.
    pub fn set_faults_enabled(&self, on: bool) {
        self.shared.faults_on.store(on, Ordering::Relaxed);
    }

    /// The HTTP routes. Served without [`serve`], `commit_then_reset` cannot reset and
    /// does not fire.
    pub fn router(&self) -> axum::Router {
        let router = http::router(self.clone()).layer(axum::middleware::from_fn_with_state(
            self.clone(),
            fill::hold,
        ));
        let router = match &self.shared.smart {
            Some(authority) => smart::wrap(router, authority.clone(), self.clone()),
            None => smart::describe(router, &self.shared.emulation.profile),
        };
        audit::wrap(router, self.clone())
    }

    /// How many AuditEvents the trail holds.
    pub fn audit_events(&self) -> usize {
        self.shared.audit.len()
    }

    /// The SMART authorization server, when on (issued tokens, the clock).
    pub fn smart(&self) -> Option<&smart::Authority> {
        self.shared.smart.as_ref()
    }
}

impl std::fmt::Debug for Ehr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.shared;
        let faults: Vec<&str> = s.faults.iter().map(|x| x.label.as_str()).collect();
        f.debug_struct("Ehr")
            .field("seed", &s.seed)
            .field("faults", &faults)
            .field("faults_on", &s.faults_on())
            .field("profile", &s.emulation.profile.name)
            .finish_non_exhaustive()
    }
}

/// The silent failure kinds the mock implements.
pub fn silent_kinds() -> Vec<&'static str> {
    silent::kinds()
}

/// Checks a fault spec for the mock: known kind, the attributes it takes, probability.
pub fn validate_fault(spec: &Spec) -> Result<(), SpecError> {
    if spec.group() == crate::vocab::fault::Group::Notify {
        return notify::faults::parse(spec).map(|_| ());
    }
    silent::validate(spec)
}

/// The notification fault kinds the mock implements (`notify_drop`, …).
pub fn notify_kinds() -> Vec<&'static str> {
    notify::faults::kinds()
}

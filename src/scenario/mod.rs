//! The scenario: what one run does, from a TOML file (`scenarios/*.toml`). The raw file
//! shape (`file`, serde with `deny_unknown_fields`) is parsed once and converted into the
//! validated [`Scenario`] the runner uses; every error names the file, line, column and
//! key. Overrides (the command line's flags, parsed by `cli`) win over the file through
//! [`Overrides`] — one precedence rule, applied here. Uses `vocab` (source locations,
//! fault shapes, SLO targets, finding kinds), `fhir::RetryPolicy`, `fhir::auth`,
//! `fhir::Tls` and the body and Retry-After caps (settings types, pending a move to
//! `vocab`), `notify::Criteria` (checks subscription criteria) and `profile` (the default
//! profile's name); nothing that runs.

mod auth;
mod file;
mod group;
mod history;
mod plan;
mod rate;
mod scope_probe;
mod slo;
mod subscriptions;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::fhir::RetryPolicy;
use crate::source::{self, SourceError};
use crate::vocab::fault::Spec;

pub use crate::vocab::finding::{FINDING_KINDS, NOTIFICATION_KINDS};
pub use crate::vocab::keep::Keep;
pub use group::{Group, group_of};
pub use plan::TestPlan;
pub use rate::RatePlan;
pub use slo::{LatencySlo, Slo};
pub use subscriptions::{Subscribe, Subscriptions};

/// One validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    /// The file it came from (for the report).
    pub path: PathBuf,
    pub seed: u64,
    /// `identifier.system` of every resource the harness writes. `None`: one is made per
    /// run (`urn:fhirsurge:<run id>`), so runs never collide on a real server.
    pub namespace: Option<String>,
    pub target: Target,
    /// Per-request timeout.
    pub timeout: Duration,
    /// How long the built-in mock's SMART tokens live (`[target] token_lifetime`; only
    /// with the mock as target and `[auth] kind = "smart_backend"`); `None`: 300 s.
    pub token_lifetime: Option<Duration>,
    /// The largest response body the client reads (`[target] max_body`, bytes): a larger
    /// one drops the connection and is a bad response.
    pub max_body: u64,
    /// EHR profile name or path ([`crate::profile::DEFAULT`] when the file names none).
    pub profile: String,
    /// A tenant overlay merged over the profile (`--profile-overlay`).
    pub profile_overlay: Option<PathBuf>,
    pub load: Load,
    /// Upper bound on encounters started, whatever the load shape.
    pub max_encounters: u64,
    pub retry: Retry,
    pub readback: Readback,
    /// The visibility prober (`[visibility]`).
    pub visibility: Visibility,
    /// Audit reconciliation after the run (`[audit]`).
    pub audit: Audit,
    /// The scope-enforcement probe (`[scope_probe]`).
    pub scope_probe: ScopeProbe,
    pub faults: Vec<Spec>,
    /// The encounter's steps in order, each with how many times it runs.
    pub workflow: Vec<(Step, u32)>,
    /// User groups (`[[groups]]`), each with its own workflow; none: every user runs
    /// `workflow`.
    pub groups: Vec<Group>,
    pub slo: Slo,
    /// How the client authenticates (`[auth]`); secrets are named, never given.
    pub auth: crate::fhir::auth::Config,
    /// Certificate verification (`[tls]`).
    pub tls: crate::fhir::Tls,
    /// The notification receiver and the subscriptions to create (`[subscriptions]`).
    pub subscriptions: Option<Subscriptions>,
    /// How the `write_back` step sends the AI's results (`write_back`).
    pub write_back: WriteBack,
    /// How the growth curves are windowed (`[growth]`).
    pub growth: crate::vocab::soak::Growth,
    /// What the history file keeps (`[history] keep`); the run's checker sees all.
    pub keep: Keep,
}

/// How the `write_back` step sends the AI's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteBack {
    /// One create per resource.
    #[default]
    Single,
    /// One transaction Bundle of conditional creates (`ifNoneExist`) referring to each
    /// other by `urn:uuid:`, where the profile says the EHR takes transactions; single
    /// writes otherwise (said in the report's mapping section).
    Transaction,
}

/// What the harness talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The built-in mock EHR, started in-process.
    Mock,
    /// A FHIR base URL.
    Url(Url),
}

impl Target {
    /// `mock` or an `http(s)://` FHIR base URL (a trailing `/` is added when missing, so
    /// relative paths resolve under it).
    pub fn parse(text: &str) -> Result<Target, String> {
        if text == "mock" {
            return Ok(Target::Mock);
        }
        let mut url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "`{text}`: the target must be `mock` or an http(s) URL"
            ));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Target::Url(url))
    }
}

/// The load shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    /// A fixed number of users, each running encounters back to back; or a goose test
    /// plan (`"50,10s;200,1m;0,0s"`) that ramps them.
    Closed {
        users: NonZeroUsize,
        duration: Duration,
        plan: Option<TestPlan>,
    },
    /// Encounters start on the schedule of `rate` (a constant rate or a rate plan),
    /// whatever the server does, run by a pool of `users` that grows up to `max_users`
    /// when no user is free at a start; a start no user can serve is dropped and
    /// counted. Each encounter's first request is timed from its intended start (no
    /// coordinated omission).
    Open {
        rate: RatePlan,
        users: NonZeroUsize,
        max_users: NonZeroUsize,
    },
}

impl Load {
    /// How long the load phase is planned to last.
    pub fn duration(&self) -> Duration {
        match self {
            Load::Closed {
                plan: Some(plan), ..
            } => plan.duration(),
            Load::Closed { duration, .. } => *duration,
            Load::Open { rate, .. } => rate.duration(),
        }
    }

    /// The most users that run at once.
    pub fn peak_users(&self) -> usize {
        match self {
            Load::Closed {
                plan: Some(plan), ..
            } => plan.peak_users(),
            Load::Closed { users, .. } => users.get(),
            Load::Open { max_users, .. } => max_users.get(),
        }
    }
}

/// Client retry settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retry {
    pub policy: RetryPolicy,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub backoff: Duration,
    /// The longest a 429's or 503's `Retry-After` is waited for.
    pub max_retry_after: Duration,
}

/// The visibility prober: after an acknowledged create (a seeded `sample` share of
/// them), search by its identifier every `interval` until it shows or `timeout` passes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Visibility {
    /// Share of acknowledged creates probed, 0 to 1 (0: none, lag not measured).
    pub sample: f64,
    pub interval: Duration,
    pub timeout: Duration,
    /// Creates probed at once; one acknowledged while all are busy is not probed.
    pub concurrency: usize,
}

impl Default for Visibility {
    fn default() -> Self {
        Visibility {
            sample: 1.0,
            interval: Duration::from_millis(25),
            timeout: Duration::from_secs(30),
            concurrency: 64,
        }
    }
}

/// Audit reconciliation (`[audit]`): after the read-back, the target's AuditEvents are
/// fetched and every access the harness made is looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    pub enabled: bool,
    /// How far an event's `recorded` may be from its interaction.
    pub tolerance: Duration,
    /// The agent every event must name; `None`: the SMART client id when `[auth]`
    /// authenticates with one, else agents are not compared.
    pub agent: Option<String>,
}

/// The scope-enforcement probe (`[scope_probe]`): at the end of the load phase, with
/// `[auth] kind = "smart_backend"`, a second token for narrower scopes tries requests
/// outside them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeProbe {
    pub enabled: bool,
    /// The narrower scopes asked for (`system/…`); empty = `system/Patient.rs` in the
    /// spelling of the EHR profile (v1 `system/Patient.read` when it takes only v1).
    pub scopes: Vec<String>,
}

impl Default for ScopeProbe {
    fn default() -> Self {
        ScopeProbe {
            enabled: true,
            scopes: Vec::new(),
        }
    }
}

/// The final read-back phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Readback {
    /// Wait after the faults heal before reading back.
    pub settle: Duration,
    /// Read-back requests in flight at once.
    pub concurrency: usize,
}

/// One step of the encounter workflow, in the order a hospital asks its questions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Register the patient and open the encounter.
    Admit,
    /// Look the patient up by MRN (search).
    LookupPatient,
    /// Read the latest observations (real-time read).
    ReadObservations,
    /// Write back the AI's results: vitals, conditions, medications, the clinical note.
    WriteBack,
    /// Trigger billing: the Claim.
    Billing,
    /// Close the encounter (update with `If-Match`).
    CloseEncounter,
    /// Read back what this encounter wrote.
    ReadBack,
    /// Two writers update the encounter from the same version with `If-Match` at
    /// nearly the same time (the nurse closes it while the AI agent amends it): one must
    /// be refused. Not in the default workflow.
    ContendedUpdate,
}

impl Step {
    /// The default workflow, in order.
    pub const ALL: [Step; 7] = [
        Step::Admit,
        Step::LookupPatient,
        Step::ReadObservations,
        Step::WriteBack,
        Step::Billing,
        Step::CloseEncounter,
        Step::ReadBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Admit => "admit",
            Step::LookupPatient => "lookup_patient",
            Step::ReadObservations => "read_observations",
            Step::WriteBack => "write_back",
            Step::Billing => "billing",
            Step::CloseEncounter => "close_encounter",
            Step::ReadBack => "read_back",
            Step::ContendedUpdate => "contended_update",
        }
    }
}

/// Settings that override the file (the command line's flags, parsed by `cli`).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub target: Option<Target>,
    pub profile: Option<String>,
    /// A tenant overlay file merged over the profile.
    pub profile_overlay: Option<PathBuf>,
    pub seed: Option<u64>,
    pub users: Option<NonZeroUsize>,
    /// The load phase's length; longer than zero.
    pub duration: Option<Duration>,
    /// `--insecure` / `--ca-cert`: replaces `[tls]`.
    pub tls: Option<crate::fhir::Tls>,
    /// `--keep`: replaces `[history] keep`.
    pub keep: Option<Keep>,
}

/// A scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An override of the load phase's length of zero.
    #[error("the load phase must be longer than 0s")]
    ZeroDuration,
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, Error> {
        let text = source::read(path)?;
        Scenario::from_str(&text, path)
    }

    /// Parses and validates scenario text; `path` names it in errors.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, path: &Path) -> Result<Scenario, Error> {
        let raw: file::File = source::parse(path, text)?;
        Ok(raw.validate(path, text)?)
    }

    /// Applies overrides (they win over the file).
    pub fn apply(&mut self, o: &Overrides) -> Result<(), Error> {
        if let Some(t) = &o.target {
            self.target = t.clone();
        }
        if let Some(p) = &o.profile {
            self.profile = p.clone();
        }
        if let Some(p) = &o.profile_overlay {
            self.profile_overlay = Some(p.clone());
        }
        if let Some(seed) = o.seed {
            self.seed = seed;
        }
        if let Some(tls) = &o.tls {
            self.tls = tls.clone();
        }
        if let Some(keep) = o.keep {
            self.keep = keep;
        }
        if let Some(users) = o.users {
            self.load = match self.load.clone() {
                // Fixed users replace a ramping plan.
                Load::Closed { duration, plan, .. } => Load::Closed {
                    users,
                    duration: plan.map_or(duration, |p| p.duration()),
                    plan: None,
                },
                // The pool starts at `users` and may still grow to the larger cap.
                Load::Open {
                    rate, max_users, ..
                } => Load::Open {
                    rate,
                    users,
                    max_users: max_users.max(users),
                },
            };
        }
        if let Some(d) = o.duration {
            if d.is_zero() {
                return Err(Error::ZeroDuration);
            }
            self.load = match self.load.clone() {
                Load::Closed { users, plan, .. } => Load::Closed {
                    users: plan.map_or(users, |p| {
                        NonZeroUsize::new(p.peak_users()).unwrap_or(users)
                    }),
                    duration: d,
                    plan: None,
                },
                // A rate plan keeps its shape, scaled to the new length.
                Load::Open {
                    rate,
                    users,
                    max_users,
                } => Load::Open {
                    rate: rate.scaled_to(d),
                    users,
                    max_users,
                },
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

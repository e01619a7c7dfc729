//! The scenario file as written (serde, `deny_unknown_fields`), and its one conversion
//! into a validated [`Scenario`]. Checks serde cannot make are located with the key's
//! span, so every error reads `file:line:column: key: problem`.

use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::auth::{self, AuthFile, TlsFile};
use super::plan::TestPlan;
use super::rate::RatePlan;
use super::slo::{self, Slo};
use super::{Audit, Load, Readback, Retry, Scenario, Step, Target, Visibility};
use crate::fhir::RetryPolicy;
use crate::source::{Location, SourceError};
use crate::vocab::fault::{Spec, SpecFile};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    name: String,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    namespace: Option<Spanned<String>>,
    #[serde(default)]
    profile: Option<String>,
    target: TargetFile,
    load: Spanned<LoadFile>,
    #[serde(default)]
    max_encounters: Option<u64>,
    #[serde(default)]
    retry: RetryFile,
    #[serde(default)]
    readback: ReadbackFile,
    #[serde(default)]
    visibility: Option<Spanned<VisibilityFile>>,
    #[serde(default)]
    audit: AuditFile,
    #[serde(default)]
    scope_probe: Option<Spanned<super::scope_probe::ScopeProbeFile>>,
    #[serde(default)]
    faults: Vec<Spanned<SpecFile>>,
    #[serde(default)]
    workflow: Option<Spanned<Vec<StepFile>>>,
    #[serde(default)]
    groups: Vec<Spanned<super::group::GroupFile>>,
    #[serde(default)]
    slo: slo::SloFile,
    #[serde(default)]
    auth: Option<Spanned<AuthFile>>,
    #[serde(default)]
    tls: Option<Spanned<TlsFile>>,
    #[serde(default)]
    subscriptions: Option<Spanned<super::subscriptions::SubscriptionsFile>>,
    #[serde(default)]
    write_back: super::WriteBack,
    #[serde(default)]
    growth: crate::vocab::soak::Growth,
    #[serde(default)]
    history: Option<Spanned<super::history::HistoryFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    url: Spanned<String>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    timeout: Duration,
    /// The built-in mock's SMART token lifetime (mock target, SMART auth only).
    #[serde(default, with = "humantime_serde")]
    token_lifetime: Option<Duration>,
    /// The largest response body read, in bytes.
    #[serde(default)]
    max_body: Option<Spanned<u64>>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Model {
    Closed,
    Open,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadFile {
    model: Model,
    #[serde(default)]
    users: Option<Spanned<usize>>,
    #[serde(default, with = "humantime_serde")]
    duration: Option<Duration>,
    #[serde(default)]
    test_plan: Option<Spanned<String>>,
    /// Open model: encounters started per second, or a rate plan.
    #[serde(default)]
    rate: Option<Spanned<RateFile>>,
    /// Open model: the most users the pool may grow to (default `users`).
    #[serde(default)]
    max_users: Option<Spanned<usize>>,
}

/// `rate = 40.0` or `rate = "10/s,1m;50/s,5m;0/s,0s"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RateFile {
    Number(f64),
    Plan(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryFile {
    #[serde(default)]
    policy: RetryPolicy,
    #[serde(default)]
    max_attempts: Option<Spanned<u32>>,
    #[serde(default = "default_backoff", with = "humantime_serde")]
    backoff: Duration,
    /// The longest a `Retry-After` is waited for.
    #[serde(default = "default_max_retry_after", with = "humantime_serde")]
    max_retry_after: Duration,
}

impl Default for RetryFile {
    fn default() -> Self {
        Self {
            policy: RetryPolicy::None,
            max_attempts: None,
            backoff: default_backoff(),
            max_retry_after: default_max_retry_after(),
        }
    }
}

fn default_max_retry_after() -> Duration {
    crate::fhir::MAX_RETRY_AFTER
}

fn default_backoff() -> Duration {
    Duration::from_millis(100)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadbackFile {
    #[serde(default = "default_settle", with = "humantime_serde")]
    settle: Duration,
    #[serde(default = "default_concurrency")]
    concurrency: Spanned<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditFile {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "default_tolerance", with = "humantime_serde")]
    tolerance: Duration,
    #[serde(default)]
    agent: Option<Spanned<String>>,
}

impl Default for AuditFile {
    fn default() -> Self {
        Self {
            enabled: false,
            tolerance: default_tolerance(),
            agent: None,
        }
    }
}

fn default_tolerance() -> Duration {
    Duration::from_secs(5)
}

impl Default for ReadbackFile {
    fn default() -> Self {
        Self {
            settle: default_settle(),
            concurrency: default_concurrency(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VisibilityFile {
    #[serde(default)]
    sample: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    #[serde(default)]
    concurrency: Option<usize>,
}

/// `[visibility]`, checked: a share in 0..=1, an interval of 1 ms or more, a timeout not
/// shorter than the interval, a concurrency of 1 or more.
fn validate_visibility(
    file: Option<Spanned<VisibilityFile>>,
    at: &Locator<'_>,
) -> Result<Visibility, SourceError> {
    let d = Visibility::default();
    let Some(file) = file else { return Ok(d) };
    let span = file.span();
    let f = file.into_inner();
    let v = Visibility {
        sample: f.sample.unwrap_or(d.sample),
        interval: f.interval.unwrap_or(d.interval),
        timeout: f.timeout.unwrap_or(d.timeout),
        concurrency: f.concurrency.unwrap_or(d.concurrency),
    };
    let problem = if !(0.0..=1.0).contains(&v.sample) {
        Some(("sample", "must be between 0 and 1"))
    } else if v.interval < Duration::from_millis(1) {
        Some(("interval", "must be at least 1ms"))
    } else if v.timeout < v.interval {
        Some(("timeout", "must not be shorter than the interval"))
    } else if v.concurrency == 0 {
        Some(("concurrency", "must be at least 1"))
    } else {
        None
    };
    match problem {
        Some((key, why)) => Err(at.error(
            at.key_in(span, Some(key)),
            format!("visibility.{key}: {why}"),
        )),
        None => Ok(v),
    }
}

fn default_settle() -> Duration {
    Duration::from_secs(1)
}

fn default_concurrency() -> Spanned<usize> {
    Spanned::new(0..0, 32)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepFile {
    pub step: Step,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// Locates problems found after parsing.
pub(super) struct Locator<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Locator<'_> {
    /// The span of `key` where the table starting at `table` sets it (a table's span
    /// covers its header only), or `table` when it does not.
    pub fn key_in(&self, table: Range<usize>, key: Option<&str>) -> Range<usize> {
        let Some(key) = key else { return table };
        let mut offset = table.start;
        let rest = self.text.get(table.start..).unwrap_or_default();
        for (i, line) in rest.split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if i > 0 && trimmed.starts_with('[') {
                break;
            }
            let after = trimmed.strip_prefix(key).unwrap_or("x");
            if after.trim_start().starts_with('=') {
                let at = offset + (line.len() - trimmed.len());
                return at..at + key.len();
            }
            offset += line.len();
        }
        table
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> SourceError {
        SourceError {
            location: Location::at(self.path, self.text, span.start),
            message: message.into(),
        }
    }
}

impl File {
    pub(super) fn validate(self, path: &Path, text: &str) -> Result<Scenario, SourceError> {
        let at = Locator { path, text };
        let target = Target::parse(self.target.url.get_ref())
            .map_err(|m| at.error(self.target.url.span(), format!("target.url: {m}")))?;
        let load_span = self.load.span();
        let load = self.load.into_inner().validate(&at, load_span)?;
        let retry = validate_retry(&self.retry, &at)?;
        let concurrency = *self.readback.concurrency.get_ref();
        if concurrency == 0 {
            let span = self.readback.concurrency.span();
            return Err(at.error(span, "readback.concurrency: must be at least 1"));
        }
        let mut faults = Vec::with_capacity(self.faults.len());
        for spanned in self.faults {
            let span = spanned.span();
            let spec = Spec::try_from(spanned.into_inner())
                .map_err(|e| at.error(at.key_in(span, e.field()), e.to_string()))?;
            faults.push(spec);
        }
        let workflow: Vec<(Step, u32)> = match self.workflow {
            None => Step::ALL.iter().map(|s| (*s, 1)).collect(),
            Some(w) if w.get_ref().is_empty() => {
                return Err(at.error(w.span(), "workflow: needs at least one step"));
            }
            Some(w) => w
                .into_inner()
                .into_iter()
                .map(|s| (s.step, s.weight))
                .collect(),
        };
        if let Some(ns) = &self.namespace {
            check_namespace(ns, &at)?;
        }
        let groups_span = self.groups.first().map(Spanned::span);
        let groups = super::group::validate(self.groups, &workflow, &at)?;
        if let Some(span) = groups_span {
            check_fixed_users(&groups, &load, &at, span)?;
        }
        if let Some(agent) = self
            .audit
            .agent
            .as_ref()
            .filter(|a| a.get_ref().trim().is_empty())
        {
            return Err(at.error(agent.span(), "audit.agent: must not be empty"));
        }
        let auth = auth::validate_auth(self.auth, &at)?;
        if let Some(lifetime) = self.target.token_lifetime {
            let smart = matches!(auth, crate::fhir::auth::Config::Smart(_));
            let problem = if target != Target::Mock || !smart {
                "only the built-in mock (url = \"mock\") with [auth] kind = \"smart_backend\" issues tokens"
            } else if lifetime < Duration::from_secs(1) {
                "must be at least 1s"
            } else {
                ""
            };
            if !problem.is_empty() {
                let span = self.target.url.span();
                return Err(at.error(span, format!("target.token_lifetime: {problem}")));
            }
        }
        let max_body = match self.target.max_body {
            Some(m) if *m.get_ref() == 0 => {
                return Err(at.error(m.span(), "target.max_body: must be at least 1 (bytes)"));
            }
            Some(m) => m.into_inner(),
            None => crate::fhir::DEFAULT_MAX_BODY,
        };
        Ok(Scenario {
            name: self.name,
            path: path.to_owned(),
            seed: self.seed,
            namespace: self.namespace.map(Spanned::into_inner),
            target,
            timeout: self.target.timeout,
            token_lifetime: self.target.token_lifetime,
            max_body,
            profile: self
                .profile
                .unwrap_or_else(|| crate::profile::DEFAULT.to_owned()),
            profile_overlay: None,
            load,
            max_encounters: self.max_encounters.unwrap_or(u64::MAX),
            retry,
            readback: Readback {
                settle: self.readback.settle,
                concurrency,
            },
            visibility: validate_visibility(self.visibility, &at)?,
            audit: Audit {
                enabled: self.audit.enabled,
                tolerance: self.audit.tolerance,
                agent: self.audit.agent.map(Spanned::into_inner),
            },
            scope_probe: super::scope_probe::validate(self.scope_probe, &at)?,
            faults,
            workflow,
            groups,
            slo: Slo::validate(self.slo, &at)?,
            auth,
            tls: auth::validate_tls(self.tls, &at)?,
            subscriptions: match self.subscriptions {
                Some(s) => {
                    let span = s.span();
                    Some(s.into_inner().validate(span, &at)?)
                }
                None => None,
            },
            write_back: self.write_back,
            growth: self.growth,
            keep: super::history::validate(self.history, &at)?,
        })
    }
}

/// Fixed user counts per group are for the closed model with `users`: they must add up
/// to it.
fn check_fixed_users(
    groups: &[super::Group],
    load: &Load,
    at: &Locator<'_>,
    span: Range<usize>,
) -> Result<(), SourceError> {
    let fixed: u64 = groups.iter().filter_map(|g| g.users).map(u64::from).sum();
    if fixed == 0 {
        return Ok(());
    }
    let problem = match load {
        Load::Closed {
            users, plan: None, ..
        } if users.get() as u64 == fixed => return Ok(()),
        Load::Closed {
            plan: None, users, ..
        } => format!("the groups' users add up to {fixed} but load.users is {users}"),
        _ => "fixed users per group need model = \"closed\" with `users` (give weights instead)"
            .to_owned(),
    };
    Err(at.error(
        at.key_in(span, Some("users")),
        format!("groups.users: {problem}"),
    ))
}

fn check_namespace(ns: &Spanned<String>, at: &Locator<'_>) -> Result<(), SourceError> {
    let value = ns.get_ref();
    if !value.starts_with(crate::HARNESS_PREFIX) || value.contains(['|', ' ']) {
        let message = format!(
            "namespace: `{value}` must start with `{}` and contain no `|` or spaces",
            crate::HARNESS_PREFIX
        );
        return Err(at.error(ns.span(), message));
    }
    Ok(())
}

fn validate_retry(r: &RetryFile, at: &Locator<'_>) -> Result<Retry, SourceError> {
    let max_attempts = match &r.max_attempts {
        Some(m) if *m.get_ref() == 0 => {
            return Err(at.error(m.span(), "retry.max_attempts: must be at least 1"));
        }
        Some(m) => *m.get_ref(),
        None if r.policy == RetryPolicy::None => 1,
        None => 3,
    };
    Ok(Retry {
        policy: r.policy,
        max_attempts,
        backoff: r.backoff,
        max_retry_after: r.max_retry_after,
    })
}

impl LoadFile {
    fn validate(self, at: &Locator<'_>, table: Range<usize>) -> Result<Load, SourceError> {
        let users = match &self.users {
            Some(u) => Some(
                NonZeroUsize::new(*u.get_ref())
                    .ok_or_else(|| at.error(u.span(), "load.users: must be at least 1"))?,
            ),
            None => None,
        };
        let duration = self.duration.filter(|d| !d.is_zero());
        match self.model {
            Model::Closed => {
                if let Some(r) = &self.rate {
                    return Err(at.error(r.span(), "load.rate: only for model = \"open\""));
                }
                if let Some(m) = &self.max_users {
                    return Err(at.error(m.span(), "load.max_users: only for model = \"open\""));
                }
                let plan = match &self.test_plan {
                    Some(p) => Some(
                        TestPlan::parse(p.get_ref())
                            .map_err(|m| at.error(p.span(), format!("load.test_plan: {m}")))?,
                    ),
                    None => None,
                };
                let (users, duration) = match (&plan, users, duration) {
                    (Some(p), None, None) => (NonZeroUsize::MIN, p.duration()),
                    (Some(_), _, _) => {
                        let span = self.test_plan.as_ref().map_or(table.clone(), Spanned::span);
                        let m = "load.test_plan: replaces `users` and `duration`; give one or the other";
                        return Err(at.error(span, m));
                    }
                    (None, Some(u), Some(d)) => (u, d),
                    (None, _, _) => return Err(at.error(table, need("closed", "users, duration"))),
                };
                Ok(Load::Closed {
                    users,
                    duration,
                    plan,
                })
            }
            Model::Open => {
                if let Some(p) = &self.test_plan {
                    return Err(at.error(p.span(), "load.test_plan: only for model = \"closed\""));
                }
                let (Some(rate), Some(users)) = (&self.rate, users) else {
                    return Err(at.error(table, need("open", "rate, users")));
                };
                let rate = open_rate(rate, duration, at, table)?;
                let max_users = match &self.max_users {
                    None => users,
                    Some(m) => NonZeroUsize::new(*m.get_ref())
                        .filter(|m| *m >= users)
                        .ok_or_else(|| {
                            at.error(m.span(), "load.max_users: must be at least `users`")
                        })?,
                };
                Ok(Load::Open {
                    rate,
                    users,
                    max_users,
                })
            }
        }
    }
}

/// The open model's schedule: a constant rate needs a duration, a plan brings its own.
fn open_rate(
    rate: &Spanned<RateFile>,
    duration: Option<Duration>,
    at: &Locator<'_>,
    table: Range<usize>,
) -> Result<RatePlan, SourceError> {
    match (rate.get_ref(), duration) {
        (RateFile::Number(r), Some(d)) if r.is_finite() && *r > 0.0 => {
            Ok(RatePlan::constant(*r, d))
        }
        (RateFile::Number(r), Some(_)) => {
            Err(at.error(rate.span(), format!("load.rate: must be above 0, not {r}")))
        }
        (RateFile::Number(_), None) => Err(at.error(table, need("open", "rate, users, duration"))),
        (RateFile::Plan(text), None) => {
            RatePlan::parse(text).map_err(|m| at.error(rate.span(), format!("load.rate: {m}")))
        }
        (RateFile::Plan(_), Some(_)) => Err(at.error(
            rate.span(),
            "load.rate: a rate plan sets its own length; leave `duration` out",
        )),
    }
}

fn need(model: &str, keys: &str) -> String {
    format!("load: model = \"{model}\" needs {keys} (durations longer than 0s)")
}

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
use super::slo::{self, Slo};
use super::{Load, Readback, Retry, Scenario, Step, Target};
use crate::fault::Spec;
use crate::fhir::RetryPolicy;
use crate::source::{Location, SourceError};

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
    faults: Vec<Spanned<Spec>>,
    #[serde(default)]
    workflow: Option<Spanned<Vec<StepFile>>>,
    #[serde(default)]
    slo: slo::SloFile,
    #[serde(default)]
    auth: Option<Spanned<AuthFile>>,
    #[serde(default)]
    tls: Option<Spanned<TlsFile>>,
    #[serde(default)]
    subscriptions: Option<Spanned<super::subscriptions::SubscriptionsFile>>,
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
    /// Open model: encounters started per second.
    #[serde(default)]
    rate: Option<Spanned<f64>>,
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
}

impl Default for RetryFile {
    fn default() -> Self {
        Self {
            policy: RetryPolicy::None,
            max_attempts: None,
            backoff: default_backoff(),
        }
    }
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

impl Default for ReadbackFile {
    fn default() -> Self {
        Self {
            settle: default_settle(),
            concurrency: default_concurrency(),
        }
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
struct StepFile {
    step: Step,
    #[serde(default = "one")]
    weight: u32,
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
            let spec = spanned.into_inner();
            spec.validate()
                .map_err(|e| at.error(at.key_in(span, e.field()), e.to_string()))?;
            faults.push(spec);
        }
        let workflow = match self.workflow {
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
        Ok(Scenario {
            name: self.name,
            path: path.to_owned(),
            seed: self.seed,
            namespace: self.namespace.map(Spanned::into_inner),
            target,
            timeout: self.target.timeout,
            token_lifetime: self.target.token_lifetime,
            profile: self.profile,
            profile_overlay: None,
            load,
            max_encounters: self.max_encounters.unwrap_or(u64::MAX),
            retry,
            readback: Readback {
                settle: self.readback.settle,
                concurrency,
            },
            faults,
            workflow,
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
        })
    }
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
                let (Some(rate), Some(users), Some(duration)) = (&self.rate, users, duration)
                else {
                    return Err(at.error(table, need("open", "rate, users, duration")));
                };
                let r = *rate.get_ref();
                if !(r.is_finite() && r > 0.0) {
                    return Err(at.error(rate.span(), "load.rate: must be above 0"));
                }
                Ok(Load::Open {
                    rate: r,
                    users,
                    duration,
                })
            }
        }
    }
}

fn need(model: &str, keys: &str) -> String {
    format!("load: model = \"{model}\" needs {keys} (durations longer than 0s)")
}

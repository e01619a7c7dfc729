//! Throttling and downtime: the EHR's rate limit (none, unpublished, or a known window
//! with what exhaustion answers and whether it locks the client out for the rest of the
//! window), daily caps, and maintenance windows.

use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, NaiveTime, Offset, Utc, Weekday};
use serde::Deserialize;
use toml::Spanned;

use super::cite::SourceField;
use super::file::Ctx;
use super::resource::{Verb, is_r4_type};
use crate::source::SourceError;

/// The EHR's throttling.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    pub policy: RatePolicy,
    /// Per-day ceilings on some requests.
    pub daily_caps: Vec<DailyCap>,
    pub source: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RatePolicy {
    /// No limit (a spec baseline server).
    None,
    /// The EHR throttles but publishes no numbers; `throttle` is how it shows.
    Unpublished { throttle: Throttle },
    /// A known limit.
    Limited(Limit),
}

/// A known request limit.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub requests: NonZeroU32,
    pub per: Duration,
    /// Extra requests a token bucket lets through at once; `None` = a fixed window.
    pub burst: Option<NonZeroU32>,
    pub scope: LimitScope,
    /// Token and authorize requests count against the same limit (eClinicalWorks).
    pub includes_auth: bool,
    pub throttle: Throttle,
}

/// Whose requests a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// One registered client application.
    App,
    /// One tenant (practice code, base URL) whatever the app.
    Tenant,
}

/// How the EHR shows that a client is over its limit.
#[derive(Clone, Debug, PartialEq)]
pub enum Throttle {
    /// Answers slow down and time out; no error status (Epic: no documented 429).
    Latency,
    /// Connections are dropped without an answer.
    Disconnect,
    /// Answers a catalogue entry (usually 429).
    Error {
        error: String,
        /// A `Retry-After` header is sent.
        retry_after: bool,
        lockout: Lockout,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lockout {
    /// Only requests over the limit are refused.
    None,
    /// Once over, every request is refused until the window ends (eClinicalWorks: until
    /// the top of the minute).
    RestOfWindow,
}

/// A per-day ceiling.
#[derive(Clone, Debug, PartialEq)]
pub struct DailyCap {
    pub resource_type: Option<String>,
    pub interaction: Option<Verb>,
    /// `None` = the ceiling exists but its number is not documented.
    pub limit: Option<NonZeroU32>,
    pub error: String,
    pub source: Vec<String>,
}

/// A recurring maintenance window, in the EHR's local time.
#[derive(Clone, Debug, PartialEq)]
pub struct Maintenance {
    pub name: String,
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub utc_offset: FixedOffset,
    pub effect: Effect,
    pub source: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Unavailable for `duration`, answering `error`.
    Down { duration: Duration, error: String },
    /// Reads work, writes answer `error` for `duration`.
    ReadOnly { duration: Duration, error: String },
    /// Written data is erased at the start (sandbox reset).
    Wipe,
}

impl Maintenance {
    /// Whether the window is in force at `at` (a wipe is an instant, never "in force").
    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        let duration = match &self.effect {
            Effect::Down { duration, .. } | Effect::ReadOnly { duration, .. } => *duration,
            Effect::Wipe => return false,
        };
        let Ok(duration) = chrono::Duration::from_std(duration) else {
            return false;
        };
        let local = at.with_timezone(&self.utc_offset).naive_local();
        (0..=7).any(|back| {
            let Some(day) = local.date().checked_sub_days(chrono::Days::new(back)) else {
                return false;
            };
            let start = day.and_time(self.start);
            self.days.contains(&day.weekday()) && start <= local && local < start + duration
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimitFile {
    policy: Spanned<PolicyFile>,
    #[serde(default)]
    requests: Option<Spanned<NonZeroU32>>,
    #[serde(default, with = "humantime_serde")]
    per: Option<Duration>,
    #[serde(default)]
    burst: Option<NonZeroU32>,
    #[serde(default)]
    scope: Option<LimitScope>,
    #[serde(default)]
    includes_auth: bool,
    #[serde(default)]
    on_exceed: Option<Spanned<ExceedFile>>,
    #[serde(default)]
    error: Option<Spanned<String>>,
    #[serde(default)]
    retry_after: bool,
    #[serde(default)]
    lockout: Option<Lockout>,
    #[serde(default)]
    daily_caps: Vec<DailyCapFile>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PolicyFile {
    None,
    Unpublished,
    Limited,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ExceedFile {
    Latency,
    Disconnect,
    Error,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DailyCapFile {
    #[serde(default)]
    resource_type: Option<Spanned<String>>,
    #[serde(default)]
    interaction: Option<Verb>,
    #[serde(default)]
    limit: Option<NonZeroU32>,
    error: Spanned<String>,
    #[serde(default)]
    source: SourceField,
}

impl RateLimitFile {
    pub fn validate(self, ctx: &Ctx<'_>) -> Result<RateLimit, SourceError> {
        let span = self.policy.span();
        let policy = match *self.policy.get_ref() {
            PolicyFile::None => {
                if self.on_exceed.is_some() || self.requests.is_some() || self.per.is_some() {
                    return Err(ctx.error(
                        self.misplaced_span(span),
                        "rate_limit.policy = \"none\" takes no limit or on_exceed",
                    ));
                }
                RatePolicy::None
            }
            PolicyFile::Unpublished => {
                if self.requests.is_some() || self.per.is_some() || self.burst.is_some() {
                    return Err(ctx.error(
                        self.misplaced_span(span),
                        "rate_limit.policy = \"unpublished\" takes no requests/per/burst",
                    ));
                }
                RatePolicy::Unpublished {
                    throttle: self.throttle(ctx, span)?,
                }
            }
            PolicyFile::Limited => RatePolicy::Limited(self.limit(ctx, span)?),
        };
        let mut daily_caps = Vec::new();
        for c in self.daily_caps {
            daily_caps.push(c.validate(ctx)?);
        }
        Ok(RateLimit {
            policy,
            daily_caps,
            source: ctx.cite(self.source, "rate_limit.source")?,
        })
    }

    /// Where a key that does not fit the policy is: `requests` or `on_exceed` when set
    /// (they may come from an overlay), else the policy.
    fn misplaced_span(&self, policy: Range<usize>) -> Range<usize> {
        let requests = self.requests.as_ref().map(Spanned::span);
        let on_exceed = self.on_exceed.as_ref().map(Spanned::span);
        requests.or(on_exceed).unwrap_or(policy)
    }

    fn limit(&self, ctx: &Ctx<'_>, span: Range<usize>) -> Result<Limit, SourceError> {
        let requests = self.requests.as_ref().map(|r| *r.get_ref());
        let (Some(requests), Some(per), Some(scope)) = (requests, self.per, self.scope) else {
            return Err(ctx.error(
                span,
                "rate_limit.policy = \"limited\" needs `requests`, `per` and `scope`",
            ));
        };
        if per.is_zero() {
            return Err(ctx.error(span, "rate_limit.per must be more than zero"));
        }
        Ok(Limit {
            requests,
            per,
            burst: self.burst,
            scope,
            includes_auth: self.includes_auth,
            throttle: self.throttle(ctx, span)?,
        })
    }

    fn throttle(&self, ctx: &Ctx<'_>, span: Range<usize>) -> Result<Throttle, SourceError> {
        let Some(on) = &self.on_exceed else {
            return Err(ctx.error(
                span,
                "rate_limit: needs `on_exceed` (latency, disconnect or error)",
            ));
        };
        let extras = self.retry_after || self.lockout.is_some();
        match (*on.get_ref(), &self.error) {
            (ExceedFile::Error, Some(e)) => Ok(Throttle::Error {
                error: ctx.error_ref(e.clone(), "rate_limit.error")?,
                retry_after: self.retry_after,
                lockout: self.lockout.unwrap_or(Lockout::None),
            }),
            (ExceedFile::Error, None) => {
                Err(ctx.error(on.span(), "rate_limit.on_exceed = \"error\" needs `error`"))
            }
            (_, Some(_)) => Err(ctx.error(
                on.span(),
                "rate_limit.error only applies to on_exceed = \"error\"",
            )),
            (_, None) if extras => Err(ctx.error(
                on.span(),
                "rate_limit.retry_after and lockout only apply to on_exceed = \"error\"",
            )),
            (ExceedFile::Latency, None) => Ok(Throttle::Latency),
            (ExceedFile::Disconnect, None) => Ok(Throttle::Disconnect),
        }
    }
}

impl DailyCapFile {
    fn validate(self, ctx: &Ctx<'_>) -> Result<DailyCap, SourceError> {
        let key = "rate_limit.daily_caps";
        if let Some(rt) = &self.resource_type
            && !is_r4_type(rt.get_ref())
        {
            return Err(ctx.error(
                rt.span(),
                format!(
                    "{key}.resource_type: `{}` is not a FHIR R4 resource type",
                    rt.get_ref()
                ),
            ));
        }
        Ok(DailyCap {
            resource_type: self.resource_type.map(Spanned::into_inner),
            interaction: self.interaction,
            limit: self.limit,
            error: ctx.error_ref(self.error, &format!("{key}.error"))?,
            source: ctx.cite(self.source, &format!("{key}.source"))?,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MaintenanceFile {
    name: Spanned<String>,
    days: Spanned<Vec<String>>,
    start: Spanned<String>,
    #[serde(default)]
    utc_offset: Option<Spanned<String>>,
    effect: Spanned<EffectFile>,
    #[serde(default, with = "humantime_serde")]
    duration: Option<Duration>,
    #[serde(default)]
    error: Option<Spanned<String>>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EffectFile {
    Down,
    ReadOnly,
    Wipe,
}

impl MaintenanceFile {
    pub fn validate(self, ctx: &Ctx<'_>) -> Result<Maintenance, SourceError> {
        let key = format!("maintenance `{}`", self.name.get_ref());
        let days = self
            .days
            .get_ref()
            .iter()
            .map(|d| d.parse::<Weekday>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                ctx.error(
                    self.days.span(),
                    format!("{key}: days are mon, tue, wed, thu, fri, sat, sun"),
                )
            })?;
        if days.is_empty() {
            return Err(ctx.error(self.days.span(), format!("{key}: name at least one day")));
        }
        let start = NaiveTime::parse_from_str(self.start.get_ref(), "%H:%M")
            .map_err(|_| ctx.error(self.start.span(), format!("{key}: start is HH:MM (24 h)")))?;
        let utc_offset = match &self.utc_offset {
            None => Utc.fix(),
            Some(o) => o
                .get_ref()
                .parse::<FixedOffset>()
                .map_err(|_| ctx.error(o.span(), format!("{key}: utc_offset is like -06:00")))?,
        };
        Ok(Maintenance {
            effect: self.effect(ctx, &key)?,
            name: self.name.into_inner(),
            days,
            start,
            utc_offset,
            source: ctx.cite(self.source, &format!("{key}.source"))?,
        })
    }

    fn effect(&self, ctx: &Ctx<'_>, key: &str) -> Result<Effect, SourceError> {
        let span = self.effect.span();
        let kind = *self.effect.get_ref();
        match (kind, self.duration, &self.error) {
            (EffectFile::Wipe, None, None) => Ok(Effect::Wipe),
            (EffectFile::Wipe, _, _) => {
                Err(ctx.error(span, format!("{key}: a wipe takes no duration or error")))
            }
            (_, Some(duration), Some(e)) if !duration.is_zero() => {
                let error = ctx.error_ref(e.clone(), &format!("{key}.error"))?;
                Ok(match kind {
                    EffectFile::Down => Effect::Down { duration, error },
                    _ => Effect::ReadOnly { duration, error },
                })
            }
            _ => Err(ctx.error(
                span,
                format!("{key}: down and read_only need a non-zero `duration` and `error`"),
            )),
        }
    }
}

//! EHR profiles: how one EHR really behaves, as a data file (`profiles/*.toml`).
//!
//! The runner maps its canonical encounters into the EHR's dialect with it, the mock EHR
//! emulates the EHR from it, and the checker tells the EHR's expected transformations
//! from real corruption with it. A profile covers endpoints and tenancy, auth, paging,
//! required search parameters, the interactions each resource type supports, write
//! defaults and per-type write rules (required, dropped, rewritten, truncated and
//! remapped elements, holding areas, replays), identifiers, the error catalogue, rate
//! limits, maintenance windows, subscription support and whether the audit trail is
//! served over FHIR (`[audit]`); behavioural keys cite `[sources]`.
//!
//! A tenant overlay file overrides any key of a profile (tables merge, everything else
//! is replaced) before validation; an overlay names the profile it applies to with a
//! top-level `base = "epic"` (a shipped name, or a path relative to the overlay).
//!
//! Raw file structs (`*File`, serde `deny_unknown_fields`) are converted once into the
//! validated types re-exported here. `dialect` holds the runner's pure mapping from a
//! canonical interaction to this EHR's. Uses `vocab` only: its source
//! locations and the [`Interaction`] kinds.

mod access;
mod audit;
mod catalogue;
mod cite;
pub mod dialect;
mod file;
mod identifiers;
mod layers;
mod limits;
mod notify;
mod paging;
mod resource;
mod rules;
mod write;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use access::{
    Auth, AuthKind, ClientAuth, Endpoints, ScopeStyle, SigningAlg, SmartBackend, Tenancy,
    TenancyMode, TokenEndpoint,
};
pub use audit::{AuditTrail, Exposed, Pattern};
pub use catalogue::{Envelope, ErrorDef, Errors, Retry, Severity};
pub use cite::{Class, ElementPath, Source};
pub use identifiers::{IdStyle, Identifiers};
pub use limits::{
    DailyCap, Effect, Limit, LimitScope, Lockout, Maintenance, RateLimit, RatePolicy, Throttle,
};
pub use notify::{Subscriptions, Support};
pub use paging::{CapAction, Expiry, NextLink, OverMax, Paging, ResultCap};
pub use resource::{ResourceRules, SearchRules, Verb, is_r4_type};
pub use rules::{
    Allowed, Change, Dropped, EncounterNeed, Landing, Remap, Replay, Rewrite, Truncation,
    WriteRules,
};
pub use write::{Body, Etag, IfMatch, LocationStyle, Unsupported, Write};

use crate::source::{self, SourceError};
use crate::vocab::interaction::Interaction;
use layers::{BASE_KEY, Locator, Text};

/// Profiles shipped inside the binary, by name.
const BUILTIN: &[(&str, &str)] = &[
    ("us-core", include_str!("../../profiles/us-core.toml")),
    ("epic", include_str!("../../profiles/epic.toml")),
    (
        "oracle-health",
        include_str!("../../profiles/oracle-health.toml"),
    ),
    (
        "athenahealth",
        include_str!("../../profiles/athenahealth.toml"),
    ),
    (
        "eclinicalworks",
        include_str!("../../profiles/eclinicalworks.toml"),
    ),
    ("meditech", include_str!("../../profiles/meditech.toml")),
];

/// The names of the shipped profiles (same order as [`BUILTIN`]).
const SHIPPED: &[&str] = &[
    "us-core",
    "epic",
    "oracle-health",
    "athenahealth",
    "eclinicalworks",
    "meditech",
];

/// The profile used when none is named: the US Core baseline (a spec-following server).
pub const DEFAULT: &str = "us-core";

/// The names of the profiles shipped inside the binary.
pub fn shipped() -> &'static [&'static str] {
    SHIPPED
}

/// One EHR's behaviour, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub vendor: Option<String>,
    /// Always `4.0.1`.
    pub fhir_version: String,
    /// US Core versions the EHR claims.
    pub us_core: Vec<String>,
    /// What the facts were captured from, and when.
    pub captured: Option<String>,
    /// Citations by key.
    pub sources: BTreeMap<String, Source>,
    pub endpoints: Endpoints,
    pub tenancy: Tenancy,
    pub auth: Auth,
    pub paging: Paging,
    pub write: Write,
    /// Rules of resource types not listed in `resources`.
    pub defaults: ResourceRules,
    pub resources: BTreeMap<String, ResourceRules>,
    pub identifiers: Identifiers,
    pub errors: Errors,
    pub rate_limit: RateLimit,
    pub maintenance: Vec<Maintenance>,
    /// Which subscription forms the EHR delivers (`[subscriptions]`).
    pub subscriptions: Subscriptions,
    /// Whether the EHR serves its audit trail over FHIR (`[audit]`).
    pub audit: AuditTrail,
}

/// A profile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("unknown profile `{0}` (shipped: {1}; or give a path to a .toml file)")]
    Unknown(String, String),
}

/// Page sizes and caps in force for one resource type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageRules<'a> {
    pub default_count: Option<NonZeroU32>,
    pub max_count: Option<NonZeroU32>,
    pub result_cap: Option<&'a ResultCap>,
    pub first_page_ignores_count: bool,
}

impl Profile {
    /// A shipped profile by name, or a profile file by path.
    pub fn load(name_or_path: &str) -> Result<Profile, Error> {
        Self::load_with_overlay(name_or_path, None)
    }

    /// A profile with a tenant overlay file merged over it before validation. An
    /// overlay's `base` key, if present, must name this profile.
    pub fn load_with_overlay(name_or_path: &str, overlay: Option<&Path>) -> Result<Profile, Error> {
        let base = base_text(name_or_path)?;
        let Some(path) = overlay else {
            return build(base, None);
        };
        let overlay = Text {
            path: path.to_owned(),
            text: source::read(path)?,
        };
        if let Some(named) = layers::top_level_str(&overlay, BASE_KEY)? {
            let base_name = layers::top_level_str(&base, "name")?.map(|n| n.into_inner());
            let matches = named.get_ref() == name_or_path
                || resolve_base(path, named.get_ref()) == name_or_path
                || base_name.as_deref() == Some(named.get_ref().as_str());
            if !matches {
                return Err(Error::Source(SourceError {
                    location: source::Location::of_span(
                        &overlay.path,
                        &overlay.text,
                        Some(named.span()),
                    ),
                    message: format!(
                        "base: this overlay applies to `{}`, not to `{name_or_path}`",
                        named.get_ref()
                    ),
                }));
            }
        }
        build(base, Some(overlay))
    }

    /// The rules of a resource type: its own when listed, the defaults for other FHIR R4
    /// types, `None` for a name that is not a FHIR R4 resource type.
    pub fn resource(&self, resource_type: &str) -> Option<&ResourceRules> {
        self.resources
            .get(resource_type)
            .or_else(|| is_r4_type(resource_type).then_some(&self.defaults))
    }

    /// Whether the EHR supports an interaction on a resource type (system-level ones:
    /// transaction and batch per `write`, capabilities always, token when auth has one).
    pub fn supports(&self, resource_type: &str, interaction: Interaction) -> bool {
        match interaction {
            Interaction::Transaction => self.write.transaction,
            Interaction::Batch => self.write.batch,
            Interaction::Capabilities => true,
            Interaction::Token => !matches!(self.auth.kind, AuthKind::None),
            other => Verb::of(other).is_some_and(|v| self.supports_verb(resource_type, v)),
        }
    }

    /// Whether a resource type supports a verb (including patch and delete).
    pub fn supports_verb(&self, resource_type: &str, verb: Verb) -> bool {
        let conditional_ok = verb != Verb::ConditionalCreate || self.write.conditional_create;
        conditional_ok
            && self
                .resource(resource_type)
                .is_some_and(|r| r.supports(verb))
    }

    pub fn paging(&self) -> &Paging {
        &self.paging
    }

    /// Page sizes and caps for one resource type: its search rules over `paging`.
    pub fn page_rules(&self, resource_type: &str) -> PageRules<'_> {
        let search = self.resource(resource_type).map(|r| &r.search);
        PageRules {
            default_count: search
                .and_then(|s| s.default_count)
                .or(self.paging.default_count),
            max_count: search.and_then(|s| s.max_count).or(self.paging.max_count),
            result_cap: search
                .and_then(|s| s.result_cap.as_ref())
                .or(self.paging.result_cap.as_ref()),
            first_page_ignores_count: search.is_some_and(|s| s.first_page_ignores_count),
        }
    }

    pub fn rate_limit(&self) -> &RateLimit {
        &self.rate_limit
    }

    /// A catalogue entry by name.
    pub fn error(&self, name: &str) -> Option<&ErrorDef> {
        self.errors.codes.get(name)
    }

    /// A citation by key.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.sources.get(key)
    }

    /// HTTP status of a successful create of this type.
    pub fn create_status(&self, resource_type: &str) -> u16 {
        self.resource(resource_type)
            .and_then(|r| r.write.create_status)
            .unwrap_or(self.write.create_status)
    }

    /// The maintenance window in force at `at`, if any.
    pub fn maintenance_at(&self, at: DateTime<Utc>) -> Option<&Maintenance> {
        self.maintenance.iter().find(|m| m.covers(at))
    }

    /// Top-level elements per resource type the checker must not count as differences:
    /// those the EHR drops, rewrites, truncates or remaps. Types without any are absent.
    pub fn expected_changes(&self) -> BTreeMap<String, Vec<String>> {
        self.resources
            .iter()
            .filter_map(|(rt, r)| {
                let names: BTreeSet<&str> = r.write.changed_elements().collect();
                (!names.is_empty())
                    .then(|| (rt.clone(), names.into_iter().map(str::to_owned).collect()))
            })
            .collect()
    }
}

/// A profile from texts already read: `base` (shown as its path) and an optional tenant
/// overlay merged over it — what the loaders above do after reading, and what the fuzz
/// targets drive. Errors are located in whichever text they come from.
pub fn from_texts(base: (&Path, &str), overlay: Option<(&Path, &str)>) -> Result<Profile, Error> {
    let text = |(path, text): (&Path, &str)| Text {
        path: path.to_owned(),
        text: text.to_owned(),
    };
    build(text(base), overlay.map(text))
}

/// Validates a profile file, or an overlay file (one with a top-level `base` key) merged
/// onto the profile it names: what `fhirsurge profile check FILE` runs.
pub fn check_file(path: &Path) -> Result<Profile, Error> {
    let text = Text {
        path: path.to_owned(),
        text: source::read(path)?,
    };
    let Some(named) = layers::top_level_str(&text, BASE_KEY)? else {
        return build(text, None);
    };
    let base_ref = resolve_base(path, named.get_ref());
    let base = base_text(&base_ref).map_err(|e| match e {
        Error::Unknown(n, shipped) => Error::Source(SourceError {
            location: source::Location::of_span(&text.path, &text.text, Some(named.span())),
            message: format!(
                "base: unknown profile `{n}` (shipped: {shipped}; or a path to a .toml file)"
            ),
        }),
        other => other,
    })?;
    build(base, Some(text))
}

/// A `base` that names a file is relative to the overlay's directory.
fn resolve_base(overlay: &Path, base: &str) -> String {
    let looks_like_path = base.ends_with(".toml") || base.contains('/');
    match overlay.parent() {
        Some(dir) if looks_like_path && Path::new(base).is_relative() => {
            dir.join(base).to_string_lossy().into_owned()
        }
        _ => base.to_owned(),
    }
}

/// The text of a shipped profile or a profile file.
fn base_text(name_or_path: &str) -> Result<Text, Error> {
    let path = Path::new(name_or_path);
    if path.extension().is_some_and(|e| e == "toml") || path.exists() {
        return Ok(Text {
            path: path.to_owned(),
            text: source::read(path)?,
        });
    }
    let (name, text) = BUILTIN
        .iter()
        .find(|(n, _)| *n == name_or_path)
        .ok_or_else(|| Error::Unknown(name_or_path.to_owned(), SHIPPED.join(", ")))?;
    Ok(Text {
        path: PathBuf::from("profiles").join(format!("{name}.toml")),
        text: (*text).to_owned(),
    })
}

fn build(base: Text, overlay: Option<Text>) -> Result<Profile, Error> {
    let locator = Locator::new(base, overlay);
    let file: file::File = locator.deserialize()?;
    Ok(file.validate(&locator)?)
}

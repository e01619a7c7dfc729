//! The profile file as written (serde, `deny_unknown_fields`) and its one conversion into
//! a validated [`Profile`]. Checks serde cannot make (source keys defined, error names in
//! the catalogue, element paths, cross-table consistency) are located with the key's
//! span, so every error reads `file:line:column: key: problem`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::Profile;
use super::access::{AuthFile, EndpointsFile, TenancyFile};
use super::catalogue::ErrorsFile;
use super::cite::Source;
use super::identifiers::IdentifiersFile;
use super::layers::Locator;
use super::limits::{MaintenanceFile, RateLimitFile};
use super::paging::PagingFile;
use super::resource::{DefaultsFile, ResourceFile};
use super::write::WriteFile;
use crate::source::SourceError;

/// What validation needs to know: where spans point, which sources and error names exist.
pub(super) struct Ctx<'a> {
    locator: &'a Locator,
    pub sources: BTreeMap<String, Source>,
    pub errors: BTreeSet<String>,
}

impl Ctx<'_> {
    /// An error at a span of the merged tree.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> SourceError {
        self.locator.error(span, message)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    name: Spanned<String>,
    description: String,
    #[serde(default)]
    vendor: Option<String>,
    fhir_version: Spanned<String>,
    #[serde(default)]
    us_core: Vec<String>,
    #[serde(default)]
    captured: Option<String>,
    sources: BTreeMap<Spanned<String>, Source>,
    endpoints: EndpointsFile,
    tenancy: TenancyFile,
    auth: AuthFile,
    paging: PagingFile,
    write: WriteFile,
    resource_defaults: DefaultsFile,
    #[serde(default)]
    resources: BTreeMap<Spanned<String>, ResourceFile>,
    identifiers: IdentifiersFile,
    errors: ErrorsFile,
    rate_limit: RateLimitFile,
    #[serde(default)]
    maintenance: Vec<MaintenanceFile>,
    #[serde(default)]
    subscriptions: super::notify::SubscriptionsFile,
    #[serde(default)]
    audit: super::audit::AuditFile,
}

impl File {
    pub fn validate(self, locator: &Locator) -> Result<Profile, SourceError> {
        let sources = check_sources(self.sources, locator)?;
        let errors = self.errors.names().map(str::to_owned).collect();
        let ctx = Ctx {
            locator,
            sources,
            errors,
        };
        check_name(self.name.get_ref())
            .map_err(|m| ctx.error(self.name.span(), format!("name: {m}")))?;
        if self.fhir_version.get_ref() != "4.0.1" {
            return Err(ctx.error(
                self.fhir_version.span(),
                "fhir_version: fhirsurge speaks FHIR R4 (4.0.1)",
            ));
        }
        let errors = self.errors.validate(&ctx)?;
        let endpoints = self.endpoints.validate(&ctx)?;
        let tenancy = self.tenancy.validate(&ctx, &endpoints)?;
        let write = self.write.validate(&ctx)?;
        let defaults = self
            .resource_defaults
            .validate(&ctx, write.conditional_create)?;
        let mut resources = BTreeMap::new();
        for (name, file) in self.resources {
            let rules = file.validate(&ctx, &name, write.conditional_create, &defaults)?;
            resources.insert(name.into_inner(), rules);
        }
        let mut maintenance = Vec::new();
        for m in self.maintenance {
            maintenance.push(m.validate(&ctx)?);
        }
        let subscriptions = self.subscriptions.validate(&ctx)?;
        let audit = self.audit.validate(&ctx)?;
        Ok(Profile {
            name: self.name.into_inner(),
            description: self.description,
            vendor: self.vendor,
            fhir_version: self.fhir_version.into_inner(),
            us_core: self.us_core,
            captured: self.captured,
            auth: self.auth.validate(&ctx)?,
            paging: self.paging.validate(&ctx)?,
            identifiers: self.identifiers.validate(&ctx)?,
            rate_limit: self.rate_limit.validate(&ctx)?,
            sources: ctx.sources,
            endpoints,
            tenancy,
            write,
            defaults,
            resources,
            errors,
            maintenance,
            subscriptions,
            audit,
        })
    }
}

/// Source keys are `UPPER-CASE` words with digits and hyphens (`EPIC-CS`, `CER-R4`).
fn check_sources(
    sources: BTreeMap<Spanned<String>, Source>,
    locator: &Locator,
) -> Result<BTreeMap<String, Source>, SourceError> {
    let mut out = BTreeMap::new();
    for (key, source) in sources {
        let ok = key
            .get_ref()
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase())
            && key
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(locator.error(
                key.span(),
                format!(
                    "sources.{}: source keys are upper-case words with hyphens (like EPIC-CS)",
                    key.get_ref()
                ),
            ));
        }
        if source.cite.trim().is_empty() {
            return Err(locator.error(
                key.span(),
                format!("sources.{}: `cite` is empty", key.get_ref()),
            ));
        }
        out.insert(key.into_inner(), source);
    }
    Ok(out)
}

/// Profile names are lower-case words with digits and hyphens, like file names.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}`: lower-case words with hyphens (like oracle-health)"
        ))
    }
}

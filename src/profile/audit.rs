//! `[audit]` of a profile: whether the EHR serves its audit trail as `AuditEvent` over
//! the FHIR API (`yes`, `no`, or `unknown`, the default: the run then asks and a refusal
//! is "not measured" with the server's answer), in which event pattern (IHE BALP, the
//! older DICOM 110110 one), and the sources that say so. A run whose profile says `no`
//! does not query AuditEvent at all: the audit verdict is "not measured" with this reason.

use serde::{Deserialize, Serialize};

use super::cite::SourceField;
use super::file::Ctx;
use crate::source::SourceError;

/// Whether the audit trail is served over FHIR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exposed {
    Yes,
    No,
    #[default]
    Unknown,
}

/// How the events are written, when they are served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// IHE Basic Audit Log Patterns (`type` rest, `subtype` the interaction).
    Balp,
    /// DICOM `110110` "Patient Record", the interaction in `subtype` or `action`.
    Dicom,
    #[default]
    Unknown,
}

/// The validated `[audit]` of a profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditTrail {
    pub exposed: Exposed,
    pub pattern: Pattern,
    pub notes: Option<String>,
    /// Source keys behind the answer.
    pub sources: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditFile {
    #[serde(default)]
    exposed: Exposed,
    #[serde(default)]
    pattern: Pattern,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    source: SourceField,
}

impl AuditFile {
    pub fn validate(self, ctx: &Ctx<'_>) -> Result<AuditTrail, SourceError> {
        Ok(AuditTrail {
            exposed: self.exposed,
            pattern: self.pattern,
            notes: self.notes,
            sources: ctx.cite(self.source, "audit")?,
        })
    }
}

impl AuditTrail {
    /// Why the run must not ask for AuditEvents, when the profile says they are not
    /// served; `profile` names the EHR.
    pub fn not_exposed(&self, profile: &str) -> Option<String> {
        (self.exposed == Exposed::No).then(|| {
            let sources = if self.sources.is_empty() {
                String::new()
            } else {
                format!(" (sources: {})", self.sources.join(", "))
            };
            format!(
                "the EHR profile `{profile}` says its audit trail is not served as AuditEvent over the FHIR API{sources}; not queried (a tenant overlay with [audit] exposed = \"yes\" or \"unknown\" turns the reconciliation on)"
            )
        })
    }
}

//! Ids and identifiers: how the EHR forms resource ids (so the mock mints look-alikes and
//! the checker treats them opaquely) and the identifier systems and types it uses for
//! patients (MRN system, type codes).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::cite::SourceField;
use super::file::Ctx;
use super::rules::check_id_template;
use crate::source::SourceError;

#[derive(Clone, Debug, PartialEq)]
pub struct Identifiers {
    /// How new resource ids look (a resource type's `write.id_template` overrides it).
    pub id_style: IdStyle,
    /// The system of the medical record number.
    pub mrn_system: Option<String>,
    /// The `identifier.type` code of the MRN (v2-0203 `MR`).
    pub mrn_type: Option<String>,
    /// Identifier type codes the EHR puts on (or requires of) a Patient.
    pub patient_types: Vec<String>,
    /// Other identifier systems by role (`ssn`, `federated_principal`, …).
    pub other_systems: BTreeMap<String, String>,
    /// A real id from the vendor's sandbox, for people reading the profile.
    pub patient_id_example: Option<String>,
    pub source: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IdStyle {
    /// A UUID.
    Uuid,
    /// A decimal number (`12742400`).
    Numeric,
    /// An opaque string (Epic: `erXuFYUfucBZaryVksYEcMg3`).
    Opaque,
    /// A template with `{n}` and optionally `{tenant}` (`a-{tenant}.E-{n}`).
    Template(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IdentifiersFile {
    id_style: Spanned<StyleFile>,
    #[serde(default)]
    id_template: Option<Spanned<String>>,
    #[serde(default)]
    mrn_system: Option<String>,
    #[serde(default)]
    mrn_type: Option<String>,
    #[serde(default)]
    patient_types: Vec<String>,
    #[serde(default)]
    other_systems: BTreeMap<String, String>,
    #[serde(default)]
    patient_id_example: Option<String>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StyleFile {
    Uuid,
    Numeric,
    Opaque,
    Template,
}

impl IdentifiersFile {
    pub fn validate(self, ctx: &Ctx<'_>) -> Result<Identifiers, SourceError> {
        let span = self.id_style.span();
        let id_style = match (*self.id_style.get_ref(), self.id_template) {
            (StyleFile::Template, Some(t)) => {
                check_id_template(t.get_ref())
                    .map_err(|m| ctx.error(t.span(), format!("identifiers.id_template: {m}")))?;
                IdStyle::Template(t.into_inner())
            }
            (StyleFile::Template, None) => {
                return Err(ctx.error(
                    span,
                    "identifiers.id_style = \"template\" needs `id_template`",
                ));
            }
            (_, Some(t)) => {
                return Err(ctx.error(
                    t.span(),
                    "identifiers.id_template needs id_style = \"template\"",
                ));
            }
            (StyleFile::Uuid, None) => IdStyle::Uuid,
            (StyleFile::Numeric, None) => IdStyle::Numeric,
            (StyleFile::Opaque, None) => IdStyle::Opaque,
        };
        Ok(Identifiers {
            id_style,
            mrn_system: self.mrn_system,
            mrn_type: self.mrn_type,
            patient_types: self.patient_types,
            other_systems: self.other_systems,
            patient_id_example: self.patient_id_example,
            source: ctx.cite(self.source, "identifiers.source")?,
        })
    }
}

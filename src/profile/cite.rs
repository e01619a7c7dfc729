//! Citations and element paths: the `[sources]` table every behavioural key cites with
//! `source = "KEY"` (or a list of keys), and the FHIR element paths write rules name.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::file::Ctx;
use crate::source::SourceError;

/// How far a source can be trusted (the classes of `reference/ehr-profiles.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Class {
    /// The vendor's own documentation or source.
    V,
    /// A vendor artifact (live CapabilityStatement, SMART configuration) captured verbatim.
    VA,
    /// A vendor artifact collection some of whose figures are themselves unverified.
    #[serde(rename = "VA/U")]
    VaUnverified,
    /// An integrator's code or notes.
    I,
    /// A standard or specification.
    S,
    /// Unverified: a third-party claim with no vendor text behind it.
    U,
}

impl Class {
    /// Whether facts from this source need a real check before anyone relies on them.
    pub fn unverified(self) -> bool {
        matches!(self, Self::U | Self::VaUnverified)
    }
}

/// One entry of `[sources]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub class: Class,
    /// Where the fact can be read: repository and path, URL, document and section.
    pub cite: String,
}

/// `source = "KEY"` or `source = ["KEY", "KEY"]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Refs {
    One(String),
    Many(Vec<String>),
}

/// An optional `source` key as written.
pub(super) type SourceField = Option<Spanned<Refs>>;

impl Ctx<'_> {
    /// The cited source keys, each defined in `[sources]`.
    pub fn cite(&self, field: SourceField, key: &str) -> Result<Vec<String>, SourceError> {
        let Some(field) = field else {
            return Ok(Vec::new());
        };
        let span = field.span();
        let keys = match field.into_inner() {
            Refs::One(k) => vec![k],
            Refs::Many(ks) => ks,
        };
        for k in &keys {
            if !self.sources.contains_key(k) {
                let defined: Vec<&str> = self.sources.keys().map(String::as_str).collect();
                return Err(self.error(
                    span,
                    format!(
                        "{key}: source `{k}` is not defined in [sources] (defined: {})",
                        defined.join(", ")
                    ),
                ));
            }
        }
        Ok(keys)
    }

    /// A validated element path.
    pub fn path(&self, p: Spanned<String>, key: &str) -> Result<ElementPath, SourceError> {
        let span = p.span();
        ElementPath::parse(p.into_inner()).map_err(|m| self.error(span, format!("{key}: {m}")))
    }

    /// A validated element path that names a concrete element (no `[x]`).
    pub fn concrete_path(&self, p: Spanned<String>, key: &str) -> Result<ElementPath, SourceError> {
        let span = p.span();
        let path = self.path(p, key)?;
        if path.0.contains("[x]") {
            return Err(self.error(
                span,
                format!(
                    "{key}: `{path}`: name the concrete choice element (e.g. valueQuantity), \
                     the checker compares concrete elements"
                ),
            ));
        }
        Ok(path)
    }
}

/// A FHIR element path inside a resource: `note`, `code.coding`, `identifier[0]`,
/// `value[x]`, `context.period.end`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ElementPath(String);

impl ElementPath {
    /// Checks the shape: dot-separated names, each optionally followed by `[n]` or `[x]`.
    pub fn parse(text: String) -> Result<ElementPath, String> {
        if text.is_empty() || !text.split('.').all(segment_ok) {
            return Err(format!(
                "`{text}` is not an element path (like `note`, `code.coding`, `identifier[0]`)"
            ));
        }
        Ok(ElementPath(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The top-level element: what the checker's per-element digest is keyed by.
    pub fn top_level(&self) -> &str {
        let first = self.0.split('.').next().unwrap_or(&self.0);
        match first.find('[') {
            Some(i) if !first.ends_with("[x]") => &first[..i],
            _ => first,
        }
    }
}

fn segment_ok(seg: &str) -> bool {
    let (name, index) = match seg.find('[') {
        Some(i) => (&seg[..i], Some(&seg[i..])),
        None => (seg, None),
    };
    let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let index_ok = index.is_none_or(|ix| {
        ix == "[x]"
            || (ix.len() > 2
                && ix.ends_with(']')
                && ix[1..ix.len() - 1].chars().all(|c| c.is_ascii_digit()))
    });
    name_ok && index_ok
}

impl fmt::Display for ElementPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

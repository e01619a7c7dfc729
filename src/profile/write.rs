//! Write defaults: how the EHR answers a create or update whatever the resource type
//! (status, body, `Location`, `ETag`, `Prefer`, `If-Match`), which system-level and
//! conditional interactions it has, and what it does with elements it does not support.

use serde::Deserialize;
use toml::Spanned;

use super::cite::SourceField;
use super::file::Ctx;
use crate::source::SourceError;

/// How writes are made and answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// The `Prefer` header fhirsurge sends on writes, if any.
    pub prefer: Option<String>,
    /// Conditional create (`If-None-Exist`) is supported.
    pub conditional_create: bool,
    /// Conditional update (`PUT Type?search`) is supported.
    pub conditional_update: bool,
    /// `POST /` transaction bundles are accepted.
    pub transaction: bool,
    /// `POST /` batch bundles are accepted.
    pub batch: bool,
    /// HTTP status of a successful create (a resource type may override it).
    pub create_status: u16,
    /// Whether the server answers `Prefer: return=…` as asked.
    pub prefer_honoured: bool,
    /// The create/update body when `Prefer` is not sent or not honoured.
    pub create_body: Body,
    /// `Content-Type` sent with an empty body, if any (Oracle Health: `text/html`).
    pub empty_body_content_type: Option<String>,
    pub location: LocationStyle,
    pub etag: Etag,
    pub if_match: IfMatch,
    pub unsupported_elements: Unsupported,
    /// Catalogue entry answered for a `modifierExtension`, if refused.
    pub modifier_extension_error: Option<String>,
    /// Catalogue entry answered for `implicitRules`, if refused.
    pub implicit_rules_error: Option<String>,
    pub source: Vec<String>,
}

/// What a create or update answers in its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// The stored resource.
    Representation,
    /// Nothing (`Content-Length: 0`).
    Empty,
    /// An OperationOutcome.
    OperationOutcome,
}

/// The `Location` header of a create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocationStyle {
    /// No `Location` header.
    None,
    /// `Observation/123` (plus `/_history/1` when `versioned`).
    Relative { versioned: bool },
    /// `https://base/Observation/123` (plus `/_history/1` when `versioned`).
    Absolute { versioned: bool },
}

/// The `ETag` of a create or update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Etag {
    None,
    /// `W/"<versionId>"`.
    WeakVersion,
    /// A weak ETag in a vendor format (`W/"0$0"`, `W/"135-0"`): use it opaquely.
    WeakOpaque,
}

/// `If-Match` on update.
#[derive(Clone, Debug, PartialEq)]
pub enum IfMatch {
    /// Not supported: updates are last-writer-wins.
    Unsupported,
    /// Honoured when sent; a stale version answers `stale_error`.
    Optional { stale_error: String },
    /// Required; a stale version answers `stale_error`, a missing one `missing_error`.
    Required {
        stale_error: String,
        missing_error: String,
    },
}

/// Elements the EHR does not support for a resource type.
#[derive(Clone, Debug, PartialEq)]
pub enum Unsupported {
    /// The server stores every valid element (a spec baseline server).
    Stored,
    /// Silently dropped (Oracle Health per-resource docs).
    Ignored,
    /// The write is refused with this catalogue entry (Oracle Health overview table).
    Rejected(String),
}

impl Write {
    /// The body a create or update answers when fhirsurge sends `prefer`.
    pub fn response_body(&self, prefer: Option<&str>) -> Body {
        if !self.prefer_honoured {
            return self.create_body;
        }
        match prefer {
            Some("return=representation") => Body::Representation,
            Some("return=minimal") => Body::Empty,
            Some("return=OperationOutcome") => Body::OperationOutcome,
            _ => self.create_body,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WriteFile {
    #[serde(default)]
    prefer: Option<Spanned<String>>,
    conditional_create: bool,
    conditional_update: bool,
    transaction: bool,
    batch: bool,
    create_status: Spanned<u16>,
    prefer_honoured: bool,
    create_body: Body,
    #[serde(default)]
    empty_body_content_type: Option<String>,
    location: Spanned<LocationFile>,
    #[serde(default)]
    location_history: bool,
    etag: Etag,
    if_match: Spanned<IfMatchFile>,
    #[serde(default)]
    stale_error: Option<Spanned<String>>,
    #[serde(default)]
    missing_if_match_error: Option<Spanned<String>>,
    unsupported_elements: Spanned<UnsupportedFile>,
    #[serde(default)]
    unsupported_elements_error: Option<Spanned<String>>,
    #[serde(default)]
    modifier_extension_error: Option<Spanned<String>>,
    #[serde(default)]
    implicit_rules_error: Option<Spanned<String>>,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LocationFile {
    None,
    Relative,
    Absolute,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum IfMatchFile {
    Unsupported,
    Optional,
    Required,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum UnsupportedFile {
    Stored,
    Ignored,
    Rejected,
}

const PREFER: &[&str] = &[
    "return=minimal",
    "return=representation",
    "return=OperationOutcome",
];

impl WriteFile {
    pub fn validate(self, ctx: &Ctx<'_>) -> Result<Write, SourceError> {
        if let Some(p) = &self.prefer
            && !PREFER.contains(&p.get_ref().as_str())
        {
            return Err(ctx.error(
                p.span(),
                format!("write.prefer: one of {}", PREFER.join(", ")),
            ));
        }
        let status = *self.create_status.get_ref();
        if !(200..=299).contains(&status) {
            return Err(ctx.error(
                self.create_status.span(),
                "write.create_status: a 2xx status",
            ));
        }
        let opt =
            |e: Option<Spanned<String>>, key: &str| e.map(|e| ctx.error_ref(e, key)).transpose();
        Ok(Write {
            location: self.location(ctx)?,
            if_match: self.if_match(ctx)?,
            unsupported_elements: self.unsupported(ctx)?,
            modifier_extension_error: opt(
                self.modifier_extension_error,
                "write.modifier_extension_error",
            )?,
            implicit_rules_error: opt(self.implicit_rules_error, "write.implicit_rules_error")?,
            prefer: self.prefer.map(Spanned::into_inner),
            conditional_create: self.conditional_create,
            conditional_update: self.conditional_update,
            transaction: self.transaction,
            batch: self.batch,
            create_status: status,
            prefer_honoured: self.prefer_honoured,
            create_body: self.create_body,
            empty_body_content_type: self.empty_body_content_type,
            etag: self.etag,
            source: ctx.cite(self.source, "write.source")?,
        })
    }

    fn location(&self, ctx: &Ctx<'_>) -> Result<LocationStyle, SourceError> {
        let versioned = self.location_history;
        Ok(match self.location.get_ref() {
            LocationFile::None if versioned => {
                return Err(ctx.error(
                    self.location.span(),
                    "write.location_history needs a Location (location = \"relative\" or \"absolute\")",
                ));
            }
            LocationFile::None => LocationStyle::None,
            LocationFile::Relative => LocationStyle::Relative { versioned },
            LocationFile::Absolute => LocationStyle::Absolute { versioned },
        })
    }

    fn if_match(&self, ctx: &Ctx<'_>) -> Result<IfMatch, SourceError> {
        let span = self.if_match.span();
        let stale = self.stale_error.clone();
        let missing = self.missing_if_match_error.clone();
        Ok(match (self.if_match.get_ref(), stale, missing) {
            (IfMatchFile::Unsupported, None, None) => IfMatch::Unsupported,
            (IfMatchFile::Optional, Some(s), None) => IfMatch::Optional {
                stale_error: ctx.error_ref(s, "write.stale_error")?,
            },
            (IfMatchFile::Required, Some(s), Some(m)) => IfMatch::Required {
                stale_error: ctx.error_ref(s, "write.stale_error")?,
                missing_error: ctx.error_ref(m, "write.missing_if_match_error")?,
            },
            (IfMatchFile::Unsupported, _, _) => {
                return Err(ctx.error(span, "write.if_match = \"unsupported\" takes no stale_error or missing_if_match_error"));
            }
            (IfMatchFile::Optional, _, _) => {
                return Err(ctx.error(span, "write.if_match = \"optional\" needs `stale_error` (and no missing_if_match_error)"));
            }
            (IfMatchFile::Required, _, _) => {
                return Err(ctx.error(span, "write.if_match = \"required\" needs `stale_error` and `missing_if_match_error`"));
            }
        })
    }

    fn unsupported(&self, ctx: &Ctx<'_>) -> Result<Unsupported, SourceError> {
        let span = self.unsupported_elements.span();
        Ok(
            match (
                self.unsupported_elements.get_ref(),
                self.unsupported_elements_error.clone(),
            ) {
                (UnsupportedFile::Stored, None) => Unsupported::Stored,
                (UnsupportedFile::Ignored, None) => Unsupported::Ignored,
                (UnsupportedFile::Rejected, Some(e)) => {
                    Unsupported::Rejected(ctx.error_ref(e, "write.unsupported_elements_error")?)
                }
                (UnsupportedFile::Rejected, None) => {
                    return Err(ctx.error(span, "write.unsupported_elements = \"rejected\" needs `unsupported_elements_error`"));
                }
                (_, Some(_)) => {
                    return Err(ctx.error(
                        span,
                        "write.unsupported_elements_error only applies to \"rejected\"",
                    ));
                }
            },
        )
    }
}

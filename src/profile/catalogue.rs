//! The error catalogue: every error the EHR answers that a profile names, with its HTTP
//! status, OperationOutcome shape (or vendor envelope), whether a client may retry it,
//! and when it happens. Other rules refer to entries by name; the mock answers them and
//! the client classifies failures by them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::cite::SourceField;
use super::file::Ctx;
use crate::source::SourceError;

/// The catalogue.
#[derive(Clone, Debug, PartialEq)]
pub struct Errors {
    /// How errors are wrapped unless an entry says otherwise.
    pub envelope: Envelope,
    /// HTTP statuses answered with an empty body instead of an envelope (Epic 403).
    pub empty_body_on: Vec<u16>,
    pub codes: BTreeMap<String, ErrorDef>,
}

/// How an error is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// A FHIR OperationOutcome.
    OperationOutcome,
    /// An OperationOutcome whose `issue.details.coding.code` carries a vendor code (Epic).
    OperationOutcomeVendorCode,
    /// A vendor JSON body with a numeric `status` code; the HTTP status may be 200
    /// (eClinicalWorks writeback).
    NumericStatus,
    /// An OAuth 2.0 error body (`{"error": …, "error_description": …}`): token endpoint.
    Oauth,
    /// A vendor JSON body of its own (athenahealth `{"details": …}`).
    VendorJson,
}

/// One error the EHR answers.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorDef {
    /// HTTP status.
    pub status: u16,
    pub envelope: Envelope,
    pub severity: Severity,
    /// OperationOutcome `issue.code` (FHIR IssueType), or the OAuth `error` value.
    pub issue: String,
    /// The vendor's own code (Epic `4113`, eCW `103`), when it has one.
    pub vendor_code: Option<String>,
    pub message: String,
    pub retry: Retry,
    /// When the EHR answers it.
    pub when: String,
    pub source: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

/// What a client may do after this error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retry {
    /// Never retry: the request is wrong or refused for good.
    No,
    /// Retry after backing off.
    Yes,
    /// Retry once (eCW 103 UNKNOWN_MAPPING_ERROR).
    Once,
    /// Do not retry the link: re-issue the original search (expired paging session).
    ReissueSearch,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ErrorsFile {
    envelope: Envelope,
    #[serde(default)]
    empty_body_on: Option<Spanned<Vec<u16>>>,
    #[serde(default)]
    codes: BTreeMap<Spanned<String>, ErrorDefFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorDefFile {
    status: Spanned<u16>,
    #[serde(default)]
    envelope: Option<Envelope>,
    severity: Severity,
    issue: Spanned<String>,
    #[serde(default)]
    vendor_code: Option<String>,
    message: String,
    retry: Retry,
    when: String,
    #[serde(default)]
    source: SourceField,
}

/// FHIR R4 IssueType codes (valueset-issue-type).
const ISSUE_TYPES: &[&str] = &[
    "invalid",
    "structure",
    "required",
    "value",
    "invariant",
    "security",
    "login",
    "unknown",
    "expired",
    "forbidden",
    "suppressed",
    "processing",
    "not-supported",
    "duplicate",
    "multiple-matches",
    "not-found",
    "deleted",
    "too-long",
    "code-invalid",
    "extension",
    "too-costly",
    "business-rule",
    "conflict",
    "transient",
    "lock-error",
    "no-store",
    "exception",
    "timeout",
    "incomplete",
    "throttled",
    "informational",
];

/// OAuth 2.0 token-endpoint error codes (RFC 6749 §5.2).
const OAUTH_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
];

impl ErrorsFile {
    /// The names defined, so other tables can be checked against them first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.codes.keys().map(|k| k.get_ref().as_str())
    }

    pub fn validate(self, ctx: &Ctx<'_>) -> Result<Errors, SourceError> {
        let empty_body_on = match self.empty_body_on {
            Some(list) => {
                if let Some(s) = list.get_ref().iter().find(|s| !(100..=599).contains(*s)) {
                    return Err(ctx.error(
                        list.span(),
                        format!("errors.empty_body_on: {s} is not an HTTP status"),
                    ));
                }
                list.into_inner()
            }
            None => Vec::new(),
        };
        let mut codes = BTreeMap::new();
        for (name, def) in self.codes {
            let key = format!("errors.codes.{}", name.get_ref());
            check_name(name.get_ref())
                .map_err(|m| ctx.error(name.span(), format!("{key}: {m}")))?;
            let def = def.validate(ctx, self.envelope, &key)?;
            codes.insert(name.into_inner(), def);
        }
        Ok(Errors {
            envelope: self.envelope,
            empty_body_on,
            codes,
        })
    }
}

impl ErrorDefFile {
    fn validate(
        self,
        ctx: &Ctx<'_>,
        default: Envelope,
        key: &str,
    ) -> Result<ErrorDef, SourceError> {
        let status = *self.status.get_ref();
        if !(100..=599).contains(&status) {
            return Err(ctx.error(
                self.status.span(),
                format!("{key}.status: {status} is not an HTTP status"),
            ));
        }
        let envelope = self.envelope.unwrap_or(default);
        let issue = self.issue.get_ref();
        let known = match envelope {
            Envelope::Oauth => OAUTH_ERRORS.contains(&issue.as_str()),
            _ => ISSUE_TYPES.contains(&issue.as_str()),
        };
        if !known {
            let list = if envelope == Envelope::Oauth {
                OAUTH_ERRORS
            } else {
                ISSUE_TYPES
            };
            return Err(ctx.error(
                self.issue.span(),
                format!("{key}.issue: `{issue}` is not one of {}", list.join(", ")),
            ));
        }
        Ok(ErrorDef {
            status,
            envelope,
            severity: self.severity,
            issue: self.issue.into_inner(),
            vendor_code: self.vendor_code,
            message: self.message,
            retry: self.retry,
            when: self.when,
            source: ctx.cite(self.source, &format!("{key}.source"))?,
        })
    }
}

/// Names referred to from other tables: snake_case words.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}`: error names are snake_case (like `session_expired`)"
        ))
    }
}

impl Ctx<'_> {
    /// A reference to a catalogue entry, which must exist.
    pub fn error_ref(&self, name: Spanned<String>, key: &str) -> Result<String, SourceError> {
        if self.errors.contains(name.get_ref()) {
            return Ok(name.into_inner());
        }
        let known: Vec<&str> = self.errors.iter().map(String::as_str).collect();
        Err(self.error(
            name.span(),
            format!(
                "{key}: `{}` is not in the error catalogue [errors.codes] (defined: {})",
                name.get_ref(),
                known.join(", ")
            ),
        ))
    }
}

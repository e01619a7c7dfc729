//! Paging: how a searchset is cut into pages, what the `next` link looks like and how
//! long it lives, the result cap, and the oddities a client and the checker must
//! tolerate (duplicates across pages, short pages).

use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::cite::SourceField;
use super::file::Ctx;
use crate::source::SourceError;

/// The EHR's paging.
#[derive(Clone, Debug, PartialEq)]
pub struct Paging {
    pub next: NextLink,
    /// Page size when `_count` is not sent; `None` = not documented.
    pub default_count: Option<NonZeroU32>,
    /// Largest `_count` honoured; `None` = not documented.
    pub max_count: Option<NonZeroU32>,
    /// What a `_count` over `max_count` gets.
    pub over_max: OverMax,
    /// At most this many results for one search, whatever the paging.
    pub result_cap: Option<ResultCap>,
    /// The same id may appear on a later page again (keep the latest version per id).
    pub duplicates_across_pages: bool,
    /// Pages after the first may hold fewer than `_count` entries before the end.
    pub short_pages: bool,
    pub source: Vec<String>,
}

/// The shape and life of `Bundle.link[next]`.
#[derive(Clone, Debug, PartialEq)]
pub enum NextLink {
    /// A plain offset the server puts in the link (`_getpagesoffset=40`).
    Offset { param: String },
    /// A page number (`page=3`).
    PageNumber { param: String },
    /// An opaque cursor; it may expire.
    Cursor {
        param: String,
        expiry: Option<Expiry>,
    },
    /// A server-side session bound to the original search (Epic `sessionID`): it
    /// expires, and the client must re-issue the search.
    Session { param: String, expiry: Expiry },
}

impl NextLink {
    /// The query parameter the server puts in its `next` links.
    pub fn param(&self) -> &str {
        match self {
            Self::Offset { param }
            | Self::PageNumber { param }
            | Self::Cursor { param, .. }
            | Self::Session { param, .. } => param,
        }
    }

    /// How an expired link is answered, if links expire.
    pub fn expiry(&self) -> Option<&Expiry> {
        match self {
            Self::Cursor { expiry, .. } => expiry.as_ref(),
            Self::Session { expiry, .. } => Some(expiry),
            _ => None,
        }
    }
}

/// When a link stops working and what it answers then.
#[derive(Clone, Debug, PartialEq)]
pub struct Expiry {
    /// Lifetime of a link; `None` = not documented (the mock picks one).
    pub after: Option<Duration>,
    /// Catalogue entry answered for an expired link.
    pub error: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OverMax {
    /// Served as `max_count`.
    Clamp,
    /// Refused with this catalogue entry.
    Reject(String),
}

/// A cap on the total results of one search.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultCap {
    pub max_total: NonZeroU32,
    pub on_exceed: CapAction,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CapAction {
    /// The whole search fails with this catalogue entry (Epic Patient 4127).
    Error(String),
    /// The first `max_total` come back, with this warning entry in the bundle if any
    /// (Epic 59133).
    Truncate { warning: Option<String> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PagingFile {
    style: Spanned<Style>,
    param: String,
    #[serde(default, with = "humantime_serde")]
    expires_after: Option<Duration>,
    #[serde(default)]
    expired_error: Option<Spanned<String>>,
    #[serde(default)]
    default_count: Option<NonZeroU32>,
    #[serde(default)]
    max_count: Option<NonZeroU32>,
    #[serde(default)]
    over_max: Option<Spanned<OverMaxAction>>,
    #[serde(default)]
    over_max_error: Option<Spanned<String>>,
    #[serde(default)]
    result_cap: Option<ResultCapFile>,
    #[serde(default)]
    duplicates_across_pages: bool,
    #[serde(default)]
    short_pages: bool,
    #[serde(default)]
    source: SourceField,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Style {
    Offset,
    PageNumber,
    Cursor,
    Session,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OverMaxAction {
    Clamp,
    Reject,
}

/// `result_cap = { max_total = 100, on_exceed = "error", error = "…" }` as written; also
/// used per resource type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResultCapFile {
    max_total: NonZeroU32,
    on_exceed: Spanned<CapFile>,
    #[serde(default)]
    error: Option<Spanned<String>>,
    #[serde(default)]
    warning: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CapFile {
    Error,
    Truncate,
}

impl PagingFile {
    pub fn validate(self, ctx: &Ctx<'_>) -> Result<Paging, SourceError> {
        let next = self.next_link(ctx)?;
        let over_max = self.over_max(ctx)?;
        if let (Some(d), Some(m)) = (self.default_count, self.max_count)
            && d > m
        {
            return Err(ctx.error(
                self.style.span(),
                format!("paging: default_count {d} is over max_count {m}"),
            ));
        }
        Ok(Paging {
            next,
            default_count: self.default_count,
            max_count: self.max_count,
            over_max,
            result_cap: self
                .result_cap
                .map(|c| c.validate(ctx, "paging.result_cap"))
                .transpose()?,
            duplicates_across_pages: self.duplicates_across_pages,
            short_pages: self.short_pages,
            source: ctx.cite(self.source, "paging.source")?,
        })
    }

    fn over_max(&self, ctx: &Ctx<'_>) -> Result<OverMax, SourceError> {
        let action = self.over_max.as_ref().map(|a| (*a.get_ref(), a.span()));
        match (action, &self.over_max_error) {
            (None | Some((OverMaxAction::Clamp, _)), None) => Ok(OverMax::Clamp),
            (Some((OverMaxAction::Reject, _)), Some(e)) => Ok(OverMax::Reject(
                ctx.error_ref(e.clone(), "paging.over_max_error")?,
            )),
            (Some((OverMaxAction::Reject, span)), None) => {
                Err(ctx.error(span, "paging.over_max = \"reject\" needs `over_max_error`"))
            }
            (_, Some(e)) => Err(ctx.error(
                e.span(),
                "paging.over_max_error only applies to over_max = \"reject\"",
            )),
        }
    }

    fn next_link(&self, ctx: &Ctx<'_>) -> Result<NextLink, SourceError> {
        let span = self.style.span();
        let param = self.param.clone();
        let expiry = self.expiry(ctx, span.clone())?;
        Ok(match (*self.style.get_ref(), expiry) {
            (Style::Offset, None) => NextLink::Offset { param },
            (Style::PageNumber, None) => NextLink::PageNumber { param },
            (Style::Cursor, expiry) => NextLink::Cursor { param, expiry },
            (Style::Session, Some(expiry)) => NextLink::Session { param, expiry },
            (Style::Session, None) => {
                return Err(ctx.error(span, "paging.style = \"session\" needs `expired_error`"));
            }
            (Style::Offset | Style::PageNumber, Some(_)) => {
                return Err(ctx.error(
                    span,
                    "paging: offset and page_number links do not expire (no expires_after/expired_error)",
                ));
            }
        })
    }

    fn expiry(&self, ctx: &Ctx<'_>, span: Range<usize>) -> Result<Option<Expiry>, SourceError> {
        match (&self.expired_error, self.expires_after) {
            (Some(e), after) => Ok(Some(Expiry {
                after,
                error: ctx.error_ref(e.clone(), "paging.expired_error")?,
            })),
            (None, Some(_)) => Err(ctx.error(span, "paging.expires_after needs `expired_error`")),
            (None, None) => Ok(None),
        }
    }
}

impl ResultCapFile {
    pub fn validate(self, ctx: &Ctx<'_>, key: &str) -> Result<ResultCap, SourceError> {
        let span = self.on_exceed.span();
        let on_exceed = match (self.on_exceed.into_inner(), self.error, self.warning) {
            (CapFile::Error, Some(e), None) => {
                CapAction::Error(ctx.error_ref(e, &format!("{key}.error"))?)
            }
            (CapFile::Truncate, None, w) => CapAction::Truncate {
                warning: w
                    .map(|w| ctx.error_ref(w, &format!("{key}.warning")))
                    .transpose()?,
            },
            (CapFile::Error, _, _) => {
                return Err(ctx.error(
                    span,
                    format!("{key}: on_exceed = \"error\" needs `error` and no `warning`"),
                ));
            }
            (CapFile::Truncate, Some(_), _) => {
                return Err(ctx.error(
                    span,
                    format!("{key}: on_exceed = \"truncate\" takes `warning`, not `error`"),
                ));
            }
        };
        Ok(ResultCap {
            max_total: self.max_total,
            on_exceed,
        })
    }
}

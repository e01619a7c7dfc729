//! The scenario's `[history]` table: what the run's history file keeps
//! (`keep = "full" | "writes" | "sample:P"`), validated where it is written so a bad
//! value reads `file:line:column: history.keep: problem`.

use serde::Deserialize;
use toml::Spanned;

use super::file::Locator;
use crate::source::SourceError;
use crate::vocab::keep::Keep;

/// `[history]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryFile {
    #[serde(default)]
    keep: Option<Spanned<String>>,
}

/// The keep mode; the default keeps everything.
pub(super) fn validate(
    file: Option<Spanned<HistoryFile>>,
    at: &Locator<'_>,
) -> Result<Keep, SourceError> {
    let Some(keep) = file.and_then(|f| f.into_inner().keep) else {
        return Ok(Keep::Full);
    };
    keep.get_ref()
        .parse()
        .map_err(|e| at.error(keep.span(), format!("history.keep: {e}")))
}

//! The scenario's `[scope_probe]` table as written, and its validation: each scope must
//! be a SMART `system/<Type|*>.<permissions>` scope, located at its key when not.

use serde::Deserialize;
use toml::Spanned;

use super::file::Locator;
use crate::source::SourceError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScopeProbeFile {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    scopes: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `[scope_probe]`: each scope must be a `system/<Type|*>.<permissions>` scope.
pub(super) fn validate(
    file: Option<Spanned<ScopeProbeFile>>,
    at: &Locator<'_>,
) -> Result<super::ScopeProbe, SourceError> {
    let Some(file) = file else {
        return Ok(super::ScopeProbe::default());
    };
    let span = file.span();
    let f = file.into_inner();
    if let Some(bad) = f.scopes.iter().find(|s| !is_system_scope(s)) {
        let message = format!(
            "scope_probe.scopes: `{bad}` is not a system scope (system/<Type|*>.<cruds|read|write|*>)"
        );
        return Err(at.error(at.key_in(span, Some("scopes")), message));
    }
    Ok(super::ScopeProbe {
        enabled: f.enabled,
        scopes: f.scopes,
    })
}

/// `system/Patient.rs`, `system/*.read`, `system/Observation.cud`.
fn is_system_scope(scope: &str) -> bool {
    let Some((rt, perms)) = scope
        .strip_prefix("system/")
        .and_then(|r| r.split_once('.'))
    else {
        return false;
    };
    let type_ok = rt == "*"
        || (rt.starts_with(|c: char| c.is_ascii_uppercase())
            && rt.chars().all(|c| c.is_ascii_alphanumeric()));
    let letters = !perms.is_empty()
        && perms.len() <= 5
        && perms.chars().all(|c| "cruds".contains(c))
        && "cruds"
            .chars()
            .filter(|c| perms.contains(*c))
            .collect::<String>()
            == perms;
    type_ok && (letters || ["read", "write", "*"].contains(&perms))
}

//! Deletes and JSON Patches as the emulated EHR answers them (the gate has already
//! refused them where the profile says the type does not support them): `If-Match` as
//! the EHR takes it, the profile's write rules on the patched resource, and the answer's
//! `ETag` in the profile's style. A delete answers 204 No Content; a patch is answered
//! as an update. A patch body must be `application/json-patch+json` (415 otherwise:
//! FHIRPath Patch is not implemented).

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::Emulation;
use super::rules;
use super::writes::{
    Answered, admit_value, answer, if_match_rule, stale_refusal, version_headers, written,
};
use crate::mock::Shared;
use crate::mock::conn::ConnHandle;
use crate::mock::http::parse_body;
use crate::mock::outcome::Problem;
use crate::mock::write::Ctx;
use crate::vocab::ledger::REQUEST_HEADER;

/// The media type of a JSON Patch document.
pub const JSON_PATCH: &str = "application/json-patch+json";

/// `DELETE /Type/id`.
pub fn delete(
    shared: &Shared,
    emu: &Emulation,
    (rt, id): (&str, &str),
    headers: &HeaderMap,
) -> Response {
    answer(delete_inner(shared, emu, (rt, id), headers))
}

fn delete_inner(
    shared: &Shared,
    emu: &Emulation,
    (rt, id): (&str, &str),
    headers: &HeaderMap,
) -> Answered {
    let (if_match, stale) = if_match_rule(shared, emu, (rt, id), headers)?;
    let deleted = shared
        .delete(rt, id, if_match.as_deref())
        .map_err(|problem| stale_refusal(emu, stale, problem))?;
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    version_headers(&mut r, emu.profile.write.etag, &deleted.version);
    Ok(r)
}

/// `PATCH /Type/id` with a JSON Patch.
pub fn patch(
    shared: &Shared,
    emu: &Emulation,
    (rt, id): (&str, &str),
    conn: Option<&ConnHandle>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    answer(patch_inner(shared, emu, (rt, id), conn, headers, body))
}

fn patch_inner(
    shared: &Shared,
    emu: &Emulation,
    (rt, id): (&str, &str),
    conn: Option<&ConnHandle>,
    headers: &HeaderMap,
    body: &[u8],
) -> Answered {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media.is_some_and(|m| m.eq_ignore_ascii_case(JSON_PATCH)) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            format!("a patch must be {JSON_PATCH} (JSON Patch); FHIRPath Patch is not supported"),
        )
        .into());
    }
    let doc = parse_body(body)?;
    let (if_match, stale) = if_match_rule(shared, emu, (rt, id), headers)?;
    let ctx = Ctx {
        request: headers.get(REQUEST_HEADER).and_then(|v| v.to_str().ok()),
        faults: true,
        can_reset: conn.is_some(),
        hold: None,
    };
    let w = shared
        .patch((rt, id), &doc, if_match.as_deref(), ctx, |patched| {
            let mut resource = admit_value(shared, emu, rt, patched)?;
            if let Some(r) = emu.profile.resource(rt) {
                rules::transform(&r.write, &mut resource);
            }
            Ok(resource)
        })
        .map_err(|refused| match refused {
            super::refusal::Refused::Mock(problem) => stale_refusal(emu, stale, problem),
            other => other,
        })?;
    Ok(written(emu, &w, headers, conn))
}

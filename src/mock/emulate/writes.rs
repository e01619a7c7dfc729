//! Creates, updates and reads as the emulated EHR answers them: its write rules and
//! replay rule first, the holding area a create lands in, `If-Match` as the EHR takes
//! it, and the answer's status, body, `Location` and `ETag` as the profile declares.
//! The store and the silent faults underneath are the mock's own.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::refusal::{Refusal, Refused};
use super::rules::{self, Encounter};
use super::{Emulation, element};
use crate::mock::Shared;
use crate::mock::conn::ConnHandle;
use crate::mock::http::{base, fhir, parse_body};
use crate::mock::index::normalize_reference;
use crate::mock::outcome::{Problem, outcome};
use crate::mock::store::{Holding, Version};
use crate::mock::write::{After, Ctx, Written, check};
use crate::profile::{Body as Answer, Etag, IfMatch, Landing, LocationStyle, Replay, WriteRules};
use crate::vocab::ledger::REQUEST_HEADER;

pub(super) type Answered = Result<Response, Refused>;

/// `POST /Type` (with or without `If-None-Exist`).
pub fn create(
    shared: &Shared,
    emu: &Emulation,
    rt: &str,
    conn: Option<&ConnHandle>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    answer(create_inner(shared, emu, rt, conn, headers, body))
}

fn create_inner(
    shared: &Shared,
    emu: &Emulation,
    rt: &str,
    conn: Option<&ConnHandle>,
    headers: &HeaderMap,
    body: &[u8],
) -> Answered {
    let mut resource = admit(shared, emu, rt, body)?;
    let rules = emu.profile.resource(rt).map(|r| &r.write);
    let replay = rules.and_then(|r| replay_key(rt, &r.replay, &resource));
    if let Some(rules) = rules {
        rules::transform(rules, &mut resource);
    }
    let ctx = Ctx {
        request: headers.get(REQUEST_HEADER).and_then(|v| v.to_str().ok()),
        faults: true,
        can_reset: conn.is_some(),
        hold: rules.and_then(|r| holding(r, Instant::now())),
    };
    let if_none_exist = match headers.get("if-none-exist").map(|v| v.to_str()) {
        Some(Ok(q)) => Some(q),
        Some(Err(_)) => return Err(Problem::bad("If-None-Exist is not text").into()),
        None => None,
    };
    let mut replays = replay.as_ref().map(|_| emu.replays());
    if let (Some((key, rule)), Some(seen)) = (&replay, &replays)
        && let Some(id) = seen.get(key)
        && let Some(existing) = shared.store.get(rt, id).and_then(|r| r.current())
    {
        return match rule {
            Replay::Rejected { error, .. } => Err(Refusal::named(&emu.profile, error)
                .with_detail(format!("{rt}/{id} has the same content"))
                .into()),
            _ => Ok(written(emu, &found(rt, id, existing), headers, conn)),
        };
    }
    let w = match if_none_exist {
        Some(q) => shared.conditional_create(rt, resource, q, ctx),
        None => shared.create(rt, resource, ctx),
    }?;
    let stored = shared
        .store
        .get(rt, &w.id)
        .and_then(|r| r.current())
        .is_some();
    if let (Some((key, _)), Some(seen)) = (replay, replays.as_mut())
        && stored
    {
        seen.entry(key).or_insert_with(|| w.id.clone());
    }
    drop(replays);
    Ok(written(emu, &w, headers, conn))
}

/// `PUT /Type/id`.
pub fn update(
    shared: &Shared,
    emu: &Emulation,
    (rt, id): (&str, &str),
    conn: Option<&ConnHandle>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    answer(update_inner(shared, emu, (rt, id), conn, headers, body))
}

fn update_inner(
    shared: &Shared,
    emu: &Emulation,
    (rt, id): (&str, &str),
    conn: Option<&ConnHandle>,
    headers: &HeaderMap,
    body: &[u8],
) -> Answered {
    let mut resource = admit(shared, emu, rt, body)?;
    if let Some(rules) = emu.profile.resource(rt).map(|r| &r.write) {
        rules::transform(rules, &mut resource);
    }
    let (if_match, stale) = if_match_rule(shared, emu, (rt, id), headers)?;
    let ctx = Ctx {
        request: headers.get(REQUEST_HEADER).and_then(|v| v.to_str().ok()),
        faults: true,
        can_reset: conn.is_some(),
        hold: None,
    };
    let w = shared
        .update(rt, id, resource, if_match.as_deref(), ctx)
        .map_err(|problem| stale_refusal(emu, stale, problem))?;
    Ok(written(emu, &w, headers, conn))
}

/// The `If-Match` a write is held to as the EHR takes it (none when it ignores it), and
/// the catalogue entry a stale one answers; refuses a missing one the EHR requires.
pub(super) fn if_match_rule<'p>(
    shared: &Shared,
    emu: &'p Emulation,
    (rt, id): (&str, &str),
    headers: &HeaderMap,
) -> Result<(Option<String>, Option<&'p String>), Refused> {
    let sent = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let p = &emu.profile;
    Ok(match &p.write.if_match {
        IfMatch::Unsupported => (None, None),
        IfMatch::Optional { stale_error } => (
            sent.map(|e| version_tag(p.write.etag, e)),
            Some(stale_error),
        ),
        IfMatch::Required {
            stale_error,
            missing_error,
        } => {
            let exists = shared.store.get(rt, id).and_then(|r| r.current()).is_some();
            if sent.is_none() && exists {
                return Err(Refusal::named(p, missing_error)
                    .with_detail(format!("updating {rt}/{id} needs If-Match"))
                    .into());
            }
            (
                sent.map(|e| version_tag(p.write.etag, e)),
                Some(stale_error),
            )
        }
    })
}

/// A 412 of the store as the EHR answers a stale `If-Match`.
pub(super) fn stale_refusal(emu: &Emulation, stale: Option<&String>, problem: Problem) -> Refused {
    match stale {
        Some(e) if problem.status == StatusCode::PRECONDITION_FAILED => {
            Refused::from(Refusal::named(&emu.profile, e).with_detail(problem.text))
        }
        _ => Refused::from(problem),
    }
}

/// `GET /Type/id`: the mock's read, with the profile's `ETag`.
pub fn read(shared: &Shared, emu: &Emulation, rt: &str, id: &str, headers: &HeaderMap) -> Response {
    let request = headers.get(REQUEST_HEADER).and_then(|v| v.to_str().ok());
    served(emu, shared.read(rt, id, request))
}

/// `GET /Type/id/_history/vid`, with the profile's `ETag`.
pub fn vread(shared: &Shared, emu: &Emulation, (rt, id, vid): (&str, &str, &str)) -> Response {
    served(emu, shared.vread(rt, id, vid))
}

/// A version as read, or why not.
fn served(emu: &Emulation, read: Result<std::sync::Arc<Version>, Problem>) -> Response {
    match read {
        Ok(v) => {
            let mut r = fhir(StatusCode::OK, v.body.clone());
            version_headers(&mut r, emu.profile.write.etag, &v);
            r
        }
        Err(p) => p.into_response(),
    }
}

pub(super) fn answer(a: Answered) -> Response {
    a.unwrap_or_else(IntoResponse::into_response)
}

/// The body as a resource the EHR accepts: the mock's shape rules, then the profile's.
fn admit(shared: &Shared, emu: &Emulation, rt: &str, body: &[u8]) -> Result<Value, Refused> {
    admit_value(shared, emu, rt, parse_body(body)?)
}

/// A resource the EHR accepts: the mock's shape rules, then the profile's.
pub(super) fn admit_value(
    shared: &Shared,
    emu: &Emulation,
    rt: &str,
    resource: Value,
) -> Result<Value, Refused> {
    check(rt, &resource)?;
    rules::check(&emu.profile, rt, &resource, |id| encounter(shared, id))?;
    Ok(resource)
}

fn encounter(shared: &Shared, id: &str) -> Option<Encounter> {
    let v = shared.store.get("Encounter", id)?.current()?;
    let body: Value = serde_json::from_slice(&v.body).ok()?;
    let text = |p: &str| body.pointer(p).and_then(Value::as_str);
    Some(Encounter {
        status: text("/status").map(str::to_owned),
        subject: text("/subject/reference").map(|r| normalize_reference(r, "Patient")),
    })
}

/// Where a create lands: a holding area until `visible_after`, or until reconciled.
fn holding(rules: &WriteRules, now: Instant) -> Option<Holding> {
    match rules.landing {
        Landing::Immediately => None,
        Landing::HoldingArea {
            visible_after: Some(d),
        } => Some(Holding::Until(now + d)),
        Landing::HoldingArea {
            visible_after: None,
        } => Some(Holding::Unreconciled),
    }
}

/// The key a replay rule compares creates by (type and the key elements' values), when
/// the rule has one and the write carries any of them.
fn replay_key<'r>(rt: &str, replay: &'r Replay, resource: &Value) -> Option<(String, &'r Replay)> {
    let key = match replay {
        Replay::NewRecord => return None,
        Replay::Rejected { key, .. } | Replay::ReturnsExisting { key } => key,
    };
    let values: Vec<Vec<&Value>> = key.iter().map(|p| element::values(resource, p)).collect();
    if values.iter().all(Vec::is_empty) {
        return None;
    }
    let text = serde_json::to_string(&values).unwrap_or_default();
    Some((format!("{rt}\u{1f}{text}"), replay))
}

/// An existing record answered as if just created (match-or-create).
fn found(rt: &str, id: &str, version: std::sync::Arc<Version>) -> Written {
    Written {
        created: true,
        resource_type: rt.to_owned(),
        id: id.to_owned(),
        version,
        after: After::Answer,
    }
}

/// What `Prefer: return=…` asks for, as the profile names it; `None` when not sent.
fn prefer(headers: &HeaderMap) -> Option<&'static str> {
    let text = headers.get("prefer")?.to_str().ok()?;
    let wanted = text
        .split([',', ';'])
        .find_map(|part| part.trim().strip_prefix("return="))?
        .trim()
        .trim_matches('"');
    match wanted {
        "minimal" => Some("return=minimal"),
        "representation" => Some("return=representation"),
        "OperationOutcome" => Some("return=OperationOutcome"),
        _ => None,
    }
}

/// The answer to a write, as the profile says; or, after a commit, the failure planned.
pub(super) fn written(
    emu: &Emulation,
    w: &Written,
    headers: &HeaderMap,
    conn: Option<&ConnHandle>,
) -> Response {
    if let Some(failed) = crate::mock::http::after_commit(w.after, conn) {
        return failed;
    }
    let p = &emu.profile;
    let status = if w.created {
        StatusCode::from_u16(p.create_status(&w.resource_type)).unwrap_or(StatusCode::CREATED)
    } else {
        StatusCode::OK
    };
    let mut r = body(emu, w, status, p.write.response_body(prefer(headers)));
    if let Some(l) = location(p.write.location, &base(headers), w)
        && let Ok(l) = HeaderValue::from_str(&l)
    {
        r.headers_mut().insert(header::LOCATION, l);
    }
    version_headers(&mut r, p.write.etag, &w.version);
    r
}

/// The body of a write's answer, of the kind the profile answers.
fn body(emu: &Emulation, w: &Written, status: StatusCode, kind: Answer) -> Response {
    let v = &w.version;
    match kind {
        Answer::Representation => fhir(status, v.body.clone()),
        Answer::Empty => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = status;
            if let Some(ct) = &emu.profile.write.empty_body_content_type
                && let Ok(ct) = HeaderValue::from_str(ct)
            {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            r
        }
        Answer::OperationOutcome => {
            let verb = if w.created { "created" } else { "updated" };
            let text = format!("{verb} {}/{} version {}", w.resource_type, w.id, v.number);
            let body = serde_json::to_vec(&outcome("information", "informational", &text))
                .unwrap_or_default();
            fhir(status, Bytes::from(body))
        }
    }
}

fn location(style: LocationStyle, base: &str, w: &Written) -> Option<String> {
    let (prefix, versioned) = match style {
        LocationStyle::None => return None,
        LocationStyle::Relative { versioned } => ("", versioned),
        LocationStyle::Absolute { versioned } => (base, versioned),
    };
    let mut l = format!("{prefix}{}/{}", w.resource_type, w.id);
    if versioned {
        l.push_str(&format!("/_history/{}", w.version.number));
    }
    Some(l)
}

/// `ETag` in the profile's style, and `Last-Modified`.
pub(super) fn version_headers(r: &mut Response, etag: Etag, v: &Version) {
    let h = r.headers_mut();
    let tag = match etag {
        Etag::None => None,
        Etag::WeakVersion => Some(format!("W/\"{}\"", v.number)),
        Etag::WeakOpaque => Some(opaque(v.number)),
    };
    if let Some(tag) = tag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        h.insert(header::ETAG, tag);
    }
    if let Ok(m) = HeaderValue::from_str(&v.http_date) {
        h.insert(header::LAST_MODIFIED, m);
    }
}

/// A weak ETag in a vendor-like format: counts from 0, with a suffix.
fn opaque(number: u64) -> String {
    format!("W/\"{}$0\"", number.saturating_sub(1))
}

/// The `W/"n"` an `If-Match` names, from the profile's ETag style. An opaque tag this
/// server did not give names no version (and so never matches).
fn version_tag(etag: Etag, sent: &str) -> String {
    if etag != Etag::WeakOpaque {
        return sent.to_owned();
    }
    let inner = sent.trim().trim_start_matches("W/").trim_matches('"');
    let n = inner
        .split_once('$')
        .and_then(|(n, _)| n.parse::<u64>().ok())
        .map_or(0, |n| n + 1);
    format!("W/\"{n}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_etags_round_trip_to_versions() {
        assert_eq!(opaque(1), "W/\"0$0\"");
        assert_eq!(version_tag(Etag::WeakOpaque, &opaque(7)), "W/\"7\"");
        assert_eq!(version_tag(Etag::WeakOpaque, "W/\"135-0\""), "W/\"0\"");
        assert_eq!(version_tag(Etag::WeakVersion, "W/\"3\""), "W/\"3\"");
    }

    #[test]
    fn prefer_names_what_the_profile_knows() {
        let mut h = HeaderMap::new();
        assert_eq!(prefer(&h), None);
        h.insert(
            "prefer",
            HeaderValue::from_static("handling=strict; return=minimal"),
        );
        assert_eq!(prefer(&h), Some("return=minimal"));
        h.insert("prefer", HeaderValue::from_static("return=other"));
        assert_eq!(prefer(&h), None);
    }
}

//! The audit layer in front of the mock (outside the SMART guard, so refused requests
//! and token requests are audited too): it serves `AuditEvent` searches and reads from
//! the trail, and records one event for every create, read, vread, update, search and
//! history that passes, after its answer is known. `audit_drop` and `audit_wrong` are
//! decided here (ledger entries name the request), `leak` on search answers.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Code, Entry, Exposure, event, leak, query};
use crate::mock::conn::Peer;
use crate::mock::http::{base, fhir};
use crate::mock::outcome::Problem;
use crate::mock::silent::Kind;
use crate::mock::{Ehr, MAX_PAGE, Shared};
use crate::vocab::ledger::{self as fault, REQUEST_HEADER};

/// The largest token request or answer the layer reads to learn the client.
const TOKEN_LIMIT: usize = 1 << 16;

/// Puts the audit layer in front of `router`.
pub fn wrap(router: Router, ehr: Ehr) -> Router {
    router.layer(middleware::from_fn_with_state(ehr, observe))
}

/// What a request is, as far as the audit trail cares.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET /AuditEvent` (a search) or `GET /AuditEvent/<id>`.
    Audit(Option<String>),
    Token,
    Fhir(Code, String, Option<String>),
    Other,
}

fn route(method: &Method, path: &str) -> Route {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let typed = parts
        .first()
        .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_uppercase()));
    if *method == Method::POST && path == "/auth/token" {
        return Route::Token;
    }
    if !typed {
        return Route::Other;
    }
    let rt = parts[0].to_owned();
    let id = parts.get(1).map(|s| (*s).to_owned());
    if rt == "AuditEvent" && *method == Method::GET && parts.len() <= 2 {
        return Route::Audit(id);
    }
    let code = match (method, parts.as_slice()) {
        (&Method::GET, [_]) => Code::SearchType,
        (&Method::POST, [_, "_search"]) => Code::SearchType,
        (&Method::POST, [_]) => Code::Create,
        (&Method::GET, [_, _]) => Code::Read,
        (&Method::PUT, [_, _]) => Code::Update,
        (&Method::GET, [_, _, "_history"]) => Code::HistoryInstance,
        (&Method::GET, [_, _, "_history", _]) => Code::Vread,
        _ => return Route::Other,
    };
    let id = id.filter(|_| !matches!(code, Code::SearchType | Code::Create));
    Route::Fhir(code, rt, id)
}

async fn observe(State(ehr): State<Ehr>, req: Request, next: Next) -> Response {
    let route = route(req.method(), req.uri().path());
    let shared = &ehr.shared;
    match route {
        Route::Audit(id) => serve(shared, id.as_deref(), req.uri().query(), req.headers()),
        Route::Token if shared.audit.exposure() == Exposure::Absent => next.run(req).await,
        Route::Token => token(shared, req, next).await,
        Route::Fhir(code, rt, id) => interaction(shared, code, rt, id, req, next).await,
        Route::Other => next.run(req).await,
    }
}

/// Answers an AuditEvent search or read from the trail, as the exposure allows.
fn serve(shared: &Shared, id: Option<&str>, q: Option<&str>, headers: &HeaderMap) -> Response {
    let trail = &shared.audit;
    if trail.exposure() == Exposure::Absent {
        let text = "this server does not expose AuditEvent";
        return Problem::new(StatusCode::NOT_FOUND, "not-supported", text).into_response();
    }
    let hidden = trail.exposure() == Exposure::Hidden;
    if let Some(id) = id {
        let found = event::position(id)
            .filter(|_| !hidden)
            .and_then(|at| trail.with(|es| es.get(at).map(|e| event::render(at, e))));
        return match found {
            Some(v) => fhir(StatusCode::OK, Bytes::from(v.to_string())),
            None => Problem::not_found("AuditEvent", id).into_response(),
        };
    }
    let q = q.unwrap_or("");
    let filter = match query::parse(q, shared.page_size, MAX_PAGE) {
        Ok(f) => f,
        Err(e) => return Problem::bad(format!("AuditEvent search: {e}")).into_response(),
    };
    let body = trail.with(|es| {
        let (hits, next) = if hidden {
            (Vec::new(), None)
        } else {
            query::page(es, &filter)
        };
        let events: Vec<(usize, &Entry)> = hits.iter().map(|&i| (i, &es[i])).collect();
        query::searchset(&base(headers), q, &events, next)
    });
    fhir(StatusCode::OK, body)
}

/// Passes a FHIR interaction on, then records its event (and applies the faults).
async fn interaction(
    shared: &Shared,
    code: Code,
    rt: String,
    id: Option<String>,
    req: Request,
    next: Next,
) -> Response {
    let at_ms = chrono::Utc::now().timestamp_millis();
    let query = req.uri().query().map(str::to_owned);
    let request = header_text(req.headers(), REQUEST_HEADER);
    let agent = shared.audit.agent(bearer(req.headers()));
    let address = req.extensions().get::<Peer>().map(|p| p.0.ip());
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    if code == Code::SearchType && status == 200 && shared.faults_on() {
        resp = leak::maybe(shared, &rt, query.as_deref(), request.as_deref(), resp).await;
    }
    let id = id.or_else(|| created_id(&resp, &rt));
    let what = match code {
        Code::SearchType => Some(rt.clone()),
        _ => id.as_ref().map(|id| format!("{rt}/{id}")),
    };
    let patient = patient(shared, code, &rt, id.as_deref(), query.as_deref());
    if let (Code::Create | Code::Update, Some(w), Some(p)) = (code, &what, &patient)
        && status < 300
    {
        shared.audit.wrote(w, p);
    }
    let mut entry = Entry {
        at_ms,
        code,
        action: code.action(),
        outcome: super::outcome(status),
        agent,
        address,
        what: what.map(String::into_boxed_str),
        patient: patient.map(String::into_boxed_str),
        query: query
            .filter(|_| code == Code::SearchType)
            .map(String::into_boxed_str),
    };
    if faulted(shared, &rt, request.as_deref(), &mut entry) {
        return resp; // dropped
    }
    shared.audit.record(entry);
    resp
}

/// Decides `audit_drop` and `audit_wrong` for one event; `true` when it is dropped.
fn faulted(shared: &Shared, rt: &str, request: Option<&str>, entry: &mut Entry) -> bool {
    if !shared.faults_on() {
        return false;
    }
    let elapsed = shared.ledger.elapsed();
    for f in &shared.faults {
        let fires = matches!(f.kind, Kind::AuditDrop | Kind::AuditWrong)
            && f.applies_to(rt)
            && f.decide(shared.seed, elapsed);
        if !fires {
            continue;
        }
        let what = entry.what.as_deref().unwrap_or(rt).to_owned();
        let detail = if f.kind == Kind::AuditDrop {
            format!("no AuditEvent written for {} {what}", entry.code.as_str())
        } else {
            wrong(entry, f.pick(shared.seed, 2))
        };
        shared.ledger.record(fault::Entry {
            fault: f.label.clone(),
            kind: f.name().to_owned(),
            resource_type: Some(rt.to_owned()),
            id: what.split_once('/').map(|(_, id)| id.to_owned()),
            request: request.map(str::to_owned),
            detail,
            ..fault::Entry::default()
        });
        if f.kind == Kind::AuditDrop {
            return true;
        }
    }
    false
}

/// Falsifies an event: its action (`choice` 0, or a search), else its entity.
fn wrong(entry: &mut Entry, choice: usize) -> String {
    let addressed = entry.what.as_deref().filter(|w| w.contains('/'));
    match addressed {
        Some(what) if choice == 1 => {
            let bad = format!("{what}x9");
            let detail = format!("AuditEvent entity {bad} instead of {what}");
            entry.what = Some(bad.into_boxed_str());
            detail
        }
        _ => {
            let bad = match entry.action {
                b'C' => b'U',
                b'U' => b'C',
                b'R' => b'U',
                _ => b'R',
            };
            let detail = format!(
                "AuditEvent action {} instead of {}",
                char::from(bad),
                char::from(entry.action)
            );
            entry.action = bad;
            detail
        }
    }
}

/// The Patient an interaction is about: named by a search, the Patient itself, or the
/// resource's own patient reference as stored.
fn patient(
    shared: &Shared,
    code: Code,
    rt: &str,
    id: Option<&str>,
    q: Option<&str>,
) -> Option<String> {
    if code == Code::SearchType {
        return scoped_patient(rt, q.unwrap_or(""));
    }
    let id = id?;
    if rt == "Patient" {
        return Some(format!("Patient/{id}"));
    }
    let version = shared.store.get(rt, id)?.current()?;
    patient_in(&version.body)
}

/// The Patient a search names (`patient`, `subject`, `beneficiary`; `_id` of a Patient
/// search).
pub fn scoped_patient(rt: &str, query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| {
        let name = k.split(':').next().unwrap_or(&k);
        match name {
            "patient" | "subject" | "beneficiary" => super::patient_ref(&v),
            "_id" if rt == "Patient" => Some(format!("Patient/{v}")),
            _ => None,
        }
    })
}

#[derive(Deserialize)]
struct Refs {
    subject: Option<Ref>,
    patient: Option<Ref>,
    beneficiary: Option<Ref>,
}

#[derive(Deserialize)]
struct Ref {
    reference: Option<String>,
}

/// `Patient/<id>` a stored resource refers to, if any.
pub fn patient_in(body: &[u8]) -> Option<String> {
    let refs: Refs = serde_json::from_slice(body).ok()?;
    [refs.subject, refs.patient, refs.beneficiary]
        .into_iter()
        .flatten()
        .filter_map(|r| r.reference)
        .find_map(|r| {
            r.contains("Patient/")
                .then(|| super::patient_ref(&r))
                .flatten()
        })
}

/// The id in a create's `Location` (`…/Type/id/_history/n`).
fn created_id(resp: &Response, rt: &str) -> Option<String> {
    let location = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    let parts: Vec<&str> = location.split('/').collect();
    let at = parts.iter().rposition(|p| *p == rt)?;
    parts.get(at + 1).map(|s| (*s).to_owned())
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A token request: who asked (from the form or Basic credentials), and, when a token
/// was issued, remembers whom it names.
async fn token(shared: &Shared, req: Request, next: Next) -> Response {
    let at_ms = chrono::Utc::now().timestamp_millis();
    let address = req.extensions().get::<Peer>().map(|p| p.0.ip());
    let (parts, body) = req.into_parts();
    let Ok(form) = axum::body::to_bytes(body, TOKEN_LIMIT).await else {
        return Problem::bad("the token request is too large").into_response();
    };
    let client = client_of(&parts.headers, &form);
    let resp = next.run(Request::from_parts(parts, Body::from(form))).await;
    let (parts, body) = resp.into_parts();
    let Ok(answer) = axum::body::to_bytes(body, TOKEN_LIMIT).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let agent: Arc<str> = Arc::from(client.as_deref().unwrap_or(super::DEFAULT_AGENT));
    if parts.status.is_success() {
        let issued = serde_json::from_slice::<serde_json::Value>(&answer).ok();
        if let Some(t) = issued
            .as_ref()
            .and_then(|v| v.get("access_token")?.as_str())
        {
            shared.audit.issued(t, &agent);
        }
    }
    shared.audit.record(Entry {
        at_ms,
        code: Code::Token,
        action: Code::Token.action(),
        outcome: super::outcome(parts.status.as_u16()),
        agent,
        address,
        what: None,
        patient: None,
        query: None,
    });
    Response::from_parts(parts, Body::from(answer))
}

/// The client a token request names: `client_id`, the `iss` of a `client_assertion`
/// (read, not verified: the token endpoint verifies), or the Basic user name.
fn client_of(headers: &HeaderMap, form: &[u8]) -> Option<String> {
    use base64::Engine;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(form)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(id) = get("client_id") {
        return Some(id);
    }
    if let Some(jwt) = get("client_assertion") {
        let claims = jwt.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        return v.get("iss")?.as_str().map(str::to_owned);
    }
    let basic = header_text(headers, header::AUTHORIZATION.as_str())?;
    let (scheme, creds) = basic.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split(':').next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_their_interaction() {
        let f = |c, rt: &str, id: Option<&str>| Route::Fhir(c, rt.into(), id.map(Into::into));
        assert_eq!(
            route(&Method::GET, "/Patient"),
            f(Code::SearchType, "Patient", None)
        );
        assert_eq!(
            route(&Method::POST, "/Patient"),
            f(Code::Create, "Patient", None)
        );
        assert_eq!(
            route(&Method::GET, "/Patient/1"),
            f(Code::Read, "Patient", Some("1"))
        );
        assert_eq!(
            route(&Method::PUT, "/Patient/1"),
            f(Code::Update, "Patient", Some("1"))
        );
        assert_eq!(
            route(&Method::GET, "/Patient/1/_history"),
            f(Code::HistoryInstance, "Patient", Some("1"))
        );
        assert_eq!(
            route(&Method::GET, "/Patient/1/_history/2"),
            f(Code::Vread, "Patient", Some("1"))
        );
        assert_eq!(route(&Method::GET, "/AuditEvent"), Route::Audit(None));
        assert_eq!(route(&Method::GET, "/metadata"), Route::Other);
        assert_eq!(route(&Method::POST, "/"), Route::Other);
        assert_eq!(route(&Method::POST, "/auth/token"), Route::Token);
    }

    #[test]
    fn the_patient_of_a_search_and_of_a_stored_resource() {
        assert_eq!(
            scoped_patient("Observation", "patient=Patient%2Fp1&_count=20").as_deref(),
            Some("Patient/p1")
        );
        assert_eq!(
            scoped_patient("Patient", "_id=p2").as_deref(),
            Some("Patient/p2")
        );
        assert_eq!(scoped_patient("Patient", "identifier=x%7C1"), None);
        let body = br#"{"resourceType":"Claim","patient":{"reference":"Patient/p3"}}"#;
        assert_eq!(patient_in(body).as_deref(), Some("Patient/p3"));
        assert_eq!(patient_in(br#"{"subject":{"reference":"Group/1"}}"#), None);
    }

    #[test]
    fn a_falsified_event_says_how() {
        let mut e = Entry {
            at_ms: 0,
            code: Code::Read,
            action: b'R',
            outcome: 0,
            agent: Arc::from("a"),
            address: None,
            what: Some("Observation/1".into()),
            patient: None,
            query: None,
        };
        assert_eq!(wrong(&mut e, 0), "AuditEvent action U instead of R");
        assert_eq!(e.action, b'U');
        assert_eq!(
            wrong(&mut e, 1),
            "AuditEvent entity Observation/1x9 instead of Observation/1"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Basic YXBwOnNlY3JldA==".parse().unwrap(),
        );
        assert_eq!(
            client_of(&h, b"grant_type=client_credentials").as_deref(),
            Some("app")
        );
        assert_eq!(client_of(&h, b"client_id=c2").as_deref(), Some("c2"));
    }
}

//! The mock's HTTP face: axum routes for the FHIR REST interactions, headers (`Location`,
//! `ETag`, `Last-Modified`, `Prefer`), OperationOutcomes for every refusal, and the
//! `/__fhirsurge/*` endpoints (ledger, health). Handlers are thin: the decisions live in
//! `write`, `search` and `bundle`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::conn::ConnHandle;
use super::outcome::{Problem, outcome};
use super::silent::is_type_name;
use super::store::Version;
use super::write::{After, Ctx, Written};
use super::{Ehr, MAX_PAGE, emulate, notify, render, search};
use crate::vocab::ledger::REQUEST_HEADER;

const FHIR_JSON: &str = "application/fhir+json";

pub fn router(ehr: Ehr) -> Router {
    let routes = Router::new()
        .route("/metadata", get(metadata))
        .route("/", post(bundle))
        .route("/__fhirsurge/ledger", get(ledger))
        .route("/__fhirsurge/health", get(health))
        .route("/Subscription", post(notify::routes::create))
        .route(
            "/Subscription/{id}",
            get(notify::routes::read).delete(notify::routes::delete),
        )
        .route(
            "/Subscription/{id}/$events",
            get(notify::routes::events).post(notify::routes::events),
        )
        .route(
            "/Subscription/{id}/$status",
            get(notify::routes::status).post(notify::routes::status),
        )
        .route("/{rt}", get(search).post(create))
        .route("/{rt}/{id}", get(read).put(update))
        .route("/{rt}/{id}/_history", get(history))
        .route("/{rt}/{id}/_history/{vid}", get(vread));
    // An emulated EHR profile gates every route (rate limits, unsupported interactions).
    emulate::layer(routes, &ehr)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(ehr)
}

/// What `Prefer: return=…` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Return {
    Representation,
    Minimal,
    Outcome,
}

/// Reads `Prefer`; representation when absent or unknown.
pub fn prefer(headers: &HeaderMap) -> Return {
    let text = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wanted = text
        .split([',', ';'])
        .find_map(|part| part.trim().strip_prefix("return="))
        .map(|v| v.trim().trim_matches('"'));
    match wanted {
        Some("minimal") => Return::Minimal,
        Some("OperationOutcome") => Return::Outcome,
        _ => Return::Representation,
    }
}

/// `http://host/`: the base URL as the client addressed us.
pub fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/")
}

fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(REQUEST_HEADER).and_then(|v| v.to_str().ok())
}

fn known_type(rt: &str) -> Result<(), Problem> {
    if is_type_name(rt) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-supported",
            format!("`{rt}` is not a resource type"),
        ))
    }
}

pub fn parse_body(body: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(body).map_err(|e| Problem::bad(format!("the body is not JSON: {e}")))
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_json()).unwrap_or_default();
        fhir(self.status, Bytes::from(body))
    }
}

pub fn fhir(status: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

/// `ETag` and `Last-Modified` of a version.
fn version_headers(r: &mut Response, v: &Version) {
    let h = r.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{}\"", v.number)) {
        h.insert(header::ETAG, etag);
    }
    if let Ok(m) = HeaderValue::from_str(&v.http_date) {
        h.insert(header::LAST_MODIFIED, m);
    }
}

/// The failure planned after a commit, for both faces of the mock: the connection reset
/// (the answer is then never seen) or a 500 to send instead of the answer.
pub fn after_commit(after: After, conn: Option<&ConnHandle>) -> Option<Response> {
    match after {
        After::Answer => None,
        After::Reset => {
            if let Some(c) = conn {
                c.abort();
            }
            None
        }
        After::Error => Some(
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "internal error while answering",
            )
            .into_response(),
        ),
    }
}

/// The answer to a write, as `Prefer` asks; or, after a commit, the failure planned.
pub fn written(w: &Written, base: &str, ret: Return, conn: Option<&ConnHandle>) -> Response {
    if let Some(failed) = after_commit(w.after, conn) {
        return failed;
    }
    let status = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let v = &w.version;
    let mut r = match ret {
        Return::Representation => fhir(status, v.body.clone()),
        Return::Minimal => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = status;
            r
        }
        Return::Outcome => {
            let verb = if w.created { "created" } else { "updated" };
            let text = format!("{verb} {}/{} version {}", w.resource_type, w.id, v.number);
            let body = serde_json::to_vec(&outcome("information", "informational", &text))
                .unwrap_or_default();
            fhir(status, Bytes::from(body))
        }
    };
    let location = format!("{base}{}/{}/_history/{}", w.resource_type, w.id, v.number);
    if let Ok(l) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    version_headers(&mut r, v);
    r
}

fn version(v: &Version) -> Response {
    let mut r = fhir(StatusCode::OK, v.body.clone());
    version_headers(&mut r, v);
    r
}

async fn metadata(State(ehr): State<Ehr>) -> Response {
    fhir(StatusCode::OK, ehr.shared.capability.clone())
}

async fn create(
    State(ehr): State<Ehr>,
    Path(rt): Path<String>,
    conn: Option<Extension<ConnHandle>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let (Some(emu), Ok(())) = (&ehr.shared.emulation, known_type(&rt)) {
        return emulate::create(&ehr.shared, emu, &rt, conn.as_deref(), &headers, &body);
    }
    let result = known_type(&rt).and_then(|()| {
        let resource = parse_body(&body)?;
        let ctx = Ctx {
            request: request_id(&headers),
            faults: true,
            can_reset: conn.is_some(),
            hold: None,
        };
        match headers.get("if-none-exist").map(|v| v.to_str()) {
            Some(Ok(q)) => ehr.shared.conditional_create(&rt, resource, q, ctx),
            Some(Err(_)) => Err(Problem::bad("If-None-Exist is not text")),
            None => ehr.shared.create(&rt, resource, ctx),
        }
    });
    match result {
        Ok(w) => written(&w, &base(&headers), prefer(&headers), conn.as_deref()),
        Err(p) => p.into_response(),
    }
}

async fn update(
    State(ehr): State<Ehr>,
    Path((rt, id)): Path<(String, String)>,
    conn: Option<Extension<ConnHandle>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let (Some(emu), Ok(())) = (&ehr.shared.emulation, known_type(&rt)) {
        let conn = conn.as_deref();
        return emulate::update(&ehr.shared, emu, (&rt, &id), conn, &headers, &body);
    }
    let result = known_type(&rt).and_then(|()| {
        let resource = parse_body(&body)?;
        let ctx = Ctx {
            request: request_id(&headers),
            faults: true,
            can_reset: conn.is_some(),
            hold: None,
        };
        let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
        ehr.shared.update(&rt, &id, resource, if_match, ctx)
    });
    match result {
        Ok(w) => written(&w, &base(&headers), prefer(&headers), conn.as_deref()),
        Err(p) => p.into_response(),
    }
}

async fn read(
    State(ehr): State<Ehr>,
    Path((rt, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let (Some(emu), Ok(())) = (&ehr.shared.emulation, known_type(&rt)) {
        return emulate::read(&ehr.shared, emu, &rt, &id, &headers);
    }
    match known_type(&rt).and_then(|()| ehr.shared.read(&rt, &id, request_id(&headers))) {
        Ok(v) => version(&v),
        Err(p) => p.into_response(),
    }
}

async fn vread(
    State(ehr): State<Ehr>,
    Path((rt, id, vid)): Path<(String, String, String)>,
) -> Response {
    match known_type(&rt).and_then(|()| ehr.shared.vread(&rt, &id, &vid)) {
        Ok(v) => version(&v),
        Err(p) => p.into_response(),
    }
}

async fn history(
    State(ehr): State<Ehr>,
    Path((rt, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match known_type(&rt).and_then(|()| ehr.shared.history(&rt, &id)) {
        Ok(versions) => fhir(
            StatusCode::OK,
            render::history(&base(&headers), &rt, &id, &versions),
        ),
        Err(p) => p.into_response(),
    }
}

async fn search(
    State(ehr): State<Ehr>,
    Path(rt): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let (Some(emu), Ok(())) = (&ehr.shared.emulation, known_type(&rt)) {
        return emulate::search(&ehr.shared, emu, &rt, query.as_deref(), &headers);
    }
    let result = known_type(&rt).and_then(|()| {
        let s = &ehr.shared;
        let q = search::parse(&rt, query.as_deref().unwrap_or(""), s.page_size, MAX_PAGE)
            .map_err(|e| Problem::bad(e.to_string()))?;
        let page = search::run(&s.store, &s.index, &rt, &q, |state| {
            s.visible(state.hidden_until)
        });
        Ok(render::searchset(&base(&headers), &rt, &q, &page))
    });
    match result {
        Ok(body) => fhir(StatusCode::OK, body),
        Err(p) => p.into_response(),
    }
}

async fn bundle(State(ehr): State<Ehr>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = Ctx {
        request: request_id(&headers),
        faults: true,
        can_reset: false,
        hold: None,
    };
    let result = parse_body(&body)
        .and_then(|b| ehr.shared.bundle(b, &base(&headers), prefer(&headers), ctx));
    match result {
        Ok(v) => fhir(
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
        ),
        Err(p) => p.into_response(),
    }
}

async fn ledger(State(ehr): State<Ehr>) -> Response {
    let body = serde_json::to_vec(&ehr.ledger().entries()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn health() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        "this server does not support that method here",
    )
    .into_response()
}

async fn not_found() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_header_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(prefer(&h), Return::Representation);
        h.insert("prefer", HeaderValue::from_static("return=minimal"));
        assert_eq!(prefer(&h), Return::Minimal);
        h.insert(
            "prefer",
            HeaderValue::from_static("handling=strict; return=OperationOutcome"),
        );
        assert_eq!(prefer(&h), Return::Outcome);
        h.insert(
            "prefer",
            HeaderValue::from_static("return=\"representation\""),
        );
        assert_eq!(prefer(&h), Return::Representation);
    }
}

//! The guard in front of the FHIR API: every request except `/metadata`,
//! `/.well-known/*`, `/auth/*` and `/__fhirsurge/*` needs `Authorization: Bearer` with a
//! live token (else 401 with `WWW-Authenticate: Bearer`), and the token's scopes must
//! allow the interaction (else 403 with an OperationOutcome): read, vread and history
//! need `r`, search `s`, create `c`, update and patch `u`, delete `d`. A Bundle posted
//! to the base needs what each of its entries needs; one entry outside the scopes
//! refuses the whole Bundle. Which permission a request needs is a pure function. A
//! fired `scope_bypass` fault lets an out-of-scope request through (`bypass`).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::scope::{Perms, Scopes};
use super::token;
use super::{Authority, bypass};
use crate::mock::Ehr;
use crate::mock::http::base;
use crate::mock::outcome::Problem;
use crate::profile::{AuthKind, Profile};

/// The largest Bundle body the guard reads to learn what it needs.
const BUNDLE_LIMIT: usize = 64 << 20;

/// Adds the SMART endpoints to the mock's routes and puts the guard in front of all.
pub fn wrap(router: Router, authority: Authority, ehr: Ehr) -> Router {
    let endpoints = Router::new()
        .route("/.well-known/smart-configuration", get(token::discovery))
        .route(&format!("/{}", token::TOKEN_PATH), post(token::token))
        .with_state(authority.clone());
    router
        .merge(endpoints)
        .layer(middleware::from_fn_with_state((authority, ehr), guard))
}

/// The SMART configuration of a profile with SMART, on a mock without an authorization
/// server: what the EHR's front door looks like (its client authentication methods),
/// with a token endpoint that says no token is issued. Nothing is guarded.
pub fn describe(router: Router, profile: &Profile) -> Router {
    let AuthKind::SmartBackend(sb) = &profile.auth.kind else {
        return router;
    };
    let methods = super::methods_for(Some(profile), false);
    let algs = sb.algs.clone();
    let discovery = move |headers: HeaderMap| {
        let scopes = Scopes::all().supported();
        let doc = token::document(&base(&headers), &methods, &algs, scopes);
        async move { axum::Json(doc).into_response() }
    };
    let endpoints = Router::new()
        .route("/.well-known/smart-configuration", get(discovery))
        .route(&format!("/{}", token::TOKEN_PATH), post(token::closed));
    router.merge(endpoints)
}

/// What a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: an open endpoint.
    Open,
    /// A live token and nothing more (no resource type involved).
    Token,
    /// A live token allowing this on this resource type.
    Perm(String, Perms),
    /// A Bundle: what its entries need is read from the body.
    Bundle,
}

/// What `method path` needs.
pub fn need(method: &Method, path: &str) -> Need {
    let open = ["/metadata", "/.well-known/", "/auth/", "/__fhirsurge/"];
    if path == "/metadata" || open.iter().any(|p| path.starts_with(p)) {
        return Need::Open;
    }
    if path == "/" || path.is_empty() {
        return if *method == Method::POST {
            Need::Bundle
        } else {
            Need::Token
        };
    }
    interaction(method.as_str(), path.trim_start_matches('/'))
}

/// What `method` on a relative URL (`Type`, `Type/id`, `Type?query`, …) needs.
fn interaction(method: &str, url: &str) -> Need {
    let path = url.split('?').next().unwrap_or_default();
    let has_query = url.contains('?');
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some(rt) = parts
        .first()
        .filter(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))
    else {
        return Need::Token;
    };
    let perm = match (method, parts.len()) {
        ("GET" | "HEAD", 1) => Perms::SEARCH,
        ("POST", 2) if parts[1] == "_search" => Perms::SEARCH,
        ("GET" | "HEAD", _) => Perms::READ,
        ("POST", 1) => Perms::CREATE,
        ("PUT" | "PATCH", 2) => Perms::UPDATE,
        ("PUT" | "PATCH", 1) if has_query => Perms::UPDATE,
        ("DELETE", _) => Perms::DELETE,
        _ => return Need::Token,
    };
    Need::Perm((*rt).to_owned(), perm)
}

/// What each entry of a Bundle needs; a body that is not a Bundle needs nothing more
/// (the handler refuses it).
pub fn bundle_needs(bundle: &Value) -> Vec<(String, Perms)> {
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    entries
        .iter()
        .filter_map(|e| {
            let req = e.get("request")?;
            let method = req.get("method")?.as_str()?;
            let url = req.get("url")?.as_str()?;
            let relative = url::Url::parse(url)
                .ok()
                .and_then(|u| {
                    let p = u.path().to_owned();
                    let q = u.query().map(|q| format!("?{q}")).unwrap_or_default();
                    resource_part(&p).map(|rest| format!("{rest}{q}"))
                })
                .unwrap_or_else(|| url.to_owned());
            match interaction(method, &relative) {
                Need::Perm(rt, p) => Some((rt, p)),
                _ => None,
            }
        })
        .collect()
}

/// The part of an absolute URL's path from its resource type on.
fn resource_part(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    let at = parts
        .iter()
        .position(|p| p.starts_with(|c: char| c.is_ascii_uppercase()))?;
    Some(parts[at..].join("/"))
}

async fn guard(State((a, ehr)): State<(Authority, Ehr)>, req: Request, next: Next) -> Response {
    let need = need(req.method(), req.uri().path());
    if need == Need::Open {
        return next.run(req).await;
    }
    let grant = match bearer(req.headers())
        .ok_or("no bearer token")
        .and_then(|t| a.live(t))
    {
        Ok(g) => g,
        Err(why) => return unauthorized(why),
    };
    let (req, needs) = match need {
        Need::Perm(rt, p) => (req, vec![(rt, p)]),
        Need::Bundle => match read_bundle(req).await {
            Ok(read) => read,
            Err(r) => return r,
        },
        Need::Open | Need::Token => (req, Vec::new()),
    };
    if let Some((rt, p)) = needs.iter().find(|(rt, p)| !grant.allows(rt, *p)) {
        let text = format!(
            "the access token's scopes ({}) do not allow {} on {rt}",
            grant.render(),
            p.verb()
        );
        if let Some(f) = bypass::fires(&ehr, rt) {
            let rt = rt.clone();
            return bypass::through(&ehr, f, &rt, text, req, next).await;
        }
        return Problem::new(StatusCode::FORBIDDEN, "forbidden", text).into_response();
    }
    next.run(req).await
}

/// Reads a posted Bundle to learn what it needs, and puts the body back.
async fn read_bundle(req: Request) -> Result<(Request, Vec<(String, Perms)>), Response> {
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, BUNDLE_LIMIT)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-costly",
                "the Bundle is too large",
            )
            .into_response()
        })?;
    let needs = serde_json::from_slice::<Value>(&bytes)
        .map(|b| bundle_needs(&b))
        .unwrap_or_default();
    Ok((Request::from_parts(parts, Body::from(bytes)), needs))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthorized(why: &'static str) -> Response {
    let challenge = if why == "no bearer token" {
        r#"Bearer realm="fhirsurge-mock""#.to_owned()
    } else {
        format!(
            r#"Bearer realm="fhirsurge-mock", error="invalid_token", error_description="{why}""#
        )
    };
    let mut r = Problem::new(StatusCode::UNAUTHORIZED, "login", why).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(rt: &str, p: Perms) -> Need {
        Need::Perm(rt.into(), p)
    }

    #[test]
    fn each_interaction_needs_its_permission() {
        let cases = [
            (Method::GET, "/metadata", Need::Open),
            (Method::GET, "/.well-known/smart-configuration", Need::Open),
            (Method::POST, "/auth/token", Need::Open),
            (Method::GET, "/__fhirsurge/ledger", Need::Open),
            (Method::GET, "/Patient", perm("Patient", Perms::SEARCH)),
            (
                Method::POST,
                "/Patient/_search",
                perm("Patient", Perms::SEARCH),
            ),
            (Method::GET, "/Patient/1", perm("Patient", Perms::READ)),
            (
                Method::GET,
                "/Patient/1/_history/2",
                perm("Patient", Perms::READ),
            ),
            (
                Method::POST,
                "/Observation",
                perm("Observation", Perms::CREATE),
            ),
            (
                Method::PUT,
                "/Encounter/9",
                perm("Encounter", Perms::UPDATE),
            ),
            (Method::DELETE, "/Claim/9", perm("Claim", Perms::DELETE)),
            (Method::POST, "/", Need::Bundle),
            (Method::GET, "/", Need::Token),
            (Method::GET, "/nonsense", Need::Token),
        ];
        for (m, path, want) in cases {
            assert_eq!(need(&m, path), want, "{m} {path}");
        }
    }

    #[test]
    fn a_bundle_needs_what_its_entries_need() {
        let b = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "PUT", "url": "Encounter?identifier=x|1"}},
            {"request": {"method": "GET", "url": "http://h/fhir/Observation/5"}},
            {"request": {"method": "GET", "url": "Observation?code=1"}},
        ]});
        assert_eq!(
            bundle_needs(&b),
            [
                ("Patient".to_owned(), Perms::CREATE),
                ("Encounter".to_owned(), Perms::UPDATE),
                ("Observation".to_owned(), Perms::READ),
                ("Observation".to_owned(), Perms::SEARCH),
            ]
        );
        assert!(bundle_needs(&serde_json::json!({"x": 1})).is_empty());
    }

    #[test]
    fn only_a_bearer_scheme_gives_a_token() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer tok1"),
        );
        assert_eq!(bearer(&h), Some("tok1"));
    }
}

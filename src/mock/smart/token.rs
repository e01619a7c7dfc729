//! The two SMART endpoints: the discovery document and the client-credentials token
//! endpoint. The token endpoint checks, in order: `grant_type`, `client_assertion_type`,
//! the assertion's header, its signature with the trusted key, its claims, its `jti`
//! (replay), then the scopes; the first failure is the answer (400, OAuth error body,
//! `Cache-Control: no-store`). Nothing secret is logged.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::assertion::{self, Expect, Rejection};
use super::scope::{self, Parsed, Scopes};
use super::{Authority, millis};
use crate::mock::http::base;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Where the token endpoint is, under the base.
pub const TOKEN_PATH: &str = "auth/token";

/// `GET /.well-known/smart-configuration`.
pub async fn discovery(State(a): State<Authority>, headers: HeaderMap) -> Response {
    let doc = json!({
        "token_endpoint": format!("{}{TOKEN_PATH}", base(&headers)),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": a.inner.allowed.supported(),
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    });
    json_response(StatusCode::OK, &doc)
}

/// `POST /auth/token` (form-encoded).
pub async fn token(State(a): State<Authority>, headers: HeaderMap, body: Bytes) -> Response {
    let token_url = format!("{}{TOKEN_PATH}", base(&headers));
    match grant(&a, &token_url, &body).await {
        Ok((token, lifetime, scope)) => {
            let doc = json!({
                "access_token": token,
                "token_type": "bearer",
                "expires_in": lifetime.as_secs(),
                "scope": scope,
            });
            json_response(StatusCode::OK, &doc)
        }
        Err(r) => {
            tracing::debug!(
                error = r.error,
                "mock SMART: token refused: {}",
                r.description
            );
            let doc = json!({"error": r.error, "error_description": r.description});
            json_response(StatusCode::BAD_REQUEST, &doc)
        }
    }
}

/// The whole decision for one token request.
async fn grant(
    a: &Authority,
    token_url: &str,
    body: &[u8],
) -> Result<(String, std::time::Duration, String), Rejection> {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(Rejection::new(
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            ));
        }
        None => return Err(Rejection::new("invalid_request", "grant_type is required")),
    }
    if field("client_assertion_type") != Some(ASSERTION_TYPE) {
        return Err(Rejection::client(format!(
            "client_assertion_type must be {ASSERTION_TYPE}"
        )));
    }
    let jwt = field("client_assertion")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| Rejection::client("client_assertion is required"))?;
    a.keep_assertion(jwt);
    let head = assertion::header(jwt)?;
    let key = a.inner.trust.key(&head.kid, head.jku.as_deref()).await?;
    let claims = assertion::verify(jwt, &head, &key)?;
    let expect = Expect {
        token_url,
        now: a.now().as_secs(),
        clients: a.inner.clients.as_ref(),
    };
    let verified = assertion::check(claims, expect)?;
    let granted = granted(field("scope"), &a.inner.allowed)?;
    if !a.first_use(&verified.client_id, &verified.jti, verified.exp) {
        return Err(Rejection::client(
            "client_assertion: this `jti` was already used (replay)",
        ));
    }
    let scope = granted.render();
    let (token, lifetime) = a.issue(granted);
    tracing::debug!(
        "mock SMART: token issued for {scope}, expires at {} ms",
        millis(a.now() + lifetime)
    );
    Ok((token, lifetime, scope))
}

/// The grant for a `scope` parameter: everything allowed when there is none.
fn granted(requested: Option<&str>, allowed: &Scopes) -> Result<Scopes, Rejection> {
    let Some(text) = requested.filter(|t| !t.trim().is_empty()) else {
        return Ok(allowed.clone());
    };
    let mut asked = Scopes::default();
    for word in text.split_whitespace() {
        match scope::parse(word) {
            Parsed::System(rt, perms) => asked.add(&rt, perms),
            Parsed::Ignored => {}
            Parsed::Malformed => {
                return Err(Rejection::new(
                    "invalid_scope",
                    format!("`{}` is not a valid system scope", printable(word)),
                ));
            }
        }
    }
    let granted = asked.intersect(allowed);
    if granted.is_empty() {
        return Err(Rejection::new(
            "invalid_scope",
            "none of the requested scopes can be granted to this client",
        ));
    }
    Ok(granted)
}

fn printable(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_graphic)
        .take(80)
        .collect()
}

fn json_response(status: StatusCode, doc: &Value) -> Response {
    let body = serde_json::to_vec(doc).unwrap_or_default();
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_scope_grants_all_allowed_and_nothing_grantable_is_invalid_scope() {
        let allowed = Scopes::parse_list(["system/Patient.rs", "system/Claim.c"]).unwrap();
        assert_eq!(granted(None, &allowed).unwrap(), allowed);
        assert_eq!(granted(Some("  "), &allowed).unwrap(), allowed);
        let g = granted(Some("launch system/*.read patient/Patient.rs"), &allowed).unwrap();
        assert_eq!(g.render(), "system/Patient.rs");
        let r = granted(Some("system/Observation.rs"), &allowed).unwrap_err();
        assert_eq!(r.error, "invalid_scope");
        let r = granted(Some("system/Patient.bogus"), &allowed).unwrap_err();
        assert!(r.description.contains("system/Patient.bogus"), "{r:?}");
    }
}

//! The two SMART endpoints: the discovery document (listing the client authentication
//! methods the token endpoint accepts) and the client-credentials token endpoint. The
//! token endpoint checks, in order: `grant_type`, which client authentication the
//! request presents (`secret::presented`) and whether this server accepts that method,
//! the credential (an assertion's header, signature and claims, or the client secret),
//! the scopes, then an assertion's `jti` (replay); the first failure is the answer (an
//! RFC 6749 JSON error body, `Cache-Control: no-store`): 401 with `WWW-Authenticate:
//! Basic` when the client authenticated with HTTP Basic (RFC 6749 §5.2), 400 otherwise.
//! Nothing secret is logged.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::assertion::{self, Claims, Expect, Rejection};
use super::scope::{self, Parsed, Scopes};
use super::secret::{self, Presented};
use super::{Authority, millis};
use crate::mock::http::base;
use crate::profile::{ClientAuth, SigningAlg};
/// Where the token endpoint is, under the base.
pub const TOKEN_PATH: &str = "auth/token";

/// `GET /.well-known/smart-configuration`.
pub async fn discovery(State(a): State<Authority>, headers: HeaderMap) -> Response {
    let doc = document(
        &base(&headers),
        &a.inner.methods,
        &[],
        a.inner.allowed.supported(),
    );
    json_response(StatusCode::OK, &doc)
}

/// The SMART configuration of a token endpoint at `base` that takes `methods`, signed
/// with `algs` (none given: both SMART algorithms; only with `private_key_jwt`), and
/// grants from `scopes`.
pub fn document(
    base: &str,
    methods: &[ClientAuth],
    algs: &[SigningAlg],
    scopes: Vec<String>,
) -> Value {
    let names: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
    let mut algs: Vec<&str> = if !methods.contains(&ClientAuth::PrivateKeyJwt) {
        Vec::new()
    } else if algs.is_empty() {
        vec!["RS384", "ES384"]
    } else {
        algs.iter()
            .map(|a| match a {
                SigningAlg::RS384 => "RS384",
                SigningAlg::ES384 => "ES384",
            })
            .collect()
    };
    let mut capabilities = vec!["permission-v1", "permission-v2"];
    if methods.contains(&ClientAuth::ClientSecretJwt) {
        algs.extend(["HS256", "HS384"]);
    }
    if methods.contains(&ClientAuth::PrivateKeyJwt) {
        capabilities.push("client-confidential-asymmetric");
    }
    if methods.iter().any(|m| *m != ClientAuth::PrivateKeyJwt) {
        capabilities.push("client-confidential-symmetric");
    }
    json!({
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "token_endpoint_auth_methods_supported": names,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": scopes,
        "capabilities": capabilities,
    })
}

/// `POST /auth/token` of a mock started without SMART: no token is issued (its FHIR API
/// is open), and the answer says so.
pub async fn closed() -> Response {
    let doc = json!({
        "error": "unauthorized_client",
        "error_description": "this mock EHR runs without SMART (serve-mock --auth smart turns it on): its FHIR API needs no token and none is issued",
    });
    json_response(StatusCode::BAD_REQUEST, &doc)
}

/// `POST /auth/token` (form-encoded).
pub async fn token(State(a): State<Authority>, headers: HeaderMap, body: Bytes) -> Response {
    let token_url = format!("{}{TOKEN_PATH}", base(&headers));
    a.keep_request();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    match grant(&a, &token_url, authorization, &body).await {
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
            let basic = authorization
                .is_some_and(|v| v.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("basic ")));
            if basic && r.error == "invalid_client" {
                let mut resp = json_response(StatusCode::UNAUTHORIZED, &doc);
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"fhirsurge-mock\""),
                );
                return resp;
            }
            json_response(StatusCode::BAD_REQUEST, &doc)
        }
    }
}

/// The whole decision for one token request.
async fn grant(
    a: &Authority,
    token_url: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(String, std::time::Duration, String), Rejection> {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match field("grant_type").as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(Rejection::new(
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            ));
        }
        None => return Err(Rejection::new("invalid_request", "grant_type is required")),
    }
    let presented = secret::presented(authorization, field)?;
    let method = presented.method();
    if !a.inner.methods.contains(&method) {
        let accepted: Vec<&str> = a.inner.methods.iter().map(|m| m.as_str()).collect();
        return Err(Rejection::client(format!(
            "client authentication by {} is not accepted; this server takes {}",
            method.as_str(),
            accepted.join(", ")
        )));
    }
    let replay = authenticate(a, token_url, presented).await?;
    let granted = granted(field("scope").as_deref(), &a.inner.allowed)?;
    if let Some(v) = replay
        && !a.first_use(&v.client_id, &v.jti, v.exp)
    {
        return Err(Rejection::client(
            "client_assertion: this `jti` was already used (replay)",
        ));
    }
    let scope = granted.render();
    let (token, lifetime) = a.issue(granted, method);
    tracing::debug!(
        "mock SMART: token issued ({}) for {scope}, expires at {} ms",
        method.as_str(),
        millis(a.now() + lifetime)
    );
    Ok((token, lifetime, scope))
}

/// Checks the presented credential; an assertion's `(client, jti, exp)` is returned
/// for the replay check.
async fn authenticate(
    a: &Authority,
    token_url: &str,
    presented: Presented,
) -> Result<Option<assertion::Verified>, Rejection> {
    let registered = a.inner.secret.as_deref();
    let claims: Claims = match presented {
        Presented::Secret {
            client_id, secret, ..
        } => {
            secret::check_secret(&client_id, &secret, registered, a.inner.clients.as_ref())?;
            return Ok(None);
        }
        Presented::Assertion { method, jwt } => {
            a.keep_assertion(&jwt);
            if method == ClientAuth::ClientSecretJwt {
                secret::verify_hmac(&jwt, registered)?
            } else {
                let head = assertion::header(&jwt)?;
                let key = a.inner.trust.key(&head.kid, head.jku.as_deref()).await?;
                assertion::verify(&jwt, &head, &key)?
            }
        }
    };
    let expect = Expect {
        token_url,
        now: a.now().as_secs(),
        clients: a.inner.clients.as_ref(),
    };
    assertion::check(claims, expect).map(Some)
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

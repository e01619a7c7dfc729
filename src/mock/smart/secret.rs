//! How a client presents itself at the mock's token endpoint, and the checks of the
//! client-secret methods: `client_secret_basic` (an `Authorization: Basic` header whose
//! id and secret are form-urlencoded, RFC 6749 §2.3.1), `client_secret_post` (`client_id`
//! and `client_secret` in the form) and `client_secret_jwt` (an HS256/HS384 assertion
//! signed with the secret, RFC 7523). Which method a request uses is a pure function of
//! its header and form; two methods in one request is `invalid_request`, none is
//! `invalid_client`. A wrong secret and an unknown client get the same answer, and no
//! description repeats the secret or the client id. Pure: no I/O.

use std::collections::HashSet;
use std::str;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::assertion::{Claims, Rejection};
use crate::profile::ClientAuth;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the request presents to authenticate the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presented {
    /// `client_secret_basic` or `client_secret_post`.
    Secret {
        method: ClientAuth,
        client_id: String,
        secret: String,
    },
    /// `private_key_jwt` or `client_secret_jwt` (by the JWT's `alg`).
    Assertion { method: ClientAuth, jwt: String },
}

impl Presented {
    pub fn method(&self) -> ClientAuth {
        match self {
            Presented::Secret { method, .. } | Presented::Assertion { method, .. } => *method,
        }
    }
}

/// Reads the client authentication of a token request: the `Authorization` header
/// value (if any) and the form fields.
pub fn presented(
    authorization: Option<&str>,
    field: impl Fn(&str) -> Option<String>,
) -> Result<Presented, Rejection> {
    let mut found = Vec::new();
    if let Some(value) = authorization {
        found.push(basic(value)?);
    }
    if let Some(kind) = field("client_assertion_type") {
        if kind != ASSERTION_TYPE {
            return Err(Rejection::client(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        let jwt = field("client_assertion")
            .filter(|j| !j.is_empty())
            .ok_or_else(|| Rejection::client("client_assertion is required"))?;
        let method = match jsonwebtoken::decode_header(&jwt).map(|h| h.alg) {
            Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => {
                ClientAuth::ClientSecretJwt
            }
            _ => ClientAuth::PrivateKeyJwt,
        };
        found.push(Presented::Assertion { method, jwt });
    }
    if let Some(secret) = field("client_secret") {
        let client_id = field("client_id").unwrap_or_default();
        found.push(Presented::Secret {
            method: ClientAuth::ClientSecretPost,
            client_id,
            secret,
        });
    }
    match found.len() {
        0 => Err(Rejection::client(
            "no client authentication: give a client_assertion, client_secret or an \
             Authorization: Basic header",
        )),
        1 => Ok(found.remove(0)),
        _ => Err(Rejection::new(
            "invalid_request",
            "more than one client authentication method in one request",
        )),
    }
}

/// Reads `Basic base64(id:secret)`.
fn basic(value: &str) -> Result<Presented, Rejection> {
    use base64::Engine;
    let bad = || Rejection::client("the Authorization header is not HTTP Basic client credentials");
    let (scheme, rest) = value.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| bad())?;
    let text = str::from_utf8(&raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Presented::Secret {
        method: ClientAuth::ClientSecretBasic,
        client_id: decode(id),
        secret: decode(secret),
    })
}

/// Checks a presented id and secret against the registration.
pub fn check_secret(
    client_id: &str,
    given: &str,
    registered: Option<&str>,
    clients: Option<&HashSet<String>>,
) -> Result<(), Rejection> {
    let known = !client_id.is_empty() && clients.is_none_or(|c| c.contains(client_id));
    let matches = registered.is_some_and(|r| same(r.as_bytes(), given.as_bytes()));
    if known && matches {
        Ok(())
    } else {
        Err(Rejection::client("client authentication failed"))
    }
}

/// Verifies a `client_secret_jwt` assertion's HMAC with the secret (HS256 or HS384).
pub fn verify_hmac(jwt: &str, registered: Option<&str>) -> Result<Claims, Rejection> {
    let alg = match jsonwebtoken::decode_header(jwt).map(|h| h.alg) {
        Ok(alg @ (Algorithm::HS256 | Algorithm::HS384)) => alg,
        _ => {
            return Err(Rejection::client(
                "client_assertion: a client_secret_jwt assertion is signed HS256 or HS384",
            ));
        }
    };
    let secret = registered.ok_or_else(|| Rejection::client("client authentication failed"))?;
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.leeway = 0;
    v.required_spec_claims = HashSet::new();
    let key = DecodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::decode::<Claims>(jwt, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => Rejection::client("client authentication failed"),
            _ => Rejection::client("client_assertion cannot be verified"),
        })
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn each_method_is_recognised_and_two_at_once_are_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode("my+client:s%3Acr");
        let basic = presented(Some(&format!("Basic {b64}")), form(&[])).unwrap();
        assert_eq!(
            basic,
            Presented::Secret {
                method: ClientAuth::ClientSecretBasic,
                client_id: "my client".into(),
                secret: "s:cr".into(),
            }
        );
        let post = presented(None, form(&[("client_id", "c"), ("client_secret", "s")]));
        assert_eq!(post.unwrap().method(), ClientAuth::ClientSecretPost);
        let both = presented(
            Some(&format!("Basic {b64}")),
            form(&[("client_secret", "s")]),
        );
        assert_eq!(both.unwrap_err().error, "invalid_request");
        let none = presented(None, form(&[("grant_type", "client_credentials")]));
        assert_eq!(none.unwrap_err().error, "invalid_client");
        let bearer = presented(Some("Bearer abc"), form(&[]));
        assert_eq!(bearer.unwrap_err().error, "invalid_client");
    }

    #[test]
    fn a_wrong_secret_and_an_unknown_client_look_the_same() {
        let clients: HashSet<String> = ["c1".to_owned()].into();
        assert!(check_secret("c1", "s3", Some("s3"), Some(&clients)).is_ok());
        let wrong = check_secret("c1", "s4", Some("s3"), Some(&clients)).unwrap_err();
        let unknown = check_secret("c2", "s3", Some("s3"), Some(&clients)).unwrap_err();
        assert_eq!(wrong, unknown);
        assert!(!wrong.description.contains("s3") && !wrong.description.contains("c2"));
        assert!(
            check_secret("c1", "s3", None, None).is_err(),
            "no secret registered"
        );
        assert!(
            check_secret("", "s3", Some("s3"), None).is_err(),
            "no client id"
        );
    }

    #[test]
    fn an_hmac_assertion_verifies_only_with_the_secret() {
        let claims = serde_json::json!({"iss": "c1", "sub": "c1", "jti": "j"});
        let header = jsonwebtoken::Header::new(Algorithm::HS384);
        let key = jsonwebtoken::EncodingKey::from_secret(b"s3cret");
        let jwt = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        assert_eq!(
            verify_hmac(&jwt, Some("s3cret")).unwrap().iss.as_deref(),
            Some("c1")
        );
        let r = verify_hmac(&jwt, Some("other")).unwrap_err();
        assert_eq!(r.description, "client authentication failed");
        let m = presented(
            None,
            form(&[
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &jwt),
            ]),
        );
        assert_eq!(m.unwrap().method(), ClientAuth::ClientSecretJwt);
    }
}

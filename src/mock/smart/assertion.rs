//! Checking a `private_key_jwt` client assertion (SMART `client-confidential-asymmetric`):
//! the header (`alg` RS384 or ES384 only, `kid` required, optional `jku`), the signature
//! against one trusted JWK of the matching type, and the claims: `iss` = `sub` = a
//! registered client, `aud` = the token endpoint URL, `exp` in the future and at most
//! five minutes ahead, `iat` not in the future, a `jti`. Times allow [`SKEW`] either
//! way. Every refusal is a [`Rejection`] with fixed wording: no description repeats the
//! assertion or the client id. Pure: the caller finds the key and keeps the replay list.

use std::collections::HashSet;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// Clock difference tolerated between the client and the mock.
pub const SKEW_S: u64 = 10;
/// How far ahead `exp` may be (SMART: five minutes).
pub const MAX_AHEAD_S: u64 = 300;

/// An OAuth error answer: `error` and `error_description`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub error: &'static str,
    pub description: String,
}

impl Rejection {
    pub fn new(error: &'static str, description: impl Into<String>) -> Rejection {
        Rejection {
            error,
            description: description.into(),
        }
    }

    pub fn client(description: impl Into<String>) -> Rejection {
        Rejection::new("invalid_client", description)
    }
}

/// What the header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: String,
    pub jku: Option<String>,
}

/// Reads the header; refuses any algorithm but RS384 and ES384, and a missing `kid`.
pub fn header(jwt: &str) -> Result<Header, Rejection> {
    let h = jsonwebtoken::decode_header(jwt).map_err(|e| match e.kind() {
        ErrorKind::Json(_) | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => Rejection::client(
            "client_assertion: the header is not a JWT header with an `alg` this server knows \
             (use RS384 or ES384)",
        ),
        _ => Rejection::client("client_assertion is not a JWT"),
    })?;
    if !matches!(h.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err(Rejection::client(format!(
            "client_assertion: alg {:?} is not accepted; use RS384 or ES384",
            h.alg
        )));
    }
    let kid = h
        .kid
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Rejection::client("client_assertion: the header has no `kid`"))?;
    Ok(Header {
        alg: h.alg,
        kid,
        jku: h.jku,
    })
}

/// The claims as sent; checked by [`check`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<Value>,
    #[serde(default)]
    pub exp: Option<f64>,
    #[serde(default)]
    pub iat: Option<f64>,
    #[serde(default)]
    pub jti: Option<String>,
}

/// Verifies the signature with `jwk`, which must be a key for `header.alg`.
pub fn verify(jwt: &str, header: &Header, jwk: &Jwk) -> Result<Claims, Rejection> {
    let kid = &header.kid;
    let fits = match (&jwk.algorithm, header.alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS384) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        _ => false,
    };
    let declared = jwk.common.key_algorithm.as_ref().map(|a| format!("{a:?}"));
    if !fits || declared.is_some_and(|a| a != format!("{:?}", header.alg)) {
        return Err(Rejection::client(format!(
            "client_assertion: key `{kid}` is not a {:?} key",
            header.alg
        )));
    }
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|_| Rejection::client(format!("key `{kid}` cannot be used")))?;
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.leeway = 0;
    v.required_spec_claims = HashSet::new();
    match jsonwebtoken::decode::<Claims>(jwt, &key, &v) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(Rejection::client(match e.kind() {
            ErrorKind::InvalidSignature => {
                format!("client_assertion: the signature does not verify with key `{kid}`")
            }
            ErrorKind::Json(_) => "client_assertion: the claims are not readable".to_owned(),
            _ => format!("client_assertion cannot be verified with key `{kid}`"),
        })),
    }
}

/// What the claims must match.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// The token endpoint's absolute URL.
    pub token_url: &'a str,
    /// The mock's clock, seconds since the epoch.
    pub now: u64,
    /// Registered client ids; `None`: any client whose key is trusted.
    pub clients: Option<&'a HashSet<String>>,
}

/// A client assertion that passed every check but replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub client_id: String,
    pub jti: String,
    /// `exp`, seconds since the epoch: the `jti` is remembered until then.
    pub exp: u64,
}

/// Checks the claims of a verified assertion.
pub fn check(claims: Claims, expect: Expect<'_>) -> Result<Verified, Rejection> {
    let bad = |d: &str| Rejection::client(format!("client_assertion: {d}"));
    let (Some(iss), Some(sub)) = (claims.iss, claims.sub) else {
        return Err(bad("`iss` and `sub` are required (both the client id)"));
    };
    if iss != sub || iss.is_empty() {
        return Err(bad("`iss` and `sub` must both be the client id"));
    }
    if expect.clients.is_some_and(|c| !c.contains(&iss)) {
        return Err(bad("the client (`iss`) is not registered"));
    }
    let aud_ok = match &claims.aud {
        Some(Value::String(a)) => same_url(a, expect.token_url),
        Some(Value::Array(all)) => all
            .iter()
            .any(|a| a.as_str().is_some_and(|a| same_url(a, expect.token_url))),
        _ => false,
    };
    if !aud_ok {
        return Err(bad(&format!(
            "`aud` must be the token endpoint URL {}",
            expect.token_url
        )));
    }
    let now = expect.now;
    let Some(exp) = claims.exp.filter(|e| e.is_finite() && *e >= 0.0) else {
        return Err(bad("`exp` is required"));
    };
    let exp = exp as u64;
    if exp + SKEW_S <= now {
        return Err(bad("`exp` is in the past: the assertion expired"));
    }
    if exp > now + MAX_AHEAD_S + SKEW_S {
        return Err(bad("`exp` is more than five minutes ahead"));
    }
    if claims.iat.is_some_and(|iat| iat > (now + SKEW_S) as f64) {
        return Err(bad("`iat` is in the future"));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or_else(|| bad("`jti` is required"))?;
    Ok(Verified {
        client_id: iss,
        jti,
        exp,
    })
}

/// Equal, or equal but for a trailing `/`.
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:1/auth/token";
    const NOW: u64 = 1_800_000_000;

    fn claims() -> Claims {
        Claims {
            iss: Some("c1".into()),
            sub: Some("c1".into()),
            aud: Some(Value::String(URL.into())),
            exp: Some((NOW + 240) as f64),
            iat: Some(NOW as f64),
            jti: Some("j1".into()),
        }
    }

    fn expect(clients: &HashSet<String>) -> Expect<'_> {
        Expect {
            token_url: URL,
            now: NOW,
            clients: Some(clients),
        }
    }

    #[test]
    fn good_claims_pass_and_each_bad_one_is_named() {
        let clients: HashSet<String> = ["c1".to_owned()].into();
        let ok = check(claims(), expect(&clients)).unwrap();
        assert_eq!((ok.client_id.as_str(), ok.exp), ("c1", NOW + 240));
        type Spoil = fn(&mut Claims);
        let cases: [(&str, Spoil); 8] = [
            ("`sub` must both", |c| c.sub = Some("c2".into())),
            ("not registered", |c| {
                c.iss = Some("c9".into());
                c.sub = Some("c9".into());
            }),
            ("`aud`", |c| {
                c.aud = Some(Value::String("http://x/token".into()))
            }),
            ("expired", |c| c.exp = Some((NOW - 60) as f64)),
            ("five minutes", |c| c.exp = Some((NOW + 600) as f64)),
            ("`iat` is in the future", |c| {
                c.iat = Some((NOW + 120) as f64)
            }),
            ("`jti` is required", |c| c.jti = None),
            ("`exp` is required", |c| c.exp = None),
        ];
        for (needle, spoil) in cases {
            let mut c = claims();
            spoil(&mut c);
            let r = check(c, expect(&clients)).unwrap_err();
            assert_eq!(r.error, "invalid_client");
            assert!(r.description.contains(needle), "{needle}: {r:?}");
            assert!(!r.description.contains("c9"), "{r:?}");
        }
    }

    #[test]
    fn an_audience_list_and_any_client_are_accepted() {
        let mut c = claims();
        c.aud = Some(serde_json::json!(["http://other/", format!("{URL}/")]));
        let none = HashSet::new();
        let any = Expect {
            clients: None,
            ..expect(&none)
        };
        assert!(check(c, any).is_ok());
    }

    #[test]
    fn only_rs384_and_es384_headers_pass() {
        let enc = |alg| {
            use base64::Engine;
            let h = serde_json::json!({"alg": alg, "kid": "k"}).to_string();
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!("{}.{}.sig", b.encode(h), b.encode("{}"))
        };
        assert_eq!(header(&enc("RS384")).unwrap().alg, Algorithm::RS384);
        assert_eq!(header(&enc("ES384")).unwrap().kid, "k");
        for alg in ["RS256", "HS256", "none", "PS384"] {
            let r = header(&enc(alg)).unwrap_err();
            assert!(r.description.contains("RS384 or ES384"), "{alg}: {r:?}");
        }
        assert!(header("not-a-jwt").is_err());
    }
}

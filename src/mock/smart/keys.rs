//! The public keys the mock trusts for client assertions: a JWK Set given as-is (a
//! file, or derived from a private key by the run), a JWK Set URL fetched and cached,
//! and `jku` header URLs, honoured only when on the allow-list. A cached set is used for
//! [`CACHE_FOR`]; an unknown `kid` refetches it at most every [`REFETCH_AFTER`]. No
//! message carries key material. Uses `reqwest` for the fetches.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, CommonParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};
use url::Url;

use super::Error;
use super::assertion::Rejection;

/// How long a fetched JWK Set is used.
pub const CACHE_FOR: Duration = Duration::from_secs(300);
/// An unknown `kid` refetches a cached set older than this (key rotation).
pub const REFETCH_AFTER: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where trusted keys come from.
pub struct Trust {
    keys: JwkSet,
    jwks_url: Option<Url>,
    jku_allow: Vec<Url>,
    http: reqwest::Client,
    cache: Mutex<HashMap<Url, Fetched>>,
}

struct Fetched {
    keys: Arc<JwkSet>,
    at: Instant,
}

impl Trust {
    pub fn new(keys: JwkSet, jwks_url: Option<Url>, jku_allow: Vec<Url>) -> Result<Trust, Error> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(Trust {
            keys,
            jwks_url,
            jku_allow,
            http,
            cache: Mutex::default(),
        })
    }

    /// Whether any key source is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.keys.is_empty() && self.jwks_url.is_none() && self.jku_allow.is_empty()
    }

    /// The key `kid`: from the given set, else from the `jku` (when allowed) or the
    /// JWK Set URL.
    pub async fn key(&self, kid: &str, jku: Option<&str>) -> Result<Jwk, Rejection> {
        let url = match jku {
            Some(jku) => Some(self.allowed(jku)?),
            None => self.jwks_url.clone(),
        };
        if let Some(k) = self.keys.find(kid) {
            return Ok(k.clone());
        }
        let unknown = || Rejection::client(format!("no trusted key has kid `{kid}`"));
        let Some(url) = url else {
            return Err(unknown());
        };
        let cached = self.cached(&url);
        if let Some((keys, at)) = &cached {
            if let Some(k) = keys.find(kid) {
                return Ok(k.clone());
            }
            if at.elapsed() < REFETCH_AFTER {
                return Err(unknown());
            }
        }
        let keys = self.fetch(&url).await?;
        keys.find(kid).cloned().ok_or_else(unknown)
    }

    fn allowed(&self, jku: &str) -> Result<Url, Rejection> {
        let refused =
            || Rejection::client("client_assertion: `jku` is not a registered JWK Set URL");
        let url = Url::parse(jku).map_err(|_| refused())?;
        let mut registered = self.jku_allow.iter().chain(self.jwks_url.iter());
        registered.find(|u| **u == url).cloned().ok_or_else(refused)
    }

    fn cached(&self, url: &Url) -> Option<(Arc<JwkSet>, Instant)> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(url)
            .filter(|f| f.at.elapsed() < CACHE_FOR)
            .map(|f| (f.keys.clone(), f.at))
    }

    async fn fetch(&self, url: &Url) -> Result<Arc<JwkSet>, Rejection> {
        let failed = |why: &str| {
            tracing::warn!("mock SMART: the JWK Set at {url} {why}");
            Rejection::client(format!("the JWK Set at {url} {why}"))
        };
        let resp = self
            .http
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|_| failed("cannot be fetched"))?;
        if !resp.status().is_success() {
            return Err(failed(&format!("answered {}", resp.status())));
        }
        let body = resp.bytes().await.map_err(|_| failed("cannot be read"))?;
        let keys: JwkSet = serde_json::from_slice(&body).map_err(|_| failed("is not a JWK Set"))?;
        let keys = Arc::new(keys);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.insert(
            url.clone(),
            Fetched {
                keys: keys.clone(),
                at: Instant::now(),
            },
        );
        Ok(keys)
    }
}

/// Reads a JWK Set file; every key must be RSA or EC and carry a `kid`.
pub fn read_jwks(path: &Path) -> Result<JwkSet, Error> {
    let bad = |problem: String| Error::Jwks {
        path: path.display().to_string(),
        problem,
    };
    let text = std::fs::read(path).map_err(|e| bad(format!("cannot be read ({})", e.kind())))?;
    let set: JwkSet = serde_json::from_slice(&text)
        .map_err(|_| bad("is not a JWK Set (`{\"keys\": [...]}`)".into()))?;
    if set.keys.is_empty() {
        return Err(bad("holds no key".into()));
    }
    for (i, k) in set.keys.iter().enumerate() {
        if k.common.key_id.as_deref().is_none_or(str::is_empty) {
            return Err(bad(format!("key {i} has no `kid`")));
        }
        if !matches!(
            k.algorithm,
            AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_)
        ) {
            return Err(bad(format!("key {i} is neither RSA nor EC")));
        }
    }
    Ok(set)
}

/// The public JWK of a PEM private key (PKCS#8, or PKCS#1 for RSA) for `alg` (RS384 or
/// ES384), named `kid`. Errors use fixed wording.
pub fn public_jwk(pem: &str, alg: Algorithm, kid: &str) -> Result<Jwk, Error> {
    let bad = |problem: &'static str| Error::Key { alg, problem };
    let key = match alg {
        Algorithm::RS384 => EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|_| bad("not an RSA private key PEM"))?,
        Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes())
            .map_err(|_| bad("not a PKCS#8 EC private key PEM"))?,
        _ => return Err(bad("not a SMART algorithm (RS384 or ES384)")),
    };
    let jwk = Jwk::from_encoding_key(&key, alg)
        .map_err(|_| bad("not a private key for this algorithm (ES384 needs P-384)"))?;
    Ok(Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_id: Some(kid.to_owned()),
            ..jwk.common
        },
        algorithm: jwk.algorithm,
    })
}

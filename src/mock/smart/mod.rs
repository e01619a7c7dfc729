//! SMART Backend Services for the mock EHR (`serve-mock --auth smart`, or a run whose
//! scenario has `[auth] kind = "smart_backend"` and the mock as target): discovery at
//! `/.well-known/smart-configuration`, a client-credentials token endpoint at
//! `/auth/token` that takes the client authentication methods of `Config::methods` —
//! the emulated EHR profile's front door ([`methods_for`]) — and refuses the others
//! with `invalid_client`: `private_key_jwt` assertions (RS384/ES384, checked against
//! trusted JWKs, replayed `jti`s refused) and the client secret (`client_secret_basic`,
//! `_post`, `_jwt`, see `secret`); opaque bearer tokens that expire on the mock's clock,
//! and a guard in front of the FHIR API: 401 without a live token, 403 for an
//! interaction the granted scopes do not allow.
//!
//! Choices: a token-endpoint refusal answers **400** with an OAuth error body, or **401**
//! with `WWW-Authenticate: Basic` for an `invalid_client` of a client that authenticated
//! with HTTP Basic (RFC 6749 §5.2). With no `scope`
//! parameter the grant is everything the client may have (`Config::scopes`). Requested
//! scopes that are not `system/` scopes, or are granular, are left out of the grant; a
//! malformed `system/` scope, or a request of which nothing can be granted, is
//! `invalid_scope`. Grants are written in v2 spelling. Refusals never reach the fault
//! ledger, except those the `scope_bypass` fault lets through (`bypass`). Depends on
//! `mock::outcome`, `mock::http::base`, the mock's faults and ledger, and `profile` (the
//! methods).

mod assertion;
mod bypass;
mod guard;
mod keys;
mod scope;
mod secret;
mod token;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use url::Url;

use crate::profile::{AuthKind, ClientAuth, Profile};

pub use assertion::{MAX_AHEAD_S, Rejection, SKEW_S};
pub use guard::{describe, wrap};
pub use jsonwebtoken::Algorithm;
pub use jsonwebtoken::jwk::{Jwk, JwkSet as Jwks};
pub use keys::{public_jwk, read_jwks};
use scope::Scopes;

/// The token lifetime when none is given: SMART's recommended 300 s.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// How many issued tokens (and received assertions) [`Authority`] keeps for tests.
pub const KEPT: usize = 10_000;

/// How the mock's authorization server is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Registered client ids; empty = any client whose assertion verifies with a
    /// trusted key (the key is the registration).
    pub clients: Vec<String>,
    /// Trusted public keys (a JWK Set file, or keys derived by the run).
    pub keys: JwkSet,
    /// A JWK Set URL, fetched and cached.
    pub jwks_url: Option<Url>,
    /// `jku` header values honoured (their JWK Sets are fetched and cached).
    pub jku_allow: Vec<Url>,
    /// What clients may be granted (`system/…` scopes, either spelling); empty = all.
    pub scopes: Vec<String>,
    /// How long an access token lives (at least 1 s).
    pub token_lifetime: Duration,
    /// The client authentication methods the token endpoint accepts, in the order the
    /// SMART configuration lists them; the others are refused with `invalid_client`.
    pub methods: Vec<ClientAuth>,
    /// The client secret of the registered clients (`client_secret_*`); `None` = none.
    pub client_secret: Option<String>,
}

/// The token lifetime the profile documents (Oracle Health: 570 s), if any.
pub fn lifetime_for(profile: Option<&Profile>) -> Option<Duration> {
    match profile.map(|p| &p.auth.kind) {
        Some(AuthKind::SmartBackend(sb)) => sb.token_lifetime,
        _ => None,
    }
}

/// The methods the mock's token endpoint accepts: the profile's `client_auth` list when
/// it has one (the EHR's front door), else `private_key_jwt` and, with a client secret,
/// the three client-secret methods.
pub fn methods_for(profile: Option<&Profile>, secret: bool) -> Vec<ClientAuth> {
    if let Some(AuthKind::SmartBackend(sb)) = profile.map(|p| &p.auth.kind)
        && !sb.client_auth.is_empty()
    {
        return sb.client_auth.clone();
    }
    let mut methods = vec![ClientAuth::PrivateKeyJwt];
    if secret {
        methods.extend([
            ClientAuth::ClientSecretBasic,
            ClientAuth::ClientSecretPost,
            ClientAuth::ClientSecretJwt,
        ]);
    }
    methods
}

impl Default for Config {
    fn default() -> Self {
        Config {
            clients: Vec::new(),
            keys: JwkSet::default(),
            jwks_url: None,
            jku_allow: Vec::new(),
            scopes: Vec::new(),
            token_lifetime: DEFAULT_LIFETIME,
            methods: vec![ClientAuth::PrivateKeyJwt],
            client_secret: None,
        }
    }
}

/// Why the authorization server cannot be set up. No message carries key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "mock SMART: no trusted key and no client secret: give a JWK Set (--jwks), a JWK Set URL (--jwks-url), an allowed jku (--jku-allow) or a client secret (--client-secret-env)"
    )]
    NoKeys,
    #[error("mock SMART: the token endpoint accepts no client authentication method")]
    NoMethods,
    #[error("mock SMART: `{0}` is not a system scope (system/<Type|*>.<cruds|read|write|*>)")]
    Scope(String),
    #[error("mock SMART: the token lifetime must be at least 1s")]
    Lifetime,
    #[error("mock SMART: JWK Set {path} {problem}")]
    Jwks { path: String, problem: String },
    #[error("mock SMART: the private key is {problem} (alg {alg:?})")]
    Key {
        alg: Algorithm,
        problem: &'static str,
    },
    #[error("mock SMART: cannot build the HTTP client: {0}")]
    Http(String),
}

/// The authorization server's state. Cloning shares it.
#[derive(Clone)]
pub struct Authority {
    inner: Arc<Inner>,
}

struct Inner {
    clients: Option<HashSet<String>>,
    trust: keys::Trust,
    allowed: Scopes,
    lifetime: Duration,
    methods: Vec<ClientAuth>,
    secret: Option<String>,
    /// Added to the system clock (tests move time forward).
    offset_ms: AtomicU64,
    /// `(client, jti)` of the assertions used, until their `exp`.
    replay: Mutex<Pruned<(String, String), ()>>,
    /// Live tokens and their grants.
    tokens: Mutex<Pruned<String, Arc<Scopes>>>,
    kept: Mutex<Kept>,
}

/// Entries kept until their expiry (milliseconds on the mock's clock), pruned each
/// time the map has doubled.
struct Pruned<K, V> {
    map: HashMap<K, (u64, V)>,
    prune_at: usize,
}

impl<K: std::hash::Hash + Eq, V> Pruned<K, V> {
    fn new() -> Self {
        Pruned {
            map: HashMap::new(),
            prune_at: 1024,
        }
    }

    /// Inserts, first dropping expired entries when the map has grown enough.
    fn insert(&mut self, key: K, until_ms: u64, value: V, now_ms: u64) {
        if self.map.len() >= self.prune_at {
            self.map.retain(|_, (until, _)| *until > now_ms);
            self.prune_at = (self.map.len() * 2).max(1024);
        }
        self.map.insert(key, (until_ms, value));
    }

    /// The entry, while it has not expired.
    fn live(&self, key: &K, now_ms: u64) -> Option<&V> {
        self.map
            .get(key)
            .filter(|(until, _)| *until > now_ms)
            .map(|(_, v)| v)
    }
}

#[derive(Default)]
struct Kept {
    tokens: Vec<String>,
    assertions: Vec<String>,
    /// When each token request arrived (the mock's clock), and how each issued token
    /// was got.
    requests: Vec<Duration>,
    methods: Vec<ClientAuth>,
}

impl Authority {
    pub fn new(config: Config) -> Result<Authority, Error> {
        let trust = keys::Trust::new(config.keys, config.jwks_url, config.jku_allow)?;
        let secret = config.client_secret.filter(|s| !s.is_empty());
        if trust.is_empty() && secret.is_none() {
            return Err(Error::NoKeys);
        }
        if config.methods.is_empty() {
            return Err(Error::NoMethods);
        }
        if config.token_lifetime < Duration::from_secs(1) {
            return Err(Error::Lifetime);
        }
        let allowed = if config.scopes.is_empty() {
            Scopes::all()
        } else {
            let words = config.scopes.iter().flat_map(|s| s.split([' ', ',']));
            Scopes::parse_list(words.filter(|w| !w.is_empty())).map_err(Error::Scope)?
        };
        let clients = (!config.clients.is_empty()).then(|| config.clients.into_iter().collect());
        Ok(Authority {
            inner: Arc::new(Inner {
                clients,
                trust,
                allowed,
                lifetime: config.token_lifetime,
                methods: config.methods,
                secret,
                offset_ms: AtomicU64::new(0),
                replay: Mutex::new(Pruned::new()),
                tokens: Mutex::new(Pruned::new()),
                kept: Mutex::default(),
            }),
        })
    }

    /// The mock's clock: the system clock plus [`Authority::advance_clock`]s, since the
    /// epoch.
    pub fn now(&self) -> Duration {
        let offset = Duration::from_millis(self.inner.offset_ms.load(Ordering::Relaxed));
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + offset
    }

    /// Moves the mock's clock forward (tokens expire, assertions age) without waiting.
    pub fn advance_clock(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.inner.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Every access token issued so far (the first [`KEPT`]), for secret scans.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.kept().tokens.clone()
    }

    /// Every client assertion received so far (the first [`KEPT`]), for secret scans.
    pub fn received_assertions(&self) -> Vec<String> {
        self.kept().assertions.clone()
    }

    /// When each token request arrived, on the mock's clock (the first [`KEPT`]): what
    /// the token endpoint counts.
    pub fn token_requests(&self) -> Vec<Duration> {
        self.kept().requests.clone()
    }

    /// The client authentication method of each token issued (the first [`KEPT`]).
    pub fn issued_methods(&self) -> Vec<ClientAuth> {
        self.kept().methods.clone()
    }

    fn keep_request(&self) {
        let now = self.now();
        let mut kept = self.kept();
        if kept.requests.len() < KEPT {
            kept.requests.push(now);
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn keep_assertion(&self, assertion: &str) {
        let mut kept = self.kept();
        if kept.assertions.len() < KEPT {
            kept.assertions.push(assertion.to_owned());
        }
    }

    /// Remembers `jti` of `client` until `exp`; `false` when it was seen before.
    fn first_use(&self, client: &str, jti: &str, exp_s: u64) -> bool {
        let now_ms = millis(self.now());
        let mut replay = self
            .inner
            .replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (client.to_owned(), jti.to_owned());
        if replay.live(&key, now_ms).is_some() {
            return false;
        }
        let until = (exp_s + SKEW_S).saturating_mul(1000);
        replay.insert(key, until, (), now_ms);
        true
    }

    /// Issues a fresh opaque token for `grant`, got by `method`; returns it with its
    /// lifetime.
    fn issue(&self, grant: Scopes, method: ClientAuth) -> (String, Duration) {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let token = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        };
        let now = self.now();
        let until = millis(now + self.inner.lifetime);
        {
            let mut tokens = self
                .inner
                .tokens
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            tokens.insert(token.clone(), until, Arc::new(grant), millis(now));
        }
        let mut kept = self.kept();
        if kept.tokens.len() < KEPT {
            kept.tokens.push(token.clone());
            kept.methods.push(method);
        }
        (token, self.inner.lifetime)
    }

    /// The grant of a live token; `Err` says why there is none.
    fn live(&self, token: &str) -> Result<Arc<Scopes>, &'static str> {
        let tokens = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match tokens.map.get(token) {
            None => Err("the access token is not known"),
            Some((until, _)) if *until <= millis(self.now()) => Err("the access token expired"),
            Some((_, grant)) => Ok(grant.clone()),
        }
    }
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("clients", &self.inner.clients.as_ref().map(HashSet::len))
            .field("allowed", &self.inner.allowed.render())
            .field("lifetime", &self.inner.lifetime)
            .field("methods", &self.inner.methods)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

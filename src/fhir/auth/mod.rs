//! How the FHIR client proves who it is: no auth, a static bearer token, HTTP basic, or
//! SMART Backend Services (a client-credentials token got with `private_key_jwt`,
//! `client_secret_basic`, `client_secret_post` or `client_secret_jwt`, see `method`;
//! one token for all users of the client, renewed before expiry by one request, never
//! asked for more often than the EHR allows, one re-authentication on a 401). Secrets
//! come from environment variables or files, live in [`Secret`]s that print `[redacted]`, and
//! appear in no log, error or history record. Token requests are recorded as `token`
//! interactions through the client's recorder. Uses `history`, `metrics` and the
//! client's recorder; nothing above `fhir`.

mod assertion;
mod discovery;
mod method;
mod secret;
mod session;
mod token;

use std::time::Duration;

use reqwest::header::HeaderValue;
use url::Url;

use crate::fhir::Recorder;
use crate::history::Phase;

pub use assertion::{Alg, LIFETIME as ASSERTION_LIFETIME};
pub use method::{Choice, Hmac, Method, choose};
pub use secret::{Secret, SecretSource};

/// How the client authenticates: the scenario's `[auth]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Config {
    /// No `Authorization` header.
    #[default]
    None,
    /// `Authorization: Bearer <token>`, the token read once at start.
    Bearer { token: SecretSource },
    /// `Authorization: Basic …`.
    Basic {
        username: String,
        password: SecretSource,
    },
    /// SMART Backend Services.
    Smart(Box<SmartConfig>),
}

/// SMART Backend Services settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SmartConfig {
    pub client_id: SecretSource,
    /// A PEM private key (`private_key_jwt`): RSA for RS384, P-384 for ES384.
    pub private_key: Option<SecretSource>,
    /// The client secret (`client_secret_basic`, `_post`, `_jwt`).
    pub client_secret: Option<SecretSource>,
    /// How the private key signs.
    pub alg: Alg,
    /// How the secret signs a `client_secret_jwt` assertion.
    pub hmac: Hmac,
    /// The key id the server knows the public key by (JWT header `kid`); empty without a
    /// key.
    pub kid: String,
    /// The registered JWK Set URL (JWT header `jku`), when the server wants it.
    pub jku: Option<Url>,
    /// The token endpoint; `None` = discovered from `{base}/.well-known/smart-configuration`.
    pub token_url: Option<Url>,
    /// Sent as given (v1 `system/Patient.read` or v2 `system/Patient.rs` spelling);
    /// empty = no `scope` parameter (Epic ignores it).
    pub scopes: Vec<String>,
    /// `client_auth`; `None` = the first the EHR profile and the server both allow.
    pub method: Option<Method>,
    /// What the EHR profile says of its token endpoint (set by the run).
    pub ehr: EhrAuth,
}

/// What the EHR profile says of its token endpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EhrAuth {
    /// Its `client_auth` list, in its order; empty = not said.
    pub methods: Vec<Method>,
    /// Token requests no closer together than this (Oracle Health: 60 s).
    pub min_token_interval: Option<Duration>,
}

impl SmartConfig {
    /// The methods the configured credentials allow.
    pub fn held(&self) -> Vec<Method> {
        Method::ALL
            .into_iter()
            .filter(|m| match m.uses_secret() {
                true => self.client_secret.is_some(),
                false => self.private_key.is_some(),
            })
            .collect()
    }
}

/// Why the client could not authenticate. Messages never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: the {source_name} {problem}")]
    Secret {
        what: &'static str,
        source_name: String,
        problem: String,
    },
    #[error("auth.private_key: the {source_name} is {problem} (alg = \"{alg}\")")]
    Key {
        source_name: String,
        alg: Alg,
        problem: &'static str,
    },
    #[error(
        "auth.alg: unsupported signing algorithm `{0}`; SMART Backend Services uses RS384 or ES384"
    )]
    UnsupportedAlg(String),
    #[error("auth: cannot sign the client assertion: {0}")]
    Sign(&'static str),
    #[error("auth: the SMART configuration at {url} {problem}")]
    Discovery { url: String, problem: String },
    #[error("auth: {what} at {url} cannot be reached: {reason}")]
    Unreachable {
        what: &'static str,
        url: String,
        reason: String,
    },
    #[error("auth: the token endpoint refused (HTTP {status}): {}{}",
        error.as_deref().unwrap_or("no OAuth error code"),
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        status: u16,
        /// The OAuth `error` code (`invalid_client`, `unauthorized_client`, …).
        error: Option<String>,
        /// The OAuth `error_description`, cut to printable ASCII.
        description: Option<String>,
    },
    #[error("auth: the token endpoint answered HTTP {status} but {problem}")]
    BadTokenResponse { status: u16, problem: &'static str },
    #[error(
        "auth.client_auth: no client authentication method fits: the credentials allow {held}, \
         the profile lists {profile}, the server advertises {server}; set client_auth or give \
         the credential a listed method needs"
    )]
    NoMethod {
        held: String,
        profile: String,
        server: String,
    },
}

/// What an authentication step needs of the client.
pub(crate) struct Io<'a> {
    pub http: &'a reqwest::Client,
    pub recorder: &'a Recorder,
    pub base: &'a Url,
    pub process: u64,
    pub phase: Phase,
}

/// The `Authorization` header for one request, and which token it is.
#[derive(Clone, Debug, Default)]
pub(crate) struct Grant {
    pub header: Option<HeaderValue>,
    /// Set for tokens that can be renewed: a 401 for it calls for re-authentication.
    pub generation: Option<u64>,
}

/// The client's authenticator, built once from the [`Config`].
#[derive(Debug)]
pub(crate) enum Auth {
    None,
    Static(HeaderValue),
    Smart(Box<session::Session>),
}

impl Auth {
    /// Reads the secrets and the key; no network.
    pub fn new(config: &Config) -> Result<Auth, Error> {
        match config {
            Config::None => Ok(Auth::None),
            Config::Bearer { token } => {
                let value = token.load("auth.token")?;
                let header = format!("Bearer {}", value.expose());
                sensitive(header, "auth.token", token).map(Auth::Static)
            }
            Config::Basic { username, password } => {
                use base64::Engine;
                let value = password.load("auth.password")?;
                let pair = format!("{username}:{}", value.expose());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                sensitive(format!("Basic {encoded}"), "auth.password", password).map(Auth::Static)
            }
            Config::Smart(smart) => Ok(Auth::Smart(Box::new(session::Session::new(smart)?))),
        }
    }

    /// The header for the next request, fetching a token when one is due.
    pub async fn grant(&self, io: &Io<'_>) -> Result<Grant, Error> {
        match self {
            Auth::None => Ok(Grant::default()),
            Auth::Static(header) => Ok(Grant {
                header: Some(header.clone()),
                generation: None,
            }),
            Auth::Smart(session) => session.grant(io).await,
        }
    }

    /// The `scope` the server granted with the current SMART token, when it said.
    pub fn granted_scope(&self) -> Option<String> {
        match self {
            Auth::Smart(session) => session.granted_scope(),
            _ => None,
        }
    }

    /// A 401 came back for the token of `generation`: forget it.
    pub fn invalidate(&self, generation: u64) {
        if let Auth::Smart(session) = self {
            session.invalidate(generation);
        }
    }
}

fn sensitive(value: String, what: &'static str, from: &SecretSource) -> Result<HeaderValue, Error> {
    let mut header = HeaderValue::try_from(value).map_err(|_| Error::Secret {
        what,
        source_name: from.to_string(),
        problem: "holds characters an HTTP header cannot carry".into(),
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// A transport error's reason, without the URL's query (it never holds a secret here,
/// but error chains can be long).
fn transport_reason(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the connection failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

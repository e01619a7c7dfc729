//! A SMART Backend Services session: finds the token endpoint and the client
//! authentication method once (discovery, the EHR profile's list, the scenario's
//! choice), fetches a token, keeps it, and renews it before it expires. All users of
//! the client share the one token. Concurrent callers share one fetch: while one
//! renews, the others keep using the still-valid token, or wait for the new one when
//! there is none. A 401 invalidates only the token it was sent with, so many 401s at
//! once cause one re-authentication. Token requests are never closer together than the
//! EHR's `min_token_interval`: a renewal waits for it, a fetch with no valid token
//! sleeps until it has passed.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::HeaderValue;
use tokio::sync::OnceCell;
use url::Url;

use super::assertion::Signer;
use super::method::{self, Choice, Method};
use super::secret::Secret;
use super::token::{self, Freshness, Token};
use super::{EhrAuth, Error, Grant, Io, SmartConfig, discovery};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// After a failed renewal, the old token is used this long before trying again, so a
/// failing token endpoint is not asked once per request.
const RENEW_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Session {
    client_id: Secret,
    /// Signs `private_key_jwt` assertions.
    key: Option<Signer>,
    /// The client secret and its `client_secret_jwt` signer.
    secret: Option<(Secret, Signer)>,
    scopes: Vec<String>,
    explicit: Option<Method>,
    ehr: EhrAuth,
    token_url: Option<Url>,
    endpoint: OnceCell<Endpoint>,
    cache: Mutex<Cached>,
    /// Held by the one caller fetching a token.
    refresh: tokio::sync::Mutex<()>,
}

/// Where tokens come from, and how the client proves itself there.
#[derive(Debug)]
struct Endpoint {
    url: Url,
    method: Method,
}

#[derive(Debug, Default)]
struct Cached {
    token: Option<Arc<Token>>,
    fetched: u64,
    /// No renewal before this (a renewal failed).
    renew_after: Option<Instant>,
    /// When the last token request was sent.
    last_request: Option<Instant>,
}

impl Session {
    /// Loads the client id, the key and the secret; no network.
    pub fn new(config: &SmartConfig) -> Result<Session, Error> {
        let client_id = config.client_id.load("auth.client_id")?;
        let key = match &config.private_key {
            Some(source) => Some(Signer::load(
                source,
                config.alg,
                config.kid.clone(),
                config.jku.clone(),
            )?),
            None => None,
        };
        let secret = match &config.client_secret {
            Some(source) => {
                let secret = source.load("auth.client_secret")?;
                let signer = Signer::hmac(&secret, config.hmac);
                Some((secret, signer))
            }
            None => None,
        };
        if let Some(m) = config.method {
            // An explicit method needs its credential: bad input before any request.
            method::choose(Choice {
                explicit: Some(m),
                held: &config.held(),
                profile: &config.ehr.methods,
                server: None,
            })?;
        }
        Ok(Session {
            client_id,
            key,
            secret,
            scopes: config.scopes.clone(),
            explicit: config.method,
            ehr: config.ehr.clone(),
            token_url: config.token_url.clone(),
            endpoint: OnceCell::new(),
            cache: Mutex::default(),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    fn current(&self) -> Option<Arc<Token>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.token.clone()
    }

    /// A token to send: the cached one while it is fresh, else a new one.
    pub async fn grant(&self, io: &Io<'_>) -> Result<Grant, Error> {
        if let Some(t) = self.current() {
            match t.freshness(Instant::now()) {
                Freshness::Fresh => return Ok(grant_of(&t)),
                Freshness::Renew => return Ok(self.renew(io, t).await),
                Freshness::Expired => {}
            }
        }
        let _fetching = self.refresh.lock().await;
        // Whoever held the lock before may have fetched one.
        if let Some(t) = self.current()
            && t.freshness(Instant::now()) != Freshness::Expired
        {
            return Ok(grant_of(&t));
        }
        self.fetch(io).await.map(|t| grant_of(&t))
    }

    /// Renews a still-valid token unless another caller already is, or the EHR's
    /// interval between token requests has not passed; any failure leaves the old token
    /// in use (the failure is in the history).
    async fn renew(&self, io: &Io<'_>, old: Arc<Token>) -> Grant {
        let Ok(_fetching) = self.refresh.try_lock() else {
            return grant_of(&old);
        };
        let (current, not_before) = {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            let spaced = self.next_allowed(&cache);
            (cache.token.clone(), cache.renew_after.max(spaced))
        };
        if let Some(t) = current
            && t.generation != old.generation
        {
            return grant_of(&t);
        }
        if not_before.is_some_and(|at| Instant::now() < at) {
            return grant_of(&old);
        }
        match self.fetch(io).await {
            Ok(t) => grant_of(&t),
            Err(e) => {
                tracing::warn!("token renewal failed, keeping the current token: {e}");
                let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
                cache.renew_after = Some(Instant::now() + RENEW_RETRY);
                grant_of(&old)
            }
        }
    }

    /// The earliest the next token request may go, by the EHR's interval.
    fn next_allowed(&self, cache: &Cached) -> Option<Instant> {
        let interval = self.ehr.min_token_interval?;
        cache.last_request.map(|at| at + interval)
    }

    /// Fetches a token and caches it. The caller holds `refresh`.
    async fn fetch(&self, io: &Io<'_>) -> Result<Arc<Token>, Error> {
        let endpoint = self.endpoint.get_or_try_init(|| self.resolve(io)).await?;
        let request = self.request(endpoint)?;
        self.wait_for_interval().await;
        {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            cache.last_request = Some(Instant::now());
        }
        let answer = token::request(io, &endpoint.url, request).await?;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.fetched += 1;
        cache.renew_after = None;
        let token = Arc::new(Token {
            header: answer.header,
            generation: cache.fetched,
            received: Instant::now(),
            lifetime: answer.lifetime,
            scope: answer.scope,
        });
        cache.token = Some(token.clone());
        Ok(token)
    }

    /// Sleeps until the EHR's interval since the last token request has passed.
    async fn wait_for_interval(&self) {
        let next = {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            self.next_allowed(&cache)
        };
        if let Some(at) = next.filter(|at| *at > Instant::now()) {
            tracing::warn!(
                "no valid token, but the EHR allows a token request only every {:?}: waiting {:?}",
                self.ehr.min_token_interval.unwrap_or_default(),
                at.saturating_duration_since(Instant::now())
            );
            tokio::time::sleep_until(at.into()).await;
        }
    }

    /// The token endpoint and the method: from the scenario when it gives both (or the
    /// URL, and the credentials and the profile leave one method), else with what
    /// discovery says (when the scenario gives the URL, a discovery that fails only
    /// leaves the server's methods unknown).
    async fn resolve(&self, io: &Io<'_>) -> Result<Endpoint, Error> {
        let held = self.held();
        let open = held
            .iter()
            .filter(|m| self.ehr.methods.is_empty() || self.ehr.methods.contains(m))
            .count();
        let found = match &self.token_url {
            None => Some(discovery::fetch(io.http, io.base).await?),
            Some(_) if self.explicit.is_none() && open > 1 => discovery::fetch(io.http, io.base)
                .await
                .inspect_err(|e| tracing::warn!("{e}; choosing client_auth without it"))
                .ok(),
            Some(_) => None,
        };
        let method = method::choose(Choice {
            explicit: self.explicit,
            held: &held,
            profile: &self.ehr.methods,
            server: found.as_ref().and_then(|f| f.methods.as_deref()),
        })?;
        let alg = self.signer(method).map(Signer::alg_name);
        if let (Some(found), Some(alg)) = (&found, alg)
            && found.offers(alg) == Some(false)
        {
            tracing::warn!(
                "the SMART configuration does not list {alg} among its signing algorithms; trying it anyway"
            );
        }
        let url = match (&self.token_url, found) {
            (Some(url), _) => url.clone(),
            (None, Some(found)) => found.token_url,
            (None, None) => unreachable_url(io.base)?,
        };
        tracing::info!("token endpoint {url}, client_auth = {method}");
        Ok(Endpoint { url, method })
    }

    fn held(&self) -> Vec<Method> {
        Method::ALL
            .into_iter()
            .filter(|m| match m.uses_secret() {
                true => self.secret.is_some(),
                false => self.key.is_some(),
            })
            .collect()
    }

    fn signer(&self, method: Method) -> Option<&Signer> {
        match method {
            Method::PrivateKeyJwt => self.key.as_ref(),
            Method::ClientSecretJwt => self.secret.as_ref().map(|(_, s)| s),
            Method::ClientSecretBasic | Method::ClientSecretPost => None,
        }
    }

    /// The token request for `endpoint`'s method: a fresh assertion, or the secret in
    /// the form or in an `Authorization: Basic` header.
    fn request(&self, endpoint: &Endpoint) -> Result<token::Request, Error> {
        let missing = || Error::Sign("no credential for the chosen client_auth");
        let client_id = self.client_id.expose();
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        let mut authorization = None;
        match endpoint.method {
            Method::PrivateKeyJwt | Method::ClientSecretJwt => {
                let signer = self.signer(endpoint.method).ok_or_else(missing)?;
                let jwt = signer.sign(client_id, endpoint.url.as_str(), SystemTime::now())?;
                form.append_pair("client_assertion_type", ASSERTION_TYPE)
                    .append_pair("client_assertion", &jwt);
            }
            Method::ClientSecretPost => {
                let (secret, _) = self.secret.as_ref().ok_or_else(missing)?;
                form.append_pair("client_id", client_id)
                    .append_pair("client_secret", secret.expose());
            }
            Method::ClientSecretBasic => {
                let (secret, _) = self.secret.as_ref().ok_or_else(missing)?;
                authorization = Some(basic(client_id, secret)?);
            }
        }
        if !self.scopes.is_empty() {
            form.append_pair("scope", &self.scopes.join(" "));
        }
        Ok(token::Request {
            form: form.finish(),
            authorization,
        })
    }

    /// The scopes the current token was granted, as the server said (`None`: no token,
    /// or the server did not say).
    pub fn granted_scope(&self) -> Option<String> {
        self.current().and_then(|t| t.scope.clone())
    }

    /// Forgets the token of `generation` (a 401 came back for it).
    pub fn invalidate(&self, generation: u64) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.token.as_ref().map(|t| t.generation) == Some(generation) {
            cache.token = None;
        }
    }
}

/// `Basic base64(id:secret)`, each form-urlencoded first (RFC 6749 §2.3.1); sensitive.
fn basic(client_id: &str, secret: &Secret) -> Result<HeaderValue, Error> {
    use base64::Engine;
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret.expose()));
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    );
    let mut header = HeaderValue::try_from(value)
        .map_err(|_| Error::Sign("the client secret cannot be sent in a header"))?;
    header.set_sensitive(true);
    Ok(header)
}

/// Without a configured URL, discovery gave one or failed: never here.
fn unreachable_url(base: &Url) -> Result<Url, Error> {
    Err(Error::Discovery {
        url: discovery::url(base).to_string(),
        problem: "gave no token endpoint".into(),
    })
}

fn grant_of(token: &Token) -> Grant {
    Grant {
        header: Some(token.header.clone()),
        generation: Some(token.generation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_then_base64() {
        use base64::Engine;
        let h = basic("my client", &Secret::new("s:3/cr+t")).unwrap();
        assert!(h.is_sensitive());
        let b64 = h.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "my+client:s%3A3%2Fcr%2Bt");
    }
}

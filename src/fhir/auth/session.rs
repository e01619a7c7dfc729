//! A SMART Backend Services session: discovers the token endpoint once, signs a client
//! assertion, fetches a token, keeps it, and renews it before it expires. Concurrent
//! callers share one fetch: while one renews, the others keep using the still-valid
//! token, or wait for the new one when there is none. A 401 invalidates only the token
//! it was sent with, so many 401s at once cause one re-authentication.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::OnceCell;
use url::Url;

use super::assertion::Signer;
use super::secret::Secret;
use super::token::{self, Freshness, Token};
use super::{Error, Grant, Io, SmartConfig, discovery};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// After a failed renewal, the old token is used this long before trying again, so a
/// failing token endpoint is not asked once per request.
const RENEW_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Session {
    client_id: Secret,
    signer: Signer,
    scopes: Vec<String>,
    token_url: OnceCell<Url>,
    cache: Mutex<Cached>,
    /// Held by the one caller fetching a token.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Cached {
    token: Option<Arc<Token>>,
    fetched: u64,
    /// No renewal before this (a renewal failed).
    renew_after: Option<Instant>,
}

impl Session {
    /// Loads the client id and the key; no network.
    pub fn new(config: &SmartConfig) -> Result<Session, Error> {
        let client_id = config.client_id.load("auth.client_id")?;
        let signer = Signer::load(
            &config.private_key,
            config.alg,
            config.kid.clone(),
            config.jku.clone(),
        )?;
        Ok(Session {
            client_id,
            signer,
            scopes: config.scopes.clone(),
            token_url: OnceCell::new_with(config.token_url.clone()),
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

    /// Renews a still-valid token unless another caller already is; any failure leaves
    /// the old token in use (the failure is in the history).
    async fn renew(&self, io: &Io<'_>, old: Arc<Token>) -> Grant {
        let Ok(_fetching) = self.refresh.try_lock() else {
            return grant_of(&old);
        };
        let (current, renew_after) = {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            (cache.token.clone(), cache.renew_after)
        };
        if let Some(t) = current
            && t.generation != old.generation
        {
            return grant_of(&t);
        }
        if renew_after.is_some_and(|at| Instant::now() < at) {
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

    /// Fetches a token and caches it. The caller holds `refresh`.
    async fn fetch(&self, io: &Io<'_>) -> Result<Arc<Token>, Error> {
        let token_url = self.token_url.get_or_try_init(|| self.discover(io)).await?;
        let assertion = self.signer.sign(
            self.client_id.expose(),
            token_url.as_str(),
            SystemTime::now(),
        )?;
        let form = form(&assertion, &self.scopes);
        let (header, lifetime) = token::request(io, token_url, form).await?;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.fetched += 1;
        cache.renew_after = None;
        let token = Arc::new(Token {
            header,
            generation: cache.fetched,
            received: Instant::now(),
            lifetime,
        });
        cache.token = Some(token.clone());
        Ok(token)
    }

    async fn discover(&self, io: &Io<'_>) -> Result<Url, Error> {
        let found = discovery::fetch(io.http, io.base).await?;
        let alg = self.signer.alg();
        if found.offers(alg) == Some(false) {
            tracing::warn!(
                "the SMART configuration does not list {alg} among its signing algorithms; trying it anyway"
            );
        }
        Ok(found.token_url)
    }

    /// Forgets the token of `generation` (a 401 came back for it).
    pub fn invalidate(&self, generation: u64) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.token.as_ref().map(|t| t.generation) == Some(generation) {
            cache.token = None;
        }
    }
}

/// The client-credentials token request body.
fn form(assertion: &str, scopes: &[String]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials")
        .append_pair("client_assertion_type", ASSERTION_TYPE)
        .append_pair("client_assertion", assertion);
    if !scopes.is_empty() {
        form.append_pair("scope", &scopes.join(" "));
    }
    form.finish()
}

fn grant_of(token: &Token) -> Grant {
    Grant {
        header: Some(token.header.clone()),
        generation: Some(token.generation),
    }
}

//! Management calls that are not interactions under test: creating, polling and deleting
//! the run's Subscriptions and asking `$events` for replays. Authorized like every other
//! request, sent directly, never recorded as history interactions (the caller records
//! what became of each subscription); a failure is data, not `Err`.
//!
//! Also the write tagger: a function the run installs that names, for each write, the
//! subscriptions its resource matches ([`crate::history::Op::notify`]).

use std::sync::Arc;

use reqwest::{Method, header};
use serde_json::Value;

use super::{Client, FHIR_JSON};
use crate::history::Phase;

/// Names the subscriptions a resource of a type matches.
#[derive(Clone)]
pub struct Tagger(pub Arc<TagFn>);

/// The function behind a [`Tagger`]: resource type and resource → subscription names.
pub type TagFn = dyn Fn(&str, &Value) -> Vec<String> + Send + Sync;

impl std::fmt::Debug for Tagger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tagger")
    }
}

/// What a management call got back.
#[derive(Clone, Debug, Default)]
pub struct Managed {
    /// `None`: no answer (the reason is in `error`).
    pub status: Option<u16>,
    pub body: Option<Value>,
    pub location: Option<String>,
    pub error: Option<String>,
}

impl Managed {
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Client {
    /// Sends `method path` (relative to the base, or an absolute URL) with an optional
    /// JSON body, authorized, without recording it.
    pub async fn manage(&self, method: Method, path: &str, body: Option<&Value>) -> Managed {
        let url = match url::Url::parse(path) {
            Ok(u) => u,
            Err(_) => self.url(path),
        };
        let grant = match self.inner.auth.grant(&self.auth_io(0, Phase::Load)).await {
            Ok(g) => g,
            Err(e) => {
                return Managed {
                    error: Some(format!("no access token: {e}")),
                    ..Managed::default()
                };
            }
        };
        let mut b = self
            .inner
            .http
            .request(method, url)
            .header(header::ACCEPT, FHIR_JSON);
        if let Some(h) = grant.header {
            b = b.header(header::AUTHORIZATION, h);
        }
        if let Some(v) = body {
            let bytes = serde_json::to_vec(v).unwrap_or_default();
            b = b.header(header::CONTENT_TYPE, FHIR_JSON).body(bytes);
        }
        match b.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let location = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = resp
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                Managed {
                    status: Some(status),
                    body,
                    location,
                    error: None,
                }
            }
            Err(e) => Managed {
                error: Some(e.to_string()),
                ..Managed::default()
            },
        }
    }

    /// Installs the write tagger (once; later calls are ignored).
    pub fn set_tagger(&self, tagger: Tagger) {
        let _ = self.inner.tagger.set(tagger);
    }

    /// The subscriptions a written resource matches.
    pub(super) fn tags(&self, resource_type: &str, resource: &Value) -> Vec<String> {
        self.inner
            .tagger
            .get()
            .map(|t| (t.0)(resource_type, resource))
            .unwrap_or_default()
    }
}

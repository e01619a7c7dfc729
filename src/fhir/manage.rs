//! Management calls that are not interactions under test: creating, polling and deleting
//! the run's Subscriptions and asking `$events` for replays. Authorized like every other
//! request, sent directly, never recorded as history interactions (the caller records
//! what became of each subscription); a failure is data, not `Err`.
//!
//! Also the write tagger: a function the run installs that names, for each write, the
//! subscriptions its resource matches ([`crate::history::Op::notify`]). A transaction or
//! batch Bundle is tagged entry by entry, from each entry's resource (its request's
//! resource type when the resource does not say); the Bundle's own tags are their union.

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
    /// Sends `method path` (relative to the base, a query allowed, or an absolute URL)
    /// with an optional JSON body, authorized, without recording it.
    pub async fn manage(&self, method: Method, path: &str, body: Option<&Value>) -> Managed {
        let url = match url::Url::parse(path) {
            Ok(u) => u,
            Err(_) => {
                // The query goes in the query, not (escaped) into the path.
                let (path, query) = match path.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (path, None),
                };
                let mut u = self.url(path);
                u.set_query(query);
                u
            }
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

    /// The subscriptions a written resource matches; for a `Bundle`, the union of its
    /// entries' ([`Client::entry_tags`]).
    pub(super) fn tags(&self, resource_type: &str, resource: &Value) -> Vec<String> {
        let Some(t) = self.inner.tagger.get() else {
            return Vec::new();
        };
        if resource_type != "Bundle" && type_of(resource) != Some("Bundle") {
            return (t.0)(resource_type, resource);
        }
        let mut all: Vec<String> = entry_tags(t, resource).into_iter().flatten().collect();
        all.sort();
        all.dedup();
        all
    }

    /// Per entry of a transaction or batch Bundle, in order: the subscriptions its
    /// resource matches (what is owed once that entry is acknowledged).
    pub fn entry_tags(&self, bundle: &Value) -> Vec<Vec<String>> {
        match self.inner.tagger.get() {
            Some(t) => entry_tags(t, bundle),
            None => bundle_entries(bundle).map(|_| Vec::new()).collect(),
        }
    }
}

fn type_of(resource: &Value) -> Option<&str> {
    resource.get("resourceType").and_then(Value::as_str)
}

fn bundle_entries(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Each entry's tags: its resource's type, else the type its request URL names
/// (`Observation`, `Observation/1`, `Observation?identifier=…`). No resource (a DELETE,
/// a GET): nothing owed.
fn entry_tags(t: &Tagger, bundle: &Value) -> Vec<Vec<String>> {
    bundle_entries(bundle)
        .map(|e| {
            let Some(resource) = e.get("resource") else {
                return Vec::new();
            };
            let from_url = e
                .pointer("/request/url")
                .and_then(Value::as_str)
                .and_then(|u| u.split(['/', '?']).next());
            match type_of(resource).or(from_url) {
                Some(rt) => (t.0)(rt, resource),
                None => Vec::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finished_encounters() -> Tagger {
        Tagger(Arc::new(|rt: &str, r: &Value| {
            let finished = r.get("status").and_then(Value::as_str) == Some("finished");
            match rt == "Encounter" && finished {
                true => vec!["discharges".to_owned()],
                false => Vec::new(),
            }
        }))
    }

    #[test]
    fn a_bundle_is_tagged_entry_by_entry() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Encounter", "status": "finished"},
             "request": {"method": "POST", "url": "Encounter"}},
            {"resource": {"resourceType": "Encounter", "status": "in-progress"},
             "request": {"method": "PUT", "url": "Encounter/e2"}},
            {"request": {"method": "DELETE", "url": "Encounter/e3"}},
            {"resource": {"status": "finished"}, "request": {"method": "PUT", "url": "Encounter/e4"}},
        ]});
        let tags = entry_tags(&finished_encounters(), &bundle);
        let discharges = vec!["discharges".to_owned()];
        assert_eq!(tags, vec![discharges.clone(), vec![], vec![], discharges]);
        assert!(entry_tags(&finished_encounters(), &json!({"resourceType": "Bundle"})).is_empty());
    }
}

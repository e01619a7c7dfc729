//! The one HTTP client for FHIR R4 every interaction goes through. Each call records an
//! invocation and exactly one completion (`ok` / `fail` / `info`) in the history and a
//! latency sample, retries as the scenario's policy allows, and returns what the caller
//! needs (id, version, body) as data — a 503, a reset or a timeout is an outcome, not an
//! `Err`. Ids, versionIds and ETags stay opaque; `Location`s may be absolute or relative;
//! a 201 need not carry a body; the `Location` and `ETag` seen, and the OperationOutcome
//! of a failure (which says which vendor error it is), are returned too. Authentication
//! (`auth`) adds the `Authorization` header and re-authenticates once on a 401; `tls`
//! sets certificate verification. Uses `history`, `metrics` and
//! `vocab` (the ledger and its request header), nothing above them.

pub mod auth;
mod backoff;
mod exchange;
pub mod manage;
pub mod recorder;
pub mod response;
pub mod tls;
mod transaction;

#[cfg(test)]
mod props;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::history::{ErrorClass, Interaction, Op, Outcome, Phase, Seen};
use crate::vocab::ledger::Ledger;
pub use exchange::{Head, UNANSWERED, classify};
pub use recorder::{Note, Recorder};
pub use tls::Tls;
pub use transaction::{Entry, EntryReply, entry_content};

const FHIR_JSON: &str = "application/fhir+json";

/// The largest response body read unless the scenario says otherwise (16 MiB).
pub const DEFAULT_MAX_BODY: u64 = 16 << 20;

/// When the client re-sends an interaction that did not end `ok`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryPolicy {
    /// Never.
    #[default]
    None,
    /// Only what is safe to repeat: reads, conditional creates, `If-Match` updates.
    IdempotentOnly,
    /// Everything, the way a careless integration does (duplicates follow).
    Naive,
}

/// Retry settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retry {
    pub policy: RetryPolicy,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub backoff: Duration,
    /// The longest wait a 429's or 503's `Retry-After` is honoured for.
    pub max_retry_after: Duration,
}

/// The default cap on a `Retry-After` wait.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

impl Default for Retry {
    fn default() -> Self {
        Self {
            policy: RetryPolicy::None,
            max_attempts: 1,
            backoff: Duration::from_millis(100),
            max_retry_after: MAX_RETRY_AFTER,
        }
    }
}

impl Retry {
    /// How long to wait before attempt `tries + 1`: a 429's or 503's `Retry-After` (up
    /// to `max_retry_after`), else the backoff times the attempts made.
    pub fn wait(&self, reply: &Reply, tries: u32) -> Duration {
        match (reply.status, reply.retry_after) {
            (Some(429 | 503), Some(after)) => after.min(self.max_retry_after),
            _ => (self.backoff * tries).min(MAX_RETRY_AFTER),
        }
    }
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub base: Url,
    pub timeout: Duration,
    pub retry: Retry,
    /// Identifier systems starting with this are the harness's.
    pub harness_prefix: String,
    /// `Prefer` header to send on writes (`return=representation`), if any.
    pub prefer: Option<String>,
    /// The fault proxy's ledger, to say which fault touched an interaction.
    pub ledger: Option<Ledger>,
    /// How the client authenticates (the scenario's `[auth]`).
    pub auth: auth::Config,
    /// Certificate verification (the scenario's `[tls]`, `--insecure`); the report
    /// records `tls.is_insecure()`.
    pub tls: Tls,
}

/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    settings: Settings,
    recorder: Recorder,
    auth: auth::Auth,
    /// The largest body read; a larger one drops the connection.
    max_body: u64,
    /// Waits between connection attempts to a server that refuses them.
    backoff: backoff::Backoff,
    /// Names the subscriptions each write matches (`manage`).
    tagger: std::sync::OnceLock<manage::Tagger>,
}

/// Who is asking, and why: the context of one call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ctx {
    pub process: u64,
    pub phase: Phase,
    pub step: Option<&'static str>,
    /// The intended start (open model): latency is measured from it.
    pub intended: Option<Instant>,
    /// The scenario's user group (its index), for per-group latency.
    pub group: Option<u16>,
}

/// What came back, for the caller.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// History index of the (last) invocation.
    pub index: u64,
    pub outcome: Option<Outcome>,
    pub status: Option<u16>,
    pub error: Option<ErrorClass>,
    pub id: Option<String>,
    pub version: Option<String>,
    pub body: Option<Value>,
    pub seen: Vec<Seen>,
    pub next: Option<String>,
    /// How many attempts were made.
    pub attempts: u32,
    /// The server's `Retry-After` (seconds, or an HTTP date less the time now).
    pub retry_after: Option<Duration>,
    /// The `Location` (or `Content-Location`) header as sent, absolute or relative.
    pub location: Option<String>,
    /// The `ETag` header as sent.
    pub etag: Option<String>,
    /// What was wrong with the answer (a malformed header, a body that is not what was
    /// asked for), recorded as the completion's detail.
    pub note: Option<String>,
    /// For a transaction: what became of each entry, in order.
    pub entries: Vec<EntryReply>,
    /// The body as received, kept only while bodies are stored (`--store-bodies`) and
    /// until it is handed to the recorder.
    pub raw: Option<Vec<u8>>,
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        self.outcome == Some(Outcome::Ok)
    }
}

/// A failure to build the client: bad input (no secret in any message).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Ca(#[from] tls::CaError),
    #[error(transparent)]
    Auth(#[from] auth::Error),
}

/// One request, ready to send (and re-send).
struct Request {
    op: Op,
    method: Method,
    url: Url,
    body: Option<Bytes>,
    headers: Vec<(&'static str, String)>,
    /// A transaction's entries, each recorded as an invocation of its own.
    entries: Vec<Op>,
}

impl Client {
    /// Builds the HTTP client and loads the auth secrets and key (no network yet).
    pub fn new(settings: Settings, recorder: Recorder) -> Result<Client, BuildError> {
        let builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        let http = tls::configure(builder, &settings.tls)?.build()?;
        let auth = auth::Auth::new(&settings.auth)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                settings,
                recorder,
                auth,
                max_body: DEFAULT_MAX_BODY,
                backoff: backoff::Backoff::default(),
                tagger: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The same client reading bodies of at most `bytes` (`[target] max_body`). Only
    /// before the client is shared (cloned); later it changes nothing.
    pub fn with_max_body(mut self, bytes: u64) -> Client {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_body = bytes.max(1);
        }
        self
    }

    /// Authenticates now (SMART: discovery and a first token), so a refusal stops the
    /// run before any load. A no-op for the other methods.
    pub async fn authenticate(&self) -> Result<(), auth::Error> {
        let io = self.auth_io(0, Phase::Load);
        self.inner.auth.grant(&io).await.map(|_| ())
    }

    /// Authenticates now for `phase` (the token request is recorded under it).
    pub async fn authenticate_in(&self, process: u64, phase: Phase) -> Result<(), auth::Error> {
        let io = self.auth_io(process, phase);
        self.inner.auth.grant(&io).await.map(|_| ())
    }

    /// The `scope` the server granted with the current SMART token, when it said.
    pub fn granted_scope(&self) -> Option<String> {
        self.inner.auth.granted_scope()
    }

    fn auth_io(&self, process: u64, phase: Phase) -> auth::Io<'_> {
        auth::Io {
            http: &self.inner.http,
            recorder: &self.inner.recorder,
            base: &self.inner.settings.base,
            process,
            phase,
        }
    }

    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.inner.settings.base.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base_path}/{path}"));
        url
    }

    /// `POST /Type`; with `conditional`, `If-None-Exist: identifier=system|value`.
    pub async fn create(
        &self,
        ctx: Ctx,
        resource: &Value,
        identifier: &str,
        conditional: bool,
    ) -> Reply {
        let resource_type = type_of(resource);
        let mut headers = vec![("content-type", FHIR_JSON.to_owned())];
        if let Some(prefer) = &self.inner.settings.prefer {
            headers.push(("prefer", prefer.clone()));
        }
        let f = if conditional {
            headers.push((
                "if-none-exist",
                format!("identifier={}", encode(identifier)),
            ));
            Interaction::ConditionalCreate
        } else {
            Interaction::Create
        };
        let op = self.op(
            ctx,
            f,
            &resource_type,
            None,
            Some(identifier),
            Some(resource),
        );
        let req = Request {
            op,
            method: Method::POST,
            url: self.url(&resource_type),
            body: Some(Bytes::from(
                serde_json::to_vec(resource).unwrap_or_default(),
            )),
            headers,
            entries: Vec::new(),
        };
        self.send(ctx, req).await
    }

    /// `PUT /Type/id`, with `If-Match: W/"version"` when a version is given.
    pub async fn update(
        &self,
        ctx: Ctx,
        resource: &Value,
        id: &str,
        if_match: Option<&str>,
    ) -> Reply {
        let resource_type = type_of(resource);
        let identifier =
            response::harness_identifiers(resource, &self.inner.settings.harness_prefix)
                .into_iter()
                .next();
        let mut headers = vec![("content-type", FHIR_JSON.to_owned())];
        if let Some(prefer) = &self.inner.settings.prefer {
            headers.push(("prefer", prefer.clone()));
        }
        if let Some(v) = if_match {
            headers.push(("if-match", format!("W/\"{v}\"")));
        }
        let mut op = self.op(
            ctx,
            Interaction::Update,
            &resource_type,
            Some(id),
            identifier.as_deref(),
            Some(resource),
        );
        op.version = if_match.map(str::to_owned);
        let req = Request {
            op,
            method: Method::PUT,
            url: self.url(&format!("{resource_type}/{}", encode_path(id))),
            body: Some(Bytes::from(
                serde_json::to_vec(resource).unwrap_or_default(),
            )),
            headers,
            entries: Vec::new(),
        };
        self.send(ctx, req).await
    }

    /// `GET /Type/id`.
    pub async fn read(&self, ctx: Ctx, resource_type: &str, id: &str) -> Reply {
        let op = self.op(ctx, Interaction::Read, resource_type, Some(id), None, None);
        let url = self.url(&format!("{resource_type}/{}", encode_path(id)));
        self.send(ctx, get(op, url)).await
    }

    /// `GET /Type/id/_history`.
    pub async fn history(&self, ctx: Ctx, resource_type: &str, id: &str) -> Reply {
        let op = self.op(
            ctx,
            Interaction::History,
            resource_type,
            Some(id),
            None,
            None,
        );
        let url = self.url(&format!("{resource_type}/{}/_history", encode_path(id)));
        self.send(ctx, get(op, url)).await
    }

    /// `GET /Type?params`. When searching by a harness identifier, pass it as `identifier`
    /// so the history says which write the search is looking for.
    pub async fn search(
        &self,
        ctx: Ctx,
        resource_type: &str,
        params: &[(&str, &str)],
        identifier: Option<&str>,
    ) -> Reply {
        let mut url = self.url(resource_type);
        url.query_pairs_mut().extend_pairs(params);
        let mut op = self.op(
            ctx,
            Interaction::Search,
            resource_type,
            None,
            identifier,
            None,
        );
        op.query = url.query().map(str::to_owned);
        self.send(ctx, get(op, url)).await
    }

    /// Follows a `next` link exactly as the server gave it, on the target's origin only:
    /// a link elsewhere (or unparseable) is refused, recorded as a `fail` never sent.
    pub async fn next_page(&self, ctx: Ctx, resource_type: &str, next: &str) -> Reply {
        let base = &self.inner.settings.base;
        let mut op = self.op(ctx, Interaction::Search, resource_type, None, None, None);
        let url = match Url::parse(next).or_else(|_| base.join(next)) {
            Ok(url) => url,
            Err(_) => {
                let why = "next link is not a URL: not followed".to_owned();
                return self.refuse(ctx, get(op, base.clone()), why).await;
            }
        };
        op.query = url.query().map(str::to_owned);
        if url.origin() != base.origin() {
            let why = format!(
                "next link points to another origin ({}): refused, never followed off the target",
                url.origin().ascii_serialization()
            );
            return self.refuse(ctx, get(op, url), why).await;
        }
        self.send(ctx, get(op, url)).await
    }

    /// Records a `next` link not followed because it loops back to a page already read.
    pub async fn next_loop(&self, ctx: Ctx, resource_type: &str, next: &str) -> Reply {
        let mut op = self.op(ctx, Interaction::Search, resource_type, None, None, None);
        let url = Url::parse(next).or_else(|_| self.inner.settings.base.join(next));
        op.query = url.as_ref().ok().and_then(|u| u.query().map(str::to_owned));
        let url = url.unwrap_or_else(|_| self.inner.settings.base.clone());
        let why = "next link loops back to a page already read: paging stopped".to_owned();
        self.refuse(ctx, get(op, url), why).await
    }

    /// `GET /metadata`.
    pub async fn capabilities(&self, ctx: Ctx) -> Reply {
        let op = self.op(ctx, Interaction::Capabilities, "", None, None, None);
        self.send(ctx, get(op, self.url("metadata"))).await
    }

    fn op(
        &self,
        ctx: Ctx,
        f: Interaction,
        rt: &str,
        id: Option<&str>,
        identifier: Option<&str>,
        body: Option<&Value>,
    ) -> Op {
        Op {
            f,
            resource_type: rt.to_owned(),
            id: id.map(str::to_owned),
            identifier: identifier.map(str::to_owned),
            content: body.map(crate::history::Content::of),
            notify: match body {
                Some(b) if f.is_write() => self.tags(rt, b),
                _ => Vec::new(),
            },
            phase: ctx.phase,
            step: ctx.step.map(str::to_owned),
            ..Op::default()
        }
    }

    /// Sends, retrying as the policy allows; every attempt is its own history entry.
    /// A 401 for a renewable token re-authenticates and re-sends once, outside the
    /// retry budget (a 401 means the request was not processed).
    async fn send(&self, ctx: Ctx, mut req: Request) -> Reply {
        let retry = self.inner.settings.retry;
        let mut first = None;
        let mut first_entries: Vec<u64> = Vec::new();
        let (mut attempt, mut tries, mut reauthenticated) = (1, 1, false);
        loop {
            req.op.retry_of = first;
            for (op, i) in req.entries.iter_mut().zip(&first_entries) {
                op.retry_of = Some(*i);
            }
            let intended = if attempt == 1 { ctx.intended } else { None };
            let (mut reply, token) = self.attempt(ctx, &req, intended).await;
            reply.attempts = attempt;
            first.get_or_insert(reply.index);
            if first_entries.is_empty() {
                first_entries = reply.entries.iter().map(|e| e.index).collect();
            }
            attempt += 1;
            if let (Some(401), Some(generation), false) = (reply.status, token, reauthenticated) {
                reauthenticated = true;
                self.inner.auth.invalidate(generation);
                continue;
            }
            if tries >= retry.max_attempts || !may_retry(retry.policy, &req, &reply) {
                return reply;
            }
            tokio::time::sleep(retry.wait(&reply, tries)).await;
            tries += 1;
        }
    }
}

/// The operation name in metrics: `create Observation`, `search Patient`; a visibility
/// probe's is `probe search Patient`, a scope probe's `scope_probe create Observation`.
pub fn label(op: &Op) -> String {
    let name = if op.resource_type.is_empty() {
        op.f.as_str().to_owned()
    } else {
        format!("{} {}", op.f, op.resource_type)
    };
    match op.phase {
        Phase::Probe => format!("probe {name}"),
        Phase::ScopeProbe => format!("scope_probe {name}"),
        _ => name,
    }
}

fn get(op: Op, url: Url) -> Request {
    Request {
        op,
        method: Method::GET,
        url,
        body: None,
        headers: Vec::new(),
        entries: Vec::new(),
    }
}

fn type_of(resource: &Value) -> String {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Whether the policy lets this request be re-sent after this reply.
fn may_retry(policy: RetryPolicy, req: &Request, reply: &Reply) -> bool {
    let retryable = match reply.outcome {
        Some(Outcome::Ok) | None => false,
        _ => matches!(
            reply.error,
            Some(
                ErrorClass::Connect
                    | ErrorClass::Timeout
                    | ErrorClass::Io
                    | ErrorClass::RateLimited
                    | ErrorClass::ServerError
            )
        ),
    };
    let idempotent = match req.op.f {
        // A transaction of conditional creates only is safe to repeat.
        Interaction::Transaction => {
            !req.entries.is_empty()
                && req
                    .entries
                    .iter()
                    .all(|e| e.f == Interaction::ConditionalCreate)
        }
        Interaction::Create | Interaction::Batch => false,
        Interaction::Update => req.op.version.is_some(),
        _ => true,
    };
    retryable
        && match policy {
            RetryPolicy::None => false,
            RetryPolicy::IdempotentOnly => idempotent,
            RetryPolicy::Naive => true,
        }
}

/// Percent-encodes a search parameter value (`|` stays readable as `%7C`).
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn encode_path(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-")
        .replace("%2E", ".")
}

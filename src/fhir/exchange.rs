//! One exchange with the server: authorize, record the invocation, send, read the
//! answer (status, `Location`, `ETag`, `Retry-After`, the body's resource or Bundle),
//! record the completion and its latency sample. Retries and re-authentication are the
//! caller's ([`Client`]'s `send`); this is a single attempt.

use std::time::Instant;

use reqwest::{RequestBuilder, header};
use serde_json::Value;

use super::{Client, Ctx, FHIR_JSON, Note, Reply, Request, label, response};
use crate::history::{Completion, ErrorClass, Interaction, Op, Outcome, Phase};
use crate::metrics::Sample;
use crate::vocab::ledger::REQUEST_HEADER;

/// The detail of a request still unanswered when the run stopped waiting for it.
pub const UNANSWERED: &str = crate::history::ABANDONED;

/// An attempt whose invocation is recorded and whose completion is not yet: dropped
/// armed (the run cut it off), it records the completion `info`.
struct Unanswered<'a> {
    client: &'a Client,
    ctx: Ctx,
    index: u64,
    op: &'a Op,
    started: Instant,
    armed: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let latency_us = self.started.elapsed().as_micros() as u64;
        let note = self
            .client
            .unanswered(self.ctx, self.index, self.op, latency_us);
        if !self.client.inner.recorder.try_send(note) {
            tracing::warn!(
                "history: the completion of invocation {} was lost (the collector is full or gone)",
                self.index
            );
        }
    }
}

impl Client {
    /// One attempt: authorize, invoke, send, classify, complete. Also returns the token
    /// generation sent, when it can be renewed.
    pub(super) async fn attempt(
        &self,
        ctx: Ctx,
        req: &Request,
        intended: Option<Instant>,
    ) -> (Reply, Option<u64>) {
        let started = intended.unwrap_or_else(Instant::now);
        let grant = self
            .inner
            .auth
            .grant(&self.auth_io(ctx.process, req.op.phase))
            .await;
        self.inner.backoff.wait().await;
        let index = self.inner.recorder.invoke(ctx.process, &req.op).await;
        let entries = self.invoke_entries(ctx, req, index).await;
        let mut unanswered = Unanswered {
            client: self,
            ctx,
            index,
            op: &req.op,
            started,
            armed: true,
        };
        let (mut reply, generation, detail) = match grant {
            // Nothing was sent: known not to have happened.
            Err(e) => {
                tracing::debug!("{} not sent: {e}", label(&req.op));
                let reply = Reply {
                    outcome: Some(Outcome::Fail),
                    error: Some(ErrorClass::Auth),
                    ..Reply::default()
                };
                (reply, None, Some("no access token".to_owned()))
            }
            Ok(grant) => {
                let result = self.build(req, index, grant.header).send().await;
                (self.reply_of(&req.op, result).await, grant.generation, None)
            }
        };
        reply.index = index;
        let latency_us = started.elapsed().as_micros() as u64;
        self.complete(ctx, req, &mut reply, latency_us, detail)
            .await;
        unanswered.armed = false;
        if let Some(raw) = reply.raw.take() {
            let at = (req.method.as_str(), req.url.as_str());
            self.inner
                .recorder
                .body(index, at, reply.status, &raw)
                .await;
        }
        self.complete_entries(ctx, req, &entries, &mut reply).await;
        (reply, generation)
    }

    /// Records a transaction's entries as invocations of their own, right after the
    /// transaction's (`index`); returns their indexes.
    async fn invoke_entries(&self, ctx: Ctx, req: &Request, index: u64) -> Vec<u64> {
        let mut out = Vec::with_capacity(req.entries.len());
        for op in &req.entries {
            let mut op = op.clone();
            if let Some(e) = &mut op.entry_of {
                e.transaction = index;
            }
            out.push(self.inner.recorder.invoke_entry(ctx.process, &op).await);
        }
        out
    }

    /// Completes each entry with what the transaction's reply said of it.
    async fn complete_entries(&self, ctx: Ctx, req: &Request, indexes: &[u64], reply: &mut Reply) {
        if req.entries.is_empty() {
            return;
        }
        let mut entries = super::transaction::entry_outcomes(reply, &req.entries);
        for (e, &index) in entries.iter_mut().zip(indexes) {
            e.index = index;
            let completion = Completion {
                invoke: index,
                status: e.status,
                error: e.error,
                id: e.id.clone(),
                version: e.version.clone(),
                detail: e.detail.clone(),
                ..Completion::default()
            };
            let outcome = e.outcome.unwrap_or(Outcome::Info);
            self.inner
                .recorder
                .complete_entry(ctx.process, outcome, &completion)
                .await;
        }
        reply.entries = entries;
    }

    async fn reply_of(&self, op: &Op, result: reqwest::Result<reqwest::Response>) -> Reply {
        match result {
            Ok(resp) => {
                self.inner.backoff.connected();
                self.interpret(op, resp).await
            }
            Err(err) => {
                if err.is_connect() {
                    self.inner.backoff.failed();
                }
                let (outcome, class) = response::classify_transport(&err);
                Reply {
                    outcome: Some(outcome),
                    error: Some(class),
                    ..Reply::default()
                }
            }
        }
    }

    fn build(
        &self,
        req: &Request,
        index: u64,
        authorization: Option<header::HeaderValue>,
    ) -> RequestBuilder {
        let mut b = self
            .inner
            .http
            .request(req.method.clone(), req.url.clone())
            .header(header::ACCEPT, FHIR_JSON)
            .header(REQUEST_HEADER, index.to_string());
        if let Some(value) = authorization {
            b = b.header(header::AUTHORIZATION, value);
        }
        for (name, value) in &req.headers {
            b = b.header(*name, value);
        }
        if let Some(body) = &req.body {
            b = b.body(body.clone());
        }
        b
    }

    async fn interpret(&self, op: &Op, resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let h = resp.headers();
        let get = |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
        let head = Head {
            location: get(header::LOCATION).or_else(|| get(header::CONTENT_LOCATION)),
            etag: get(header::ETAG),
            retry_after: get(header::RETRY_AFTER),
        };
        let mut reply = read_head(op, status, &head);
        match response::read_capped(resp, self.inner.max_body).await {
            Ok(bytes) => {
                read_body(op, &self.inner.settings.harness_prefix, &bytes, &mut reply);
                if self.inner.recorder.stores_bodies() {
                    reply.raw = Some(bytes);
                }
            }
            Err(broken) => {
                let (class, why) = broken.describe(self.inner.max_body);
                body_broken(op, &mut reply, class, &why);
            }
        }
        reply
    }

    /// Records an interaction refused before sending (a `next` link off the target, or
    /// looping back): a `fail` whose detail says why.
    pub(super) async fn refuse(&self, ctx: Ctx, req: Request, why: String) -> Reply {
        let index = self.inner.recorder.invoke(ctx.process, &req.op).await;
        let mut reply = Reply {
            index,
            outcome: Some(Outcome::Fail),
            error: Some(ErrorClass::BadResponse),
            ..Reply::default()
        };
        tracing::debug!("{}: {why}", label(&req.op));
        self.complete(ctx, &req, &mut reply, 0, Some(why)).await;
        reply
    }

    /// The `info` completion of an attempt dropped before its answer (the run stopped).
    fn unanswered(&self, ctx: Ctx, index: u64, op: &Op, latency_us: u64) -> Note {
        let completion = Completion {
            invoke: index,
            error: Some(ErrorClass::Timeout),
            detail: Some(UNANSWERED.to_owned()),
            latency_us,
            ..Completion::default()
        };
        let sample = Sample {
            op: label(op),
            outcome: Outcome::Info,
            error: Some(ErrorClass::Timeout),
            at_us: self.inner.recorder.now_us(),
            latency_us,
            phase: op.phase,
            group: ctx.group,
        };
        self.inner
            .recorder
            .done(ctx.process, Outcome::Info, &completion, sample)
    }

    async fn complete(
        &self,
        ctx: Ctx,
        req: &Request,
        reply: &mut Reply,
        latency_us: u64,
        detail: Option<String>,
    ) {
        let recorder = &self.inner.recorder;
        let fault = self.inner.settings.ledger.as_ref().and_then(|l| {
            let touched = l.touched(&reply.index.to_string());
            (!touched.is_empty()).then(|| touched.join(","))
        });
        let write = req.op.f.is_write();
        let outcome = reply.outcome.unwrap_or(Outcome::Info);
        let completion = Completion {
            invoke: reply.index,
            status: reply.status,
            error: reply.error,
            id: if write { reply.id.clone() } else { None },
            version: if write { reply.version.clone() } else { None },
            // Lent to the record while it is serialized, then given back to the reply.
            seen: std::mem::take(&mut reply.seen),
            total: None,
            fault,
            detail: detail.or_else(|| reply.note.clone()),
            latency_us,
        };
        let sample = Sample {
            op: label(&req.op),
            outcome,
            error: reply.error,
            at_us: recorder.now_us(),
            latency_us,
            phase: req.op.phase,
            group: ctx.group,
        };
        let note = recorder.done(ctx.process, outcome, &completion, sample);
        reply.seen = completion.seen;
        recorder.send(note).await;
    }
}

/// The headers an answer is read by (as sent; a header that is not text is absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct Head<'a> {
    /// `Location`, else `Content-Location`.
    pub location: Option<&'a str>,
    pub etag: Option<&'a str>,
    pub retry_after: Option<&'a str>,
}

/// What an answer's status and headers say, before its body.
fn read_head(op: &Op, status: u16, head: &Head<'_>) -> Reply {
    let (outcome, error) = response::classify_status(op.f, status);
    let mut reply = Reply {
        outcome: Some(outcome),
        status: Some(status),
        error,
        ..Reply::default()
    };
    if let Some(location) = head.location {
        (reply.id, reply.version) = response::parse_location(location, &op.resource_type);
        if reply.id.is_none() && op.f.is_write() && (200..300).contains(&status) {
            reply.note = Some(format!(
                "malformed Location (names no {}/id): not used",
                op.resource_type
            ));
        }
        reply.location = Some(location.to_owned());
    }
    if let Some(tag) = head.etag {
        match response::parse_etag(tag) {
            Some(v) => reply.version = Some(v),
            // Never the version an If-Match is built from.
            None => note(
                &mut reply,
                "malformed ETag (not W/\"…\" or \"…\"): not used",
            ),
        }
    }
    reply.etag = head.etag.map(str::to_owned);
    reply.retry_after = head.retry_after.and_then(response::retry_after);
    reply
}

/// How the client classifies one whole answer — status, headers and a body read in full
/// — for `op`, with `prefix` the harness's identifier prefix: the pure part of an
/// exchange, what the property tests and the fuzz targets drive. Never panics.
pub fn classify(op: &Op, prefix: &str, status: u16, head: &Head<'_>, body: &[u8]) -> Reply {
    let mut reply = read_head(op, status, head);
    read_body(op, prefix, body, &mut reply);
    reply
}

/// What a body says, once read whole: a resource, a Bundle, or a broken answer.
fn read_body(op: &Op, prefix: &str, bytes: &[u8], reply: &mut Reply) {
    if bytes.is_empty() {
        return;
    }
    if reply.outcome != Some(Outcome::Ok) {
        // An OperationOutcome says which error it is (a vendor code): keep it.
        reply.body = serde_json::from_slice::<Value>(bytes)
            .ok()
            .filter(|b| b.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome"));
        return;
    }
    if reply.status == Some(404) || reply.status == Some(410) {
        return;
    }
    let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
        let why = format!(
            "{} answered with a body that is not JSON (or cut short)",
            reply.status.unwrap_or_default()
        );
        body_broken(op, reply, ErrorClass::BadResponse, &why);
        return;
    };
    if let Some(why) = response::unexpected_type(op.f, &op.resource_type, &body) {
        body_broken(op, reply, ErrorClass::BadResponse, &why);
        return;
    }
    match op.f {
        Interaction::Search | Interaction::History => {
            let view = response::bundle(&body, prefix);
            // The audit trail's events are the reconciliation's to read, not the
            // history's to keep (half a million of them after a surge).
            if op.phase != Phase::Audit {
                reply.seen = view.seen;
            }
            reply.next = view.next;
        }
        Interaction::Capabilities
        | Interaction::Token
        | Interaction::Transaction
        | Interaction::Batch => {}
        _ if body.get("resourceType").and_then(Value::as_str)
            == Some(op.resource_type.as_str()) =>
        {
            if let Some(seen) = response::seen(&body, prefix) {
                reply.id.get_or_insert_with(|| seen.id.clone());
                if reply.version.is_none() {
                    reply.version.clone_from(&seen.version);
                }
                if matches!(op.f, Interaction::Read | Interaction::Vread) {
                    reply.seen.push(seen);
                }
            }
        }
        _ => {}
    }
    reply.body = Some(body);
}

/// Adds to a reply's note.
fn note(reply: &mut Reply, why: &str) {
    reply.note = Some(match reply.note.take() {
        Some(before) => format!("{before}; {why}"),
        None => why.to_owned(),
    });
}

/// An answer whose body could not be taken: a read learned nothing (`fail`); a write the
/// status acknowledged is no longer known to have happened as answered (`info`); an
/// outcome already `fail` or `info` stays.
fn body_broken(op: &Op, reply: &mut Reply, class: ErrorClass, why: &str) {
    if reply.outcome == Some(Outcome::Ok) {
        let write = op.f.is_write();
        reply.outcome = Some(if write { Outcome::Info } else { Outcome::Fail });
        reply.error = Some(class);
    }
    reply.seen.clear();
    reply.next = None;
    note(reply, why);
}

//! Transaction Bundles: `POST /` with `type: transaction`, each entry a create (with
//! `ifNoneExist` when conditional) that other entries may reference by its `fullUrl`
//! (`urn:uuid:…`). The transaction is one interaction with one latency sample; each
//! entry is also recorded as an invocation of its own (`Op::entry_of`), right after the
//! transaction's, and completed right after it with what the transaction-response said
//! of it: `response.status`, the id and version of `response.location` (absolute or
//! relative) and `response.etag`, all opaque. So the checker judges each entry like a
//! single write, and each entry carries the subscriptions its resource matches (`notify`);
//! the transaction's own invocation carries none. An entry's recorded digest leaves out the elements that reference
//! another entry's `fullUrl`: the server rewrites those to the id it assigns. Uses
//! `history` (the records) through the client; nothing else.

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, Ctx, FHIR_JSON, Reply, Request, encode, response, type_of};
use crate::history::{Content, EntryOf, ErrorClass, Interaction, Op, Outcome};

/// One entry the harness puts in a transaction: a create of `resource`.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub resource: &'a Value,
    /// The harness identifier (`system|value`) the resource carries.
    pub identifier: &'a str,
    /// The entry's `fullUrl` (`urn:uuid:…`), which other entries' references name.
    pub full_url: &'a str,
    /// With `ifNoneExist: identifier=…`: safe to repeat.
    pub conditional: bool,
}

/// What the transaction-response said of one entry (or what is known of it when the
/// transaction as a whole failed or its answer cannot be read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EntryReply {
    /// The entry's history invocation index.
    pub index: u64,
    pub outcome: Option<Outcome>,
    pub status: Option<u16>,
    pub error: Option<ErrorClass>,
    pub id: Option<String>,
    pub version: Option<String>,
    /// `response.location` and `response.etag` as the server wrote them.
    pub location: Option<String>,
    pub etag: Option<String>,
    /// Why the outcome is what it is, when it is not the entry's own 2xx.
    pub detail: Option<String>,
}

impl EntryReply {
    pub fn is_ok(&self) -> bool {
        self.outcome == Some(Outcome::Ok)
    }
}

impl Client {
    /// `POST /` with a transaction Bundle of `entries` (all creates). The reply's
    /// `entries` say what became of each, in order.
    pub async fn transaction(&self, ctx: Ctx, entries: &[Entry<'_>]) -> Reply {
        let urns: Vec<&str> = entries.iter().map(|e| e.full_url).collect();
        let items: Vec<Value> = entries.iter().map(bundle_entry).collect();
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": items});
        let mut op = self.op(ctx, Interaction::Transaction, "", None, None, None);
        op.entries = Some(entries.len() as u32);
        let entry_ops = entries
            .iter()
            .enumerate()
            .map(|(i, e)| self.entry_op(ctx, i, e, &urns))
            .collect();
        let mut headers = vec![("content-type", FHIR_JSON.to_owned())];
        if let Some(prefer) = &self.inner.settings.prefer {
            headers.push(("prefer", prefer.clone()));
        }
        let req = Request {
            op,
            method: Method::POST,
            url: self.inner.settings.base.clone(),
            body: Some(Bytes::from(serde_json::to_vec(&bundle).unwrap_or_default())),
            headers,
            entries: entry_ops,
        };
        self.send(ctx, req).await
    }

    /// The invocation recorded for entry `i` (its transaction index is set when sent).
    fn entry_op(&self, ctx: Ctx, i: usize, e: &Entry<'_>, urns: &[&str]) -> Op {
        let f = if e.conditional {
            Interaction::ConditionalCreate
        } else {
            Interaction::Create
        };
        let rt = type_of(e.resource);
        // Tagged with the subscriptions its resource matches, like a single write.
        let mut op = self.op(ctx, f, &rt, None, Some(e.identifier), Some(e.resource));
        op.content = Some(entry_content(e.resource, urns));
        op.entry_of = Some(EntryOf {
            transaction: 0,
            entry: i as u32,
        });
        op
    }
}

fn bundle_entry(e: &Entry<'_>) -> Value {
    let mut request = json!({"method": "POST", "url": type_of(e.resource)});
    if e.conditional {
        request["ifNoneExist"] = Value::String(format!("identifier={}", encode(e.identifier)));
    }
    json!({"fullUrl": e.full_url, "resource": e.resource, "request": request})
}

/// The digest recorded for an entry: of the resource without its top-level elements
/// that reference another entry's `fullUrl` (one of `urns`).
pub fn entry_content(resource: &Value, urns: &[&str]) -> Content {
    Content::of(&without_entry_references(resource, urns))
}

/// The resource without its top-level elements that reference one of `urns` (the
/// server rewrites those references, so what it stores is not what was sent there).
fn without_entry_references(resource: &Value, urns: &[&str]) -> Value {
    let mut out = resource.clone();
    if let Value::Object(map) = &mut out {
        map.retain(|_, v| !references(v, urns));
    }
    out
}

fn references(v: &Value, urns: &[&str]) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(k, v)| {
            (k == "reference" && v.as_str().is_some_and(|s| urns.contains(&s)))
                || references(v, urns)
        }),
        Value::Array(items) => items.iter().any(|v| references(v, urns)),
        _ => false,
    }
}

/// What became of each entry, from the transaction's reply: the transaction's own
/// outcome when it failed or is unknown; each entry's `response` when the transaction
/// was acknowledged and its response Bundle can be read; unknown (`info`) otherwise.
pub(super) fn entry_outcomes(reply: &Reply, ops: &[Op]) -> Vec<EntryReply> {
    let whole = |outcome, error, detail: &str| EntryReply {
        outcome: Some(outcome),
        status: reply.status,
        error,
        detail: Some(detail.to_owned()),
        ..EntryReply::default()
    };
    match reply.outcome {
        Some(Outcome::Ok) => {}
        Some(Outcome::Fail) => {
            let r = whole(Outcome::Fail, reply.error, "the transaction was refused");
            return vec![r; ops.len()];
        }
        _ => {
            let r = whole(
                Outcome::Info,
                reply.error,
                "the transaction's outcome is unknown",
            );
            return vec![r; ops.len()];
        }
    }
    let listed = reply
        .body
        .as_ref()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("transaction-response"))
        .and_then(|b| b.get("entry")?.as_array());
    let unknown = |why: &str| {
        let r = whole(Outcome::Info, Some(ErrorClass::BadResponse), why);
        vec![r; ops.len()]
    };
    match listed {
        None => {
            unknown("acknowledged without a transaction-response Bundle: entry outcomes unknown")
        }
        Some(items) if items.len() != ops.len() => unknown(&format!(
            "the transaction-response has {} entries for {} sent: entry outcomes unknown",
            items.len(),
            ops.len()
        )),
        Some(items) => items.iter().zip(ops).map(|(e, op)| one(e, op)).collect(),
    }
}

/// One entry of an acknowledged transaction, from its `response`.
fn one(entry: &Value, op: &Op) -> EntryReply {
    let response = entry.get("response");
    let text = |name: &str| {
        response
            .and_then(|r| r.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let status = text("status").and_then(|s| {
        let code = s.split_whitespace().next()?;
        code.parse::<u16>().ok()
    });
    let mut r = EntryReply {
        status,
        location: text("location"),
        etag: text("etag"),
        ..EntryReply::default()
    };
    let Some(code) = status.filter(|c| (200..300).contains(c)) else {
        r.outcome = Some(Outcome::Info);
        r.error = Some(ErrorClass::BadResponse);
        r.detail = Some(match status {
            Some(c) => format!("entry answered {c} in a transaction acknowledged as a whole"),
            None => "the transaction-response gives this entry no status".to_owned(),
        });
        return r;
    };
    r.outcome = Some(Outcome::Ok);
    if let Some(location) = &r.location {
        (r.id, r.version) = response::parse_location(location, &op.resource_type);
        if r.id.is_none() {
            r.detail = Some(format!(
                "malformed entry location (names no {}/id): not used",
                op.resource_type
            ));
        }
    }
    if let Some(v) = r.etag.as_deref().and_then(response::parse_etag) {
        r.version = Some(v);
    }
    if code == 200 && op.f != Interaction::ConditionalCreate {
        r.detail = Some("a create entry answered 200, not 201".to_owned());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(n: usize) -> Vec<Op> {
        (0..n)
            .map(|i| Op {
                f: Interaction::ConditionalCreate,
                resource_type: if i == 0 { "Condition" } else { "Observation" }.into(),
                ..Op::default()
            })
            .collect()
    }

    fn acked(body: Value) -> Reply {
        Reply {
            outcome: Some(Outcome::Ok),
            status: Some(200),
            body: Some(body),
            ..Reply::default()
        }
    }

    #[test]
    fn entries_take_their_own_status_location_and_etag() {
        let body = json!({"resourceType": "Bundle", "type": "transaction-response", "entry": [
            {"response": {"status": "201 Created", "location": "https://ehr.example/fhir/Condition/c-9/_history/a1", "etag": "W/\"a1\""}},
            {"response": {"status": "200", "location": "Observation/o 1"}},
        ]});
        let out = entry_outcomes(&acked(body), &ops(2));
        assert_eq!(out[0].outcome, Some(Outcome::Ok));
        assert_eq!(out[0].status, Some(201));
        assert_eq!(out[0].id.as_deref(), Some("c-9"));
        assert_eq!(out[0].version.as_deref(), Some("a1"));
        assert_eq!(out[1].status, Some(200), "a conditional match");
        assert_eq!(out[1].id, None, "an id with a space is not used");
        assert!(out[1].detail.as_deref().unwrap().contains("malformed"));
    }

    #[test]
    fn a_refused_or_unknown_transaction_is_every_entry_s_outcome() {
        let refused = Reply {
            outcome: Some(Outcome::Fail),
            status: Some(409),
            error: Some(ErrorClass::Conflict),
            ..Reply::default()
        };
        let out = entry_outcomes(&refused, &ops(3));
        assert_eq!(out.len(), 3);
        assert!(
            out.iter()
                .all(|e| e.outcome == Some(Outcome::Fail) && e.status == Some(409))
        );
        let timeout = Reply {
            outcome: Some(Outcome::Info),
            error: Some(ErrorClass::Timeout),
            ..Reply::default()
        };
        assert!(
            entry_outcomes(&timeout, &ops(2))
                .iter()
                .all(|e| e.outcome == Some(Outcome::Info))
        );
    }

    #[test]
    fn an_unreadable_response_leaves_every_entry_unknown() {
        let short =
            json!({"type": "transaction-response", "entry": [{"response": {"status": "201"}}]});
        let out = entry_outcomes(&acked(short), &ops(2));
        assert!(out.iter().all(|e| e.outcome == Some(Outcome::Info)));
        assert!(
            out[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("1 entries for 2")
        );
        let batch = json!({"type": "batch-response", "entry": []});
        assert!(
            entry_outcomes(&acked(batch), &ops(1))[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("without a transaction-response")
        );
        let failed_entry = json!({"type": "transaction-response", "entry": [{"response": {"status": "400 Bad Request"}}]});
        let e = &entry_outcomes(&acked(failed_entry), &ops(1))[0];
        assert_eq!((e.outcome, e.status), (Some(Outcome::Info), Some(400)));
    }

    #[test]
    fn elements_referencing_other_entries_are_left_out_of_the_digest() {
        let r = json!({"resourceType": "MedicationRequest", "status": "active",
            "subject": {"reference": "Patient/p1"},
            "reasonReference": [{"reference": "urn:uuid:c1"}]});
        let kept = without_entry_references(&r, &["urn:uuid:c1"]);
        assert!(kept.get("reasonReference").is_none());
        assert_eq!(kept["subject"]["reference"], "Patient/p1");
        assert_eq!(kept["status"], "active");
    }
}

//! Notification bodies as this server sends them: a classic R4 rest-hook POSTs the
//! resource itself (or nothing, for an empty payload; a ping on activation); a Backport
//! IG subscription POSTs a `history` Bundle whose first entry is the `Parameters`
//! status (`events-since-subscription-start`, one `notification-event` per event) and,
//! for `id-only` / `full-resource`, one entry per focus. Pure.

use serde_json::{Value, json};

use super::{Event, Sub};
use crate::vocab::notification::{Form, Payload};

/// The body (and its content type) of one notification; `None`: an empty POST.
pub fn event(sub: &Sub, e: &Event) -> Option<Vec<u8>> {
    match (sub.form, sub.payload) {
        (Form::RestHook, Payload::Empty) => None,
        (Form::RestHook, _) => Some(e.resource.to_vec()),
        (Form::Topic, _) => {
            let bundle = bundle(sub, "event-notification", e.number, &[e]);
            serde_json::to_vec(&bundle).ok()
        }
    }
}

/// The handshake sent when the subscription is created: a ping for classic rest-hook.
pub fn handshake(sub: &Sub) -> Option<Vec<u8>> {
    match sub.form {
        Form::RestHook => None,
        Form::Topic => serde_json::to_vec(&bundle(sub, "handshake", 0, &[])).ok(),
    }
}

/// A heartbeat: the status with `events-since-subscription-start`, no event.
pub fn heartbeat(sub: &Sub) -> Option<Vec<u8>> {
    serde_json::to_vec(&bundle(sub, "heartbeat", sub.events_so_far(), &[])).ok()
}

/// The answer to `$events`: a `query-event` Bundle with the retained events asked for.
pub fn query(sub: &Sub, since: u64, events: &[&Event]) -> Value {
    bundle(sub, "query-event", since, events)
}

/// The answer to `$status`: a `searchset` Bundle of the `query-status` Parameters,
/// `events-since-subscription-start` the events so far.
pub fn status(sub: &Sub) -> Value {
    let mut b = bundle(sub, "query-status", sub.events_so_far(), &[]);
    b["type"] = json!("searchset");
    b
}

fn bundle(sub: &Sub, kind: &str, since: u64, events: &[&Event]) -> Value {
    let mut params = vec![
        json!({"name": "subscription", "valueReference": {"reference": format!("{}Subscription/{}", sub.base, sub.id)}}),
        json!({"name": "topic", "valueCanonical": sub.topic.clone().unwrap_or_default()}),
        json!({"name": "status", "valueCode": sub.status()}),
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "events-since-subscription-start", "valueString": since.to_string()}),
    ];
    for e in events {
        let mut parts = vec![
            json!({"name": "event-number", "valueString": e.number.to_string()}),
            json!({"name": "timestamp", "valueInstant": e.timestamp}),
        ];
        if sub.payload != Payload::Empty {
            parts.push(
                json!({"name": "focus", "valueReference": {"reference": e.focus(&sub.base)}}),
            );
        }
        params.push(json!({"name": "notification-event", "part": parts}));
    }
    let status = json!({"resourceType": "Parameters", "parameter": params});
    let mut entries =
        vec![json!({"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": status})];
    for e in events.iter().filter(|_| sub.payload != Payload::Empty) {
        let mut entry = json!({
            "fullUrl": format!("{}{}/{}", sub.base, e.resource_type, e.id),
            "request": {"method": if e.created { "POST" } else { "PUT" }, "url": e.resource_type},
            "response": {"status": if e.created { "201" } else { "200" }},
        });
        if sub.payload == Payload::FullResource
            && let Ok(r) = serde_json::from_slice::<Value>(&e.resource)
        {
            entry["resource"] = r;
        }
        entries.push(entry);
    }
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "history",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "entry": entries,
    })
}

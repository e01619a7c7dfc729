//! What a notification body says, read the way a careful receiver reads it: a Subscriptions
//! Backport IG `history` Bundle (its `Parameters` status first: subscription, type,
//! `events-since-subscription-start`, one `notification-event` per event with its
//! `event-number` and `focus`; the focus resources after it, for `full-resource`), a
//! classic R4 rest-hook resource, or an empty POST. Pure; nothing of the body is kept but
//! ids, versions and harness identifiers.

use serde_json::Value;

use crate::history::{Named, NotificationType};

/// What a body named.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    pub kind: NotificationType,
    pub subscription: Option<String>,
    pub events_since_start: Option<u64>,
    pub event_numbers: Vec<u64>,
    pub focus: Vec<Named>,
    pub problem: Option<String>,
}

/// Reads a body; identifiers whose system starts with `prefix` are kept.
pub fn parse(body: &[u8], prefix: &str) -> Parsed {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Parsed {
            kind: NotificationType::Empty,
            ..Parsed::default()
        };
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Parsed {
                problem: Some(format!("the body is not JSON: {e}")),
                ..Parsed::default()
            };
        }
    };
    let first = value.pointer("/entry/0/resource");
    let is_status = first
        .and_then(|r| r.get("resourceType"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "Parameters" || t == "SubscriptionStatus");
    if text(&value, "resourceType") == Some("Bundle") && is_status {
        return backport(&value, first.unwrap_or(&Value::Null), prefix);
    }
    if text(&value, "resourceType") == Some("Bundle") {
        let focus = entries(&value)
            .filter_map(|e| e.get("resource"))
            .filter_map(|r| named(r, prefix))
            .collect();
        return Parsed {
            focus,
            ..Parsed::default()
        };
    }
    match named(&value, prefix) {
        Some(n) => Parsed {
            focus: vec![n],
            ..Parsed::default()
        },
        None => Parsed {
            problem: Some("the body names no resource (no resourceType and id)".into()),
            ..Parsed::default()
        },
    }
}

fn backport(bundle: &Value, status: &Value, prefix: &str) -> Parsed {
    let params = status.get("parameter").and_then(Value::as_array);
    let param = |name: &str| {
        params
            .into_iter()
            .flatten()
            .find(|p| text(p, "name") == Some(name))
    };
    let kind = match param("type").and_then(|p| text(p, "valueCode")) {
        Some("handshake") => NotificationType::Handshake,
        Some("heartbeat") => NotificationType::Heartbeat,
        Some("query-status") => NotificationType::QueryStatus,
        Some("query-event") => NotificationType::QueryEvent,
        _ => NotificationType::EventNotification,
    };
    let subscription = param("subscription")
        .and_then(|p| p.pointer("/valueReference/reference"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let since = param("events-since-subscription-start").and_then(number);
    let resources: Vec<Named> = entries(bundle)
        .skip(1)
        .filter_map(|e| e.get("resource"))
        .filter_map(|r| named(r, prefix))
        .collect();
    let (mut numbers, mut focus) = (Vec::new(), Vec::new());
    for event in params
        .into_iter()
        .flatten()
        .filter(|p| text(p, "name") == Some("notification-event"))
    {
        let parts = event.get("part").and_then(Value::as_array);
        let part = |name: &str| {
            parts
                .into_iter()
                .flatten()
                .find(|p| text(p, "name") == Some(name))
        };
        let n = part("event-number").and_then(number);
        numbers.extend(n);
        let reference = part("focus")
            .and_then(|p| p.pointer("/valueReference/reference"))
            .and_then(Value::as_str);
        if let Some(mut f) = reference.and_then(reference_parts) {
            if let Some(r) = resources
                .iter()
                .find(|r| r.resource_type == f.resource_type && r.id == f.id)
            {
                f.identifiers = r.identifiers.clone();
                f.version = f.version.or_else(|| r.version.clone());
            }
            f.event = n;
            focus.push(f);
        }
    }
    if focus.is_empty() {
        focus = resources;
    }
    Parsed {
        kind,
        subscription,
        events_since_start: since,
        event_numbers: numbers,
        focus,
        problem: None,
    }
}

fn entries(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A count given as `valueString` (R4 backport), `valueInteger64` or `valueUnsignedInt`.
fn number(p: &Value) -> Option<u64> {
    [
        "valueString",
        "valueInteger64",
        "valueUnsignedInt",
        "valueInteger",
        "valuePositiveInt",
    ]
    .iter()
    .find_map(|k| p.get(*k))
    .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
}

/// A resource in a body: type, id, `meta.versionId`, harness identifiers.
fn named(r: &Value, prefix: &str) -> Option<Named> {
    let identifiers = r
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let system = text(i, "system")?;
            let value = text(i, "value")?;
            system
                .starts_with(prefix)
                .then(|| format!("{system}|{value}"))
        })
        .collect();
    Some(Named {
        resource_type: text(r, "resourceType")?.to_owned(),
        id: text(r, "id")?.to_owned(),
        version: r
            .pointer("/meta/versionId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        identifiers,
        event: None,
    })
}

/// `[base/]Type/id[/_history/v]` → its parts.
pub fn reference_parts(reference: &str) -> Option<Named> {
    let parts: Vec<&str> = reference.trim_end_matches('/').split('/').collect();
    let (rt, id, version) = match parts.as_slice() {
        [.., rt, id, "_history", v] => (*rt, *id, Some((*v).to_owned())),
        [.., rt, id] => (*rt, *id, None),
        _ => return None,
    };
    let typed = rt.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    typed.then(|| Named {
        resource_type: rt.to_owned(),
        id: id.to_owned(),
        version,
        ..Named::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_backport_bundle_with_events_and_full_resources() {
        let body = json!({"resourceType": "Bundle", "type": "history", "entry": [
            {"resource": {"resourceType": "Parameters", "parameter": [
                {"name": "subscription", "valueReference": {"reference": "http://x/Subscription/s1"}},
                {"name": "type", "valueCode": "event-notification"},
                {"name": "events-since-subscription-start", "valueString": "7"},
                {"name": "notification-event", "part": [
                    {"name": "event-number", "valueString": "7"},
                    {"name": "focus", "valueReference": {"reference": "http://x/Encounter/e1/_history/2"}}]}]}},
            {"fullUrl": "http://x/Encounter/e1", "resource": {"resourceType": "Encounter", "id": "e1",
                "identifier": [{"system": "urn:fhirsurge:r", "value": "v1"}, {"system": "mrn", "value": "9"}]}}]});
        let p = parse(&serde_json::to_vec(&body).unwrap(), "urn:fhirsurge:");
        assert_eq!(p.kind, NotificationType::EventNotification);
        assert_eq!(p.subscription.as_deref(), Some("http://x/Subscription/s1"));
        assert_eq!(
            (p.events_since_start, p.event_numbers.clone()),
            (Some(7), vec![7])
        );
        assert_eq!(p.focus.len(), 1);
        let f = &p.focus[0];
        assert_eq!(
            (
                f.resource_type.as_str(),
                f.id.as_str(),
                f.version.as_deref()
            ),
            ("Encounter", "e1", Some("2"))
        );
        assert_eq!(f.identifiers, vec!["urn:fhirsurge:r|v1".to_string()]);
        assert_eq!(f.event, Some(7));
    }

    #[test]
    fn reads_a_rest_hook_resource_an_empty_post_and_garbage() {
        let r = json!({"resourceType": "Observation", "id": "o9", "meta": {"versionId": "3"}});
        let p = parse(&serde_json::to_vec(&r).unwrap(), "urn:fhirsurge:");
        assert_eq!(p.focus[0].version.as_deref(), Some("3"));
        assert_eq!(parse(b"", "u").kind, NotificationType::Empty);
        assert!(parse(b"{nope", "u").problem.is_some());
    }
}

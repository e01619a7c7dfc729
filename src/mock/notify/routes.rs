//! The HTTP face of subscriptions: `POST /Subscription`, `GET` and `DELETE
//! /Subscription/{id}`, and `/Subscription/{id}/$events` (GET with
//! `eventsSinceNumber` / `eventsUntilNumber`, or POST with them in a Parameters body),
//! and `/Subscription/{id}/$status` (a `searchset` Bundle of one `query-status`
//! Parameters: the status and `events-since-subscription-start`).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::super::Ehr;
use super::super::http::{base, fhir, parse_body};
use super::super::outcome::Problem;

fn json(status: StatusCode, v: &Value) -> Response {
    fhir(
        status,
        Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    )
}

pub async fn create(State(ehr): State<Ehr>, headers: HeaderMap, body: Bytes) -> Response {
    let base = base(&headers);
    let result = parse_body(&body).and_then(|r| ehr.shared.notifier.subscribe(r, &base));
    match result {
        Ok(sub) => {
            let mut r = json(StatusCode::CREATED, &sub.json());
            let location = format!("{base}Subscription/{}/_history/1", sub.id);
            if let Ok(l) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, l);
            }
            r
        }
        Err(p) => p.into_response(),
    }
}

pub async fn read(State(ehr): State<Ehr>, Path(id): Path<String>) -> Response {
    match ehr.shared.notifier.get(&id) {
        Some(sub) => json(StatusCode::OK, &sub.json()),
        None => Problem::not_found("Subscription", &id).into_response(),
    }
}

pub async fn delete(State(ehr): State<Ehr>, Path(id): Path<String>) -> Response {
    match ehr.shared.notifier.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => Problem::not_found("Subscription", &id).into_response(),
    }
}

pub async fn events(
    State(ehr): State<Ehr>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(sub) = ehr.shared.notifier.get(&id) else {
        return Problem::not_found("Subscription", &id).into_response();
    };
    if sub.form != crate::vocab::notification::Form::Topic {
        let p = Problem::bad("$events needs a topic-based (backport) subscription");
        return p.into_response();
    }
    let mut since = None;
    let mut until = None;
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "eventsSinceNumber" => since = v.parse::<u64>().ok(),
            "eventsUntilNumber" => until = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    if let Ok(params) = serde_json::from_slice::<Value>(&body) {
        since = since.or_else(|| parameter(&params, "eventsSinceNumber"));
        until = until.or_else(|| parameter(&params, "eventsUntilNumber"));
    }
    let since = since.unwrap_or(1);
    let until = until.unwrap_or(u64::MAX);
    let retained = sub.retained(since, until);
    let events: Vec<&super::Event> = retained.iter().map(|e| e.as_ref()).collect();
    json(StatusCode::OK, &super::body::query(&sub, since, &events))
}

pub async fn status(State(ehr): State<Ehr>, Path(id): Path<String>) -> Response {
    let Some(sub) = ehr.shared.notifier.get(&id) else {
        return Problem::not_found("Subscription", &id).into_response();
    };
    if sub.form != crate::vocab::notification::Form::Topic {
        let p = Problem::bad("$status needs a topic-based (backport) subscription");
        return p.into_response();
    }
    json(StatusCode::OK, &super::body::status(&sub))
}

/// A number given as `valueString`, `valueInteger` or `valueInteger64` in Parameters.
fn parameter(params: &Value, name: &str) -> Option<u64> {
    params
        .get("parameter")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|p| {
            [
                "valueString",
                "valueInteger",
                "valueInteger64",
                "valueUnsignedInt",
            ]
            .iter()
            .find_map(|k| p.get(*k))
        })
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
}

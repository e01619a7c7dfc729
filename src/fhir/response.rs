//! Reading a FHIR server's answer: the outcome class of a status or transport error, the
//! id and version in a `Location` or `ETag`, and what a resource or Bundle showed. Pure
//! functions; ids, versions and ETags stay opaque strings.

use std::time::Duration;

use serde_json::Value;

use crate::history::{ErrorClass, Interaction, Outcome, Seen};
pub use crate::history::{harness_identifiers, seen};

/// Classifies an HTTP status for an interaction.
///
/// A 404/410 on a read is a valid answer ("absent"), so it is `ok`. A 4xx elsewhere came
/// before any commit: `fail`. A 5xx may follow a commit (a gateway after the upstream
/// wrote): `info`. 408 is the server giving up on reading the request: `info`, not sure.
pub fn classify_status(f: Interaction, status: u16) -> (Outcome, Option<ErrorClass>) {
    match status {
        200..=299 => (Outcome::Ok, None),
        404 | 410 if matches!(f, Interaction::Read | Interaction::Vread) => (Outcome::Ok, None),
        408 => (Outcome::Info, Some(ErrorClass::Timeout)),
        401 | 403 => (Outcome::Fail, Some(ErrorClass::Auth)),
        409 | 412 => (Outcome::Fail, Some(ErrorClass::Conflict)),
        429 => (Outcome::Fail, Some(ErrorClass::RateLimited)),
        400..=499 => (Outcome::Fail, Some(ErrorClass::ClientError)),
        500..=599 => (Outcome::Info, Some(ErrorClass::ServerError)),
        // 1xx/3xx as a final answer: the harness cannot tell what happened.
        _ => (Outcome::Info, Some(ErrorClass::BadResponse)),
    }
}

/// Classifies a transport error. Only a failure to connect is known not to have sent
/// anything; everything else may have reached the server.
pub fn classify_transport(err: &reqwest::Error) -> (Outcome, ErrorClass) {
    if err.is_connect() {
        (Outcome::Fail, ErrorClass::Connect)
    } else if err.is_timeout() {
        (Outcome::Info, ErrorClass::Timeout)
    } else {
        (Outcome::Info, ErrorClass::Io)
    }
}

/// Id and version from a `Location` (`[base/]Type/id[/_history/v]`, absolute or relative).
pub fn parse_location(location: &str, resource_type: &str) -> (Option<String>, Option<String>) {
    let path = location
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let parts: Vec<&str> = path.split('/').collect();
    let Some(at) = parts.iter().rposition(|p| *p == resource_type) else {
        return (None, None);
    };
    // Opaque, but not empty, not whitespace or control characters, not absurdly long.
    let clean = |s: &&&str| {
        !s.is_empty() && s.len() <= 256 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    let Some(id) = parts.get(at + 1).filter(clean).map(|s| s.to_string()) else {
        return (None, None);
    };
    let version = match (parts.get(at + 2), parts.get(at + 3)) {
        (Some(&"_history"), Some(v)) if clean(&v) => Some(v.to_string()),
        _ => None,
    };
    (Some(id), version)
}

/// The version in an `ETag` (`W/"3"`, `"3"`, `W/"a-b"`), as an opaque string; `None`
/// for a malformed one (unquoted, a quote or control character inside, empty, over 256
/// characters), which is never used as a version.
pub fn parse_etag(etag: &str) -> Option<String> {
    let t = etag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    let inner = t.strip_prefix('"')?.strip_suffix('"')?;
    let clean = !inner.is_empty()
        && inner.len() <= 256
        && !inner.chars().any(|c| c == '"' || c.is_control());
    clean.then(|| inner.to_owned())
}

/// Why a response body could not be read whole.
#[derive(Debug)]
pub enum BodyError {
    /// Larger than the cap (by `Content-Length` or as it arrived): the connection is
    /// dropped.
    TooLarge,
    /// The transfer broke off or timed out.
    Transport(reqwest::Error),
}

impl BodyError {
    /// Its class and a note for the history.
    pub fn describe(&self, cap: u64) -> (ErrorClass, String) {
        match self {
            BodyError::TooLarge => (
                ErrorClass::BadResponse,
                format!("body larger than max_body ({cap} bytes): connection dropped"),
            ),
            BodyError::Transport(e) if e.is_timeout() => (
                ErrorClass::Timeout,
                "the body did not arrive within the timeout".to_owned(),
            ),
            BodyError::Transport(_) => (ErrorClass::Io, "the body broke off".to_owned()),
        }
    }
}

/// Reads a body of at most `cap` bytes; a larger one is dropped unread (with its
/// connection).
pub async fn read_capped(mut resp: reqwest::Response, cap: u64) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why a 2xx body is not an answer to `f` on `resource_type`, if it is not: a search or
/// `_history` must be a Bundle (an OperationOutcome or another resource is never an empty
/// result); a read must be the resource asked for; a write may answer with the resource
/// or an OperationOutcome (`Prefer: return=OperationOutcome`), not with another type.
pub fn unexpected_type(f: Interaction, resource_type: &str, body: &Value) -> Option<String> {
    let found = body.get("resourceType").and_then(Value::as_str);
    let expected: &[&str] = match f {
        Interaction::Search | Interaction::History => &["Bundle"],
        Interaction::Read | Interaction::Vread => &[resource_type],
        Interaction::Create | Interaction::ConditionalCreate | Interaction::Update => {
            &[resource_type, "OperationOutcome"]
        }
        _ => return None,
    };
    if found.is_some_and(|t| expected.contains(&t)) {
        return None;
    }
    Some(format!(
        "a {} of {} answered 2xx with {}, not {}",
        f.as_str(),
        if resource_type.is_empty() {
            "the server"
        } else {
            resource_type
        },
        found.map_or_else(|| "no resourceType".to_owned(), |t| format!("a {t}")),
        expected.join(" or ")
    ))
}

/// What a Bundle (searchset or history) showed: its resources and the `next` link.
pub struct BundleView {
    pub seen: Vec<Seen>,
    pub total: Option<u64>,
    pub next: Option<String>,
}

/// Reads a Bundle. Entries with `search.mode = include` or `outcome` are not matches.
pub fn bundle(body: &Value, prefix: &str) -> BundleView {
    let seen = body
        .get("entry")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter(|e| {
                    e.pointer("/search/mode")
                        .and_then(Value::as_str)
                        .is_none_or(|m| m == "match")
                })
                .filter_map(|e| e.get("resource"))
                .filter_map(|r| seen(r, prefix))
                .collect()
        })
        .unwrap_or_default();
    let next = body
        .get("link")
        .and_then(Value::as_array)
        .and_then(|links| {
            links
                .iter()
                .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
        })
        .and_then(|l| l.get("url")?.as_str().map(str::to_owned));
    BundleView {
        seen,
        total: body.get("total").and_then(Value::as_u64),
        next,
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (the wait until then, zero
/// once past); `None` when it is neither.
pub fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn locations_absolute_relative_and_versionless() {
        assert_eq!(
            parse_location(
                "https://ehr.example/fhir/R4/Observation/e5Tk.9-x/_history/7",
                "Observation"
            ),
            (Some("e5Tk.9-x".into()), Some("7".into()))
        );
        assert_eq!(
            parse_location("Observation/abc", "Observation"),
            (Some("abc".into()), None)
        );
        assert_eq!(parse_location("Patient/abc", "Observation"), (None, None));
    }

    #[test]
    fn etags_stay_opaque() {
        assert_eq!(parse_etag("W/\"3\""), Some("3".into()));
        assert_eq!(parse_etag("\"a1b2-c3\""), Some("a1b2-c3".into()));
        assert_eq!(parse_etag("W/\"\""), None);
    }

    #[test]
    fn status_classes() {
        use Interaction::*;
        assert_eq!(classify_status(Create, 201).0, Outcome::Ok);
        assert_eq!(classify_status(Read, 404).0, Outcome::Ok);
        assert_eq!(classify_status(Create, 404).0, Outcome::Fail);
        assert_eq!(
            classify_status(Update, 412),
            (Outcome::Fail, Some(ErrorClass::Conflict))
        );
        assert_eq!(classify_status(Create, 500).0, Outcome::Info);
        assert_eq!(classify_status(Create, 502).0, Outcome::Info);
        assert_eq!(classify_status(Create, 429).0, Outcome::Fail);
    }

    #[test]
    fn bundle_keeps_matches_and_next() {
        let b = json!({"resourceType": "Bundle", "total": 2, "link": [{"relation": "next", "url": "http://h/x?page=2"}],
        "entry": [
            {"resource": {"resourceType": "Observation", "id": "1", "meta": {"versionId": "2"},
                          "identifier": [{"system": "urn:fhirsurge:r", "value": "o1"}]}, "search": {"mode": "match"}},
            {"resource": {"resourceType": "Patient", "id": "p"}, "search": {"mode": "include"}}
        ]});
        let v = bundle(&b, "urn:fhirsurge:");
        assert_eq!(v.seen.len(), 1);
        assert_eq!(
            v.seen[0].identifiers,
            vec!["urn:fhirsurge:r|o1".to_string()]
        );
        assert!(v.seen[0].content.is_some());
        assert_eq!(v.next.as_deref(), Some("http://h/x?page=2"));
        assert_eq!(v.total, Some(2));
    }
}

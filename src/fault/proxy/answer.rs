//! The responses the proxy writes itself for `http_status`: a complete HTTP/1.1 response
//! with a FHIR OperationOutcome body. Pure. Must not depend on the rest of the proxy.

use std::time::Duration;

fn reason(status: u16) -> &'static str {
    match status {
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// The OperationOutcome issue type for a status (FHIR R4 `issue-type`).
fn issue_code(status: u16) -> &'static str {
    match status {
        429 => "throttled",
        503 => "transient",
        504 => "timeout",
        _ => "exception",
    }
}

/// The bytes of an injected `status` response; `close` says the connection ends after it
/// (otherwise it stays alive).
pub(super) fn status_response(
    status: u16,
    retry_after: Option<Duration>,
    close: bool,
    label: &str,
) -> Vec<u8> {
    let body = serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error",
            "code": issue_code(status),
            "diagnostics": format!("{status} {} injected by the fhirsurge fault proxy ({label})", reason(status)),
        }]
    })
    .to_string();
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    if let Some(after) = retry_after {
        // Whole seconds, rounded up (RFC 9110 §10.2.3).
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        head.push_str(&format!("Retry-After: {secs}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The refusal of a control request (401 or 403) with an OperationOutcome saying why.
pub(super) fn refusal(status: u16, why: &str, close: bool) -> Vec<u8> {
    let body = serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "security", "diagnostics": why}]
    })
    .to_string();
    let text = if status == 401 {
        "Unauthorized"
    } else {
        "Forbidden"
    };
    let mut out = format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// A `200` answer with a JSON body (the ledger).
pub(super) fn json_response(body: &[u8], close: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::super::framing::{Asked, Body, parse_response};
    use super::*;

    #[test]
    fn is_a_complete_fhir_response_with_a_correct_length() {
        let raw = status_response(
            429,
            Some(Duration::from_millis(1500)),
            false,
            "http_status#0",
        );
        let head = parse_response(&raw, Asked::Other).unwrap().unwrap();
        assert_eq!(head.status, 429);
        assert_eq!(head.body, Body::Length((raw.len() - head.len) as u64));
        let text = String::from_utf8(raw).unwrap();
        assert!(text.contains("Retry-After: 2\r\n"));
        assert!(text.contains("application/fhir+json"));
        let body: serde_json::Value = serde_json::from_str(&text[head.len..]).unwrap();
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert_eq!(body["issue"][0]["code"], "throttled");
    }

    #[test]
    fn has_no_retry_after_unless_asked() {
        let text = String::from_utf8(status_response(504, None, true, "x")).unwrap();
        assert!(text.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"));
        assert!(!text.contains("Retry-After"));
        assert!(text.contains("Connection: close\r\n"));
    }
}

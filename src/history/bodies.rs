//! The optional bodies file (`bodies.jsonl.zst`, with `run --store-bodies` only): one
//! JSON line per answer — the invocation's history index, method, URL, status and the
//! body (as JSON when it parses, else as text). Bodies may hold PHI, which is why they
//! are off by default; credentials a server echoes (an `Authorization` header, a token
//! endpoint's `access_token`, a `client_secret`) are redacted before the line exists.

use serde::Serialize;
use serde_json::Value;

/// The bodies file's name in a run directory.
pub const FILE: &str = "bodies.jsonl.zst";

/// What replaces a redacted credential.
pub const REDACTED: &str = "[redacted]";

/// Keys (any case) whose values are credentials, wherever they appear.
const SECRET_KEYS: [&str; 8] = [
    "authorization",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "client_assertion",
    "password",
    "bearer",
];

/// One answer, as the bodies file holds it.
#[derive(Serialize)]
struct BodyLine<'a> {
    invoke: u64,
    method: &'a str,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    body: Value,
}

/// The answer to invocation `invoke` as one line (newline included), redacted.
pub fn line(invoke: u64, method: &str, url: &str, status: Option<u16>, body: &[u8]) -> Vec<u8> {
    let line = BodyLine {
        invoke,
        method,
        url: redact_text(url),
        status,
        body: redact_body(body),
    };
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// A body with its credentials redacted: JSON when it parses, else text.
pub fn redact_body(body: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            redact_json(&mut v);
            v
        }
        Err(_) => Value::String(redact_text(&String::from_utf8_lossy(body))),
    }
}

/// Redacts, in place, every value under a credential key and every credential in text.
fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret(k) {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::String(s) => {
            let redacted = redact_text(s);
            if redacted != *s {
                *s = redacted;
            }
        }
        _ => {}
    }
}

fn is_secret(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
}

/// Text with the value after each credential key (`access_token=…`, `"client_secret":
/// "…"`, `Authorization: Bearer …`, `Bearer …`) replaced.
pub fn redact_text(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let Some((key_end, value_start)) = next_secret(&lower, at) else {
            break;
        };
        let value_end = value_start + token_len(&text[value_start..]);
        out.push_str(&text[at..value_start]);
        if value_end > value_start {
            out.push_str(REDACTED);
        }
        at = value_end.max(key_end);
    }
    out.push_str(&text[at.min(text.len())..]);
    out
}

/// The first credential key at or after `from`: where the key ends and its value starts.
fn next_secret(lower: &str, from: usize) -> Option<(usize, usize)> {
    SECRET_KEYS
        .iter()
        .filter_map(|k| {
            lower[from..]
                .find(k)
                .map(|i| (from + i, from + i + k.len()))
        })
        .min()
        .map(|(_, end)| (end, end + separator_len(&lower[end..])))
}

/// Quotes, `=`, `:` and spaces between a key and its value (and a `Bearer ` scheme).
fn separator_len(s: &str) -> usize {
    let n = s
        .bytes()
        .take_while(|b| matches!(b, b'"' | b'\'' | b'=' | b':' | b' ' | b'\\'))
        .count();
    let rest = &s[n..];
    if rest.starts_with("bearer ") || rest.starts_with("basic ") {
        n + rest.find(' ').map_or(0, |i| i + 1)
    } else {
        n
    }
}

/// The length of a token value: URL-safe, base64 and JWT characters.
fn token_len(s: &str) -> usize {
    s.bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || b"-._~+/=%".contains(b))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_answer_keeps_its_shape_and_loses_its_secrets() {
        let body = br#"{"access_token":"eyJ.abc.def","token_type":"bearer","expires_in":300,"scope":"system/*.rs","nested":[{"Refresh_Token":"r1"}]}"#;
        let v = redact_body(body);
        assert_eq!(v["access_token"], REDACTED);
        assert_eq!(v["nested"][0]["Refresh_Token"], REDACTED);
        assert_eq!(v["expires_in"], 300);
        assert_eq!(v["token_type"], "bearer");
        assert!(!v.to_string().contains("eyJ.abc.def"));
    }

    #[test]
    fn echoed_headers_and_forms_in_text_are_redacted() {
        let echoed = "GET /x\r\nAuthorization: Bearer eyJhbGci.x.y\r\nAccept: */*";
        let r = redact_text(echoed);
        assert!(!r.contains("eyJhbGci"), "{r}");
        assert!(r.contains("Accept: */*"), "{r}");
        let form = "grant_type=client_credentials&client_secret=s3cr3t&scope=a";
        let r = redact_text(form);
        assert_eq!(
            r,
            "grant_type=client_credentials&client_secret=[redacted]&scope=a"
        );
        let diag = serde_json::json!({"resourceType": "OperationOutcome",
            "issue": [{"diagnostics": "bad header authorization: Bearer abc.def"}]});
        let r = redact_body(diag.to_string().as_bytes()).to_string();
        assert!(!r.contains("abc.def"), "{r}");
    }

    #[test]
    fn a_line_names_the_invocation_and_keeps_a_plain_body() {
        let line = line(
            42,
            "GET",
            "http://127.0.0.1:1/fhir/Patient/1",
            Some(200),
            br#"{"resourceType":"Patient","id":"1"}"#,
        );
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["invoke"], 42);
        assert_eq!(v["status"], 200);
        assert_eq!(v["body"]["resourceType"], "Patient");
        assert!(line.ends_with(b"\n"));
    }
}

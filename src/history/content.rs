//! Content digests: what a resource holds, in a form that survives the trip through a
//! server (key order, `98.60` vs `98.6`, server-owned `id`/`meta`/`text`) and names the
//! element that changed without keeping the content itself (no PHI in the history).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Digest of a resource after normalisation: server-assigned `id`, `meta` and the
/// generated narrative `text` are removed, object keys are sorted. `elements` holds one
/// digest per remaining top-level element, so a difference can be located without the
/// content itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub digest: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub elements: BTreeMap<String, String>,
}

/// Top-level elements that the server owns and that never count as a difference.
pub const SERVER_OWNED: [&str; 4] = ["id", "meta", "text", "resourceType"];

impl Content {
    /// Digest a resource.
    pub fn of(resource: &Value) -> Content {
        let mut elements = BTreeMap::new();
        let mut buf = Vec::with_capacity(512);
        if let Value::Object(map) = resource {
            for (key, value) in map {
                if SERVER_OWNED.contains(&key.as_str()) {
                    continue;
                }
                elements.insert(key.clone(), digest_value(value, &mut buf));
            }
        }
        buf.clear();
        for (key, d) in &elements {
            buf.extend_from_slice(key.as_bytes());
            buf.push(b'=');
            buf.extend_from_slice(d.as_bytes());
            buf.push(b';');
        }
        Content {
            digest: short_hex(blake3::hash(&buf).as_bytes()),
            elements,
        }
    }

    /// Elements that `self` (what was sent) has and `other` (what came back) lacks or
    /// holds differently, ignoring the names in `ignore`.
    pub fn differences<'a>(&'a self, other: &Content, ignore: &[&str]) -> Vec<ElementDiff<'a>> {
        let mut out = Vec::new();
        for (key, d) in &self.elements {
            if ignore.contains(&key.as_str()) {
                continue;
            }
            match other.elements.get(key) {
                None => out.push(ElementDiff::Missing(key)),
                Some(o) if o != d => out.push(ElementDiff::Changed(key)),
                Some(_) => {}
            }
        }
        out
    }
}

/// How one sent element differs in what came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementDiff<'a> {
    Missing(&'a str),
    Changed(&'a str),
}

impl fmt::Display for ElementDiff<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(k) => write!(f, "`{k}` missing"),
            Self::Changed(k) => write!(f, "`{k}` changed"),
        }
    }
}

/// Digest of any JSON value; object keys are hashed in sorted order, numbers by value.
/// `buf` is scratch space, reused across calls.
fn digest_value(value: &Value, buf: &mut Vec<u8>) -> String {
    buf.clear();
    encode(buf, value);
    short_hex(blake3::hash(buf).as_bytes())
}

/// The canonical byte form a value is digested in: type tags, lengths before contents,
/// object members in key order, numbers as the decimal they parse to.
fn encode(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => buf.push(b'n'),
        Value::Bool(b) => buf.push(if *b { b't' } else { b'f' }),
        Value::Number(n) => {
            buf.push(b'#');
            // 98.60 and 98.6 are the same decimal once parsed.
            let _ = match n.as_f64() {
                Some(x) => write!(buf, "{x}"),
                None => write!(buf, "{n}"),
            };
        }
        Value::String(s) => {
            buf.push(b'"');
            buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            buf.push(b'[');
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                encode(buf, item);
            }
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            buf.push(b'{');
            buf.extend_from_slice(&(members.len() as u64).to_le_bytes());
            for (key, value) in members {
                buf.extend_from_slice(&(key.len() as u64).to_le_bytes());
                buf.extend_from_slice(key.as_bytes());
                encode(buf, value);
            }
        }
    }
}

/// The first 8 bytes in lowercase hex (16 characters).
fn short_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for b in &bytes[..8] {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Digests are recorded in histories and compared across versions of the tool
    /// (`fhirsurge check` on an old history): the canonical form must not drift.
    #[test]
    fn digests_are_pinned() {
        let r = json!({"resourceType": "Observation", "id": "x", "meta": {"versionId": "2"},
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "valueQuantity": {"value": 98.60, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
            "effectiveDateTime": "2026-01-01T00:00:00Z", "flag": true, "n": null,
            "big": 12345678901234567890u64, "neg": -3,
            "identifier": [{"system": "urn:fhirsurge:t", "value": "o-1"}]});
        let c = Content::of(&r);
        assert_eq!(c.digest, "51225863953fedec");
        assert_eq!(c.elements["valueQuantity"], "0a4182db7aede19c");
        assert_eq!(c.elements["big"], "a04a246880c06e51");
        assert_eq!(c.elements.len(), 9);
    }
}

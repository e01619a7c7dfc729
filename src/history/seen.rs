//! What a resource body shows of itself, as the history keeps it: type, id, version,
//! the harness identifiers it carries and, for harness resources only, a content digest.

use serde_json::Value;

use super::{Content, Seen};

/// What a resource body shows of itself. Content is kept only for resources carrying a
/// harness identifier (system starting with `prefix`): nothing else is ours to judge.
pub fn seen(resource: &Value, prefix: &str) -> Option<Seen> {
    let resource_type = resource.get("resourceType")?.as_str()?.to_owned();
    let id = resource.get("id")?.as_str()?.to_owned();
    let version = resource
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let identifiers = harness_identifiers(resource, prefix);
    let content = (!identifiers.is_empty()).then(|| Content::of(resource));
    Some(Seen {
        resource_type,
        id,
        version,
        identifiers,
        content,
    })
}

/// `system|value` of every identifier whose system starts with `prefix`.
pub fn harness_identifiers(resource: &Value, prefix: &str) -> Vec<String> {
    let Some(list) = resource.get("identifier").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|i| {
            let system = i.get("system")?.as_str()?;
            let value = i.get("value")?.as_str()?;
            system
                .starts_with(prefix)
                .then(|| format!("{system}|{value}"))
        })
        .collect()
}

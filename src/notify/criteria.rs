//! Subscription criteria as the harness evaluates them on what it writes: `Type?param=value`
//! with `_id`, `status`, `patient`/`subject`, `code`, `identifier`. A write matching one is
//! owed a notification. Pure; an unknown parameter is bad input (the harness could not
//! say which writes are owed one).

use serde_json::Value;

/// The parameters a criteria may use.
pub const PARAMS: &[&str] = &["_id", "status", "patient", "subject", "code", "identifier"];

/// A parsed criteria.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Criteria {
    pub resource_type: String,
    /// (parameter, value) pairs; all must match (values percent-decoded).
    pub params: Vec<(String, String)>,
}

impl Criteria {
    /// Parses `Type` or `Type?a=b&c=d`.
    pub fn parse(text: &str) -> Result<Criteria, String> {
        let (rt, query) = text.split_once('?').unwrap_or((text, ""));
        if !is_type_name(rt) {
            return Err(format!("criteria `{text}`: `{rt}` is not a resource type"));
        }
        let mut params = Vec::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if !PARAMS.contains(&k.as_ref()) {
                return Err(format!(
                    "criteria `{text}`: parameter `{k}` is not supported (supported: {})",
                    PARAMS.join(", ")
                ));
            }
            params.push((k.into_owned(), v.into_owned()));
        }
        Ok(Criteria {
            resource_type: rt.to_owned(),
            params,
        })
    }

    /// Whether `resource` (of type `rt`) matches.
    pub fn matches(&self, rt: &str, resource: &Value) -> bool {
        rt == self.resource_type && self.params.iter().all(|(k, v)| param(resource, k, v))
    }
}

fn param(r: &Value, key: &str, want: &str) -> bool {
    let text = |p: &str| r.get(p).and_then(Value::as_str);
    match key {
        "_id" => text("id") == Some(want),
        "status" => text("status") == Some(want),
        "patient" | "subject" => ["subject", "patient"].iter().any(|p| {
            r.get(*p)
                .and_then(|s| s.get("reference"))
                .and_then(Value::as_str)
                .is_some_and(|got| same_reference(got, want))
        }),
        "code" => codings(r.get("code")).any(|(s, c)| token(want, s, c)),
        "identifier" => r
            .get("identifier")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|i| {
                let s = i.get("system").and_then(Value::as_str);
                let v = i.get("value").and_then(Value::as_str).unwrap_or_default();
                token(want, s, v)
            }),
        _ => false,
    }
}

fn codings(concept: Option<&Value>) -> impl Iterator<Item = (Option<&str>, &str)> {
    concept
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let code = c.get("code").and_then(Value::as_str)?;
            Some((c.get("system").and_then(Value::as_str), code))
        })
}

/// `code` or `system|code` against a coding.
fn token(want: &str, system: Option<&str>, code: &str) -> bool {
    match want.split_once('|') {
        Some((s, c)) => c == code && (s.is_empty() || Some(s) == system),
        None => want == code,
    }
}

/// `Patient/1` matches `Patient/1`, `1`, and an absolute `…/Patient/1`.
fn same_reference(got: &str, want: &str) -> bool {
    got == want
        || got.ends_with(&format!("/{want}"))
        || want.ends_with(&format!("/{got}"))
        || got.rsplit('/').next() == Some(want)
}

/// `^[A-Z][A-Za-z]+$`.
fn is_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_status_subject_code_and_refuses_unknown_parameters() {
        let c = Criteria::parse("Encounter?status=finished").unwrap();
        assert!(c.matches("Encounter", &json!({"status": "finished"})));
        assert!(!c.matches("Encounter", &json!({"status": "in-progress"})));
        assert!(!c.matches("Observation", &json!({"status": "finished"})));
        let c =
            Criteria::parse("Observation?patient=Patient/7&code=http://loinc.org|8867-4").unwrap();
        let obs = json!({"subject": {"reference": "Patient/7"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}});
        assert!(c.matches("Observation", &obs));
        let other = json!({"subject": {"reference": "Patient/8"}, "code": obs["code"].clone()});
        assert!(!c.matches("Observation", &other));
        assert!(Criteria::parse("Observation?date=gt2020").is_err());
        assert!(Criteria::parse("observation").is_err());
    }
}

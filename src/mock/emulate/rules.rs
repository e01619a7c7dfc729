//! A write as the emulated EHR takes it: the checks that refuse it (modifier extensions,
//! `implicitRules`, required elements, allowed values, the encounter it needs) and the
//! declared transformations applied before it is stored (drops, rewrites, truncations,
//! remaps). These transformations are the EHR's declared behaviour, not faults: nothing
//! here touches the ledger. Pure; the encounter lookup is a closure.

use serde_json::{Value, json};

use super::element;
use super::refusal::Refusal;
use crate::mock::index::normalize_reference;
use crate::profile::{Allowed, Change, EncounterNeed, Profile, Remap, WriteRules};

/// Extension a `transform` rewrite (one a file cannot replay: unit conversion, XHTML to
/// RTF) leaves on the element, so the read-back visibly differs where the profile says.
pub const TRANSFORMED: &str = "urn:fhirsurge:mock:transformed";

/// What the rules need to know about an encounter a write points at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encounter {
    pub status: Option<String>,
    /// `Patient/id` of its subject.
    pub subject: Option<String>,
}

/// Statuses of an encounter that is not open (closed, or a future appointment).
const NOT_OPEN: &[&str] = &["finished", "cancelled", "entered-in-error", "planned"];

/// Refuses a write the EHR would refuse. `encounter` finds an Encounter by id.
pub fn check(
    profile: &Profile,
    rt: &str,
    resource: &Value,
    encounter: impl Fn(&str) -> Option<Encounter>,
) -> Result<(), Refusal> {
    let refuse =
        |name: &str, detail: String| Err(Refusal::named(profile, name).with_detail(detail));
    if let Some(e) = &profile.write.modifier_extension_error
        && has_key(resource, "modifierExtension")
    {
        return refuse(e, format!("{rt}: modifierExtension is not supported"));
    }
    if let Some(e) = &profile.write.implicit_rules_error
        && resource.get("implicitRules").is_some()
    {
        return refuse(e, format!("{rt}: implicitRules is not supported"));
    }
    let Some(rules) = profile.resource(rt).map(|r| &r.write) else {
        return Ok(());
    };
    if let Some(e) = &rules.required_error
        && let Some(missing) = rules
            .required
            .iter()
            .find(|p| !element::present(resource, p))
    {
        return refuse(e, format!("{rt}.{missing} is required"));
    }
    if let Some((a, got)) = rules
        .allowed
        .iter()
        .find_map(|a| refused_value(a, resource))
    {
        return refuse(&a.error, format!("{rt}.{}: {got} is not accepted", a.path));
    }
    check_encounter(&rules.encounter, rt, resource, encounter)
        .or_else(|(name, detail)| refuse(name, detail))
}

/// The first rule the value at its path breaks, with the value. Absent elements pass;
/// a list or a CodeableConcept passes when one of its codes is allowed.
fn refused_value<'a>(a: &'a Allowed, resource: &Value) -> Option<(&'a Allowed, String)> {
    let found = element::values(resource, &a.path);
    if found.is_empty() {
        return None;
    }
    let codes: Vec<&Value> = found.iter().flat_map(|v| element::codes(v)).collect();
    let ok = codes.iter().any(|c| a.values.contains(c));
    (!ok).then(|| {
        (
            a,
            codes
                .first()
                .map_or_else(|| "a value".into(), |c| c.to_string()),
        )
    })
}

fn check_encounter<'n>(
    need: &'n EncounterNeed,
    rt: &str,
    resource: &Value,
    find: impl Fn(&str) -> Option<Encounter>,
) -> Result<(), (&'n str, String)> {
    let (error, open) = match need {
        EncounterNeed::NotNeeded => return Ok(()),
        EncounterNeed::Existing { error } => (error.as_str(), false),
        EncounterNeed::Open { error } => (error.as_str(), true),
    };
    let reference = ["encounter.reference", "context.encounter.reference"]
        .iter()
        .filter_map(|p| crate::profile::ElementPath::parse((*p).to_owned()).ok())
        .find_map(|p| {
            element::values(resource, &p)
                .first()
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        });
    let Some(reference) = reference else {
        return Err((error, format!("{rt}: needs an existing encounter")));
    };
    let normal = normalize_reference(&reference, "Encounter");
    let id = normal.strip_prefix("Encounter/").unwrap_or(&normal);
    let Some(found) = find(id) else {
        return Err((error, format!("{rt}: {normal} does not exist")));
    };
    if open
        && found
            .status
            .as_deref()
            .is_some_and(|s| NOT_OPEN.contains(&s))
    {
        return Err((error, format!("{rt}: {normal} is not open")));
    }
    let subject = ["subject", "patient"]
        .iter()
        .find_map(|k| resource.get(*k)?.get("reference")?.as_str())
        .map(|r| normalize_reference(r, "Patient"));
    match (subject, found.subject) {
        (Some(a), Some(b)) if a != b => {
            Err((error, format!("{rt}: {normal} belongs to {b}, not {a}")))
        }
        _ => Ok(()),
    }
}

fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(k, v)| k == key || has_key(v, key)),
        Value::Array(items) => items.iter().any(|v| has_key(v, key)),
        _ => false,
    }
}

/// Applies the declared drops, rewrites, truncations and remaps, in that order.
pub fn transform(rules: &WriteRules, resource: &mut Value) {
    for d in &rules.drops {
        element::remove(resource, &d.path);
    }
    for r in &rules.rewrites {
        rewrite(&r.change, &r.path, resource);
    }
    for t in &rules.truncations {
        let max = t.max_len.get();
        element::edit(resource, &t.path, true, &mut |v| {
            if let Value::String(s) = v
                && s.chars().count() > max
            {
                *s = s.chars().take(max).collect();
            }
        });
    }
    for r in &rules.remaps {
        element::edit(resource, &r.path, true, &mut |v| remap(r, v));
    }
}

fn rewrite(change: &Change, path: &crate::profile::ElementPath, resource: &mut Value) {
    match change {
        Change::Set(value) => element::set(resource, path, value),
        Change::KeepFirst(n) => element::edit(resource, path, false, &mut |v| {
            if let Value::Array(list) = v {
                list.truncate(n.get());
            }
        }),
        Change::AddCoding { system } => element::edit(resource, path, false, &mut |v| {
            add_coding(v, system);
        }),
        Change::CopyFrom(from) => {
            let value = element::values(resource, from)
                .first()
                .map(|v| (*v).clone());
            if let Some(value) = value {
                element::set(resource, path, &value);
            }
        }
        Change::Transform(what) => element::edit(resource, path, false, &mut |v| {
            mark_transformed(v, what);
        }),
    }
}

/// Adds a coding of `system` next to those sent, its code derived from the first one.
fn add_coding(v: &mut Value, system: &str) {
    let list = match v {
        Value::Array(list) => list,
        Value::Object(map) => match map.entry("coding").or_insert_with(|| json!([])) {
            Value::Array(list) => list,
            _ => return,
        },
        _ => return,
    };
    let first = list
        .iter()
        .find_map(|c| c.get("code")?.as_str())
        .unwrap_or("unknown");
    let coding = json!({"system": system, "code": format!("mock-{first}")});
    list.push(coding);
}

/// Marks an element (or a list's first item) with the [`TRANSFORMED`] extension.
fn mark_transformed(v: &mut Value, what: &str) {
    let target = match v {
        Value::Array(list) => list.first_mut(),
        other => Some(other),
    };
    if let Some(Value::Object(map)) = target
        && let Value::Array(ext) = map.entry("extension").or_insert_with(|| json!([]))
    {
        ext.push(json!({"url": TRANSFORMED, "valueString": what}));
    }
}

/// A code `from` becomes `to`: a primitive, or a Coding of `system` (a CodeableConcept's
/// codings one by one).
fn remap(r: &Remap, v: &mut Value) {
    match v {
        Value::String(s) if r.system.is_none() && *s == r.from => *s = r.to.clone(),
        Value::Object(map) => {
            if let Some(Value::Array(codings)) = map.get_mut("coding") {
                codings.iter_mut().for_each(|c| remap(r, c));
                return;
            }
            let system_ok = r
                .system
                .as_deref()
                .is_none_or(|s| map.get("system").and_then(Value::as_str) == Some(s));
            if system_ok && map.get("code").and_then(Value::as_str) == Some(r.from.as_str()) {
                map.insert("code".into(), json!(r.to));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;

//! FHIR element paths (`note.text`, `code.coding`, `identifier[0]`, `value[x]`) applied to
//! JSON resources: the values at a path, and edits there. A list on the way fans out: an
//! element inside a list is that element of every item. Pure.

use serde_json::{Map, Value};

use crate::profile::ElementPath;

/// One step of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Step<'a> {
    name: &'a str,
    at: At,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// The element (every item when it is a list).
    Each,
    /// One item of a list (`identifier[0]`).
    Index(usize),
    /// A choice element (`value[x]`): every `valueX` present.
    Choice,
}

fn steps(path: &ElementPath) -> Vec<Step<'_>> {
    path.as_str()
        .split('.')
        .map(|seg| match seg.split_once('[') {
            Some((name, "x]")) => Step {
                name,
                at: At::Choice,
            },
            Some((name, index)) => Step {
                name,
                at: index
                    .trim_end_matches(']')
                    .parse()
                    .map_or(At::Each, At::Index),
            },
            None => Step {
                name: seg,
                at: At::Each,
            },
        })
        .collect()
}

fn is_choice_of(key: &str, name: &str) -> bool {
    key.strip_prefix(name)
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_ascii_uppercase())
}

/// Every non-null value at the path; a list at the end gives its items.
pub fn values<'a>(resource: &'a Value, path: &ElementPath) -> Vec<&'a Value> {
    let mut out = Vec::new();
    collect(resource, &steps(path), &mut out);
    out
}

/// Whether the path holds a value.
pub fn present(resource: &Value, path: &ElementPath) -> bool {
    !values(resource, path).is_empty()
}

fn collect<'a>(v: &'a Value, steps: &[Step], out: &mut Vec<&'a Value>) {
    if let Value::Array(items) = v {
        for item in items {
            collect(item, steps, out);
        }
        return;
    }
    let Some((step, rest)) = steps.split_first() else {
        if !v.is_null() {
            out.push(v);
        }
        return;
    };
    let Value::Object(map) = v else { return };
    match step.at {
        At::Each => {
            if let Some(child) = map.get(step.name) {
                collect(child, rest, out);
            }
        }
        At::Index(n) => {
            let item = match map.get(step.name) {
                Some(Value::Array(list)) => list.get(n),
                Some(one) if n == 0 => Some(one),
                _ => None,
            };
            if let Some(item) = item {
                collect(item, rest, out);
            }
        }
        At::Choice => {
            for (_, child) in map.iter().filter(|(k, _)| is_choice_of(k, step.name)) {
                collect(child, rest, out);
            }
        }
    }
}

/// Applies `f` to every value at the path: a list at the end item by item when `items`,
/// else as a whole.
pub fn edit(resource: &mut Value, path: &ElementPath, items: bool, f: &mut dyn FnMut(&mut Value)) {
    edit_steps(resource, &steps(path), items, f);
}

fn edit_steps(v: &mut Value, steps: &[Step], items: bool, f: &mut dyn FnMut(&mut Value)) {
    let Some((step, rest)) = steps.split_first() else {
        match v {
            Value::Array(list) if items => list.iter_mut().for_each(f),
            Value::Null => {}
            other => f(other),
        }
        return;
    };
    match v {
        Value::Array(list) => {
            for item in list {
                edit_steps(item, steps, items, f);
            }
        }
        Value::Object(map) => {
            for child in children_mut(map, *step) {
                edit_steps(child, rest, items, f);
            }
        }
        _ => {}
    }
}

fn children_mut<'a>(map: &'a mut Map<String, Value>, step: Step) -> Vec<&'a mut Value> {
    match step.at {
        At::Each => map.get_mut(step.name).into_iter().collect(),
        At::Index(n) => match map.get_mut(step.name) {
            Some(Value::Array(list)) => list.get_mut(n).into_iter().collect(),
            Some(one) if n == 0 => vec![one],
            _ => Vec::new(),
        },
        At::Choice => map
            .iter_mut()
            .filter(|(k, _)| is_choice_of(k, step.name))
            .map(|(_, v)| v)
            .collect(),
    }
}

/// Removes the element at the path (from every item of a list on the way).
pub fn remove(resource: &mut Value, path: &ElementPath) {
    let all = steps(path);
    let Some((last, parents)) = all.split_last() else {
        return;
    };
    let mut drop_from = |parent: &mut Value| {
        let Value::Object(map) = parent else { return };
        match last.at {
            At::Each => {
                map.remove(last.name);
            }
            At::Index(n) => match map.get_mut(last.name) {
                Some(Value::Array(list)) if n < list.len() => {
                    list.remove(n);
                    if list.is_empty() {
                        map.remove(last.name);
                    }
                }
                Some(_) if n == 0 => {
                    map.remove(last.name);
                }
                _ => {}
            },
            At::Choice => map.retain(|k, _| !is_choice_of(k, last.name)),
        }
    };
    if parents.is_empty() {
        drop_from(resource);
    } else {
        edit_steps(resource, parents, true, &mut drop_from);
    }
}

/// Sets the element at the path, creating missing objects on the way (not list items).
pub fn set(resource: &mut Value, path: &ElementPath, value: &Value) {
    set_steps(resource, &steps(path), value);
}

fn set_steps(v: &mut Value, steps: &[Step], value: &Value) {
    let Some((step, rest)) = steps.split_first() else {
        *v = value.clone();
        return;
    };
    match v {
        Value::Array(list) => {
            for item in list {
                set_steps(item, steps, value);
            }
        }
        Value::Object(map) => match step.at {
            At::Each => {
                let fresh = if rest.is_empty() {
                    Value::Null
                } else {
                    Value::Object(Map::new())
                };
                let child = map.entry(step.name).or_insert(fresh);
                set_steps(child, rest, value);
            }
            At::Index(_) | At::Choice => {
                for child in children_mut(map, *step) {
                    set_steps(child, rest, value);
                }
            }
        },
        _ => {}
    }
}

/// The codes a value carries: a primitive itself; a Coding its `code`; a
/// CodeableConcept the `code` of each coding.
pub fn codes(v: &Value) -> Vec<&Value> {
    match v {
        Value::Object(map) => {
            let mut out: Vec<&Value> = map.get("code").into_iter().collect();
            if let Some(Value::Array(codings)) = map.get("coding") {
                out.extend(codings.iter().filter_map(|c| c.get("code")));
            }
            out
        }
        Value::Array(_) | Value::Null => Vec::new(),
        primitive => vec![primitive],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(s: &str) -> ElementPath {
        ElementPath::parse(s.into()).unwrap()
    }

    #[test]
    fn values_fan_out_over_lists() {
        let r = json!({"note": [{"text": "a"}, {"text": "b"}, {}], "valueQuantity": {"value": 1},
                       "identifier": [{"value": "x"}, {"value": "y"}],
                       "context": {"encounter": [{"reference": "Encounter/1"}]}});
        assert_eq!(values(&r, &p("note.text")), [&json!("a"), &json!("b")]);
        assert_eq!(values(&r, &p("identifier[1].value")), [&json!("y")]);
        assert_eq!(values(&r, &p("value[x]")), [&json!({"value": 1})]);
        assert!(present(&r, &p("context.encounter")));
        assert!(!present(&r, &p("encounter")));
        assert!(!present(&json!({"code": null}), &p("code")));
    }

    #[test]
    fn edits_reach_every_item() {
        let mut r =
            json!({"note": [{"text": "abc", "time": "t"}, {"text": "de"}], "category": ["x"]});
        edit(&mut r, &p("note.text"), true, &mut |v| *v = json!("!"));
        assert_eq!(r["note"][1]["text"], "!");
        remove(&mut r, &p("note.time"));
        assert!(r["note"][0].get("time").is_none());
        remove(&mut r, &p("category"));
        assert!(r.get("category").is_none());
        set(&mut r, &p("code.text"), &json!("T"));
        assert_eq!(r["code"]["text"], "T");
        let mut whole = 0;
        edit(&mut r, &p("note"), false, &mut |v| {
            whole += v.as_array().map_or(0, Vec::len)
        });
        assert_eq!(whole, 2);
    }

    #[test]
    fn codes_of_primitives_codings_and_concepts() {
        let cc = json!({"coding": [{"code": "a"}, {"code": "b"}], "text": "t"});
        assert_eq!(codes(&cc), [&json!("a"), &json!("b")]);
        assert_eq!(codes(&json!({"system": "s", "code": "c"})), [&json!("c")]);
        assert_eq!(codes(&json!(true)), [&json!(true)]);
    }
}

//! Walking a JSON resource along a FHIR element path (`code.coding.display`,
//! `identifier[0]`, `value[x]`): arrays met on the way are walked item by item, the way
//! FHIRPath does.

use serde_json::Value;

/// One step of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seg<'a> {
    Name(&'a str),
    /// `name[n]`: one item of an array.
    Index(&'a str, usize),
    /// `name[x]`: any choice element `nameQuantity`, `nameString`, …
    Choice(&'a str),
}

fn segs(path: &str) -> Vec<Seg<'_>> {
    path.split('.')
        .map(|s| match s.split_once('[') {
            Some((name, "x]")) => Seg::Choice(name),
            Some((name, rest)) => rest
                .trim_end_matches(']')
                .parse()
                .map_or(Seg::Name(name), |i| Seg::Index(name, i)),
            None => Seg::Name(s),
        })
        .collect()
}

/// Whether `key` is a choice element of `prefix` (`valueQuantity` of `value`).
fn is_choice(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.chars().next())
        .is_some_and(char::is_uppercase)
}

/// Every value at `path` (arrays flattened).
pub fn values<'v>(v: &'v Value, path: &str) -> Vec<&'v Value> {
    let mut out = Vec::new();
    collect(v, &segs(path), &mut out);
    out
}

fn collect<'v>(v: &'v Value, segs: &[Seg<'_>], out: &mut Vec<&'v Value>) {
    if let Value::Array(items) = v {
        items.iter().for_each(|i| collect(i, segs, out));
        return;
    }
    let Some((first, rest)) = segs.split_first() else {
        out.push(v);
        return;
    };
    let Value::Object(map) = v else {
        return;
    };
    match *first {
        Seg::Name(n) => {
            if let Some(child) = map.get(n) {
                collect(child, rest, out);
            }
        }
        Seg::Index(n, i) => {
            if let Some(child) = map.get(n).and_then(|c| c.get(i)) {
                collect(child, rest, out);
            }
        }
        Seg::Choice(p) => map
            .iter()
            .filter(|(k, _)| is_choice(k, p))
            .for_each(|(_, child)| collect(child, rest, out)),
    }
}

/// Applies `f` to every value at `path`.
pub fn for_each_mut(v: &mut Value, path: &str, f: &mut dyn FnMut(&mut Value)) {
    walk_mut(v, &segs(path), f);
}

fn walk_mut(v: &mut Value, segs: &[Seg<'_>], f: &mut dyn FnMut(&mut Value)) {
    if let Value::Array(items) = v {
        items.iter_mut().for_each(|i| walk_mut(i, segs, f));
        return;
    }
    let Some((first, rest)) = segs.split_first() else {
        f(v);
        return;
    };
    let Value::Object(map) = v else {
        return;
    };
    match *first {
        Seg::Name(n) => {
            if let Some(child) = map.get_mut(n) {
                walk_mut(child, rest, f);
            }
        }
        Seg::Index(n, i) => {
            if let Some(child) = map.get_mut(n).and_then(|c| c.get_mut(i)) {
                walk_mut(child, rest, f);
            }
        }
        Seg::Choice(p) => map
            .iter_mut()
            .filter(|(k, _)| is_choice(k, p))
            .for_each(|(_, child)| walk_mut(child, rest, f)),
    }
}

/// Whether the resource carries a value at `path` (not null, not empty).
pub fn present(v: &Value, path: &str) -> bool {
    values(v, path).into_iter().any(|x| match x {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_walk_arrays_indexes_and_choices() {
        let v = json!({
            "code": {"coding": [{"code": "a", "display": "A"}, {"code": "b"}]},
            "identifier": [{"value": "1"}, {"value": "2"}],
            "valueQuantity": {"value": 3},
            "context": {"encounter": [{"reference": "Encounter/1"}]}
        });
        assert_eq!(
            values(&v, "code.coding.code"),
            vec![&json!("a"), &json!("b")]
        );
        assert_eq!(values(&v, "identifier[1].value"), vec![&json!("2")]);
        assert_eq!(values(&v, "value[x].value"), vec![&json!(3)]);
        assert!(present(&v, "context.encounter"));
        assert!(!present(&v, "context.period.end"));
        assert!(!present(&json!({"note": []}), "note"));
        let mut w = v.clone();
        for_each_mut(&mut w, "code.coding.code", &mut |c| *c = json!("z"));
        assert_eq!(
            values(&w, "code.coding.code"),
            vec![&json!("z"), &json!("z")]
        );
    }
}

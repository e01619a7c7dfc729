//! JSON Patch (RFC 6902) over a resource: `add`, `remove`, `replace`, `move`, `copy` and
//! `test`, with JSON Pointers (RFC 6901, `~0` / `~1` escapes, `-` for the end of an
//! array). All or nothing: the first operation that fails leaves the input untouched.
//! Pure: no I/O, nothing else of the mock.

use serde_json::Value;

/// Why a patch document cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("the patch is not a JSON array of operations")]
    NotAList,
    #[error("operation {0}: {1}")]
    Op(usize, String),
}

/// Applies every operation of `patch` to a copy of `doc`; the patched copy.
pub fn apply(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or(PatchError::NotAList)?;
    let mut out = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        one(&mut out, op).map_err(|e| PatchError::Op(i, e))?;
    }
    Ok(out)
}

fn one(doc: &mut Value, op: &Value) -> Result<(), String> {
    let text = |key: &str| {
        op.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`{key}` is missing or not a string"))
    };
    let path = parse(text("path")?)?;
    let value = || op.get("value").cloned().ok_or("`value` is missing");
    match text("op")? {
        "add" => add(doc, &path, value()?),
        "remove" => remove(doc, &path).map(drop),
        "replace" => {
            remove(doc, &path)?;
            add(doc, &path, value()?)
        }
        "move" => {
            let from = parse(text("from")?)?;
            if path.len() > from.len() && path[..from.len()] == from[..] {
                return Err("`from` is a prefix of `path`".into());
            }
            let moved = remove(doc, &from)?;
            add(doc, &path, moved)
        }
        "copy" => {
            let from = parse(text("from")?)?;
            let copied = get(doc, &from)?.clone();
            add(doc, &path, copied)
        }
        "test" => {
            if *get(doc, &path)? == value()? {
                Ok(())
            } else {
                Err(format!("test failed at `{}`", text("path")?))
            }
        }
        other => Err(format!("unknown op `{other}`")),
    }
}

/// A JSON Pointer's reference tokens, unescaped.
fn parse(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("`{pointer}` is not a JSON Pointer"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Result<&'a Value, String> {
    path.iter().try_fold(doc, |at, token| {
        match at {
            Value::Object(map) => map.get(token),
            Value::Array(items) => index(token, items.len()).and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("`/{}` does not exist", path.join("/")))
    })
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Result<&'a mut Value, String> {
    let shown = || format!("`/{}` does not exist", path.join("/"));
    let mut at = doc;
    for token in path {
        at = match at {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => {
                let len = items.len();
                index(token, len).and_then(move |i| items.get_mut(i))
            }
            _ => None,
        }
        .ok_or_else(shown)?;
    }
    Ok(at)
}

/// An array index token: digits without a leading zero, below `len`.
fn index(token: &str, len: usize) -> Option<usize> {
    let ok = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    ok.then(|| token.parse().ok())
        .flatten()
        .filter(|i| *i < len)
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let at = if last == "-" {
                items.len()
            } else {
                index(last, items.len() + 1).ok_or_else(|| format!("bad array index `{last}`"))?
            };
            items.insert(at, value);
            Ok(())
        }
        _ => Err(format!("cannot add `{last}` under a scalar")),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let (last, parent) = path
        .split_last()
        .ok_or("cannot remove the whole document")?;
    let missing = || format!("`/{}` does not exist", path.join("/"));
    match get_mut(doc, parent)? {
        Value::Object(map) => map.remove(last).ok_or_else(missing),
        Value::Array(items) => {
            let i = index(last, items.len()).ok_or_else(missing)?;
            Ok(items.remove(i))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_six_operations() {
        let doc = json!({"status": "preliminary", "code": {"coding": [{"code": "a"}]}, "x~/y": 1});
        let patch = json!([
            {"op": "test", "path": "/status", "value": "preliminary"},
            {"op": "replace", "path": "/status", "value": "final"},
            {"op": "add", "path": "/code/coding/-", "value": {"code": "b"}},
            {"op": "add", "path": "/code/coding/0", "value": {"code": "z"}},
            {"op": "copy", "from": "/status", "path": "/note"},
            {"op": "move", "from": "/x~0~1y", "path": "/moved"},
            {"op": "remove", "path": "/code/coding/1"}
        ]);
        let out = apply(&doc, &patch).unwrap();
        assert_eq!(
            out,
            json!({"status": "final", "code": {"coding": [{"code": "z"}, {"code": "b"}]},
                   "note": "final", "moved": 1})
        );
    }

    #[test]
    fn a_failed_operation_changes_nothing_and_says_which() {
        let doc = json!({"status": "final", "list": [1]});
        let patch = json!([
            {"op": "replace", "path": "/status", "value": "amended"},
            {"op": "test", "path": "/status", "value": "final"}
        ]);
        assert_eq!(
            apply(&doc, &patch),
            Err(PatchError::Op(1, "test failed at `/status`".into()))
        );
        for bad in [
            json!({"op": "remove"}),
            json!([{"op": "remove", "path": "/nope"}]),
            json!([{"op": "add", "path": "/list/5", "value": 0}]),
            json!([{"op": "add", "path": "/list/01", "value": 0}]),
            json!([{"op": "jump", "path": "/status"}]),
            json!([{"op": "move", "from": "/list", "path": "/list/0"}]),
            json!([{"op": "add", "path": "status", "value": 0}]),
        ] {
            assert!(apply(&doc, &bad).is_err(), "{bad}");
        }
    }
}

//! `POST /` with a Bundle: batch (each entry on its own, each with its own status) and
//! the entry shapes both kinds share. Transactions are in `transaction`. Batch entries
//! are never faulted.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::http::{Return, parse_body};
use super::outcome::Problem;
use super::store::Version;
use super::write::{Ctx, Written};
use super::{MAX_PAGE, Shared, render, search};

/// What one Bundle entry asks for.
#[derive(Debug)]
pub enum Action {
    Create {
        rt: String,
        resource: Value,
        if_none_exist: Option<String>,
        full_url: Option<String>,
    },
    Update {
        rt: String,
        id: String,
        resource: Value,
        if_match: Option<String>,
    },
    /// `GET` of a path relative to the base (batch only).
    Get { url: String },
}

impl Shared {
    /// Runs a transaction or batch Bundle; returns the response Bundle.
    pub fn bundle(
        &self,
        bundle: Value,
        base: &str,
        ret: Return,
        ctx: Ctx,
    ) -> Result<Value, Problem> {
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(Problem::bad("POST / takes a Bundle"));
        }
        let entries = match bundle.get("entry") {
            Some(Value::Array(items)) => items.as_slice(),
            None => &[],
            Some(_) => return Err(Problem::bad("Bundle.entry must be an array")),
        };
        match bundle.get("type").and_then(Value::as_str) {
            Some("batch") => Ok(self.batch(entries, base, ret, ctx)),
            Some("transaction") => self.transaction(entries, base, ret, ctx),
            _ => Err(Problem::bad("Bundle.type must be `transaction` or `batch`")),
        }
    }

    fn batch(&self, entries: &[Value], base: &str, ret: Return, ctx: Ctx) -> Value {
        let ctx = Ctx {
            faults: false,
            ..ctx
        };
        let out: Vec<Value> = entries
            .iter()
            .map(|e| match parse_entry(e) {
                Ok(action) => self
                    .batch_entry(action, base, ret, ctx)
                    .unwrap_or_else(|p| error_entry(&p)),
                Err(p) => error_entry(&p),
            })
            .collect();
        json!({"resourceType": "Bundle", "type": "batch-response", "entry": out})
    }

    fn batch_entry(
        &self,
        action: Action,
        base: &str,
        ret: Return,
        ctx: Ctx,
    ) -> Result<Value, Problem> {
        let w = match action {
            Action::Create {
                rt,
                resource,
                if_none_exist: Some(q),
                ..
            } => self.conditional_create(&rt, resource, &q, ctx)?,
            Action::Create { rt, resource, .. } => self.create(&rt, resource, ctx)?,
            Action::Update {
                rt,
                id,
                resource,
                if_match,
            } => self.update(&rt, &id, resource, if_match.as_deref(), ctx)?,
            Action::Get { url } => return self.get(&url, base, ctx),
        };
        Ok(written_entry(&w, base, ret))
    }

    /// A `GET` entry: read, vread, history or search.
    fn get(&self, url: &str, base: &str, ctx: Ctx) -> Result<Value, Problem> {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let parts: Vec<&str> = path.split('/').collect();
        let body = match parts.as_slice() {
            [rt] => {
                let q = search::parse(rt, query, self.page_size, MAX_PAGE)
                    .map_err(|e| Problem::bad(e.to_string()))?;
                let page = search::run(&self.store, &self.index, rt, &q, |s| {
                    self.visible(s.hidden_until)
                });
                return Ok(ok_entry(
                    parse_body(&render::searchset(base, rt, &q, &page))?,
                    None,
                ));
            }
            [rt, id] => self.read(rt, id, ctx.request)?,
            [rt, id, "_history"] => {
                let versions = self.history(rt, id)?;
                return Ok(ok_entry(
                    parse_body(&render::history(base, rt, id, &versions))?,
                    None,
                ));
            }
            [rt, id, "_history", v] => self.vread(rt, id, v)?,
            _ => return Err(Problem::bad(format!("cannot GET `{url}` in a Bundle"))),
        };
        Ok(ok_entry(parse_body(&body.body)?, Some(&body)))
    }
}

/// Parses `request` and `resource` of one entry.
pub fn parse_entry(entry: &Value) -> Result<Action, Problem> {
    let request = entry
        .get("request")
        .ok_or_else(|| Problem::bad("entry.request is missing"))?;
    let text = |name: &str| request.get(name).and_then(Value::as_str).map(str::to_owned);
    let method = text("method").ok_or_else(|| Problem::bad("entry.request.method is missing"))?;
    let url = relative(&text("url").ok_or_else(|| Problem::bad("entry.request.url is missing"))?);
    let resource = || {
        entry
            .get("resource")
            .cloned()
            .ok_or_else(|| Problem::bad("entry.resource is missing"))
    };
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", [rt]) if query.is_empty() => Ok(Action::Create {
            rt: (*rt).to_owned(),
            resource: resource()?,
            if_none_exist: text("ifNoneExist"),
            full_url: entry
                .get("fullUrl")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }),
        ("PUT", [rt, id]) if query.is_empty() => Ok(Action::Update {
            rt: (*rt).to_owned(),
            id: (*id).to_owned(),
            resource: resource()?,
            if_match: text("ifMatch"),
        }),
        ("GET", [_, ..]) => Ok(Action::Get { url }),
        ("POST" | "PUT" | "GET", _) => Err(Problem::bad(format!(
            "{method} {url}: not a supported entry URL"
        ))),
        _ => Err(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            format!("{method} is not supported in a Bundle"),
        )),
    }
}

/// The path of an entry URL relative to the base (absolute URLs lose scheme and host).
fn relative(url: &str) -> String {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let path = match rest {
        Some(r) => r.find('/').map_or("", |at| &r[at..]),
        None => url,
    };
    path.trim_start_matches('/').to_owned()
}

/// `201 Created`, `200 OK`, `412 Precondition Failed`.
pub fn status_text(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

/// The response entry of a write.
pub fn written_entry(w: &Written, base: &str, ret: Return) -> Value {
    let status = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let v = &w.version;
    let mut response = Map::new();
    response.insert("status".into(), json!(status_text(status)));
    response.insert(
        "location".into(),
        json!(format!(
            "{}/{}/_history/{}",
            w.resource_type, w.id, v.number
        )),
    );
    response.insert("etag".into(), json!(format!("W/\"{}\"", v.number)));
    response.insert("lastModified".into(), json!(stamp(v)));
    let mut entry = Map::new();
    entry.insert(
        "fullUrl".into(),
        json!(render::full_url(base, &w.resource_type, &w.id)),
    );
    if ret == Return::Representation
        && let Ok(resource) = serde_json::from_slice::<Value>(&v.body)
    {
        entry.insert("resource".into(), resource);
    }
    entry.insert("response".into(), Value::Object(response));
    Value::Object(entry)
}

fn ok_entry(resource: Value, version: Option<&Arc<Version>>) -> Value {
    let mut response = json!({"status": status_text(StatusCode::OK)});
    if let Some(v) = version {
        response["etag"] = json!(format!("W/\"{}\"", v.number));
        response["lastModified"] = json!(stamp(v));
    }
    json!({"resource": resource, "response": response})
}

fn error_entry(p: &Problem) -> Value {
    json!({"response": {"status": status_text(p.status), "outcome": p.to_json()}})
}

fn stamp(v: &Version) -> String {
    v.last_updated
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_urls_may_be_absolute() {
        assert_eq!(relative("http://h:1/Patient/x"), "Patient/x");
        assert_eq!(relative("Patient?identifier=a|b"), "Patient?identifier=a|b");
        assert_eq!(relative("/Patient"), "Patient");
    }

    #[test]
    fn parses_entries_and_refuses_odd_ones() {
        let e = json!({"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"},
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=a|b"}});
        let Ok(Action::Create {
            rt,
            if_none_exist,
            full_url,
            ..
        }) = parse_entry(&e)
        else {
            panic!()
        };
        assert_eq!(
            (rt.as_str(), if_none_exist.as_deref(), full_url.as_deref()),
            ("Patient", Some("identifier=a|b"), Some("urn:uuid:1"))
        );
        let e = json!({"request": {"method": "DELETE", "url": "Patient/1"}});
        assert_eq!(
            parse_entry(&e).unwrap_err().status,
            StatusCode::METHOD_NOT_ALLOWED
        );
        let e = json!({"request": {"method": "PUT", "url": "Patient"}, "resource": {}});
        assert_eq!(parse_entry(&e).unwrap_err().status, StatusCode::BAD_REQUEST);
        let e = json!({"request": {"method": "POST", "url": "Patient"}});
        assert_eq!(parse_entry(&e).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(
            status_text(StatusCode::PRECONDITION_FAILED),
            "412 Precondition Failed"
        );
    }
}

//! Writing search and history Bundles. Resources are stored serialised, so Bundles are
//! written by splicing their bytes rather than by building and re-serialising a tree:
//! searches are the hot path of a load test. Pure functions.

use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;

use super::search::{self, Hit, Page, Query};
use super::store::Version;

/// The `searchset` Bundle of one page.
pub fn searchset(base: &str, rt: &str, q: &Query, page: &Page) -> Bytes {
    let next = page.next.map(|n| link(base, rt, q, Some(n)));
    let links = Links {
        self_url: &link(base, rt, q, q.after),
        next: next.as_deref(),
    };
    searchset_with(base, rt, page.total, &links, &page.hits, None)
}

/// The `self` and `next` links of a searchset.
#[derive(Clone, Copy, Debug)]
pub struct Links<'a> {
    pub self_url: &'a str,
    pub next: Option<&'a str>,
}

/// A `searchset` Bundle with the links given and, when given, an OperationOutcome entry
/// (`search.mode = outcome`) after the matches.
pub fn searchset_with(
    base: &str,
    rt: &str,
    total: usize,
    links: &Links,
    hits: &[Hit],
    outcome: Option<&[u8]>,
) -> Bytes {
    let size: usize = hits.iter().map(|h| h.version.body.len() + 160).sum();
    let mut out = Vec::with_capacity(512 + size);
    out.extend_from_slice(br#"{"resourceType":"Bundle","type":"searchset","total":"#);
    let _ = write!(out, "{total}");
    out.extend_from_slice(br#","link":[{"relation":"self","url":"#);
    string(&mut out, links.self_url);
    out.push(b'}');
    if let Some(next) = links.next {
        out.extend_from_slice(br#",{"relation":"next","url":"#);
        string(&mut out, next);
        out.push(b'}');
    }
    out.push(b']');
    if !hits.is_empty() || outcome.is_some() {
        out.extend_from_slice(br#","entry":["#);
        for (i, hit) in hits.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"fullUrl":"#);
            string(&mut out, &full_url(base, rt, &hit.resource.id));
            out.extend_from_slice(br#","resource":"#);
            out.extend_from_slice(&hit.version.body);
            out.extend_from_slice(br#","search":{"mode":"match"}}"#);
        }
        if let Some(o) = outcome {
            if !hits.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"resource":"#);
            out.extend_from_slice(o);
            out.extend_from_slice(br#","search":{"mode":"outcome"}}"#);
        }
        out.push(b']');
    }
    out.push(b'}');
    Bytes::from(out)
}

/// The `history` Bundle of one resource, versions newest first.
pub fn history(base: &str, rt: &str, id: &str, versions: &[Arc<Version>]) -> Bytes {
    let size: usize = versions.iter().map(|v| v.body.len() + 256).sum();
    let mut out = Vec::with_capacity(256 + size);
    out.extend_from_slice(br#"{"resourceType":"Bundle","type":"history","total":"#);
    let _ = write!(out, "{}", versions.len());
    out.extend_from_slice(br#","link":[{"relation":"self","url":"#);
    string(&mut out, &format!("{}/_history", full_url(base, rt, id)));
    out.extend_from_slice(br#"}],"entry":["#);
    let url = full_url(base, rt, id);
    for (i, v) in versions.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"fullUrl":"#);
        string(&mut out, &url);
        if !v.deleted {
            out.extend_from_slice(br#","resource":"#);
            out.extend_from_slice(&v.body);
        }
        let (method, path, status) = match (v.deleted, v.created) {
            (true, _) => ("DELETE", format!("{rt}/{id}"), "204 No Content"),
            (false, true) => ("POST", rt.to_owned(), "201 Created"),
            (false, false) => ("PUT", format!("{rt}/{id}"), "200 OK"),
        };
        let _ = write!(out, r#","request":{{"method":"{method}","url":"#);
        string(&mut out, &path);
        let _ = write!(
            out,
            r#"}},"response":{{"status":"{status}","etag":"W/\"{}\"","lastModified":"{}"}}}}"#,
            v.number,
            v.last_updated
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// `base/Type/id` (base ends with `/`).
pub fn full_url(base: &str, rt: &str, id: &str) -> String {
    format!("{base}{rt}/{id}")
}

/// A search link: the query as given plus, for later pages, the cursor.
fn link(base: &str, rt: &str, q: &Query, after: Option<search::SortKey>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in &q.echo {
        query.append_pair(name, value);
    }
    if let Some(after) = after {
        query.append_pair("_cursor", &search::cursor(after));
    }
    let query = query.finish();
    if query.is_empty() {
        format!("{base}{rt}")
    } else {
        format!("{base}{rt}?{query}")
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::mock::search::parse;

    #[test]
    fn an_empty_searchset_is_valid_json_with_links() {
        let q = parse("Patient", "identifier=a%7Cb&_count=5", 20, 200).unwrap();
        let page = Page {
            total: 7,
            hits: Vec::new(),
            next: Some((0, 42)),
            ..Page::default()
        };
        let v: Value =
            serde_json::from_slice(&searchset("http://h:1/", "Patient", &q, &page)).unwrap();
        assert_eq!(v["total"], 7);
        assert_eq!(
            v["link"][0]["url"],
            "http://h:1/Patient?identifier=a%7Cb&_count=5"
        );
        assert_eq!(v["link"][1]["relation"], "next");
        let next = v["link"][1]["url"].as_str().unwrap();
        assert!(
            next.starts_with("http://h:1/Patient?identifier=a%7Cb&_count=5&_cursor="),
            "{next}"
        );
        assert!(v.get("entry").is_none());
    }

    #[test]
    fn history_entries_say_how_each_version_was_written() {
        let v = |number, created| {
            Arc::new(Version {
                number,
                last_updated: chrono::Utc::now(),
                http_date: String::new(),
                body: Bytes::from_static(br#"{"resourceType":"Patient","id":"x"}"#),
                keys: Box::new([]),
                identifier: None,
                created,
                deleted: false,
            })
        };
        let b: Value = serde_json::from_slice(&history(
            "http://h/",
            "Patient",
            "x",
            &[v(2, false), v(1, true)],
        ))
        .unwrap();
        assert_eq!(b["type"], "history");
        assert_eq!(b["entry"][0]["request"]["method"], "PUT");
        assert_eq!(b["entry"][0]["response"]["etag"], "W/\"2\"");
        assert_eq!(b["entry"][1]["request"]["url"], "Patient");
        assert_eq!(b["entry"][1]["response"]["status"], "201 Created");
        assert_eq!(b["entry"][1]["fullUrl"], "http://h/Patient/x");
    }
}

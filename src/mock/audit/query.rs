//! AuditEvent searches the standard way: `entity`, `patient`, `agent`, `action`,
//! `subtype`, `outcome`, `date` (with `ge`/`gt`/`le`/`lt`/`eq` prefixes, repeatable),
//! `_count`, and stable paging by a cursor into the append-only trail. Pure: the
//! parsed filter, the match, one page, and the searchset Bundle.

use std::io::Write as _;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::{Entry, event};

/// A parsed AuditEvent search.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    /// `Type/id` references, any of which an entity (or the patient) must be.
    pub entity: Vec<String>,
    pub patient: Vec<String>,
    pub agent: Vec<String>,
    pub action: Vec<u8>,
    pub subtype: Vec<String>,
    pub outcome: Vec<u8>,
    /// `recorded` must be at or after this (ms since the epoch).
    pub from_ms: Option<i64>,
    /// `recorded` must be before this.
    pub to_ms: Option<i64>,
    pub count: usize,
    /// Where in the trail the page starts.
    pub cursor: usize,
}

/// Parses a query string; the error says which parameter is wrong.
pub fn parse(query: &str, default_count: usize, max: usize) -> Result<Filter, String> {
    let mut f = Filter {
        count: default_count,
        ..Filter::default()
    };
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let values = || value.split(',').map(str::to_owned);
        match key.as_ref() {
            "entity" => f.entity.extend(values().map(|v| reference(&v))),
            "patient" => f
                .patient
                .extend(values().filter_map(|v| super::patient_ref(&v))),
            "agent" => f.agent.extend(values()),
            "action" => f.action.extend(values().filter_map(|v| v.bytes().next())),
            "subtype" => f.subtype.extend(values().map(|v| code(&v))),
            "outcome" => f
                .outcome
                .extend(values().filter_map(|v| v.parse::<u8>().ok())),
            "date" => date(&mut f, &value)?,
            "_count" => {
                let n: usize = value.parse().map_err(|_| format!("_count `{value}`"))?;
                f.count = n.clamp(1, max);
            }
            "_cursor" => f.cursor = value.parse().map_err(|_| format!("_cursor `{value}`"))?,
            _ => {}
        }
    }
    Ok(f)
}

/// `Type/id` of a reference, relative or absolute.
fn reference(value: &str) -> String {
    let parts: Vec<&str> = value.trim_end_matches('/').rsplitn(3, '/').collect();
    match parts.as_slice() {
        [id, rt, ..] => format!("{rt}/{id}"),
        _ => value.to_owned(),
    }
}

/// The code of a `system|code` token.
fn code(value: &str) -> String {
    value.rsplit('|').next().unwrap_or(value).to_owned()
}

fn date(f: &mut Filter, value: &str) -> Result<(), String> {
    let (prefix, rest) = match value.get(..2) {
        Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &value[2..]),
        _ => ("eq", value),
    };
    let (start, end) = instant_range(rest).ok_or_else(|| format!("date `{value}`"))?;
    let lower = |f: &mut Filter, t: i64| f.from_ms = Some(f.from_ms.map_or(t, |x| x.max(t)));
    let upper = |f: &mut Filter, t: i64| f.to_ms = Some(f.to_ms.map_or(t, |x| x.min(t)));
    match prefix {
        "ge" => lower(f, start),
        "gt" => lower(f, end),
        "le" => upper(f, end),
        "lt" => upper(f, start),
        _ => {
            lower(f, start);
            upper(f, end);
        }
    }
    Ok(())
}

/// The milliseconds a date or dateTime covers, at its precision: `[start, end)`.
fn instant_range(value: &str) -> Option<(i64, i64)> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        let ms = t.timestamp_millis();
        let precise = value.contains('.');
        return Some((ms, if precise { ms + 1 } else { ms + 1000 }));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S") {
        let ms = t.and_utc().timestamp_millis();
        return Some((ms, ms + 1000));
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
    let ms = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some((ms, ms + 86_400_000))
}

/// Whether an event matches the filter.
pub fn matches(f: &Filter, e: &Entry) -> bool {
    let any = |list: &[String], hit: &dyn Fn(&str) -> bool| {
        list.is_empty() || list.iter().any(|v| hit(v))
    };
    let what = e.what.as_deref();
    let patient = e.patient.as_deref();
    f.from_ms.is_none_or(|t| e.at_ms >= t)
        && f.to_ms.is_none_or(|t| e.at_ms < t)
        && (f.action.is_empty() || f.action.contains(&e.action))
        && (f.outcome.is_empty() || f.outcome.contains(&e.outcome))
        && any(&f.subtype, &|c| c == e.code.as_str())
        && any(&f.entity, &|r| Some(r) == what || Some(r) == patient)
        && any(&f.patient, &|r| Some(r) == patient || Some(r) == what)
        && any(&f.agent, &|a| agent_is(a, &e.agent))
}

/// `agent` given as the client id, a reference ending in it, or `system|value`.
fn agent_is(given: &str, agent: &str) -> bool {
    given == agent || given.rsplit(['/', '|']).next() == Some(agent)
}

/// One page: the matching positions from the cursor on, and where the next page starts.
pub fn page(entries: &[Entry], f: &Filter) -> (Vec<usize>, Option<usize>) {
    let mut hits = Vec::with_capacity(f.count.min(256));
    for (i, e) in entries.iter().enumerate().skip(f.cursor) {
        if !matches(f, e) {
            continue;
        }
        if hits.len() == f.count {
            return (hits, Some(i));
        }
        hits.push(i);
    }
    (hits, None)
}

/// The searchset Bundle of a page; `next` links repeat the query with the new cursor.
pub fn searchset(
    base: &str,
    query: &str,
    events: &[(usize, &Entry)],
    next: Option<usize>,
) -> Bytes {
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "_cursor")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let link = |cursor: Option<usize>| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        s.extend_pairs(&kept);
        if let Some(c) = cursor {
            s.append_pair("_cursor", &c.to_string());
        }
        format!("{base}AuditEvent?{}", s.finish())
    };
    let mut bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "self", "url": link(None)}],
    });
    if let (Some(n), Some(links)) = (next, bundle["link"].as_array_mut()) {
        links.push(serde_json::json!({"relation": "next", "url": link(Some(n))}));
    }
    let entries: Vec<serde_json::Value> = events
        .iter()
        .map(|(i, e)| {
            serde_json::json!({
                "fullUrl": format!("{base}AuditEvent/{}", event::id(*i)),
                "resource": event::render(*i, e),
                "search": {"mode": "match"},
            })
        })
        .collect();
    if !entries.is_empty() {
        bundle["entry"] = serde_json::Value::Array(entries);
    }
    let mut out = Vec::new();
    let _ = write!(out, "{bundle}");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::super::Code;
    use super::*;
    use std::sync::Arc;

    fn entry(at_ms: i64, code: Code, what: &str, patient: Option<&str>) -> Entry {
        Entry {
            at_ms,
            code,
            action: code.action(),
            outcome: 0,
            agent: Arc::from("app"),
            address: None,
            what: Some(what.into()),
            patient: patient.map(Into::into),
            query: None,
        }
    }

    #[test]
    fn filters_by_entity_patient_action_subtype_agent_and_dates() {
        let t0 = instant_range("2026-01-01T00:00:00Z").unwrap().0;
        let es = [
            entry(t0, Code::Create, "Observation/1", Some("Patient/a")),
            entry(t0 + 1500, Code::Read, "Observation/1", Some("Patient/a")),
            entry(
                t0 + 3000,
                Code::SearchType,
                "Observation",
                Some("Patient/b"),
            ),
        ];
        let hits = |q: &str| {
            let f = parse(q, 10, 100).unwrap();
            es.iter()
                .enumerate()
                .filter(|(_, e)| matches(&f, e))
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        assert_eq!(hits("entity=Observation/1"), [0, 1]);
        assert_eq!(hits("entity=http://x/fhir/Observation/1"), [0, 1]);
        assert_eq!(hits("patient=b"), [2]);
        assert_eq!(hits("entity=Patient/a&action=R"), [1]);
        assert_eq!(
            hits("subtype=http://hl7.org/fhir/restful-interaction|create"),
            [0]
        );
        assert_eq!(hits("agent=Device/app"), [0, 1, 2]);
        assert_eq!(hits("agent=other"), Vec::<usize>::new());
        assert_eq!(
            hits("date=ge2026-01-01T00:00:01Z&date=le2026-01-01T00:00:02Z"),
            [1]
        );
        assert_eq!(hits("date=2026-01-01"), [0, 1, 2]);
        assert!(parse("date=yesterday", 10, 100).is_err());
    }

    #[test]
    fn pages_continue_where_the_last_stopped() {
        let es: Vec<Entry> = (0..5)
            .map(|i| entry(i, Code::Read, "Patient/a", None))
            .collect();
        let f = parse("_count=2", 10, 100).unwrap();
        assert_eq!(page(&es, &f), (vec![0, 1], Some(2)));
        let f = parse("_count=2&_cursor=4", 10, 100).unwrap();
        assert_eq!(page(&es, &f), (vec![4], None));
        let refs: Vec<(usize, &Entry)> = vec![(0, &es[0])];
        let b: serde_json::Value = serde_json::from_slice(&searchset(
            "http://h/",
            "_count=1&_cursor=0",
            &refs,
            Some(1),
        ))
        .unwrap();
        assert_eq!(
            b["link"][1]["url"],
            "http://h/AuditEvent?_count=1&_cursor=1"
        );
        assert_eq!(b["entry"][0]["resource"]["id"], "ae-0");
    }
}

//! The mock emulating an EHR profile, over real loopback sockets: each emulated quirk is
//! produced (`paging`, `writes`, `limits`, `refusals`, DELETE and JSON Patch in `amend`),
//! and without a profile the mock runs us-core (here).

use std::sync::Arc;
use std::time::Duration;

use fhirsurge::mock::{self, Config, Ehr};
use fhirsurge::profile::Profile;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

mod amend;
mod limits;
mod paging;
mod refusals;
mod writes;

const SYSTEM: &str = "urn:fhirsurge:it";

struct Mock {
    base: String,
    ehr: Ehr,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn profile(name: &str) -> Profile {
    Profile::load(name).unwrap()
}

/// A shipped profile with an overlay (TOML text) merged over it.
fn overlaid(base: &str, text: &str) -> Profile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("overlay.toml");
    std::fs::write(&path, format!("base = \"{base}\"\n{text}")).unwrap();
    Profile::load_with_overlay(base, Some(&path)).unwrap()
}

async fn start(profile: Option<Profile>) -> Mock {
    let config = Config {
        seed: 42,
        profile: profile.map(Arc::new),
        ..Config::default()
    };
    let ehr = Ehr::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(mock::serve(listener, ehr.clone(), shutdown.clone()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Mock {
        base,
        ehr,
        http,
        shutdown,
    }
}

/// A status, the headers that matter, and the body (JSON, or Null when empty).
#[derive(Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    location: Option<String>,
    etag: Option<String>,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    async fn of(r: reqwest::Response) -> Answer {
        let h = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (location, etag) = (h("location"), h("etag"));
        let (content_type, retry_after) = (h("content-type"), h("retry-after"));
        let status = r.status();
        let bytes = r.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Answer {
            status,
            location,
            etag,
            content_type,
            retry_after,
            body,
        }
    }

    /// The id at the end of `Location` (`Type/id` or `…/Type/id/_history/n`).
    fn id(&self) -> String {
        let l = self.location.as_deref().expect("a Location");
        let l = l.split("/_history/").next().unwrap();
        l.rsplit('/').next().unwrap().to_owned()
    }

    /// The first issue of an OperationOutcome body.
    fn issue(&self) -> &Value {
        assert_eq!(
            self.body["resourceType"], "OperationOutcome",
            "{}",
            self.body
        );
        &self.body["issue"][0]
    }

    /// The vendor code of the first issue.
    fn vendor_code(&self) -> &str {
        self.issue()["details"]["coding"][0]["code"]
            .as_str()
            .unwrap_or("")
    }

    fn ids(&self) -> Vec<String> {
        self.body["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["search"]["mode"] == "match")
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn next(&self) -> Option<String> {
        self.body["link"]
            .as_array()?
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned())
    }
}

impl Mock {
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Answer {
        Answer::of(rb.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    async fn put(&self, path: &str, body: &Value, if_match: Option<&str>) -> Answer {
        let mut rb = self.http.put(self.url(path)).json(body);
        if let Some(m) = if_match {
            rb = rb.header("if-match", m);
        }
        self.send(rb).await
    }

    /// Every page of a search, following `next` links (bounded).
    async fn walk(&self, path: &str) -> Vec<Answer> {
        let mut pages = vec![self.get(path).await];
        for _ in 0..100 {
            let last = pages.last().unwrap();
            assert_eq!(last.status, StatusCode::OK, "{}", last.body);
            match last.next() {
                Some(next) => pages.push(self.get(&next).await),
                None => return pages,
            }
        }
        panic!("more than 100 pages");
    }

    /// Polls `path` until `done` holds for its answer (at most 10 s).
    async fn until(&self, path: &str, done: impl Fn(&Answer) -> bool) -> Answer {
        for _ in 0..200 {
            let a = self.get(path).await;
            if done(&a) {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path}: the condition never held within 10 s");
    }
}

fn identifier(value: &str) -> Value {
    json!([{"system": SYSTEM, "value": value}])
}

/// A request of the differential script: method, path, headers, body.
type Step = (
    &'static str,
    String,
    Vec<(&'static str, String)>,
    Option<Value>,
);

/// What a script step answers, without what differs between two mocks (times, port).
fn comparable(mut a: Answer, base: &str) -> Answer {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("lastUpdated");
                map.remove("lastModified");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut a.body);
    let text = a.body.to_string().replace(base, "BASE/");
    // Cursors of `_lastUpdated` orders carry a time.
    let mut parts = text.split("_cursor=");
    let mut text = parts.next().unwrap().to_owned();
    for rest in parts {
        let end = rest
            .find(|c: char| !c.is_ascii_hexdigit() && c != '.')
            .unwrap();
        text.push_str("_cursor=C");
        text.push_str(&rest[end..]);
    }
    a.body = serde_json::from_str(&text).unwrap();
    a.location = a.location.map(|l| l.replace(base, "BASE/"));
    a
}

/// Runs the script, substituting `{id}` with the id the first create answered.
async fn script(m: &Mock, steps: &[Step]) -> Vec<Answer> {
    let mut out = Vec::new();
    let mut id = String::new();
    for (method, path, headers, body) in steps {
        let path = path.replace("{id}", &id);
        let mut rb = m
            .http
            .request(method.parse().unwrap(), m.url(&path))
            .header("x-fhirsurge-request", out.len().to_string());
        for (k, v) in headers {
            rb = rb.header(*k, v.replace("{id}", &id));
        }
        if let Some(b) = body {
            let text = serde_json::to_string(b).unwrap().replace("{id}", &id);
            rb = rb
                .header("content-type", "application/fhir+json")
                .body(text);
        }
        let a = m.send(rb).await;
        if id.is_empty() && a.status == StatusCode::CREATED {
            id = a.id();
        }
        let next = a.next();
        out.push(comparable(a, &m.base));
        if let Some(next) = next {
            let a = m.get(&next).await;
            out.push(comparable(a, &m.base));
        }
    }
    out
}

/// The diagnostics of an OperationOutcome answer (empty for other bodies).
fn diagnostics(body: &Value) -> String {
    body.pointer("/issue/0/diagnostics")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn steps() -> Vec<Step> {
    let p = |v: &str| json!({"resourceType": "Patient", "identifier": identifier(v), "gender": "female"});
    let obs = |v: &str| {
        json!({"resourceType": "Observation", "status": "final", "identifier": identifier(v),
               "subject": {"reference": "Patient/pp"},
               "category": [{"coding": [{"code": "vital-signs"}]}],
               "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}})
    };
    let mut s: Vec<Step> = vec![
        ("POST", "Patient".into(), vec![], Some(p("a"))),
        ("GET", "Patient/{id}".into(), vec![], None),
        (
            "POST",
            "Patient".into(),
            vec![("prefer", "return=minimal".into())],
            Some(p("b")),
        ),
        (
            "POST",
            "Patient".into(),
            vec![("prefer", "return=OperationOutcome".into())],
            Some(p("c")),
        ),
        (
            "POST",
            "Patient".into(),
            vec![("if-none-exist", format!("identifier={SYSTEM}|a"))],
            Some(p("a")),
        ),
        (
            "POST",
            "Patient".into(),
            vec![("if-none-exist", format!("identifier={SYSTEM}|z"))],
            Some(p("z")),
        ),
        (
            "PUT",
            "Patient/{id}".into(),
            vec![("if-match", "W/\"1\"".into())],
            Some(json!({"resourceType": "Patient", "id": "{id}", "gender": "male"})),
        ),
        (
            "PUT",
            "Patient/{id}".into(),
            vec![("if-match", "W/\"1\"".into())],
            Some(json!({"resourceType": "Patient", "id": "{id}"})),
        ),
        (
            "PUT",
            "Patient/chosen".into(),
            vec![],
            Some(json!({"resourceType": "Patient", "id": "chosen"})),
        ),
        ("GET", "Patient/{id}/_history".into(), vec![], None),
        ("GET", "Patient/{id}/_history/1".into(), vec![], None),
        ("GET", "Patient/nope".into(), vec![], None),
        (
            "POST",
            "Patient/{id}".into(),
            vec![],
            Some(json!({"resourceType": "Patient"})),
        ),
        ("GET", "lowercase/1".into(), vec![], None),
        (
            "POST",
            "Observation".into(),
            vec![],
            Some(json!({"resourceType": "Observation"})),
        ),
        (
            "POST",
            "Patient".into(),
            vec![],
            Some(json!({"resourceType": "Observation"})),
        ),
        ("GET", "metadata".into(), vec![], None),
    ];
    for i in 0..25 {
        s.push((
            "POST",
            "Observation".into(),
            vec![],
            Some(obs(&format!("o{i}"))),
        ));
    }
    for q in [
        "Observation?patient=pp",
        "Observation?patient=Patient/pp&_count=7&_sort=-_lastUpdated",
        "Observation?subject=pp&category=vital-signs&_count=500",
        "Observation?code=http://loinc.org|8867-4&_summary=count",
        "Patient?identifier=urn:fhirsurge:it|",
        "Patient?name=x",
        "Patient?_count=many",
        "Observation?_cursor=zz",
    ] {
        s.push(("GET", q.into(), vec![], None));
    }
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": p("t1"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": obs("t2"), "request": {"method": "POST", "url": "Observation"}}]});
    s.push(("POST", String::new(), vec![], Some(bundle)));
    s
}

#[tokio::test]
async fn without_a_profile_the_mock_runs_us_core() {
    let steps = steps();
    let plain = script(&start(None).await, &steps).await;
    let us_core = script(&start(Some(profile("us-core"))).await, &steps).await;
    assert_eq!(plain.len(), us_core.len());
    assert!(plain.len() > steps.len(), "the script follows next links");
    for (i, (a, b)) in plain.iter().zip(&us_core).enumerate() {
        let (said, says) = (diagnostics(&a.body), diagnostics(&b.body));
        assert!(says.ends_with(&said), "answer {i}: `{says}` keeps `{said}`");
        let strip = |x: &Answer| {
            let mut body = x.body.clone();
            if let Some(issue) = body.pointer_mut("/issue/0").and_then(Value::as_object_mut) {
                issue.remove("diagnostics");
            }
            body
        };
        assert_eq!(
            (a.status, &a.location, &a.etag),
            (b.status, &b.location, &b.etag),
            "answer {i}"
        );
        assert_eq!(
            (&a.content_type, strip(a)),
            (&b.content_type, strip(b)),
            "answer {i}"
        );
    }
    let statuses: Vec<u16> = plain.iter().map(|a| a.status.as_u16()).collect();
    for s in [200, 201, 400, 404, 405, 412, 422] {
        assert!(
            statuses.contains(&s),
            "the script exercises {s}: {statuses:?}"
        );
    }
}

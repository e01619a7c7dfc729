//! The built-in mock EHR over real loopback sockets: a correct FHIR server without
//! faults (here), and each silent write-back failure with its ledger entry (`silent`).

use std::collections::HashSet;
use std::time::Duration;

use fhirsurge::fault::{Entry, Spec};
use fhirsurge::mock::{self, Config, Ehr};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

mod bundle;
mod harness;
mod search;
mod silent;

const SYSTEM: &str = "urn:fhirsurge:it";

struct Mock {
    base: String,
    ehr: Ehr,
    http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(faults: Vec<Spec>) -> Mock {
    let faults = faults.into_iter().enumerate().collect();
    start_with(Config {
        seed: 42,
        faults,
        ..Config::default()
    })
    .await
}

fn spec(flag: &str) -> Spec {
    Spec::parse_flag(flag).unwrap()
}

fn typed(flag: &str, types: &[&str]) -> Spec {
    Spec {
        resource_types: types.iter().map(|t| t.to_string()).collect(),
        ..spec(flag)
    }
}

async fn start_with(config: Config) -> Mock {
    let ehr = Ehr::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(mock::serve(listener, ehr.clone(), shutdown.clone()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Mock {
        base,
        ehr,
        http,
        shutdown,
        task,
    }
}

/// A status, the headers that matter, and the JSON body (Null when empty).
struct Answer {
    status: StatusCode,
    location: Option<String>,
    etag: Option<String>,
    content_type: Option<String>,
    last_modified: Option<String>,
    body: Value,
}

impl Answer {
    async fn of(r: reqwest::Response) -> Answer {
        let h = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (location, etag, content_type) = (h("location"), h("etag"), h("content-type"));
        let last_modified = h("last-modified");
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
            last_modified,
            body,
        }
    }

    /// The id in `Location` (`…/Type/id/_history/v`).
    fn id(&self) -> String {
        let l = self.location.as_deref().expect("a Location");
        let parts: Vec<&str> = l.rsplit('/').collect();
        assert_eq!(parts[1], "_history", "{l}");
        parts[2].to_owned()
    }

    fn issue(&self) -> &str {
        assert_eq!(
            self.body["resourceType"], "OperationOutcome",
            "{}",
            self.body
        );
        self.body["issue"][0]["code"].as_str().unwrap()
    }
}

impl Mock {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Answer {
        Answer::of(
            rb.header("accept", "application/fhir+json")
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn post(&self, path: &str, body: &Value, request: u64) -> Answer {
        let rb = self
            .http
            .post(self.url(path))
            .header("x-fhirsurge-request", request.to_string())
            .json(body);
        self.send(rb).await
    }

    async fn put(&self, path: &str, body: &Value, if_match: Option<&str>) -> Answer {
        let mut rb = self.http.put(self.url(path)).json(body);
        if let Some(m) = if_match {
            rb = rb.header("if-match", m);
        }
        self.send(rb).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(self.url(path))).await
    }

    /// Every id a search returns, following `next` links (bounded).
    async fn search_all(&self, path: &str) -> (Vec<String>, u64) {
        let mut url = self.url(path);
        let mut ids = Vec::new();
        for _ in 0..100 {
            let a = Answer::of(self.http.get(&url).send().await.unwrap()).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
            assert_eq!(a.body["type"], "searchset");
            let total = a.body["total"].as_u64().unwrap();
            for e in a.body["entry"].as_array().into_iter().flatten() {
                assert_eq!(e["search"]["mode"], "match");
                let id = e["resource"]["id"].as_str().unwrap();
                assert_eq!(
                    e["fullUrl"].as_str().unwrap(),
                    format!(
                        "{}{}/{id}",
                        self.base,
                        e["resource"]["resourceType"].as_str().unwrap()
                    )
                );
                ids.push(id.to_owned());
            }
            let next = a.body["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == "next");
            match next {
                Some(l) => url = l["url"].as_str().unwrap().to_owned(),
                None => return (ids, total),
            }
        }
        panic!("more than 100 pages");
    }

    async fn total(&self, path: &str) -> u64 {
        self.search_all(path).await.1
    }

    /// The mock's ledger so far.
    fn ledger(&self) -> Vec<Entry> {
        self.ehr.ledger().entries()
    }
}

fn patient(value: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}],
           "birthDate": "1970-01-01", "gender": "female"})
}

fn observation(value: &str, patient: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
           "identifier": [{"system": SYSTEM, "value": value}],
           "subject": {"reference": patient},
           "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
           "valueQuantity": {"value": 72, "unit": "/min"}})
}

#[tokio::test]
async fn create_read_vread_update_and_history_behave_like_a_versioned_server() {
    let m = start(vec![]).await;
    let mut p = patient("p1");
    p["id"] = json!("client-chosen");
    let created = m.post("Patient", &p, 1).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        created.content_type.as_deref(),
        Some("application/fhir+json")
    );
    assert_eq!(created.etag.as_deref(), Some("W/\"1\""));
    let id = created.id();
    assert!(
        created.location.as_deref().unwrap().starts_with(&m.base),
        "absolute Location"
    );
    assert_ne!(id, "client-chosen");
    assert!(id.parse::<u64>().is_err(), "ids are opaque: {id}");
    assert_eq!(created.body["id"], id.as_str());
    assert_eq!(created.body["meta"]["versionId"], "1");
    assert!(created.body["meta"]["lastUpdated"].is_string());

    let read = m.get(&format!("Patient/{id}")).await;
    assert_eq!(
        (read.status, read.etag.as_deref()),
        (StatusCode::OK, Some("W/\"1\""))
    );
    assert_eq!(read.body["birthDate"], "1970-01-01");
    let modified = read.last_modified.as_deref().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc2822(modified).is_ok(),
        "{modified}"
    );

    let mut changed = read.body.clone();
    changed["gender"] = json!("male");
    let updated = m
        .put(&format!("Patient/{id}"), &changed, Some("W/\"1\""))
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.etag.as_deref(), Some("W/\"2\""));
    assert!(
        updated
            .location
            .as_deref()
            .unwrap()
            .ends_with(&format!("Patient/{id}/_history/2"))
    );
    let stale = m
        .put(&format!("Patient/{id}"), &changed, Some("W/\"1\""))
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.issue(), "conflict");
    let strong = m
        .put(&format!("Patient/{id}"), &changed, Some("\"2\""))
        .await;
    assert_eq!(strong.etag.as_deref(), Some("W/\"3\""));

    assert_eq!(
        m.get(&format!("Patient/{id}/_history/1")).await.body["gender"],
        "female"
    );
    assert_eq!(
        m.get(&format!("Patient/{id}/_history/2")).await.body["gender"],
        "male"
    );
    assert_eq!(
        m.get(&format!("Patient/{id}/_history/9")).await.status,
        StatusCode::NOT_FOUND
    );
    let history = m.get(&format!("Patient/{id}/_history")).await.body;
    assert_eq!(history["type"], "history");
    let versions: Vec<&str> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["3", "2", "1"], "newest first");
    assert_eq!(history["entry"][2]["request"]["method"], "POST");
    assert_eq!(history["entry"][0]["request"]["method"], "PUT");
    assert_eq!(history["entry"][0]["response"]["status"], "200 OK");
    let missing = m.get("Patient/nope").await;
    assert_eq!(
        (missing.status, missing.issue()),
        (StatusCode::NOT_FOUND, "not-found")
    );
}

#[tokio::test]
async fn refusals_are_operation_outcomes_with_the_right_status() {
    let m = start(vec![]).await;
    let put = m
        .put(
            "Patient/chosen-1",
            &json!({"resourceType": "Patient", "id": "chosen-1"}),
            None,
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "update as create");
    assert_eq!(put.id(), "chosen-1");
    let cases = [
        (
            m.put(
                "Patient/chosen-1",
                &json!({"resourceType": "Patient", "id": "other"}),
                None,
            )
            .await,
            400,
        ),
        (
            m.put(
                "Patient/chosen-1",
                &json!({"resourceType": "Patient"}),
                None,
            )
            .await,
            400,
        ),
        (
            m.put(
                "Patient/absent",
                &json!({"resourceType": "Patient", "id": "absent"}),
                Some("W/\"1\""),
            )
            .await,
            412,
        ),
        (
            m.post("Patient", &json!({"resourceType": "Observation"}), 1)
                .await,
            400,
        ),
        (m.post("Patient", &json!([1, 2]), 1).await, 400),
        (
            m.post(
                "Observation",
                &json!({"resourceType": "Observation", "status": "final"}),
                1,
            )
            .await,
            422,
        ),
        (
            m.send(m.http.post(m.url("Patient")).body("{not json"))
                .await,
            400,
        ),
        (m.send(m.http.post(m.url("Patient/chosen-1"))).await, 405),
        (
            m.send(m.http.delete(m.url("Patient/never-written"))).await,
            404,
        ),
        (m.get("lowercase/1").await, 404),
        (m.get("Patient?nickname=smith").await, 400),
        (m.get("Patient?birthdate=ge1980").await, 400),
        (m.get("Patient?_count=many").await, 400),
    ];
    for (i, (answer, status)) in cases.iter().enumerate() {
        assert_eq!(answer.status.as_u16(), *status, "case {i}: {}", answer.body);
        assert!(!answer.issue().is_empty());
    }
    assert_eq!(
        m.get("Patient/absent").await.status,
        StatusCode::NOT_FOUND,
        "a failed update-as-create leaves nothing"
    );
}

#[tokio::test]
async fn prefer_chooses_the_body_of_a_write() {
    let m = start(vec![]).await;
    let minimal = m
        .send(
            m.http
                .post(m.url("Patient"))
                .header("prefer", "return=minimal")
                .json(&patient("m1")),
        )
        .await;
    assert_eq!(minimal.status, StatusCode::CREATED);
    assert_eq!(minimal.body, Value::Null, "empty body");
    assert!(minimal.location.is_some() && minimal.etag.is_some());
    let oo = m
        .send(
            m.http
                .post(m.url("Patient"))
                .header("prefer", "return=OperationOutcome")
                .json(&patient("m2")),
        )
        .await;
    assert_eq!(oo.status, StatusCode::CREATED);
    assert_eq!(oo.issue(), "informational");
}

#[tokio::test]
async fn metadata_and_the_side_endpoints() {
    let m = start(vec![]).await;
    let cs = m.get("metadata").await.body;
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let types: Vec<&str> = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for t in [
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "MedicationRequest",
        "DocumentReference",
        "Claim",
        "Bundle",
    ] {
        assert!(types.contains(&t), "{t}");
    }
    assert_eq!(m.get("__fhirsurge/health").await.body["status"], "ok");
    assert_eq!(m.get("__fhirsurge/ledger").await.body, json!([]));
    let basic = m
        .post(
            "Basic",
            &json!({"resourceType": "Basic", "code": {"text": "x"}}),
            1,
        )
        .await;
    assert_eq!(
        basic.status,
        StatusCode::CREATED,
        "any type name is accepted"
    );
}

#[tokio::test]
async fn conditional_create_creates_once_then_finds_then_refuses_ambiguity() {
    let m = start(vec![]).await;
    let cond = |value: &str| {
        let q = format!(
            "identifier={}",
            url::form_urlencoded::byte_serialize(format!("{SYSTEM}|{value}").as_bytes())
                .collect::<String>()
        );
        m.http
            .post(m.url("Patient"))
            .header("if-none-exist", q)
            .json(&patient(value))
    };
    let first = m.send(cond("c1")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = m.send(cond("c1")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.id(), first.id());
    assert_eq!(again.body["id"], first.id().as_str());
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|c1")).await, 1);
    m.post("Patient", &patient("dup"), 1).await;
    m.post("Patient", &patient("dup"), 2).await;
    let ambiguous = m.send(cond("dup")).await;
    assert_eq!(ambiguous.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        m.total(&format!("Patient?identifier={SYSTEM}|dup")).await,
        2
    );
    let no_identifier = m
        .send(
            m.http
                .post(m.url("Patient"))
                .header("if-none-exist", "_id=x")
                .json(&patient("z")),
        )
        .await;
    assert_eq!(no_identifier.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conditional_creates_of_one_identifier_make_one_resource() {
    let m = start(vec![]).await;
    let q = format!("identifier={SYSTEM}%7Crace");
    let sends = (0..32).map(|_| {
        m.http
            .post(m.url("Patient"))
            .header("if-none-exist", q.clone())
            .json(&patient("race"))
            .send()
    });
    let answers = futures::future::join_all(sends).await;
    let mut created = 0;
    let mut ids = HashSet::new();
    for a in answers {
        let a = Answer::of(a.unwrap()).await;
        created += usize::from(a.status == StatusCode::CREATED);
        assert!(
            a.status == StatusCode::CREATED || a.status == StatusCode::OK,
            "{}",
            a.status
        );
        ids.insert(a.id());
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(
        m.total(&format!("Patient?identifier={SYSTEM}|race")).await,
        1
    );
}

fn transaction(entries: Value) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

#[tokio::test]
async fn shutdown_is_graceful() {
    let mut m = start(vec![]).await;
    assert_eq!(
        m.post("Patient", &patient("g"), 1).await.status,
        StatusCode::CREATED
    );
    m.shutdown.cancel();
    let task = std::mem::replace(&mut m.task, tokio::spawn(async { Ok(()) }));
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

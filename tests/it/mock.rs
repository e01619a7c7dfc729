//! The built-in mock EHR over real loopback sockets: a correct FHIR server without
//! faults, and each silent write-back failure at probability 1 with its ledger entry.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fhirsurge::fault::{Entry, Spec};
use fhirsurge::mock::{self, Config, Ehr};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

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
        (m.send(m.http.delete(m.url("Patient/chosen-1"))).await, 405),
        (m.get("lowercase/1").await, 404),
        (m.get("Patient?name=smith").await, 400),
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

#[tokio::test]
async fn searches_page_through_every_match_exactly_once() {
    let m = start(vec![]).await;
    let p = m.post("Patient", &patient("owner"), 1).await.id();
    let other = m.post("Patient", &patient("other"), 2).await.id();
    let mut expected = HashSet::new();
    for i in 0..45 {
        let code = if i % 3 == 0 { "8310-5" } else { "8867-4" };
        expected.insert(
            m.post(
                "Observation",
                &observation(&format!("o{i}"), &format!("Patient/{p}"), code),
                3,
            )
            .await
            .id(),
        );
    }
    m.post(
        "Observation",
        &observation("x", &format!("Patient/{other}"), "8867-4"),
        4,
    )
    .await;
    let (ids, total) = m
        .search_all(&format!("Observation?patient=Patient/{p}&_count=10"))
        .await;
    assert_eq!(total, 45);
    assert_eq!(ids.len(), 45, "no duplicates across pages");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), expected);
    let (by_subject, _) = m
        .search_all(&format!("Observation?subject={p}&_count=7"))
        .await;
    assert_eq!(by_subject, ids, "same order, plain id = Patient/id");
    assert_eq!(
        m.total(&format!(
            "Observation?patient=Patient/{p}&code=http://loinc.org|8310-5"
        ))
        .await,
        15
    );
    assert_eq!(m.total("Observation?code=8310-5,8867-4").await, 46);
    assert_eq!(
        m.total(&format!("Observation?identifier={SYSTEM}|o7"))
            .await,
        1
    );
    assert_eq!(m.total("Observation?identifier=o7").await, 1);
    assert_eq!(
        m.total(&format!("Observation?identifier={SYSTEM}|")).await,
        46
    );
    assert_eq!(m.total(&format!("Observation?_id={}", ids[3])).await, 1);
    let count = m
        .get(&format!("Observation?patient={p}&_summary=count"))
        .await
        .body;
    assert_eq!(count["total"], 45);
    assert!(count.get("entry").is_none());
    let default_page = m.get(&format!("Observation?patient={p}")).await.body;
    assert_eq!(default_page["entry"].as_array().unwrap().len(), 20);
    let (newest_first, _) = m
        .search_all(&format!(
            "Observation?patient={p}&_sort=-_lastUpdated&_count=9"
        ))
        .await;
    assert_eq!(newest_first.len(), 45);
    assert_eq!(newest_first.first(), ids.last());
}

#[tokio::test]
async fn a_page_walk_is_stable_while_resources_are_created() {
    let m = start(vec![]).await;
    for i in 0..25 {
        m.post(
            "Observation",
            &observation(&format!("s{i}"), "Patient/walk", "8867-4"),
            1,
        )
        .await;
    }
    let first = m.get("Observation?patient=walk&_count=10").await.body;
    let mut seen: Vec<String> = first["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    for i in 25..30 {
        m.post(
            "Observation",
            &observation(&format!("s{i}"), "Patient/walk", "8867-4"),
            1,
        )
        .await;
    }
    let next = first["link"][1]["url"].as_str().unwrap();
    let (rest, total) = m.search_all(&next[m.base.len()..]).await;
    seen.extend(rest);
    assert_eq!(total, 30);
    assert_eq!(seen.len(), 30);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 30);
}

fn transaction(entries: Value) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

#[tokio::test]
async fn a_transaction_resolves_urn_references_and_is_all_or_nothing() {
    let m = start(vec![]).await;
    let ok = transaction(json!([
        {"fullUrl": "urn:uuid:0b1b8c8e-0000-4000-8000-000000000001", "resource": patient("t1"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": observation("t1-obs", "urn:uuid:0b1b8c8e-0000-4000-8000-000000000001", "8867-4"), "request": {"method": "POST", "url": "Observation"}}
    ]));
    let a = m.post("", &ok, 1).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["type"], "transaction-response");
    let entries = a.body["entry"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e["response"]["status"].as_str().unwrap().starts_with("201"))
    );
    let patient_loc = entries[0]["response"]["location"].as_str().unwrap();
    let patient_id = patient_loc.split('/').nth(1).unwrap();
    let obs_id = entries[1]["response"]["location"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap();
    let obs = m.get(&format!("Observation/{obs_id}")).await.body;
    assert_eq!(obs["subject"]["reference"], format!("Patient/{patient_id}"));
    assert_eq!(
        m.total(&format!("Observation?patient={patient_id}")).await,
        1
    );

    let again = transaction(json!([
        {"resource": patient("t1"), "request": {"method": "POST", "url": "Patient", "ifNoneExist": format!("identifier={SYSTEM}|t1")}},
    ]));
    let a = m.post("", &again, 2).await;
    assert_eq!(
        a.body["entry"][0]["response"]["status"], "200 OK",
        "ifNoneExist matched"
    );
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|t1")).await, 1);

    let mut stale = obs.clone();
    stale["status"] = json!("amended");
    let failing = transaction(json!([
        {"resource": patient("t2"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": stale, "request": {"method": "PUT", "url": format!("Observation/{obs_id}"), "ifMatch": "W/\"7\""}}
    ]));
    let a = m.post("", &failing, 3).await;
    assert_eq!(a.status, StatusCode::PRECONDITION_FAILED, "{}", a.body);
    assert!(
        a.body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("entry[1]")
    );
    assert_eq!(
        m.total(&format!("Patient?identifier={SYSTEM}|t2")).await,
        0,
        "nothing applied"
    );
    assert_eq!(
        m.get(&format!("Observation/{obs_id}")).await.body["status"],
        "final"
    );
    let invalid = transaction(json!([
        {"resource": patient("t3"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Observation"}}
    ]));
    assert_eq!(
        m.post("", &invalid, 4).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|t3")).await, 0);
}

#[tokio::test]
async fn batch_entries_succeed_or_fail_on_their_own() {
    let m = start(vec![]).await;
    let existing = m.post("Patient", &patient("b0"), 1).await.id();
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient("b1"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": format!("Patient/{existing}")}},
        {"request": {"method": "GET", "url": format!("Patient?identifier={SYSTEM}|b0")}},
        {"request": {"method": "GET", "url": "Patient/missing"}},
    ]});
    let a = m.post("", &batch, 2).await;
    assert_eq!(a.body["type"], "batch-response");
    let statuses: Vec<&str> = a.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["response"]["status"].as_str().unwrap()[..3])
        .collect();
    assert_eq!(statuses, ["201", "400", "200", "200", "404"]);
    assert_eq!(a.body["entry"][2]["resource"]["id"], existing.as_str());
    assert_eq!(a.body["entry"][3]["resource"]["total"], 1);
    assert_eq!(
        a.body["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|b1")).await, 1);
}

// ---- silent write-back failures -------------------------------------------------------

fn only(entries: &[Entry], kind: &str) -> Entry {
    let found: Vec<&Entry> = entries.iter().filter(|e| e.kind == kind).collect();
    assert_eq!(found.len(), 1, "{entries:#?}");
    found[0].clone()
}

#[tokio::test]
async fn ack_and_drop_answers_201_and_stores_nothing() {
    let m = start(vec![spec("ack_and_drop,probability=1.0")]).await;
    let a = m.post("Patient", &patient("d1"), 17).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.etag.as_deref(), Some("W/\"1\""));
    let id = a.id();
    assert_eq!(
        m.get(&format!("Patient/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|d1")).await, 0);
    let e = only(&m.ledger(), "ack_and_drop");
    assert_eq!(e.fault, "ack_and_drop#0");
    assert_eq!(e.id.as_deref(), Some(id.as_str()));
    assert_eq!(e.identifier.as_deref(), Some("urn:fhirsurge:it|d1"));
    assert_eq!(e.request.as_deref(), Some("17"));
    assert_eq!(e.resource_type.as_deref(), Some("Patient"));
    let over_http = m.get("__fhirsurge/ledger").await.body;
    assert_eq!(over_http[0]["kind"], "ack_and_drop");
    m.ehr.set_faults_enabled(false);
    let later = m.post("Patient", &patient("d2"), 18).await;
    assert_ne!(later.id(), id, "a dropped id is never reused");
    assert_eq!(
        m.get(&format!("Patient/{}", later.id())).await.status,
        StatusCode::OK
    );
    assert_eq!(m.ledger().len(), 1, "healed: no more faults");
}

#[tokio::test]
async fn ack_and_drop_of_an_update_keeps_the_old_version() {
    let m = start(vec![spec("ack_and_drop,probability=1.0")]).await;
    m.ehr.set_faults_enabled(false);
    let id = m.post("Patient", &patient("u1"), 1).await.id();
    m.ehr.set_faults_enabled(true);
    let mut body = m.get(&format!("Patient/{id}")).await.body;
    body["gender"] = json!("male");
    let a = m
        .put(&format!("Patient/{id}"), &body, Some("W/\"1\""))
        .await;
    assert_eq!(
        (a.status, a.etag.as_deref()),
        (StatusCode::OK, Some("W/\"2\""))
    );
    let read = m.get(&format!("Patient/{id}")).await;
    assert_eq!(
        (read.etag.as_deref(), &read.body["gender"]),
        (Some("W/\"1\""), &json!("female"))
    );
}

#[tokio::test]
async fn strip_removes_the_clinical_element() {
    let m = start(vec![spec("strip,probability=1.0")]).await;
    let a = m
        .post("Observation", &observation("s1", "Patient/x", "8867-4"), 5)
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let stored = m.get(&format!("Observation/{}", a.id())).await.body;
    assert!(stored.get("valueQuantity").is_none(), "{stored}");
    assert_eq!(stored["status"], "final");
    let e = only(&m.ledger(), "strip");
    assert_eq!(e.detail, "removed valueQuantity");
    assert_eq!(e.request.as_deref(), Some("5"));
}

#[tokio::test]
async fn remap_changes_the_code() {
    let m = start(vec![spec("remap,probability=1.0")]).await;
    let a = m
        .post("Observation", &observation("r1", "Patient/x", "8867-4"), 6)
        .await;
    let stored = m.get(&format!("Observation/{}", a.id())).await.body;
    assert_eq!(stored["code"]["coding"][0]["code"], "8868-4");
    assert_eq!(only(&m.ledger(), "remap").detail, "code 8867-4 → 8868-4");
    assert_eq!(
        m.total("Observation?code=8868-4").await,
        1,
        "indexed as stored"
    );
}

#[tokio::test]
async fn delayed_visibility_hides_from_search_until_the_delay_passes_or_heal() {
    let m = start(vec![typed("delayed_visibility,delay=1s", &["Observation"])]).await;
    let quick = m
        .post(
            "Observation",
            &observation("v1", "Patient/vis", "8867-4"),
            7,
        )
        .await
        .id();
    assert_eq!(
        m.get(&format!("Observation/{quick}")).await.status,
        StatusCode::OK,
        "readable by id at once"
    );
    let e = only(&m.ledger(), "delayed_visibility");
    assert_eq!(e.id.as_deref(), Some(quick.as_str()));
    assert_eq!(e.detail, "hidden from search for 1s");
    assert_eq!(
        m.total(&format!("Observation?identifier={SYSTEM}|v1"))
            .await,
        0,
        "hidden from search"
    );
    let patient = m.post("Patient", &patient("vis"), 8).await;
    assert!(
        m.get(&format!("Patient/{}", patient.id())).await.status == StatusCode::OK
            && m.ledger().len() == 1,
        "Patient is not filtered in"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while m
        .total(&format!("Observation?identifier={SYSTEM}|v1"))
        .await
        == 0
    {
        assert!(Instant::now() < deadline, "never became visible");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let m = start(vec![spec("delayed_visibility,delay=1h")]).await;
    let slow = m
        .post(
            "Observation",
            &observation("v2", "Patient/vis", "8867-4"),
            8,
        )
        .await
        .id();
    assert_eq!(m.total("Observation?patient=vis").await, 0);
    assert_eq!(
        m.get(&format!("Observation/{slow}")).await.status,
        StatusCode::OK
    );
    let cond = m
        .send(
            m.http
                .post(m.url("Observation"))
                .header("if-none-exist", format!("identifier={SYSTEM}%7Cv2"))
                .json(&observation("v2", "Patient/vis", "8867-4")),
        )
        .await;
    assert_eq!(
        cond.status,
        StatusCode::OK,
        "conditional create still sees it"
    );
    m.ehr.set_faults_enabled(false);
    assert_eq!(
        m.total("Observation?patient=vis").await,
        1,
        "healed: visible at once"
    );
}

#[tokio::test]
async fn stale_read_serves_the_previous_version_and_records_each_serving() {
    let m = start(vec![spec("stale_read,delay=1h")]).await;
    let id = m.post("Patient", &patient("st1"), 1).await.id();
    let mut body = m.get(&format!("Patient/{id}")).await.body;
    body["gender"] = json!("male");
    assert_eq!(
        m.put(&format!("Patient/{id}"), &body, Some("W/\"1\""))
            .await
            .etag
            .as_deref(),
        Some("W/\"2\"")
    );
    assert!(m.ledger().is_empty(), "nothing reached the harness yet");
    for request in [21, 22] {
        let r = m
            .send(
                m.http
                    .get(m.url(&format!("Patient/{id}")))
                    .header("x-fhirsurge-request", request.to_string()),
            )
            .await;
        assert_eq!(
            (r.etag.as_deref(), &r.body["gender"]),
            (Some("W/\"1\""), &json!("female"))
        );
    }
    let entries = m.ledger();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|e| e.kind == "stale_read" && e.detail == "served v1 while v2 is current")
    );
    assert_eq!(
        entries
            .iter()
            .map(|e| e.request.clone().unwrap())
            .collect::<Vec<_>>(),
        ["21", "22"]
    );
    assert_eq!(
        entries[0].identifier.as_deref(),
        Some("urn:fhirsurge:it|st1")
    );
    assert_eq!(
        m.get(&format!("Patient/{id}/_history/2")).await.status,
        StatusCode::OK,
        "vread is not stale"
    );
    m.ehr.set_faults_enabled(false);
    assert_eq!(
        m.get(&format!("Patient/{id}")).await.etag.as_deref(),
        Some("W/\"2\"")
    );
    assert_eq!(m.ledger().len(), 2);
}

#[tokio::test]
async fn commit_then_reset_resets_the_connection_after_storing() {
    let m = start(vec![spec("commit_then_reset")]).await;
    let err = m
        .http
        .post(m.url("Patient"))
        .header("x-fhirsurge-request", "31")
        .json(&patient("cr1"))
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none() && !err.is_timeout(), "{err:?}");
    assert_eq!(
        m.total(&format!("Patient?identifier={SYSTEM}|cr1")).await,
        1,
        "committed"
    );
    let e = only(&m.ledger(), "commit_then_reset");
    assert_eq!(e.request.as_deref(), Some("31"));

    // On the wire: not one byte, then RST.
    let addr = m.base.trim_start_matches("http://").trim_end_matches('/');
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = patient("cr2").to_string();
    let request = format!(
        "POST /Patient HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    assert_eq!(
        m.total(&format!("Patient?identifier={SYSTEM}|cr2")).await,
        1
    );
}

#[tokio::test]
async fn commit_then_500_stores_and_answers_500() {
    let m = start(vec![spec("commit_then_500")]).await;
    let a = m.post("Patient", &patient("c5"), 41).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.issue(), "exception");
    assert_eq!(m.total(&format!("Patient?identifier={SYSTEM}|c5")).await, 1);
    let e = only(&m.ledger(), "commit_then_500");
    assert_eq!(e.identifier.as_deref(), Some("urn:fhirsurge:it|c5"));
}

#[tokio::test]
async fn partial_transaction_skips_one_create_but_claims_it() {
    let m = start(vec![spec("partial_transaction")]).await;
    let entries: Vec<Value> = (0..3).map(|i| json!({"resource": patient(&format!("pt{i}")), "request": {"method": "POST", "url": "Patient"}})).collect();
    let a = m.post("", &transaction(Value::Array(entries)), 51).await;
    assert_eq!(a.status, StatusCode::OK);
    let mut missing = Vec::new();
    for e in a.body["entry"].as_array().unwrap() {
        assert!(e["response"]["status"].as_str().unwrap().starts_with("201"));
        let id = e["response"]["location"]
            .as_str()
            .unwrap()
            .split('/')
            .nth(1)
            .unwrap()
            .to_owned();
        if m.get(&format!("Patient/{id}")).await.status == StatusCode::NOT_FOUND {
            missing.push(id);
        }
    }
    assert_eq!(missing.len(), 1);
    let e = only(&m.ledger(), "partial_transaction");
    assert_eq!(e.id.as_ref(), missing.first());
    assert_eq!(e.request.as_deref(), Some("51"));
}

/// Which of `n` sequential creates a fault touched.
async fn touched(seed: u64, n: u64) -> Vec<u64> {
    let spec = Spec::parse_flag("ack_and_drop,probability=0.3").unwrap();
    let m = start_with(Config {
        seed,
        faults: vec![(0, spec)],
        ..Config::default()
    })
    .await;
    for i in 0..n {
        m.post("Patient", &patient(&format!("det{i}")), i).await;
    }
    m.ledger()
        .iter()
        .map(|e| e.request.as_ref().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn the_same_seed_makes_the_same_decisions() {
    let first = touched(42, 60).await;
    assert_eq!(first, touched(42, 60).await);
    assert!((5..=35).contains(&first.len()), "{first:?}");
    assert_ne!(first, touched(43, 60).await);
}

#[tokio::test]
async fn faults_respect_their_resource_types_and_stop_when_healed() {
    let m = start(vec![typed("ack_and_drop", &["Observation"])]).await;
    let p = m.post("Patient", &patient("h1"), 1).await.id();
    assert_eq!(m.get(&format!("Patient/{p}")).await.status, StatusCode::OK);
    let o = m
        .post("Observation", &observation("h1", "Patient/x", "8867-4"), 2)
        .await
        .id();
    assert_eq!(
        m.get(&format!("Observation/{o}")).await.status,
        StatusCode::NOT_FOUND
    );
    m.ehr.set_faults_enabled(false);
    let o = m
        .post("Observation", &observation("h2", "Patient/x", "8867-4"), 3)
        .await
        .id();
    assert_eq!(
        m.get(&format!("Observation/{o}")).await.status,
        StatusCode::OK
    );
    assert_eq!(m.ledger().len(), 1);
}

#[tokio::test]
async fn invalid_fault_specs_are_refused() {
    for flag in [
        "delayed_visibility",
        "stale_read,delay=0s",
        "strip,latency=1s",
        "reset_peer",
    ] {
        let spec = Spec::parse_flag(flag).unwrap();
        assert!(mock::validate_fault(&spec).is_err(), "{flag}");
        assert!(
            Ehr::new(Config {
                faults: vec![(0, spec)],
                ..Config::default()
            })
            .is_err(),
            "{flag}"
        );
    }
    assert_eq!(mock::silent_kinds().len(), 8);
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

//! DELETE and JSON Patch over real HTTP, where the profile says the EHR has them: the
//! us-core baseline (every type), Oracle Health's Coverage (If-Match required, opaque
//! ETags); and refused with 405 and an OperationOutcome where it does not (Epic), with
//! the CapabilityStatement saying the same.

use super::*;

const JSON_PATCH: &str = "application/json-patch+json";

impl Mock {
    async fn delete(&self, path: &str, if_match: Option<&str>) -> Answer {
        let mut rb = self.http.delete(self.url(path));
        if let Some(m) = if_match {
            rb = rb.header("if-match", m);
        }
        self.send(rb).await
    }

    async fn patch(&self, path: &str, ops: &Value, if_match: Option<&str>) -> Answer {
        let mut rb = self
            .http
            .patch(self.url(path))
            .header("content-type", JSON_PATCH)
            .body(ops.to_string());
        if let Some(m) = if_match {
            rb = rb.header("if-match", m);
        }
        self.send(rb).await
    }
}

/// The interaction codes the CapabilityStatement lists for a type.
async fn listed(m: &Mock, rt: &str) -> Vec<String> {
    let cs = m.get("metadata").await.body;
    cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == rt)
        .map(|r| {
            r["interaction"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["code"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_deleted_resource_is_gone_from_reads_and_searches_and_in_its_history() {
    let m = start(None).await;
    assert!(listed(&m, "Patient").await.contains(&"delete".to_owned()));
    let p = json!({"resourceType": "Patient", "identifier": identifier("del-1")});
    let created = m.post("Patient", &p).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.id();
    let path = format!("Patient/{id}");
    let search = format!("Patient?identifier={SYSTEM}|del-1");
    assert_eq!(m.get(&search).await.ids(), vec![id.clone()]);

    let stale = m.delete(&path, Some("W/\"7\"")).await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "If-Match is honoured"
    );
    let deleted = m.delete(&path, Some("W/\"1\"")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.etag.as_deref(), Some("W/\"2\""));

    let read = m.get(&path).await;
    assert_eq!(read.status, StatusCode::GONE);
    assert_eq!(read.issue()["code"], "deleted");
    assert_eq!(
        m.get(&format!("{path}/_history/2")).await.status,
        StatusCode::GONE
    );
    assert_eq!(
        m.get(&format!("{path}/_history/1")).await.status,
        StatusCode::OK
    );
    let history = m.get(&format!("{path}/_history")).await.body;
    assert_eq!(history["total"], 2);
    assert_eq!(history["entry"][0]["request"]["method"], "DELETE");
    assert!(history["entry"][0].get("resource").is_none());
    assert_eq!(history["entry"][1]["request"]["method"], "POST");
    assert!(
        m.get(&search).await.ids().is_empty(),
        "searches no longer find it"
    );
    assert!(m.get(&format!("Patient?_id={id}")).await.ids().is_empty());

    let audited = m
        .get(&format!("AuditEvent?entity=Patient/{id}&action=D"))
        .await
        .body;
    let events = audited["entry"].as_array().unwrap();
    assert_eq!(events.len(), 2, "both deletes are audited: {audited}");
    assert!(
        events
            .iter()
            .all(|e| e["resource"]["subtype"][0]["code"] == "delete"),
        "{audited}"
    );
    let outcomes: Vec<&str> = events
        .iter()
        .map(|e| e["resource"]["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"0"), "{outcomes:?}");

    let again = m.delete(&path, None).await;
    assert_eq!(
        again.status,
        StatusCode::NO_CONTENT,
        "a repeated delete is done"
    );
    assert_eq!(again.etag.as_deref(), Some("W/\"2\""));
    assert_eq!(m.get(&format!("{path}/_history")).await.body["total"], 2);
    assert_eq!(
        m.delete("Patient/absent", None).await.status,
        StatusCode::NOT_FOUND
    );

    let mut back = p.clone();
    back["id"] = json!(id);
    let recreated = m.put(&path, &back, None).await;
    assert_eq!(recreated.status, StatusCode::CREATED);
    assert_eq!(recreated.body["meta"]["versionId"], "3");
    assert_eq!(m.get(&search).await.ids(), [id]);
}

#[tokio::test]
async fn a_json_patch_makes_a_new_version_and_honours_if_match() {
    let m = start(None).await;
    assert!(
        listed(&m, "Observation")
            .await
            .contains(&"patch".to_owned())
    );
    let obs = json!({"resourceType": "Observation", "status": "preliminary",
        "identifier": identifier("patch-1"),
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}});
    let id = m.post("Observation", &obs).await.id();
    let path = format!("Observation/{id}");
    let to_final = json!([
        {"op": "test", "path": "/status", "value": "preliminary"},
        {"op": "replace", "path": "/status", "value": "final"},
        {"op": "add", "path": "/valueQuantity", "value": {"value": 72, "unit": "/min"}}
    ]);
    let patched = m.patch(&path, &to_final, None).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.etag.as_deref(), Some("W/\"2\""));
    assert_eq!(patched.body["status"], "final");
    assert_eq!(patched.body["meta"]["versionId"], "2");
    let read = m.get(&path).await.body;
    assert_eq!(read["valueQuantity"]["value"], 72);
    assert_eq!(read["identifier"], obs["identifier"], "the rest is kept");

    let amend = json!([{"op": "replace", "path": "/status", "value": "amended"}]);
    let stale = m.patch(&path, &amend, Some("W/\"1\"")).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        m.get(&path).await.body["status"],
        "final",
        "a stale patch changes nothing"
    );
    let fresh = m.patch(&path, &amend, Some("W/\"2\"")).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(fresh.body["meta"]["versionId"], "3");

    let failed_test = m.patch(&path, &to_final, None).await;
    assert_eq!(failed_test.status, StatusCode::UNPROCESSABLE_ENTITY);
    let dropped_code = json!([{"op": "remove", "path": "/code"}]);
    assert_eq!(
        m.patch(&path, &dropped_code, None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the patched resource is held to the same rules as an update"
    );
    let fhir_json = m
        .send(
            m.http
                .patch(m.url(&path))
                .header("content-type", "application/fhir+json")
                .body(amend.to_string()),
        )
        .await;
    assert_eq!(fhir_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(m.get(&format!("{path}/_history")).await.body["total"], 3);

    assert_eq!(m.delete(&path, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(m.patch(&path, &amend, None).await.status, StatusCode::GONE);
}

#[tokio::test]
async fn oracle_patches_and_deletes_coverage_with_its_etags_and_nothing_else() {
    let m = start(Some(profile("oracle-health"))).await;
    assert_eq!(
        listed(&m, "Coverage").await,
        ["read", "patch", "delete", "create", "search-type"]
    );
    assert!(!listed(&m, "Patient").await.contains(&"delete".to_owned()));
    let coverage = json!({"resourceType": "Coverage", "status": "active",
        "identifier": identifier("cov-1"),
        "subscriber": {"reference": "Patient/p1"}, "beneficiary": {"reference": "Patient/p1"},
        "payor": [{"reference": "Organization/o1"}]});
    let created = m.post("Coverage", &coverage).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.etag.as_deref(), Some("W/\"0$0\""));
    let path = format!("Coverage/{}", created.id());
    let ops = json!([{"op": "add", "path": "/order", "value": 2}]);

    let missing = m.patch(&path, &ops, None).await;
    assert_eq!(missing.status.as_u16(), 412, "{}", missing.body);
    let patched = m.patch(&path, &ops, Some("W/\"0$0\"")).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.etag.as_deref(), Some("W/\"1$0\""));
    let stale = m.patch(&path, &ops, Some("W/\"0$0\"")).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "Oracle's stale_version");

    let deleted = m.delete(&path, Some("W/\"1$0\"")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(m.get(&path).await.status, StatusCode::GONE);
}

#[tokio::test]
async fn epic_refuses_delete_and_patch_with_405_and_says_so() {
    let m = start(Some(profile("epic"))).await;
    let listed = listed(&m, "Patient").await;
    assert!(
        !listed.iter().any(|c| c == "delete" || c == "patch"),
        "{listed:?}"
    );
    let path = "Patient/any";
    for answer in [
        m.delete(path, None).await,
        m.patch(path, &json!([{"op": "remove", "path": "/active"}]), None)
            .await,
    ] {
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(answer.issue()["code"], "not-supported", "{}", answer.body);
    }
}

//! The HTTP-aware faults, determinism of the decisions, and healing.

use super::*;

// ---------------------------------------------------------------- HTTP faults

#[tokio::test]
async fn reset_before_means_the_upstream_never_saw_the_request() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &["reset_before"]).await;
    let (got, error) = raw(p.addr, &post("/fhir/Patient", "rb-1")).await;
    assert_eq!(
        (got.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset))
    );
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.fault.as_str(), e.request.as_deref()),
        ("reset_before#0", Some("rb-1"))
    );
    assert_eq!(e.resource_type.as_deref(), Some("Patient"));
    assert_eq!(seen.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn reset_after_means_the_upstream_applied_it_and_the_client_got_no_status() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &["reset_after"]).await;
    let (got, error) = raw(p.addr, &post("/fhir/Patient", "ra-1")).await;
    assert_eq!(
        (got.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset))
    );
    assert_eq!(seen.hits.load(Ordering::SeqCst), 1);
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("ra-1"), "reset after 201 from upstream")
    );
}

async fn status_case(fault: &str) -> (reqwest::Response, Arc<Seen>, Running) {
    let (up, seen) = upstream().await;
    let p = start_on(up, &[fault]).await;
    let c = client();
    let r = c
        .post(p.url("/fhir/Patient"))
        .header(REQUEST_HEADER, "h-1")
        .body("{\"x\":2}")
        .send()
        .await
        .unwrap();
    (r, seen, p)
}

async fn outcome(r: reqwest::Response) -> serde_json::Value {
    assert_eq!(r.headers()["content-type"], "application/fhir+json");
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["resourceType"], "OperationOutcome");
    json
}

#[tokio::test]
async fn http_429_and_503_are_answered_without_the_upstream() {
    let (r, seen, p) = status_case("http_status,status=429,retry_after=7s").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(outcome(r).await["issue"][0]["code"], "throttled");
    // The connection stays usable: a body was skipped, the next request is answered too.
    let again = client().get(p.url("/fhir/Patient/1")).send().await.unwrap();
    assert_eq!(again.status(), 429);
    assert_eq!(seen.hits.load(Ordering::SeqCst), 0);
    let e = p.entries(1).await[0].clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("h-1"), "answered 429 without forwarding the request")
    );

    // A client waiting for `100 Continue` never sends its body: answer, then close.
    let expect = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: p\r\n{REQUEST_HEADER}: h-2\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    );
    let (got, error) = raw(p.addr, &expect).await;
    let text = String::from_utf8(got).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 429 ") && text.contains("Connection: close\r\n"),
        "{text}"
    );
    assert_eq!(error, None);

    let (r, seen, _) = status_case("http_status,status=429").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());
    outcome(r).await;
    let (r, seen503, _) = status_case("http_status,status=503").await;
    assert_eq!(r.status(), 503);
    assert_eq!(outcome(r).await["issue"][0]["code"], "transient");
    assert_eq!(
        seen.hits.load(Ordering::SeqCst) + seen503.hits.load(Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn http_502_and_504_come_after_the_upstream_committed() {
    for status in [502u16, 504] {
        let (r, seen, p) = status_case(&format!("http_status,status={status}")).await;
        assert_eq!(r.status().as_u16(), status);
        outcome(r).await;
        assert_eq!(
            seen.hits.load(Ordering::SeqCst),
            1,
            "{status}: the upstream was called once"
        );
        let e = only(&p.entries(1).await).clone();
        assert_eq!(e.detail, format!("{status} after 201 from upstream"));
        assert_eq!(e.request.as_deref(), Some("h-1"));
    }
}

#[tokio::test]
async fn stall_holds_the_response_until_healed() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &["stall,latency=60s"]).await;
    let url = p.url("/fhir/Patient");
    let pending = tokio::spawn(async move {
        client()
            .post(url)
            .header(REQUEST_HEADER, "st-1")
            .body("{}")
            .send()
            .await
    });
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("st-1"), "held the 201 response from upstream for 1m")
    );
    assert_eq!(seen.hits.load(Ordering::SeqCst), 1);
    assert!(!pending.is_finished());
    p.proxy.set_enabled(false);
    let r = tokio::time::timeout(BOUND, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 201);
}

// ---------------------------------------------------------------- determinism, healing

async fn injected(up: SocketAddr, seed: u64) -> BTreeSet<String> {
    let p = start(
        &format!("http://{up}/fhir/"),
        &["http_status,status=503,probability=0.3"],
        seed,
        None,
    )
    .await;
    let c = client();
    let mut refused = BTreeSet::new();
    for i in 0..60 {
        let r = c
            .get(p.url("/fhir/Patient/1"))
            .header(REQUEST_HEADER, i.to_string())
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            refused.insert(i.to_string());
        }
    }
    let recorded: BTreeSet<String> = p
        .ledger
        .entries()
        .into_iter()
        .filter_map(|e| e.request)
        .collect();
    assert_eq!(
        recorded, refused,
        "the ledger names exactly the requests that got the fault"
    );
    recorded
}

#[tokio::test]
async fn the_same_seed_and_order_inject_the_same_requests() {
    let (up, _) = upstream().await;
    let first = injected(up, 7).await;
    assert_eq!(injected(up, 7).await, first);
    assert!(
        (5..=35).contains(&first.len()),
        "{} of 60 at 0.3",
        first.len()
    );
    assert_ne!(injected(up, 8).await, first);
}

#[tokio::test]
async fn healing_stops_every_fault_at_once() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["latency,latency=60s", "http_status,status=503"]).await;
    let url = p.url("/fhir/Patient/1");
    let pending = tokio::spawn(async move {
        client()
            .get(url)
            .header(REQUEST_HEADER, "in-flight")
            .send()
            .await
    });
    // The 503 is answered by the proxy, then held by the latency toxic.
    p.entries(2).await;
    p.proxy.set_enabled(false);
    let r = tokio::time::timeout(BOUND, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 503, "the held bytes are released");
    let before = p.ledger.entries().len();
    for _ in 0..3 {
        assert_eq!(
            client()
                .get(p.url("/fhir/Patient/1"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        p.ledger.entries().len(),
        before,
        "nothing injected once healed"
    );
}

/// The standalone proxy answers `GET /__fhirsurge/ledger` itself, in order on a
/// keep-alive connection that already carried a forwarded request, and on a fresh one;
/// each entry names the request's method, path and the identifier its body carried.
#[tokio::test]
async fn the_standalone_proxy_serves_its_ledger() {
    let (up, seen) = upstream().await;
    let fault = "http_status,status=502,probability=1.0";
    let p = launch(&format!("http://{up}/fhir/"), &[fault], 42, None, true).await;
    let body =
        r#"{"resourceType":"Patient","identifier":[{"system":"urn:fhirsurge:it","value":"pl-1"}]}"#;
    let request = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: proxy\r\n{REQUEST_HEADER}: 9\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.0, 502);
    assert_eq!(seen.hits.load(Ordering::SeqCst), 1);
    s.write_all(get("/__fhirsurge/ledger", "10").as_bytes())
        .await
        .unwrap();
    let (status, ledger) = read_response(&mut s).await;
    assert_eq!(status, 200);
    let entries: Vec<Entry> = serde_json::from_slice(&ledger).unwrap();
    let e = only(&entries);
    assert_eq!(e.method.as_deref(), Some("POST"));
    assert_eq!(e.path.as_deref(), Some("/fhir/Patient"));
    assert_eq!(e.identifier.as_deref(), Some("urn:fhirsurge:it|pl-1"));
    assert_eq!(e.request.as_deref(), Some("9"));
    assert!(e.observable);
    assert_eq!(seen.hits.load(Ordering::SeqCst), 1, "never forwarded");
    let fresh = client()
        .get(p.url("/__fhirsurge/ledger"))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status().as_u16(), 200);
    let again: Vec<Entry> = fresh.json().await.unwrap();
    assert_eq!(again, entries);
}

//! toxiproxy's TCP toxics, each against a real upstream.

use super::*;

// ---------------------------------------------------------------- TCP toxics

#[tokio::test]
async fn latency_delays_the_response_by_at_least_the_latency() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["latency,latency=300ms"]).await;
    let sent = Instant::now();
    let r = client()
        .get(p.url("/fhir/Patient/1"))
        .header(REQUEST_HEADER, "lat-1")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    // The fault's definition: no byte of the response arrives before the latency.
    assert!(sent.elapsed() >= Duration::from_millis(300));
    assert!(body.contains("Patient"));
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.fault.as_str(), e.kind.as_str()),
        ("latency#0", "latency")
    );
    assert_eq!(e.request.as_deref(), Some("lat-1"));
    assert_eq!(e.resource_type.as_deref(), Some("Patient"));
    assert_eq!(e.detail, "latency 300ms downstream");
}

#[tokio::test]
async fn slicer_delivers_the_request_in_slices() {
    let (up, reads) = raw_upstream(false).await;
    let p = start_on(
        up,
        &["slicer,stream=upstream,average_size=64,size_variation=16,delay=5ms"],
    )
    .await;
    let body = "y".repeat(2000);
    let r = client()
        .post(p.url("/fhir/Patient"))
        .header(REQUEST_HEADER, "s-1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "2000");
    let reads = reads.lock().unwrap().clone();
    assert!(
        reads.len() >= 2,
        "the upstream got the request in {} read(s)",
        reads.len()
    );
    let e = only(&p.entries(1).await).clone();
    assert_eq!(e.request.as_deref(), Some("s-1"));
    assert!(e.detail.starts_with("slicer 64±16 bytes"), "{}", e.detail);
}

#[tokio::test]
async fn limit_data_cuts_after_exactly_the_bytes() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["limit_data,bytes=100"]).await;
    let (got, error) = raw(p.addr, &get("/fhir/big", "ld-1")).await;
    assert_eq!(error, None, "a clean EOF");
    assert_eq!(got.len(), 100);
    assert!(got.starts_with(b"HTTP/1.1 200"));
    let e = only(&p.entries(1).await).clone();
    assert_eq!(e.request.as_deref(), Some("ld-1"));
    assert_eq!(e.detail, "limit_data after 100 bytes downstream");
}

#[tokio::test]
async fn bandwidth_paces_the_response() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["bandwidth,rate=50"]).await;
    let sent = Instant::now();
    let r = client()
        .get(p.url("/fhir/big"))
        .header(REQUEST_HEADER, "bw-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), BIG);
    // 20 KB at 50 KB/s: the body alone takes 400 ms by definition.
    assert!(sent.elapsed() >= Duration::from_millis(400));
    let e = p.entries(1).await[0].clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("bw-1"), "bandwidth 50 KB/s downstream")
    );
}

#[tokio::test]
async fn slow_close_delays_the_close() {
    let (up, _) = raw_upstream(true).await;
    let p = start_on(up, &["slow_close,delay=300ms"]).await;
    let sent = Instant::now();
    let (got, error) = raw(p.addr, &post("/fhir/Patient", "sc-1")).await;
    assert_eq!(error, None);
    assert!(
        got.ends_with(b"\r\n\r\n2"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // The upstream closed at once; the client's EOF comes only after the delay.
    assert!(sent.elapsed() >= Duration::from_millis(300));
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("sc-1"), "slow_close: close delayed 300ms downstream")
    );
}

#[tokio::test]
async fn timeout_zero_blackholes_until_healed() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &["timeout,timeout=0s"]).await;
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = short
        .get(p.url("/fhir/Patient/1"))
        .header(REQUEST_HEADER, "bh-1")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let e = only(&p.entries(1).await).clone();
    assert_eq!(
        (e.request.as_deref(), e.detail.as_str()),
        (Some("bh-1"), "timeout: dropped the data downstream")
    );
    assert_eq!(
        seen.hits.load(Ordering::SeqCst),
        1,
        "downstream blackhole: the request went through"
    );
    p.proxy.set_enabled(false);
    let r = client().get(p.url("/fhir/Patient/1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn timeout_closes_the_connection_after_the_timeout() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["timeout,stream=upstream,timeout=1s"]).await;
    let (got, error) = raw(p.addr, &get("/fhir/Patient/1", "to-1")).await;
    assert_eq!((got.len(), error), (0, None), "no data, then a clean close");
    let details: Vec<String> = p.entries(2).await.into_iter().map(|e| e.detail).collect();
    assert_eq!(
        details,
        [
            "timeout: dropped the data upstream",
            "timeout: connection closed after 1s upstream"
        ]
    );
}

#[tokio::test]
async fn reset_peer_upstream_stops_the_request_and_downstream_stops_the_response() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &["reset_peer,stream=upstream"]).await;
    let (got, error) = raw(p.addr, &post("/fhir/Patient", "rp-1")).await;
    assert_eq!(
        (got.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset))
    );
    assert_eq!(
        seen.hits.load(Ordering::SeqCst),
        0,
        "upstream reset: the server never saw it"
    );
    assert_eq!(only(&p.entries(1).await).request.as_deref(), Some("rp-1"));

    let p = start_on(up, &["reset_peer"]).await;
    let (got, error) = raw(p.addr, &post("/fhir/Patient", "rp-2")).await;
    assert_eq!(
        (got.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset))
    );
    eventually("the upstream to see the request", || {
        seen.hits.load(Ordering::SeqCst) == 1
    })
    .await;
    let e = only(&p.entries(1).await).clone();
    assert_eq!(e.request.as_deref(), Some("rp-2"));
    assert!(
        e.detail.starts_with("reset_peer: connection reset"),
        "{}",
        e.detail
    );
}

#[tokio::test]
async fn down_refuses_new_connections_and_resets_open_ones_until_healed() {
    let (up, _) = upstream().await;
    let p = start_on(up, &["down"]).await;
    p.proxy.set_enabled(false);
    let mut open = TcpStream::connect(p.addr).await.unwrap();
    open.write_all(get("/fhir/Patient/1", "d-1").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut open).await.0, 200);

    p.proxy.set_enabled(true);
    let (rest, error) = read_to_end(&mut open).await;
    assert_eq!(
        (rest.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset)),
        "the open connection"
    );
    let (got, error) = raw(p.addr, &get("/fhir/Patient/1", "d-2")).await;
    assert_eq!(
        (got.len(), error),
        (0, Some(std::io::ErrorKind::ConnectionReset)),
        "a new connection"
    );
    let details: Vec<String> = p.entries(2).await.into_iter().map(|e| e.detail).collect();
    assert_eq!(
        details,
        [
            "down: open connection reset",
            "down: connection reset on accept"
        ]
    );

    p.proxy.set_enabled(false);
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

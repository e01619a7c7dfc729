//! Forwarding with no fault acting, an https upstream, and bad input.

use super::*;

// ---------------------------------------------------------------- forwarding

#[tokio::test]
async fn forwards_paths_unchanged_and_rewrites_only_the_host() {
    let (up, seen) = upstream().await;
    let p = start_on(up, &[]).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(p.url("/fhir/host")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), up.to_string());
    }
    let r = c
        .post(p.url("/fhir/Patient"))
        .body("{\"a\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], "Patient/1/_history/1");
    assert!(r.text().await.unwrap().contains("\"received\":7"));
    assert_eq!(
        c.get(p.url("/fhir/chunked"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "abcdef"
    );
    assert_eq!(seen.hits.load(Ordering::SeqCst), 5);
    assert!(
        seen.hosts
            .lock()
            .unwrap()
            .iter()
            .all(|h| *h == up.to_string())
    );
    assert!(p.ledger.entries().is_empty());
}

#[tokio::test]
async fn framing_keeps_a_keepalive_connection_in_sync() {
    // A fault that never fires still makes the proxy frame every response.
    let (up, seen) = upstream().await;
    let p = start_on(up, &["http_status,status=503,probability=0"]).await;
    let c = client();
    for _ in 0..2 {
        assert_eq!(
            c.get(p.url("/fhir/chunked"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "abcdef"
        );
        let head = c.head(p.url("/fhir/big")).send().await.unwrap();
        assert_eq!(head.headers()["content-length"], BIG.to_string().as_str());
        assert_eq!(
            c.get(p.url("/fhir/big"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len(),
            BIG
        );
    }
    // A chunked request body on a raw keep-alive connection, then a second request.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let chunked = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: p\r\n{REQUEST_HEADER}: c1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{{\"a\r\n4\r\n\":1}}\r\n0\r\n\r\n"
    );
    s.write_all(chunked.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut s).await;
    assert_eq!(status, 201);
    assert!(String::from_utf8(body).unwrap().contains("\"received\":7"));
    s.write_all(get("/fhir/Patient/1", "c2").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.0, 200);
    assert_eq!(seen.hits.load(Ordering::SeqCst), 8);
    assert!(p.ledger.entries().is_empty());
}

// ---------------------------------------------------------------- https upstream

/// A TLS server for `localhost` signed by a fresh test CA; answers with the Host it got.
async fn tls_upstream() -> (u16, tempfile::NamedTempFile, Arc<AtomicUsize>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "fhirsurge test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem.path(), ca_cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::from(leaf_key),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let host = req
                            .headers()
                            .get("host")
                            .map(|h| h.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        async move { Ok::<_, Infallible>(hyper::Response::new(Body::from(host))) }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(tls);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (port, pem, hits)
}

#[tokio::test]
async fn https_upstream_is_verified_against_the_given_ca() {
    let (port, ca, hits) = tls_upstream().await;
    let upstream = format!("https://localhost:{port}/fhir/");
    let p = start(&upstream, &[], 1, Some(ca.path().to_owned())).await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(p.url("/fhir/Patient/1")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), format!("localhost:{port}"));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Without the CA the certificate does not verify: the client sees a network failure.
    let untrusting = start(&upstream, &[], 1, None).await;
    let err = c
        .get(untrusting.url("/fhir/Patient/1"))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_faults_and_listen_addresses_are_refused_naming_the_field() {
    // A fault is checked when it is read: the flag itself is refused.
    let unknown = Spec::parse_flag("jitterbug").unwrap_err().to_string();
    assert!(
        unknown.contains("`jitterbug`") && unknown.contains("limit_data"),
        "{unknown}"
    );
    let unexpected = Spec::parse_flag("reset_before,bytes=3")
        .unwrap_err()
        .to_string();
    assert!(unexpected.contains("`bytes`"), "{unexpected}");
    let missing = Spec::parse_flag("stall").unwrap_err().to_string();
    assert!(missing.contains("`latency`"), "{missing}");
    let status = Spec::parse_flag("http_status,status=418")
        .unwrap_err()
        .to_string();
    // A checked fault the proxy does not inject is refused by the proxy.
    let silent = proxy::validate_fault(&Spec::parse_flag("ack_and_drop").unwrap())
        .unwrap_err()
        .to_string();
    assert!(silent.contains("`ack_and_drop`"), "{silent}");
    assert!(status.contains("`status`"), "{status}");
    let probability = Spec::parse_flag("latency,latency=1s,probability=1.5")
        .unwrap_err()
        .to_string();
    assert!(probability.contains("`probability`"), "{probability}");
    let negative = Spec::parse_flag("latency,latency=-5ms")
        .unwrap_err()
        .to_string();
    assert!(negative.contains("latency=-5ms"), "{negative}");

    let remote: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let refused = proxy::check_listen(remote, false).unwrap_err().to_string();
    assert!(
        refused.contains("0.0.0.0:8080") && refused.contains("loopback"),
        "{refused}"
    );
    assert!(proxy::check_listen(remote, true).is_ok());
    assert!(proxy::check_listen("127.0.0.1:0".parse().unwrap(), false).is_ok());
    assert!(proxy::check_listen("[::1]:0".parse().unwrap(), false).is_ok());
}

#[test]
fn a_proxy_is_not_built_from_bad_config() {
    let config = |upstream: &str, fault: &str| Config {
        upstream: url::Url::parse(upstream).unwrap(),
        faults: vec![(3, Spec::parse_flag(fault).unwrap())],
        seed: 0,
        ledger: Ledger::new(Instant::now()),
        ca_cert: None,
        serve_ledger: false,
        control: Default::default(),
    };
    let scheme = Proxy::new(config("ftp://h/", "down"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        scheme.contains("ftp://h/") && scheme.contains("scheme"),
        "{scheme}"
    );
    let fault = Proxy::new(config("http://h/", "strip"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        fault.contains("strip#3") && fault.contains("`strip`"),
        "{fault}"
    );
    let mut bad_ca = config("https://h/", "down");
    bad_ca.ca_cert = Some("/nonexistent/ca.pem".into());
    let ca = Proxy::new(bad_ca).err().unwrap().to_string();
    assert!(ca.contains("/nonexistent/ca.pem"), "{ca}");
    assert!(proxy::kinds().contains(&"reset_after"));
}

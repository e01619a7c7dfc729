//! Certificate verification against a rustls server on 127.0.0.1:0 whose certificate for
//! `localhost` is signed by a CA made for the test (rcgen): refused without the CA,
//! accepted with `ca_cert`, accepted with `insecure`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fhirsurge::fhir::{Client, Ctx, Recorder, Tls};
use fhirsurge::history::ErrorClass;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and a server certificate for `localhost` it signed: (CA PEM, chain, key).
pub(crate) fn certificates() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, "fhirsurge test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (ca_cert.pem(), vec![leaf_cert.der().clone()], key)
}

/// Serves `GET /metadata` over TLS on 127.0.0.1:0, one request per connection.
pub(crate) async fn serve(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> u16 {
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake ends here: that is what some tests want.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 16 * 1024];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
                    match tls.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let body = r#"{"resourceType":"CapabilityStatement","status":"active"}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

fn client(port: u16, tls: Tls) -> Client {
    let (recorder, _rx) = Recorder::new(Instant::now(), 1024);
    let mut settings = super::settings(
        &format!("https://localhost:{port}/"),
        fhirsurge::fhir::auth::Config::None,
        tls,
    );
    settings.timeout = Duration::from_secs(5);
    // The receiver is dropped: records are discarded, which the recorder allows.
    Client::new(settings, recorder).unwrap()
}

#[tokio::test]
async fn a_test_ca_is_needed_unless_verification_is_off() {
    let (ca_pem, chain, key) = certificates();
    let port = serve(chain, key).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = super::write(dir.path(), "ca.pem", &ca_pem);

    let refused = client(port, Tls::default())
        .capabilities(Ctx::default())
        .await;
    assert_eq!(refused.error, Some(ErrorClass::Connect), "{refused:?}");
    assert_eq!(refused.status, None);

    let with_ca = Tls::Verify {
        ca_cert: Some(ca_file),
    };
    let trusted = client(port, with_ca).capabilities(Ctx::default()).await;
    assert!(trusted.is_ok(), "{trusted:?}");
    assert_eq!(trusted.status, Some(200));

    assert!(Tls::Insecure.is_insecure());
    let insecure = client(port, Tls::Insecure)
        .capabilities(Ctx::default())
        .await;
    assert!(insecure.is_ok(), "{insecure:?}");
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = super::write(dir.path(), "ca.pem", "not a certificate\n");
    let (recorder, _rx) = Recorder::new(Instant::now(), 16);
    let settings = super::settings(
        "https://localhost:1/",
        fhirsurge::fhir::auth::Config::None,
        Tls::Verify { ca_cert: Some(bad) },
    );
    let err = Client::new(settings, recorder).unwrap_err().to_string();
    assert!(
        err.contains("tls.ca_cert") && err.contains("ca.pem"),
        "{err}"
    );
}

//! The receiver's optional TLS: a rustls server configuration from a PEM certificate
//! chain and its PEM private key (`[subscriptions.tls]`), speaking HTTP/1.1. A file that
//! cannot be read or holds no usable PEM is an error naming the file. Uses rustls and
//! tokio-rustls only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the receiver's certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("subscriptions.tls: {path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("subscriptions.tls: the certificate and key do not make a TLS server: {0}")]
    Config(String),
}

/// The receiver's TLS server side.
#[derive(Clone)]
pub struct Acceptor(pub TlsAcceptor);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

/// A TLS acceptor for the certificate chain in `cert_file` and the key in `key_file`.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<Acceptor, TlsError> {
    let bad = |path: &Path, problem: String| TlsError::File {
        path: path.to_owned(),
        problem,
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| bad(path, format!("cannot be read ({})", e.kind())))
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert_file, format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(bad(cert_file, "holds no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key_file)?)
        .map_err(|e| bad(key_file, format!("holds no PEM private key ({e})")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Acceptor(TlsAcceptor::from(Arc::new(config))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let e = acceptor(&missing, &empty).unwrap_err().to_string();
        assert!(
            e.contains("missing.pem") && e.contains("cannot be read"),
            "{e}"
        );
        let e = acceptor(&empty, &empty).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
    }
}

//! How the client checks a server's certificate (the scenario's `[tls]`, `--insecure`):
//! rustls against the system roots, plus a CA from a PEM file for test environments; no
//! check at all only when asked for explicitly, and then the report says so. Uses
//! reqwest's builder; nothing else.

use std::path::PathBuf;

use reqwest::{Certificate, ClientBuilder};

/// Certificate verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Verify against the system roots, plus the CA certificates in `ca_cert` (PEM).
    Verify { ca_cert: Option<PathBuf> },
    /// Accept any certificate (`[tls] insecure = true` or `--insecure`).
    Insecure,
}

impl Default for Tls {
    fn default() -> Self {
        Tls::Verify { ca_cert: None }
    }
}

impl Tls {
    /// Whether certificate verification is off (for the report).
    pub fn is_insecure(&self) -> bool {
        matches!(self, Tls::Insecure)
    }
}

/// A CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("tls.ca_cert: {path}: {problem}")]
pub struct CaError {
    pub path: PathBuf,
    pub problem: String,
}

/// Applies the verification settings to a client builder.
pub fn configure(builder: ClientBuilder, tls: &Tls) -> Result<ClientBuilder, CaError> {
    match tls {
        Tls::Verify { ca_cert: None } => Ok(builder),
        Tls::Verify {
            ca_cert: Some(path),
        } => {
            let bad = |problem: String| CaError {
                path: path.clone(),
                problem,
            };
            let pem =
                std::fs::read(path).map_err(|e| bad(format!("cannot be read ({})", e.kind())))?;
            let certs = Certificate::from_pem_bundle(&pem)
                .map_err(|_| bad("is not a PEM certificate bundle".into()))?;
            if certs.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
            Ok(builder.tls_certs_merge(certs))
        }
        Tls::Insecure => {
            tracing::warn!("TLS certificate verification is off (insecure)");
            Ok(builder.tls_danger_accept_invalid_certs(true))
        }
    }
}

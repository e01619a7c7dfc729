//! Where the proxy forwards to: the upstream's address, the `Host` value to send, its base
//! path, and the connection itself — plain TCP, or TLS (rustls, system roots plus an optional
//! extra CA, certificate verification always on, SNI = the upstream host).
//! Must not depend on the proxy's fault code.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::{Host, Url};

use super::Error;

/// The read side of an upstream connection.
pub(super) type UpRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write side of an upstream connection.
pub(super) type UpWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// The upstream FHIR server.
pub(super) struct Upstream {
    host: Host<String>,
    port: u16,
    /// What the proxy puts in `Host`: host[:port], the port only when not the default.
    pub host_header: String,
    /// The URL's path (`/fhir/R4/`), to find resource types in request targets.
    pub base_path: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Upstream {
    pub(super) fn new(url: &Url, ca_cert: Option<&Path>) -> Result<Upstream, Error> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(Error::Scheme(url.to_string())),
        };
        let host = url
            .host()
            .ok_or_else(|| Error::NoHost(url.to_string()))?
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Error::NoHost(url.to_string()))?;
        let host_str = url.host_str().unwrap_or_default();
        let host_header = match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_owned(),
        };
        let tls = if https {
            Some((connector(ca_cert)?, server_name(&host)?))
        } else {
            None
        };
        Ok(Upstream {
            host,
            port,
            host_header,
            base_path: url.path().to_owned(),
            tls,
        })
    }

    /// Opens a connection (TCP_NODELAY, TLS when https).
    pub(super) async fn connect(&self) -> std::io::Result<(UpRead, UpWrite)> {
        let tcp = self.tcp().await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => {
                let (r, w) = tcp.into_split();
                Ok((Box::new(r), Box::new(w)))
            }
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await?;
                let (r, w) = tokio::io::split(tls);
                Ok((Box::new(r), Box::new(w)))
            }
        }
    }

    /// Tries the upstream's addresses, IPv4 first (so `localhost` means 127.0.0.1).
    async fn tcp(&self) -> std::io::Result<TcpStream> {
        let mut addrs: Vec<SocketAddr> = match &self.host {
            Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), self.port)],
            Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), self.port)],
            Host::Domain(d) => tokio::net::lookup_host((d.as_str(), self.port))
                .await?
                .collect(),
        };
        addrs.sort_by_key(|a| a.is_ipv6());
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("upstream host has no address")))
    }
}

fn server_name(host: &Host<String>) -> Result<ServerName<'static>, Error> {
    Ok(match host {
        Host::Domain(d) => ServerName::try_from(d.clone())
            .map_err(|e| Error::Tls(format!("server name `{d}`: {e}")))?,
        Host::Ipv4(ip) => ServerName::IpAddress(IpAddr::V4(*ip).into()),
        Host::Ipv6(ip) => ServerName::IpAddress(IpAddr::V6(*ip).into()),
    })
}

/// A TLS client that trusts the system roots plus `ca_cert`, speaking HTTP/1.1.
fn connector(ca_cert: Option<&Path>) -> Result<TlsConnector, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("fault proxy: skipping a system root certificate: {e}");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_cert {
        add_pem(&mut roots, path)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

fn add_pem(roots: &mut rustls::RootCertStore, path: &Path) -> Result<(), Error> {
    let bad = |reason: String| Error::CaCert {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
        added += 1;
    }
    if added == 0 {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(())
}

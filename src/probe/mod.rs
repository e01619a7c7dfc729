//! The capability probe (`fhirsurge probe`): reads a live server's CapabilityStatement
//! (`{base}/metadata`) and SMART configuration (`{base}/.well-known/smart-configuration`)
//! and says, per resource type and interaction, where the server and a profile disagree.
//! The runner also reads the statement once before a run, to pick required search
//! parameters the server lists. The I/O is here; parsing is in `statement`, the
//! comparison (pure) in `compare`. Uses `profile` and `fhir::tls`; nothing else.

pub mod compare;
pub mod statement;

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use url::Url;

pub use compare::{Difference, Weight, compare};
pub use statement::{Capabilities, Smart, SmartConfig, TypeCaps};

use crate::fhir::tls::{self, Tls};
use crate::profile::Profile;

/// Why a probe could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or file of ours is wrong.
    #[error("{0}")]
    BadInput(String),
    /// The CA certificates given cannot be used.
    #[error(transparent)]
    Ca(#[from] tls::CaError),
    /// Nothing answered.
    #[error("the target {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    /// It answered, but not with a CapabilityStatement.
    #[error("{url}: {reason}")]
    NotFhir { url: String, reason: String },
}

/// What a probe found.
#[derive(Clone, Debug, PartialEq)]
pub struct Findings {
    pub target: String,
    pub profile: String,
    pub software: Option<String>,
    pub fhir_version: Option<String>,
    pub differences: Vec<Difference>,
}

impl Findings {
    /// No difference that matters (notes aside).
    pub fn agree(&self) -> bool {
        self.differences.iter().all(|d| d.weight == Weight::Note)
    }

    /// One line per difference, then a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let about: Vec<&str> = [self.software.as_deref(), self.fhir_version.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let _ = writeln!(
            out,
            "probe {} ({}) against profile {}",
            self.target,
            if about.is_empty() {
                "unnamed server".into()
            } else {
                about.join(", FHIR ")
            },
            self.profile
        );
        for d in &self.differences {
            let weight = match d.weight {
                Weight::Disagree => "DISAGREE",
                Weight::Note => "note",
            };
            let _ = writeln!(
                out,
                "{weight:<9} {:<22} {:<22} {}",
                d.subject, d.item, d.detail
            );
        }
        let disagree = self
            .differences
            .iter()
            .filter(|d| d.weight == Weight::Disagree)
            .count();
        let notes = self.differences.len() - disagree;
        let verdict = if disagree == 0 { "agree" } else { "disagree" };
        let _ = writeln!(
            out,
            "summary: {} and the server {verdict}: {disagree} disagreements, {notes} notes",
            self.profile
        );
        out
    }
}

/// An HTTP client with the run's certificate settings.
pub fn client(tls: &Tls, timeout: Duration) -> Result<reqwest::Client, Error> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)));
    tls::configure(builder, tls)?
        .build()
        .map_err(|e| Error::BadInput(format!("cannot build the HTTP client: {e}")))
}

/// `base` with a trailing `/`, so relative paths resolve under it.
fn dir(base: &Url) -> Url {
    let mut u = base.clone();
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    u
}

/// A URL without user, password or query: safe to print.
fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

/// GETs a JSON document; `Err` carries whether anything answered.
async fn get_json(http: &reqwest::Client, url: &Url) -> Result<Value, Error> {
    let shown = redact(url);
    let resp = http
        .get(url.clone())
        .header("accept", "application/fhir+json, application/json")
        .send()
        .await
        .map_err(|e| Error::Unreachable {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
    let status = resp.status();
    let not_fhir = |reason: String| Error::NotFhir {
        url: shown.clone(),
        reason,
    };
    if !status.is_success() {
        return Err(not_fhir(format!("answered {status}")));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| not_fhir(format!("the body broke off: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| not_fhir(format!("not JSON: {e}")))
}

/// The server's CapabilityStatement.
pub async fn capabilities(http: &reqwest::Client, base: &Url) -> Result<Capabilities, Error> {
    let url = dir(base)
        .join("metadata")
        .map_err(|e| Error::BadInput(e.to_string()))?;
    let body = get_json(http, &url).await?;
    Capabilities::parse(&body).map_err(|e| Error::NotFhir {
        url: redact(&url),
        reason: e.to_string(),
    })
}

/// The server's SMART configuration, or why there is none.
pub async fn smart(http: &reqwest::Client, base: &Url) -> Smart {
    let Ok(url) = dir(base).join(".well-known/smart-configuration") else {
        return Smart::Missing("no URL".into());
    };
    match get_json(http, &url).await {
        Ok(v) => Smart::Config(SmartConfig::parse(&v)),
        Err(Error::NotFhir { reason, .. } | Error::Unreachable { reason, .. }) => {
            Smart::Missing(reason)
        }
        Err(e @ (Error::BadInput(_) | Error::Ca(_))) => Smart::Missing(e.to_string()),
    }
}

/// Reads what the server says of itself and compares it with the profile.
pub async fn probe(
    base: &Url,
    profile: &Profile,
    tls: &Tls,
    timeout: Duration,
) -> Result<Findings, Error> {
    let http = client(tls, timeout)?;
    let caps = capabilities(&http, base).await?;
    let smart = smart(&http, base).await;
    Ok(Findings {
        target: redact(base),
        profile: profile.name.clone(),
        software: caps.software.clone(),
        fhir_version: caps.fhir_version.clone(),
        differences: compare(profile, &caps, &smart),
    })
}

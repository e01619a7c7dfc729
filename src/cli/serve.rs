//! The long-running servers of the command line: `serve-mock` (the built-in mock EHR,
//! with SMART Backend Services when asked) and `proxy` (the fault proxy in front of any
//! FHIR server), each until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::exit::{Ending, Failure};
use super::{bad_input, parse_faults};
use crate::fault::{Ledger, proxy};
use crate::mock;
use crate::profile::Profile;
use crate::vocab::control::{self, Access};

/// `serve-mock` authentication flags.
#[derive(clap::Args, Debug)]
pub(super) struct MockAuth {
    /// `smart`: SMART Backend Services (discovery, /auth/token, bearer tokens required).
    #[arg(long, value_enum, default_value_t = AuthKind::None)]
    auth: AuthKind,
    /// A registered client id (repeatable); none = any client whose key is trusted.
    #[arg(long = "client-id", value_name = "ID")]
    client_ids: Vec<String>,
    /// Trusted public keys: a JWK Set file.
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// Trusted public keys: a JWK Set URL, fetched and cached.
    #[arg(long, value_name = "URL")]
    jwks_url: Option<url::Url>,
    /// A `jku` header value to honour (repeatable); its JWK Set is fetched and cached.
    #[arg(long = "jku-allow", value_name = "URL")]
    jku_allow: Vec<url::Url>,
    /// Scopes clients may be granted, e.g. "system/Patient.rs system/Observation.cruds"
    /// (repeatable; default all).
    #[arg(long, value_name = "SCOPES")]
    scopes: Vec<String>,
    /// The registered clients' secret, read from this environment variable: the token
    /// endpoint then takes client_secret_basic, _post and _jwt (as far as --profile's
    /// front door lists them).
    #[arg(long, value_name = "VAR")]
    client_secret_env: Option<String>,
    /// Access token lifetime (default: the profile's, else 300s).
    #[arg(long, value_parser = humantime::parse_duration)]
    token_lifetime: Option<Duration>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AuthKind {
    None,
    Smart,
}

impl MockAuth {
    /// The mock's SMART settings, with the front door of `profile` (its methods, its
    /// token lifetime); SMART flags without `--auth smart` are bad input.
    pub(super) fn config(
        self,
        profile: Option<&Profile>,
    ) -> Result<Option<mock::smart::Config>, Failure> {
        if self.auth == AuthKind::None {
            let stray = !self.client_ids.is_empty()
                || self.jwks.is_some()
                || self.jwks_url.is_some()
                || !self.jku_allow.is_empty()
                || !self.scopes.is_empty()
                || self.client_secret_env.is_some()
                || self.token_lifetime.is_some();
            if stray {
                return Err(bad_input(
                    "--client-id, --jwks, --jwks-url, --jku-allow, --scopes, --client-secret-env \
                     and --token-lifetime need --auth smart",
                ));
            }
            return Ok(None);
        }
        let client_secret = match &self.client_secret_env {
            Some(var) => Some(read_secret(var)?),
            None => None,
        };
        let profile_lifetime = mock::smart::lifetime_for(profile);
        let keys = match &self.jwks {
            Some(path) => mock::smart::read_jwks(path).map_err(bad_input)?,
            None => mock::smart::Jwks::default(),
        };
        Ok(Some(mock::smart::Config {
            clients: self.client_ids,
            keys,
            jwks_url: self.jwks_url,
            jku_allow: self.jku_allow,
            scopes: self.scopes,
            token_lifetime: self
                .token_lifetime
                .or(profile_lifetime)
                .unwrap_or(mock::smart::DEFAULT_LIFETIME),
            methods: mock::smart::methods_for(profile, client_secret.is_some()),
            client_secret,
        }))
    }
}

/// The client secret from `var`; the message names the variable, never a value.
fn read_secret(var: &str) -> Result<String, Failure> {
    read_env(var, "--client-secret-env")
}

/// A secret from environment variable `var` (given by `flag`); the message names the
/// variable, never a value.
fn read_env(var: &str, flag: &str) -> Result<String, Failure> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        Ok(_) => Err(bad_input(format!(
            "{flag}: the environment variable `{var}` is empty"
        ))),
        Err(_) => Err(bad_input(format!(
            "{flag}: the environment variable `{var}` is not set (or not UTF-8)"
        ))),
    }
}

pub(super) async fn serve_mock(
    listen: SocketAddr,
    faults: &[String],
    seed: u64,
    smart: Option<mock::smart::Config>,
    profile: Option<Profile>,
    control: Access,
) -> Result<Ending, Failure> {
    let faults = parse_faults(faults)?;
    for (_, spec) in &faults {
        mock::validate_fault(spec).map_err(bad_input)?;
    }
    let auth = if smart.is_some() {
        ", SMART Backend Services at /.well-known/smart-configuration"
    } else {
        ""
    };
    let emulated = profile
        .as_ref()
        .map_or(crate::profile::DEFAULT, |p| p.name.as_str())
        .to_owned();
    let config = mock::Config {
        seed,
        faults,
        smart,
        profile: profile.map(std::sync::Arc::new),
        control,
        ..mock::Config::default()
    };
    let ehr = mock::Ehr::new(config).map_err(bad_input)?;
    let listener = bind(listen).await?;
    eprintln!(
        "mock EHR emulating `{emulated}`: FHIR base http://{}/{auth} (Ctrl-C stops)",
        local(&listener)
    );
    let shutdown = ctrl_c_token();
    mock::serve(listener, ehr, shutdown)
        .await
        .map_err(|e| Failure::CannotExecute(e.to_string()))?;
    Ok(Ending::Passed)
}

pub(super) async fn serve_proxy(
    listen: SocketAddr,
    upstream: &str,
    faults: &[String],
    seed: u64,
    control: Access,
) -> Result<Ending, Failure> {
    let upstream = url::Url::parse(upstream)
        .map_err(|e| bad_input(format!("--upstream `{upstream}`: {e}")))?;
    let faults = parse_faults(faults)?;
    for (_, spec) in &faults {
        proxy::validate_fault(spec).map_err(bad_input)?;
    }
    let config = proxy::Config {
        upstream,
        faults,
        seed,
        ledger: Ledger::new(std::time::Instant::now()),
        ca_cert: None,
        serve_ledger: true,
        control,
    };
    let p = proxy::Proxy::new(config).map_err(bad_input)?;
    let listener = bind(listen).await?;
    eprintln!(
        "fault proxy: http://{}/ (ledger at {}; Ctrl-C stops)",
        local(&listener),
        proxy::LEDGER_PATH
    );
    proxy::serve(listener, p, ctrl_c_token())
        .await
        .map_err(|e| Failure::CannotExecute(e.to_string()))?;
    Ok(Ending::Passed)
}

/// Who may use the control endpoints of a server (`what`) listening on `listen`: a
/// non-loopback address needs `--allow-remote`, and without a token its control
/// endpoints are then closed (said on stderr); the token comes from the environment
/// variable named, and no message ever shows it.
pub(super) fn control_access(
    what: &str,
    listen: SocketAddr,
    allow_remote: bool,
    token_env: Option<&str>,
) -> Result<Access, Failure> {
    if !listen.ip().is_loopback() && !allow_remote {
        return Err(bad_input(format!(
            "{what}: listen address {listen} is not loopback; pass --allow-remote to expose it \
             (its /__fhirsurge/ control endpoints then need --control-token-env)"
        )));
    }
    let token = match token_env {
        Some(var) => Some(read_env(var, "--control-token-env")?),
        None => None,
    };
    let access = control::decide(listen.ip(), token.as_deref());
    if access == Access::Closed {
        eprintln!(
            "{what}: listening on {listen}, not loopback: the control endpoints (/__fhirsurge/…) \
             are refused (403) to everyone; give --control-token-env VAR to open them to holders \
             of the token"
        );
    }
    Ok(access)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::CannotExecute(format!("cannot listen on {addr}: {e}")))
}

fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

fn ctrl_c_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        t.cancel();
    });
    token
}

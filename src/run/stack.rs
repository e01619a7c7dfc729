//! What a run talks to: the target (the built-in mock EHR started in-process, or a URL)
//! and, when the scenario has network faults, the fault proxy in front of it. Also says
//! where the fault windows are, heals them, and keeps the injectors' ledgers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::Error;
use crate::fault::{self, Group, Ledger, Spec, proxy};
use crate::fhir::auth::{self, Alg, EhrAuth, Method};
use crate::fhir::{Recorder, Retry, Settings, Tls, tls};
use crate::history::{Event, FaultMark};
use crate::mock;
use crate::profile::{AuthKind, ClientAuth, Profile};
use crate::report::{FaultWindow, Faults, LoadInfo};
use crate::scenario::{Load, Scenario, Target};

/// The servers of one run.
pub struct Stack {
    /// Where the harness sends its requests (the proxy when there is one).
    pub base: Url,
    target: Url,
    mock: Option<mock::Ehr>,
    proxy: Option<proxy::Proxy>,
    proxy_ledger: Ledger,
    specs: Vec<(usize, Spec)>,
    /// Faults of the notification receiver (`receiver_*`), for `subscriptions`.
    pub receiver_faults: Vec<(usize, Spec)>,
}

/// The receiver's CA (`[subscriptions.tls] ca_file`), for the built-in mock to trust.
fn notify_roots(scenario: &Scenario) -> Result<Vec<reqwest::Certificate>, Error> {
    let Some(path) = scenario
        .subscriptions
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .and_then(|t| t.ca_file.as_ref())
    else {
        return Ok(Vec::new());
    };
    let bad = |problem: String| {
        Error::BadInput(format!(
            "subscriptions.tls.ca_file: {}: {problem}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read ({})", e.kind())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|_| bad("is not a PEM certificate bundle".into()))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

impl Stack {
    /// Starts what the scenario needs, on loopback ports chosen by the OS.
    pub async fn start(
        scenario: &Scenario,
        profile: &Arc<Profile>,
        ledger: &Ledger,
        start: Instant,
        shutdown: &CancellationToken,
    ) -> Result<Stack, Error> {
        let specs: Vec<(usize, Spec)> = scenario.faults.iter().cloned().enumerate().collect();
        let (receiver_faults, others): (Vec<_>, Vec<_>) = specs
            .iter()
            .cloned()
            .partition(|(_, s)| s.group() == Group::Receiver);
        if !receiver_faults.is_empty() && scenario.subscriptions.is_none() {
            return Err(Error::BadInput(
                "faults: receiver_* faults need [subscriptions] (a notification receiver)".into(),
            ));
        }
        let (silent, network) = split_faults(&others);
        let (target, mock) = match &scenario.target {
            Target::Mock => {
                let config = mock::Config {
                    seed: scenario.seed,
                    start,
                    faults: silent,
                    harness_system_prefix: super::HARNESS_PREFIX.to_owned(),
                    smart: mock_smart(scenario, profile)?,
                    profile: Some(profile.clone()),
                    notify_roots: notify_roots(scenario)?,
                    ..mock::Config::default()
                };
                let ehr = mock::Ehr::new(config)?;
                let url = spawn(shutdown, |l, s| mock::serve(l, ehr.clone(), s)).await?;
                (url, Some(ehr))
            }
            Target::Url(url) if silent.is_empty() => (url.clone(), None),
            Target::Url(_) => {
                return Err(Error::BadInput(
                    "faults: silent write-back and notify_* failures need the built-in mock (target url = \"mock\")".into(),
                ));
            }
        };
        let (base, proxy) = if network.is_empty() {
            (target.clone(), None)
        } else {
            let config = proxy::Config {
                upstream: target.clone(),
                faults: network,
                seed: scenario.seed,
                ledger: ledger.clone(),
                ca_cert: None,
                serve_ledger: false,
                control: Default::default(),
            };
            let p = proxy::Proxy::new(config)?;
            let mut url = spawn(shutdown, |l, s| proxy::serve(l, p.clone(), s)).await?;
            // The proxy forwards paths unchanged: address it under the target's base path.
            url.set_path(target.path());
            (url, Some(p))
        };
        Ok(Stack {
            base,
            target,
            mock,
            proxy,
            proxy_ledger: ledger.clone(),
            specs,
            receiver_faults,
        })
    }

    /// Fails with exit-3 material when the target does not answer within 5 s. Checks
    /// certificates as the client will (`tls`).
    pub async fn probe(&self, timeout: Duration, tls: &Tls) -> Result<(), Error> {
        let url = self
            .target
            .join("metadata")
            .unwrap_or_else(|_| self.target.clone());
        let unreachable = |reason: String| Error::Unreachable {
            url: self.target.to_string(),
            reason,
        };
        let builder = reqwest::Client::builder().timeout(timeout.min(Duration::from_secs(5)));
        let client = tls::configure(builder, tls)?
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        match client
            .get(url)
            .header("accept", "application/fhir+json")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_connect() || e.is_timeout() => Err(unreachable(error_chain(&e))),
            // It answered, even if oddly: reachable.
            Err(_) => Ok(()),
        }
    }

    /// What the target says it supports (its CapabilityStatement), read directly (not
    /// through the fault proxy); `None` when it cannot be read.
    pub async fn capabilities(&self, scenario: &Scenario) -> Option<crate::probe::Capabilities> {
        let timeout = scenario.timeout.min(Duration::from_secs(5));
        let http = crate::probe::client(&scenario.tls, timeout).ok()?;
        match crate::probe::capabilities(&http, &self.target).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("no CapabilityStatement: {e}");
                None
            }
        }
    }

    pub fn client_settings(&self, scenario: &Scenario, profile: &Profile) -> Settings {
        Settings {
            base: self.base.clone(),
            timeout: scenario.timeout,
            retry: Retry {
                policy: scenario.retry.policy,
                max_attempts: scenario.retry.max_attempts,
                backoff: scenario.retry.backoff,
                max_retry_after: scenario.retry.max_retry_after,
            },
            harness_prefix: crate::HARNESS_PREFIX.to_owned(),
            prefer: profile.write.prefer.clone(),
            ledger: self.proxy.as_ref().map(|_| self.proxy_ledger.clone()),
            auth: with_profile(&scenario.auth, profile),
            tls: scenario.tls.clone(),
        }
    }

    /// Switches every fault off: the load phase is over.
    pub fn heal(&self) {
        if let Some(p) = &self.proxy {
            p.set_enabled(false);
        }
        if let Some(m) = &self.mock {
            m.set_faults_enabled(false);
        }
    }

    /// Records the fault intervals in the history (start at the load phase's start, stop
    /// when healed).
    pub async fn mark_faults(&self, recorder: &Recorder, start: bool) {
        for (position, spec) in &self.specs {
            let mark = FaultMark {
                fault: spec.label(*position),
                kind: spec.kind.name().to_owned(),
                params: serde_json::to_value(spec).unwrap_or_default(),
            };
            let event = if start {
                Event::FaultStart(mark)
            } else {
                Event::FaultStop(mark)
            };
            recorder.record(0, &event).await;
        }
    }

    /// The injectors' ledgers (shared handles), for live counts.
    pub fn ledgers(&self) -> Vec<Ledger> {
        let mut all = vec![self.proxy_ledger.clone()];
        all.extend(self.mock.as_ref().map(|m| m.ledger().clone()));
        all
    }

    /// Every injection of both injectors.
    pub fn ledger_entries(&self) -> Vec<fault::Entry> {
        let mut all = self.proxy_ledger.entries();
        if let Some(m) = &self.mock {
            all.extend(m.ledger().entries());
        }
        all.sort_by_key(|e| e.time_us);
        all
    }

    /// Writes `ledger.json` (the ground truth of what was injected) into the run folder.
    pub fn write_ledger(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(&self.ledger_entries())?;
        std::fs::write(dir.join("ledger.json"), text)
    }

    pub fn target_label(&self) -> String {
        match &self.mock {
            Some(_) => "mock".into(),
            None => redact(&self.target),
        }
    }

    pub fn faults_summary(&self) -> Faults {
        let mut injected = BTreeMap::new();
        for e in self.ledger_entries() {
            *injected.entry(e.kind).or_insert(0) += 1;
        }
        let windows = self
            .specs
            .iter()
            .map(|(position, spec)| {
                let w = spec.window();
                FaultWindow {
                    fault: spec.label(*position),
                    kind: spec.kind.name().to_owned(),
                    probability: spec.probability,
                    from_s: w.from.as_secs_f64(),
                    until_s: w.length.map(|l| (w.from + l).as_secs_f64()),
                }
            })
            .collect();
        Faults { injected, windows }
    }
}

/// The scenario's auth with what the EHR profile says of its token endpoint: its
/// client authentication methods and the interval between token requests.
fn with_profile(config: &auth::Config, profile: &Profile) -> auth::Config {
    let (auth::Config::Smart(smart), AuthKind::SmartBackend(sb)) = (config, &profile.auth.kind)
    else {
        return config.clone();
    };
    let mut smart = smart.clone();
    smart.ehr = EhrAuth {
        methods: sb.client_auth.iter().map(|m| method(*m)).collect(),
        min_token_interval: sb.min_token_interval,
    };
    auth::Config::Smart(smart)
}

fn method(m: ClientAuth) -> Method {
    match m {
        ClientAuth::PrivateKeyJwt => Method::PrivateKeyJwt,
        ClientAuth::ClientSecretBasic => Method::ClientSecretBasic,
        ClientAuth::ClientSecretPost => Method::ClientSecretPost,
        ClientAuth::ClientSecretJwt => Method::ClientSecretJwt,
    }
}

/// SMART for the in-process mock when the scenario authenticates with SMART: it trusts
/// the public half of the scenario's own key (under its `kid`, and its `jku` if any)
/// and the scenario's client secret, registers the scenario's client id, and opens the
/// front door of the emulated profile (its methods, its token lifetime unless the
/// scenario sets one). No message carries the key or the secret.
fn mock_smart(
    scenario: &Scenario,
    profile: &Profile,
) -> Result<Option<mock::smart::Config>, Error> {
    let auth::Config::Smart(smart) = &scenario.auth else {
        return Ok(None);
    };
    let client_id = smart.client_id.load("auth.client_id")?;
    let keys = match &smart.private_key {
        Some(source) => vec![mock_jwk(smart, source)?],
        None => Vec::new(),
    };
    let secret = match &smart.client_secret {
        Some(source) => Some(source.load("auth.client_secret")?),
        None => None,
    };
    let profile_lifetime = mock::smart::lifetime_for(Some(profile));
    Ok(Some(mock::smart::Config {
        clients: vec![client_id.expose().to_owned()],
        keys: mock::smart::Jwks { keys },
        jku_allow: smart.jku.iter().cloned().collect(),
        token_lifetime: scenario
            .token_lifetime
            .or(profile_lifetime)
            .unwrap_or(mock::smart::DEFAULT_LIFETIME),
        methods: mock::smart::methods_for(Some(profile), secret.is_some()),
        client_secret: secret.map(|s| s.expose().to_owned()),
        ..mock::smart::Config::default()
    }))
}

/// The public JWK of the scenario's private key.
fn mock_jwk(
    smart: &auth::SmartConfig,
    source: &auth::SecretSource,
) -> Result<mock::smart::Jwk, Error> {
    let pem = source.load("auth.private_key")?;
    let alg = match smart.alg {
        Alg::Rs384 => mock::smart::Algorithm::RS384,
        Alg::Es384 => mock::smart::Algorithm::ES384,
    };
    mock::smart::public_jwk(pem.expose(), alg, &smart.kid).map_err(|e| match e {
        mock::smart::Error::Key { problem, .. } => Error::BadInput(format!(
            "auth.private_key: the {source} is {problem} (alg = \"{}\")",
            smart.alg
        )),
        e => Error::Mock(mock::Error::Smart(e)),
    })
}

/// Fault specs with their position in the scenario.
type Positioned = Vec<(usize, Spec)>;

/// Splits the scenario's faults, checked when the scenario was read, between the mock
/// (silent write-back failures, notification faults) and the proxy (network and HTTP
/// faults), by group.
fn split_faults(specs: &[(usize, Spec)]) -> (Positioned, Positioned) {
    specs
        .iter()
        .cloned()
        .partition(|(_, spec)| matches!(spec.group(), Group::Silent | Group::Notify))
}

/// Binds 127.0.0.1:0, serves on it until shutdown, and returns its base URL.
async fn spawn<F, Fut>(shutdown: &CancellationToken, serve: F) -> Result<Url, Error>
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Io(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Io(e.to_string()))?;
    let task = serve(listener, shutdown.clone());
    tokio::spawn(async move {
        if let Err(e) = task.await {
            tracing::error!("server on {addr} stopped: {e}");
        }
    });
    Url::parse(&format!("http://{addr}/")).map_err(|e| Error::Io(e.to_string()))
}

/// A URL without user, password or query: safe for reports and logs.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The load shape for the report.
pub fn load_info(load: &Load) -> LoadInfo {
    match load {
        Load::Closed {
            users,
            duration,
            plan,
        } => LoadInfo {
            model: "closed".into(),
            users: users.get() as u64,
            rate: None,
            test_plan: plan.as_ref().map(|p| p.to_string()),
            duration_s: duration.as_secs_f64(),
            rate_plan: None,
            max_users: None,
        },
        Load::Open {
            rate,
            users,
            max_users,
        } => LoadInfo {
            model: "open".into(),
            users: users.get() as u64,
            rate: Some(rate.peak()),
            test_plan: None,
            duration_s: rate.duration().as_secs_f64(),
            rate_plan: rate.text().map(str::to_owned),
            max_users: Some(max_users.get() as u64),
        },
    }
}

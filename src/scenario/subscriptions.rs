//! `[subscriptions]`: the notification receiver (where it listens, the URL the server
//! should call when that differs, its TLS certificate when it serves https, how long a
//! notification may take) and the
//! subscriptions the run creates (`[[subscriptions.subscribe]]`: a name, a search URL,
//! classic R4 rest-hook or a Backport IG topic, the payload). Criteria are checked here
//! with `notify::Criteria`, so a parameter the harness cannot evaluate is bad input.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::file::Locator;
use crate::source::SourceError;
use crate::vocab::notification::{Form, Payload};

/// The validated `[subscriptions]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscriptions {
    /// Where the receiver listens (`127.0.0.1:0`: a port the OS picks).
    pub listen: SocketAddr,
    /// The base URL the server must call, when not `http(s)://<listen>/notify/`.
    pub callback_url: Option<Url>,
    /// Serve https with this certificate (`[subscriptions.tls]`); `None`: plain http.
    pub tls: Option<ReceiverTls>,
    /// A notification not delivered this long after its write's acknowledgement is missed.
    pub timeout: Duration,
    /// How long a new subscription may take to become `active`.
    pub activation: Duration,
    pub subscribe: Vec<Subscribe>,
}

/// The receiver's certificate, paths resolved against the scenario's folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverTls {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of the leaf.
    pub key_file: PathBuf,
    /// PEM CA that signed `cert_file`: the built-in mock trusts it when it delivers (a
    /// real server must be told to trust it its own way).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverTlsFile {
    cert_file: String,
    key_file: String,
    #[serde(default)]
    ca_file: Option<String>,
}

/// One subscription the run creates.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscribe {
    /// Unique; the receiver's path segment for it.
    pub name: String,
    pub form: Form,
    /// The search URL (`Encounter?status=finished`); the backport filter for a topic.
    pub criteria: String,
    /// The SubscriptionTopic canonical ([`Form::Topic`] only).
    pub topic: Option<String>,
    pub payload: Payload,
    /// The backport `heartbeat-period` asked of the server ([`Form::Topic`] only, whole
    /// seconds).
    pub heartbeat: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubscriptionsFile {
    #[serde(default = "default_listen")]
    listen: Spanned<String>,
    #[serde(default)]
    callback_url: Option<Spanned<String>>,
    #[serde(default)]
    tls: Option<ReceiverTlsFile>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    activation: Duration,
    #[serde(default)]
    subscribe: Vec<Spanned<SubscribeFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeFile {
    name: String,
    criteria: String,
    #[serde(default)]
    form: Form,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    payload: Payload,
    #[serde(default, with = "humantime_serde")]
    heartbeat_period: Option<Duration>,
}

fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:0".into())
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl SubscriptionsFile {
    pub(super) fn validate(
        self,
        table: std::ops::Range<usize>,
        at: &Locator<'_>,
    ) -> Result<Subscriptions, SourceError> {
        let listen = self.listen.get_ref().parse::<SocketAddr>().map_err(|e| {
            let span = at.key_in(table.clone(), Some("listen"));
            at.error(
                span,
                format!("subscriptions.listen: {e} (e.g. \"127.0.0.1:0\")"),
            )
        })?;
        let callback_url = match &self.callback_url {
            Some(u) => Some(
                Url::parse(u.get_ref())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        at.error(u.span(), "subscriptions.callback_url: not an http(s) URL")
                    })?,
            ),
            None => None,
        };
        if self.timeout.is_zero() || self.activation.is_zero() {
            let span = at.key_in(table.clone(), Some("timeout"));
            return Err(at.error(
                span,
                "subscriptions.timeout/activation: must be longer than 0s",
            ));
        }
        let mut subscribe: Vec<Subscribe> = Vec::new();
        for s in self.subscribe {
            let span = s.span();
            let s = s.into_inner();
            let problem = problem(&s, &subscribe);
            if let Some((key, m)) = problem {
                return Err(at.error(
                    at.key_in(span, Some(key)),
                    format!("subscriptions.subscribe.{key}: {m}"),
                ));
            }
            subscribe.push(Subscribe {
                name: s.name,
                form: s.form,
                criteria: s.criteria,
                topic: s.topic,
                payload: s.payload,
                heartbeat: s.heartbeat_period,
            });
        }
        if subscribe.is_empty() {
            return Err(at.error(
                table,
                "subscriptions: needs at least one [[subscriptions.subscribe]]",
            ));
        }
        let dir = at.path.parent();
        let tls = self.tls.map(|t| ReceiverTls {
            cert_file: resolve(&t.cert_file, dir),
            key_file: resolve(&t.key_file, dir),
            ca_file: t.ca_file.map(|c| resolve(&c, dir)),
        });
        Ok(Subscriptions {
            listen,
            callback_url,
            tls,
            timeout: self.timeout,
            activation: self.activation,
            subscribe,
        })
    }
}

/// A relative path in a scenario is relative to the scenario's folder.
fn resolve(path: &str, dir: Option<&Path>) -> PathBuf {
    let p = Path::new(path);
    match dir {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_owned(),
    }
}

fn problem(s: &SubscribeFile, before: &[Subscribe]) -> Option<(&'static str, String)> {
    let name_ok = !s.name.is_empty()
        && s.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Some((
            "name",
            format!("`{}`: letters, digits, - and _ only", s.name),
        ));
    }
    if before.iter().any(|b| b.name == s.name) {
        return Some(("name", format!("`{}` is used twice", s.name)));
    }
    if let Err(m) = crate::notify::Criteria::parse(&s.criteria) {
        return Some(("criteria", m));
    }
    if let Some(h) = s.heartbeat_period {
        if s.form != Form::Topic {
            return Some(("heartbeat_period", "only with form = \"topic\"".into()));
        }
        if h.is_zero() || h.subsec_nanos() != 0 {
            return Some(("heartbeat_period", "whole seconds, at least 1s".into()));
        }
    }
    match (s.form, &s.topic) {
        (Form::Topic, None) => Some(("topic", "form = \"topic\" needs the topic canonical".into())),
        (Form::RestHook, Some(_)) => Some(("topic", "only with form = \"topic\"".into())),
        (Form::RestHook, None) if s.payload == Payload::IdOnly => Some((
            "payload",
            "classic rest-hook has no id_only payload: full_resource or empty".into(),
        )),
        _ => None,
    }
}

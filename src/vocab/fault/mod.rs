//! What a scenario says about one fault, typed: its [`Kind`] with the kind's attributes,
//! its direction, probability, time window and resource types — and the pure decision of
//! whether it fires for a given connection or request.
//!
//! A fault is parsed and validated once, where it is read (a scenario's `[[faults]]`
//! entry or a `--fault` flag): [`SpecFile`] is the flat file shape, [`Spec`] the checked
//! value every injector takes. Each kind's [`Group`] says which injector owns it (the
//! proxy for network and HTTP faults, the mock for silent ones). Decisions are a pure
//! function of the run seed, the fault, a sequence number and the elapsed time, so the
//! same seed and request order inject the same faults. Uses `vocab::seed` only.

mod kind;

pub use kind::{ALL_GROUPS, Group, HTTP_STATUSES, Kind, names};

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One `[[faults]]` entry of a scenario, or one `--fault` flag, as written: the kind by
/// name and every attribute any kind takes. [`Spec`] is what it means.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// `latency`, `reset_peer`, `ack_and_drop`, `http_429`, …
    pub kind: String,
    /// Which way the bytes flow: `upstream` (client → server) or `downstream`.
    #[serde(default)]
    pub stream: Stream,
    /// Chance per connection (TCP toxics) or per request (HTTP and mock faults), 0–1.
    #[serde(default = "certain")]
    pub probability: f64,
    /// Start of the window, from the start of the run.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<Duration>,
    /// Length of the window; absent = until the end of the load phase.
    #[serde(
        default,
        rename = "for",
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub length: Option<Duration>,
    // Kind-specific attributes; the kind's variant of [`Kind`] says which it takes.
    /// `latency`: added delay; `stall`: how long to hold the response.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<Duration>,
    /// `latency`: ± jitter.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<Duration>,
    /// `slow_close`, `slicer`: delay; `delayed_visibility`, `stale_read`: how long.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// `timeout`, `reset_peer`: after how long (0 = blackhole / at once).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// `bandwidth`: KB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// `slicer`: average slice size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_size: Option<u64>,
    /// `slicer`: variation of the slice size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_variation: Option<u64>,
    /// `limit_data`: bytes before the connection is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// `http_status`: the status to answer (429, 502, 503, 504).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `http_status` with 429/503: the `Retry-After` to send, if any.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after: Option<Duration>,
    /// HTTP and mock faults: only these resource types (empty = all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_types: Vec<String>,
}

fn certain() -> f64 {
    1.0
}

/// Direction of a TCP toxic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Client → server.
    Upstream,
    /// Server → client (toxiproxy's default).
    #[default]
    Downstream,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Upstream => "upstream",
            Self::Downstream => "downstream",
        })
    }
}

/// A problem with a fault spec, naming the field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("faults: `probability` must be between 0 and 1, got {0}")]
    Probability(f64),
    #[error("faults: unknown fault kind `{0}` (known: {1})")]
    UnknownKind(String, String),
    #[error("faults: `{kind}` does not take `{field}`")]
    Unexpected { kind: String, field: &'static str },
    #[error("faults: `{kind}` needs `{field}`")]
    Missing { kind: String, field: &'static str },
    #[error("faults: `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

impl SpecError {
    /// The field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Probability(_) => Some("probability"),
            Self::UnknownKind(..) => Some("kind"),
            Self::Unexpected { field, .. } | Self::Missing { field, .. } => Some(field),
            Self::Invalid { field, .. } => Some(field),
        }
    }
}

/// One fault, checked: its kind with the kind's attributes, and when it fires.
/// Serialises as the flat [`SpecFile`] shape it was read from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SpecFile", into = "SpecFile")]
pub struct Spec {
    pub kind: Kind,
    pub stream: Stream,
    /// Chance per connection (TCP toxics) or per request (HTTP and mock faults), 0–1.
    pub probability: f64,
    pub from: Option<Duration>,
    /// Length of the window; absent = until the end of the load phase.
    pub length: Option<Duration>,
    /// HTTP and mock faults: only these resource types (empty = all).
    pub resource_types: Vec<String>,
}

impl TryFrom<SpecFile> for Spec {
    type Error = SpecError;

    fn try_from(file: SpecFile) -> Result<Spec, SpecError> {
        if !(0.0..=1.0).contains(&file.probability) || file.probability.is_nan() {
            return Err(SpecError::Probability(file.probability));
        }
        let kind = typed_kind(&file)?;
        let unexpected = |field| SpecError::Unexpected {
            kind: file.kind.clone(),
            field,
        };
        if file.stream == Stream::Upstream && !kind.takes_stream() {
            return Err(unexpected("stream"));
        }
        if !file.resource_types.is_empty() && !kind.takes_resource_types() {
            return Err(unexpected("resource_types"));
        }
        if let Some(bad) = file.resource_types.iter().find(|t| !is_type_name(t)) {
            return Err(SpecError::Invalid {
                field: "resource_types".into(),
                reason: format!("`{bad}` is not a FHIR resource type name"),
            });
        }
        kind.check()?;
        Ok(Spec {
            kind,
            stream: file.stream,
            probability: file.probability,
            from: file.from,
            length: file.length,
            resource_types: file.resource_types,
        })
    }
}

/// The attributes any kind may take, as [`SpecFile`] names them.
const ATTRIBUTES: &[&str] = &[
    "latency",
    "jitter",
    "delay",
    "timeout",
    "rate",
    "average_size",
    "size_variation",
    "bytes",
    "status",
    "retry_after",
];

/// The kind and its attributes, read through [`Kind`]'s serde shape: the enum says which
/// attributes each kind takes and needs.
fn typed_kind(file: &SpecFile) -> Result<Kind, SpecError> {
    let invalid = |reason: String| SpecError::Invalid {
        field: "kind".into(),
        reason,
    };
    let mut value = serde_json::to_value(file).map_err(|e| invalid(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        map.retain(|k, _| k == "kind" || ATTRIBUTES.contains(&k.as_str()));
    }
    serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        let named = message.split('`').nth(1).unwrap_or_default();
        let field = ATTRIBUTES.iter().copied().find(|a| *a == named);
        match (message.split('`').next(), field) {
            (Some("unknown variant "), _) => {
                SpecError::UnknownKind(file.kind.clone(), names(ALL_GROUPS).join(", "))
            }
            (Some("unknown field "), Some(field)) => SpecError::Unexpected {
                kind: file.kind.clone(),
                field,
            },
            (Some("missing field "), Some(field)) => SpecError::Missing {
                kind: file.kind.clone(),
                field,
            },
            _ => invalid(message),
        }
    })
}

impl From<Spec> for SpecFile {
    fn from(spec: Spec) -> SpecFile {
        let name = spec.kind.name();
        let attributes = serde_json::to_value(&spec.kind)
            .and_then(serde_json::from_value::<SpecFile>)
            .unwrap_or_else(|_| SpecFile::named(name));
        SpecFile {
            stream: spec.stream,
            probability: spec.probability,
            from: spec.from,
            length: spec.length,
            resource_types: spec.resource_types,
            ..attributes
        }
    }
}

impl SpecFile {
    /// A fault of this kind with no attributes set.
    fn named(kind: &str) -> SpecFile {
        SpecFile {
            kind: kind.to_owned(),
            stream: Stream::default(),
            probability: certain(),
            from: None,
            length: None,
            latency: None,
            jitter: None,
            delay: None,
            timeout: None,
            rate: None,
            average_size: None,
            size_variation: None,
            bytes: None,
            status: None,
            retry_after: None,
            resource_types: Vec::new(),
        }
    }
}

/// `^[A-Z][A-Za-z]+$`: what looks like a FHIR resource type name.
pub fn is_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphabetic())
}

impl Spec {
    /// The fault's window on the run clock.
    pub fn window(&self) -> Window {
        Window {
            from: self.from.unwrap_or_default(),
            length: self.length,
        }
    }

    /// The injector that owns this fault.
    pub fn group(&self) -> Group {
        self.kind.group()
    }

    /// A stable name for this fault in the history and the ledger: kind and position in
    /// the scenario.
    pub fn label(&self, position: usize) -> String {
        format!("{}#{position}", self.kind.name())
    }

    /// Parses the compact form of the `--fault` flag:
    /// `reset_peer,stream=upstream,probability=0.02,from=1m,for=2m,timeout=0s`.
    pub fn parse_flag(text: &str) -> Result<Spec, SpecError> {
        let mut parts = text.split(',');
        let kind = parts.next().unwrap_or_default().trim();
        let mut table = toml::Table::new();
        table.insert("kind".into(), toml::Value::String(kind.to_owned()));
        for part in parts {
            let (key, value) = part.split_once('=').ok_or_else(|| SpecError::Invalid {
                field: part.to_owned(),
                reason: "expected key=value".into(),
            })?;
            let key = key.trim();
            let value = value.trim();
            let parsed = if let Ok(i) = value.parse::<i64>() {
                toml::Value::Integer(i)
            } else if let Ok(f) = value.parse::<f64>() {
                toml::Value::Float(f)
            } else {
                toml::Value::String(value.to_owned())
            };
            table.insert(key.to_owned(), parsed);
        }
        let file: SpecFile =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| SpecError::Invalid {
                    field: text.to_owned(),
                    reason: e.message().to_owned(),
                })?;
        Spec::try_from(file)
    }

    /// Whether the fault fires for decision number `n` at `elapsed` into the run.
    pub fn fires(&self, seed: u64, position: usize, n: u64, elapsed: Duration) -> bool {
        self.window().contains(elapsed) && chance(seed, position as u64, n) < self.probability
    }
}

/// A time window on the run clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: Duration,
    /// `None`: open-ended.
    pub length: Option<Duration>,
}

impl Window {
    pub fn contains(&self, elapsed: Duration) -> bool {
        elapsed >= self.from && self.length.is_none_or(|len| elapsed < self.from + len)
    }
}

use super::seed::chance;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag_form() {
        let s = Spec::parse_flag(
            "reset_peer,stream=upstream,probability=0.02,from=1m,for=2m,timeout=0s",
        )
        .unwrap();
        assert_eq!(
            s.kind,
            Kind::ResetPeer {
                timeout: Some(Duration::ZERO)
            }
        );
        assert_eq!(s.stream, Stream::Upstream);
        assert_eq!(s.probability, 0.02);
        assert_eq!(s.from, Some(Duration::from_secs(60)));
        assert_eq!(s.length, Some(Duration::from_secs(120)));
    }

    #[test]
    fn refuses_a_probability_outside_0_1_and_unknown_fields() {
        assert_eq!(
            Spec::parse_flag("latency,probability=1.5"),
            Err(SpecError::Probability(1.5))
        );
        assert!(Spec::parse_flag("latency,colour=red").is_err());
        assert!(Spec::parse_flag("latency,from=-3s").is_err());
    }

    #[test]
    fn window_is_half_open() {
        let w = Window {
            from: Duration::from_secs(60),
            length: Some(Duration::from_secs(30)),
        };
        assert!(!w.contains(Duration::from_secs(59)));
        assert!(w.contains(Duration::from_secs(60)));
        assert!(!w.contains(Duration::from_secs(90)));
    }

    #[test]
    fn decisions_are_deterministic_and_near_the_rate() {
        let s = Spec::parse_flag("ack_and_drop,probability=0.05").unwrap();
        let fired: Vec<bool> = (0..20_000)
            .map(|n| s.fires(42, 3, n, Duration::ZERO))
            .collect();
        let again: Vec<bool> = (0..20_000)
            .map(|n| s.fires(42, 3, n, Duration::ZERO))
            .collect();
        assert_eq!(fired, again);
        let count = fired.iter().filter(|f| **f).count();
        // 5 % of 20,000 = 1,000; 5 sigma ≈ 154.
        assert!((846..=1154).contains(&count), "{count}");
    }
}

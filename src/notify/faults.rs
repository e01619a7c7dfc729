//! The receiver's own misbehaviour on a schedule, so a run shows whether the server
//! retries and redelivers: `receiver_error` (answer `status`, default 500),
//! `receiver_reset` (read the delivery, then reset the connection without answering),
//! `receiver_down` (every connection reset as soon as it is accepted, for the window),
//! `receiver_slow` (answer after `latency`). Seeded decisions, one counter per fault.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::fault::{Spec, SpecError, Stream};

/// Every receiver fault kind.
pub const KINDS: &[&str] = &[
    "receiver_error",
    "receiver_reset",
    "receiver_down",
    "receiver_slow",
];

/// A receiver fault, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Error(u16),
    Reset,
    Down,
    Slow(Duration),
}

/// Turns a spec into its kind, refusing attributes the kind does not take.
pub fn parse(spec: &Spec) -> Result<Kind, SpecError> {
    spec.validate()?;
    let kind = match spec.kind.as_str() {
        "receiver_error" => match spec.status.unwrap_or(500) {
            s @ 400..=599 => Kind::Error(s),
            s => {
                return Err(SpecError::Invalid {
                    field: "status".into(),
                    reason: format!("{s} is not an error status (400–599)"),
                });
            }
        },
        "receiver_reset" => Kind::Reset,
        "receiver_down" => Kind::Down,
        "receiver_slow" => Kind::Slow(spec.latency.ok_or_else(|| SpecError::Missing {
            kind: spec.kind.clone(),
            field: "latency",
        })?),
        other => return Err(SpecError::UnknownKind(other.to_owned(), KINDS.join(", "))),
    };
    let unexpected = [
        (
            "status",
            spec.status.is_some() && !matches!(kind, Kind::Error(_)),
        ),
        (
            "latency",
            spec.latency.is_some() && !matches!(kind, Kind::Slow(_)),
        ),
        ("delay", spec.delay.is_some()),
        ("jitter", spec.jitter.is_some()),
        ("timeout", spec.timeout.is_some()),
        ("rate", spec.rate.is_some()),
        ("average_size", spec.average_size.is_some()),
        ("size_variation", spec.size_variation.is_some()),
        ("bytes", spec.bytes.is_some()),
        ("retry_after", spec.retry_after.is_some()),
        ("resource_types", !spec.resource_types.is_empty()),
        ("stream", spec.stream == Stream::Upstream),
    ];
    if let Some((field, _)) = unexpected.iter().find(|(_, on)| *on) {
        return Err(SpecError::Unexpected {
            kind: spec.kind.clone(),
            field,
        });
    }
    Ok(kind)
}

/// One configured receiver fault.
#[derive(Debug)]
pub struct Fault {
    pub label: String,
    pub kind: Kind,
    pub name: String,
    position: usize,
    spec: Spec,
    seen: AtomicU64,
}

impl Fault {
    pub fn new(position: usize, spec: Spec) -> Result<Fault, SpecError> {
        Ok(Fault {
            label: spec.label(position),
            kind: parse(&spec)?,
            name: spec.kind.clone(),
            position,
            spec,
            seen: AtomicU64::new(0),
        })
    }

    /// Whether it fires for the next connection (`receiver_down`) or delivery.
    pub fn decide(&self, seed: u64, elapsed: Duration) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        self.spec.fires(seed, self.position, n, elapsed)
    }
}

/// What the receiver does with one delivery: the first fault that fires decides.
pub fn choose(faults: &[Fault], fires: impl Fn(&Fault) -> bool) -> Option<&Fault> {
    faults
        .iter()
        .filter(|f| f.kind != Kind::Down)
        .find(|f| fires(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Spec {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn kinds_and_their_attributes() {
        assert_eq!(
            parse(&spec("kind = \"receiver_error\"")).unwrap(),
            Kind::Error(500)
        );
        assert_eq!(
            parse(&spec("kind = \"receiver_error\"\nstatus = 503")).unwrap(),
            Kind::Error(503)
        );
        assert!(parse(&spec("kind = \"receiver_error\"\nstatus = 200")).is_err());
        assert!(
            parse(&spec("kind = \"receiver_slow\"")).is_err(),
            "needs latency"
        );
        assert_eq!(
            parse(&spec("kind = \"receiver_slow\"\nlatency = \"50ms\"")).unwrap(),
            Kind::Slow(Duration::from_millis(50))
        );
        assert!(parse(&spec("kind = \"receiver_down\"\nlatency = \"5ms\"")).is_err());
    }
}

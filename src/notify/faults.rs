//! The receiver's own misbehaviour on a schedule, so a run shows whether the server
//! retries and redelivers: `receiver_error` (answer `status`, default 500),
//! `receiver_reset` (read the delivery, then reset the connection without answering),
//! `receiver_down` (every connection reset as soon as it is accepted, for the window),
//! `receiver_slow` (answer after `latency`). Seeded decisions, one counter per fault.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::vocab::fault::{Group, Kind as FaultKind, Spec, SpecError, names};

/// Every receiver fault kind.
pub fn kinds() -> Vec<&'static str> {
    names(&[Group::Receiver])
}

/// A receiver fault, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Error(u16),
    Reset,
    Down,
    Slow(Duration),
}

/// The receiver's kind for a fault spec (its attributes were checked when read); any
/// other group is not the receiver's.
pub fn parse(spec: &Spec) -> Result<Kind, SpecError> {
    Ok(match spec.kind {
        FaultKind::ReceiverError { status } => Kind::Error(status.unwrap_or(500)),
        FaultKind::ReceiverReset {} => Kind::Reset,
        FaultKind::ReceiverDown {} => Kind::Down,
        FaultKind::ReceiverSlow { latency } => Kind::Slow(latency),
        _ => {
            return Err(SpecError::UnknownKind(
                spec.kind.name().to_owned(),
                kinds().join(", "),
            ));
        }
    })
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
            name: spec.kind.name().to_owned(),
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
        let read = |text: &str| toml::from_str::<Spec>(text);
        assert!(read("kind = \"receiver_error\"\nstatus = 200").is_err());
        assert!(read("kind = \"receiver_slow\"").is_err(), "needs latency");
        assert_eq!(
            parse(&spec("kind = \"receiver_slow\"\nlatency = \"50ms\"")).unwrap(),
            Kind::Slow(Duration::from_millis(50))
        );
        assert!(read("kind = \"receiver_down\"\nlatency = \"5ms\"").is_err());
        assert!(
            parse(&spec("kind = \"leak\"")).is_err(),
            "not the receiver's kind"
        );
    }
}

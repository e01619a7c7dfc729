//! The proxy's faults: the conversion of a checked [`Spec`] of the network or HTTP group
//! into a [`Fault`] the connection code can act on (which attributes each kind takes is
//! the typed kind's business, checked when the spec was read).
//! Pure: no I/O, no clock. Must not depend on the rest of the proxy.

use std::time::Duration;

use crate::fault::{Group, Spec, SpecError};
use crate::vocab::fault::{Kind as FaultKind, names};

/// The groups of fault this proxy injects.
const GROUPS: &[Group] = &[Group::Network, Group::Http];

/// The fault kinds this proxy injects.
pub fn kinds() -> Vec<&'static str> {
    names(GROUPS)
}

/// A TCP toxic acting on the bytes of one direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Toxic {
    /// Each chunk is delayed by `latency` ± `jitter`.
    Latency { latency: Duration, jitter: Duration },
    /// At most `rate` KB/s (1 KB = 1000 bytes).
    Bandwidth { rate: u64 },
    /// The close is delayed by `delay`.
    SlowClose { delay: Duration },
    /// Data is dropped; the connection is closed after `timeout` (never when zero).
    Timeout { timeout: Duration },
    /// The connection is reset `timeout` after data arrives; the data is not delivered.
    ResetPeer { timeout: Duration },
    /// Chunks are cut into slices of `average` ± `variation` bytes, `delay` apart.
    Slicer {
        average: u64,
        variation: u64,
        delay: Duration,
    },
    /// The connection is closed once `bytes` bytes went through this direction.
    LimitData { bytes: u64 },
}

/// What an HTTP-aware fault does to one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum HttpAction {
    /// Reset the client connection as soon as the request head arrives.
    ResetBefore,
    /// Forward, read the upstream's whole response, reset the client connection.
    ResetAfter,
    /// Answer this status (429/503 without forwarding, 502/504 after the upstream answered).
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Forward, read the upstream's whole response, hold it for `hold`, then send it.
    Stall { hold: Duration },
}

impl HttpAction {
    /// Whether the request reaches the upstream at all.
    pub(super) fn forwards(&self) -> bool {
        !matches!(
            self,
            Self::ResetBefore
                | Self::Status {
                    status: 429 | 503,
                    ..
                }
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Kind {
    Toxic(Toxic),
    /// The proxy refuses connections (accept, then RST) and closes open ones.
    Down,
    Http(HttpAction),
}

/// One configured fault.
#[derive(Clone, Debug)]
pub(super) struct Fault {
    pub position: usize,
    pub label: String,
    pub spec: Spec,
    pub kind: Kind,
}

impl Fault {
    pub(super) fn new(position: usize, spec: &Spec) -> Result<Fault, SpecError> {
        Ok(Fault {
            position,
            label: spec.label(position),
            spec: spec.clone(),
            kind: kind_of(spec)?,
        })
    }

    /// Whether this fault applies to a request for `resource_type` (HTTP faults may be
    /// limited to some types; TCP toxics apply to every request).
    pub(super) fn covers(&self, resource_type: Option<&str>) -> bool {
        let types = &self.spec.resource_types;
        types.is_empty() || resource_type.is_some_and(|t| types.iter().any(|x| x == t))
    }
}

/// Checks that a spec is one the proxy injects (its attributes were checked when read).
pub fn validate_fault(spec: &Spec) -> Result<(), SpecError> {
    kind_of(spec).map(|_| ())
}

fn kind_of(spec: &Spec) -> Result<Kind, SpecError> {
    let toxic = match spec.kind {
        FaultKind::Latency { latency, jitter } => Toxic::Latency {
            latency,
            jitter: jitter.unwrap_or_default(),
        },
        FaultKind::Bandwidth { rate } => Toxic::Bandwidth { rate },
        FaultKind::SlowClose { delay } => Toxic::SlowClose { delay },
        FaultKind::Timeout { timeout } => Toxic::Timeout {
            timeout: timeout.unwrap_or_default(),
        },
        FaultKind::ResetPeer { timeout } => Toxic::ResetPeer {
            timeout: timeout.unwrap_or_default(),
        },
        FaultKind::Slicer {
            average_size,
            size_variation,
            delay,
        } => Toxic::Slicer {
            average: average_size,
            variation: size_variation.unwrap_or(0),
            delay: delay.unwrap_or_default(),
        },
        FaultKind::LimitData { bytes } => Toxic::LimitData { bytes },
        FaultKind::Down {} => return Ok(Kind::Down),
        _ => return http(spec).map(Kind::Http),
    };
    Ok(Kind::Toxic(toxic))
}

fn http(spec: &Spec) -> Result<HttpAction, SpecError> {
    Ok(match spec.kind {
        FaultKind::ResetBefore {} => HttpAction::ResetBefore,
        FaultKind::ResetAfter {} => HttpAction::ResetAfter,
        FaultKind::Stall { latency } => HttpAction::Stall { hold: latency },
        FaultKind::HttpStatus {
            status,
            retry_after,
        } => HttpAction::Status {
            status,
            retry_after,
        },
        _ => {
            return Err(SpecError::UnknownKind(
                spec.kind.name().to_owned(),
                kinds().join(", "),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(flag: &str) -> Result<Kind, SpecError> {
        kind_of(&Spec::parse_flag(flag)?)
    }

    #[test]
    fn builds_each_toxic_with_its_defaults() {
        assert_eq!(
            kind("latency,latency=100ms").unwrap(),
            Kind::Toxic(Toxic::Latency {
                latency: Duration::from_millis(100),
                jitter: Duration::ZERO
            })
        );
        assert_eq!(
            kind("timeout").unwrap(),
            Kind::Toxic(Toxic::Timeout {
                timeout: Duration::ZERO
            })
        );
        assert_eq!(kind("down").unwrap(), Kind::Down);
        assert_eq!(kinds().len(), 12);
    }

    #[test]
    fn refuses_unknown_kinds_listing_the_known_ones() {
        let Err(SpecError::UnknownKind(k, known)) = kind("jitterbug") else {
            panic!("expected UnknownKind");
        };
        assert_eq!(k, "jitterbug");
        assert!(known.contains("reset_peer") && known.contains("http_status"));
    }

    #[test]
    fn refuses_attributes_a_kind_does_not_take_and_missing_ones() {
        assert_eq!(
            kind("latency,latency=1s,bytes=3"),
            Err(SpecError::Unexpected {
                kind: "latency".into(),
                field: "bytes"
            })
        );
        assert_eq!(
            kind("limit_data"),
            Err(SpecError::Missing {
                kind: "limit_data".into(),
                field: "bytes"
            })
        );
        assert_eq!(
            kind("down,timeout=1s"),
            Err(SpecError::Unexpected {
                kind: "down".into(),
                field: "timeout"
            })
        );
    }

    #[test]
    fn checks_values_in_range() {
        let field = |r: Result<Kind, SpecError>| match r {
            Err(SpecError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(kind("http_status,status=500")), "status");
        assert_eq!(
            field(kind("http_status,status=502,retry_after=3s")),
            "retry_after"
        );
        assert_eq!(field(kind("bandwidth,rate=0")), "rate");
        assert_eq!(
            field(kind("slicer,average_size=10,size_variation=10")),
            "size_variation"
        );
        assert!(kind("http_status,status=429,retry_after=3s").is_ok());
    }

    #[test]
    fn only_some_http_faults_reach_the_upstream() {
        let action = |flag| match kind(flag).unwrap() {
            Kind::Http(a) => a,
            other => panic!("{other:?}"),
        };
        assert!(!action("reset_before").forwards());
        assert!(!action("http_status,status=429").forwards());
        assert!(!action("http_status,status=503").forwards());
        assert!(action("http_status,status=502").forwards());
        assert!(action("reset_after").forwards());
        assert!(action("stall,latency=1s").forwards());
    }
}

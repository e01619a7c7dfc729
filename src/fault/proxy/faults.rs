//! The proxy's faults, typed: which kinds exist, which attributes each kind takes, and the
//! conversion of a scenario's [`Spec`] into a [`Fault`] the connection code can act on.
//! Pure: no I/O, no clock. Must not depend on the rest of the proxy.

use std::time::Duration;

use crate::fault::{Spec, SpecError};

/// Every kind the proxy injects: the TCP toxics (toxiproxy's names), then the HTTP-aware faults.
const KINDS: &[&str] = &[
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "down",
    "reset_before",
    "reset_after",
    "http_status",
    "stall",
];

/// Statuses `http_status` may answer; the first two without forwarding the request.
const STATUSES: &[u16] = &[429, 503, 502, 504];

/// The fault kinds this proxy injects.
pub fn kinds() -> &'static [&'static str] {
    KINDS
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

/// Checks a spec the way the proxy will read it: a known kind, only the attributes that
/// kind takes, the ones it needs, and values in range.
pub fn validate_fault(spec: &Spec) -> Result<(), SpecError> {
    kind_of(spec).map(|_| ())
}

fn kind_of(spec: &Spec) -> Result<Kind, SpecError> {
    spec.validate()?;
    let kind = spec.kind.as_str();
    let (takes, needs) = attributes(kind)
        .ok_or_else(|| SpecError::UnknownKind(spec.kind.clone(), KINDS.join(", ")))?;
    for (field, set) in present(spec) {
        if set && !takes.contains(&field) {
            return Err(SpecError::Unexpected {
                kind: spec.kind.clone(),
                field,
            });
        }
        if !set && needs.contains(&field) {
            return Err(SpecError::Missing {
                kind: spec.kind.clone(),
                field,
            });
        }
    }
    build(spec)
}

/// (attributes the kind takes, attributes it needs), or `None` for an unknown kind.
type Attributes = (&'static [&'static str], &'static [&'static str]);

fn attributes(kind: &str) -> Option<Attributes> {
    Some(match kind {
        "latency" => (&["latency", "jitter"], &["latency"]),
        "bandwidth" => (&["rate"], &["rate"]),
        "slow_close" => (&["delay"], &["delay"]),
        "timeout" | "reset_peer" => (&["timeout"], &[]),
        "slicer" => (
            &["average_size", "size_variation", "delay"],
            &["average_size"],
        ),
        "limit_data" => (&["bytes"], &["bytes"]),
        "down" => (&[], &[]),
        "reset_before" | "reset_after" => (&["resource_types"], &[]),
        "http_status" => (&["status", "retry_after", "resource_types"], &["status"]),
        "stall" => (&["latency", "resource_types"], &["latency"]),
        _ => return None,
    })
}

/// Each kind-specific attribute of a spec and whether it is set.
fn present(spec: &Spec) -> [(&'static str, bool); 12] {
    [
        ("latency", spec.latency.is_some()),
        ("jitter", spec.jitter.is_some()),
        ("delay", spec.delay.is_some()),
        ("timeout", spec.timeout.is_some()),
        ("rate", spec.rate.is_some()),
        ("average_size", spec.average_size.is_some()),
        ("size_variation", spec.size_variation.is_some()),
        ("bytes", spec.bytes.is_some()),
        ("status", spec.status.is_some()),
        ("retry_after", spec.retry_after.is_some()),
        ("resource_types", !spec.resource_types.is_empty()),
        // `stream` always has a value; TCP toxics read it, HTTP faults ignore it.
        ("stream", false),
    ]
}

fn invalid(field: &str, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Builds the typed fault once the attribute set is known to fit the kind.
fn build(spec: &Spec) -> Result<Kind, SpecError> {
    let zero = Duration::ZERO;
    let toxic = match spec.kind.as_str() {
        "latency" => Toxic::Latency {
            latency: spec.latency.unwrap_or(zero),
            jitter: spec.jitter.unwrap_or(zero),
        },
        "bandwidth" => match spec.rate {
            Some(rate) if rate > 0 => Toxic::Bandwidth { rate },
            _ => return Err(invalid("rate", "must be at least 1 (KB/s)")),
        },
        "slow_close" => Toxic::SlowClose {
            delay: spec.delay.unwrap_or(zero),
        },
        "timeout" => Toxic::Timeout {
            timeout: spec.timeout.unwrap_or(zero),
        },
        "reset_peer" => Toxic::ResetPeer {
            timeout: spec.timeout.unwrap_or(zero),
        },
        "slicer" => slicer(spec)?,
        "limit_data" => Toxic::LimitData {
            bytes: spec.bytes.unwrap_or(0),
        },
        "down" => return Ok(Kind::Down),
        _ => return http(spec).map(Kind::Http),
    };
    Ok(Kind::Toxic(toxic))
}

fn slicer(spec: &Spec) -> Result<Toxic, SpecError> {
    let average = spec.average_size.unwrap_or(0);
    let variation = spec.size_variation.unwrap_or(0);
    if average == 0 {
        return Err(invalid("average_size", "must be at least 1 byte"));
    }
    if variation >= average {
        return Err(invalid(
            "size_variation",
            format!("must be smaller than average_size ({average})"),
        ));
    }
    Ok(Toxic::Slicer {
        average,
        variation,
        delay: spec.delay.unwrap_or(Duration::ZERO),
    })
}

fn http(spec: &Spec) -> Result<HttpAction, SpecError> {
    Ok(match spec.kind.as_str() {
        "reset_before" => HttpAction::ResetBefore,
        "reset_after" => HttpAction::ResetAfter,
        "stall" => HttpAction::Stall {
            hold: spec.latency.unwrap_or(Duration::ZERO),
        },
        _ => {
            let status = spec.status.unwrap_or(0);
            if !STATUSES.contains(&status) {
                return Err(invalid(
                    "status",
                    format!(
                        "{status} is not one of 429, 503 (answered without forwarding), 502, 504 (answered after the upstream)"
                    ),
                ));
            }
            if spec.retry_after.is_some() && !matches!(status, 429 | 503) {
                return Err(invalid("retry_after", "only goes with status 429 or 503"));
            }
            HttpAction::Status {
                status,
                retry_after: spec.retry_after,
            }
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

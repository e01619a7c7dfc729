//! The fault kinds, typed: one serde-tagged enum whose variants carry exactly the
//! attributes each kind takes (a required attribute is a plain field, an optional one an
//! `Option`, and `deny_unknown_fields` refuses the rest), grouped by the injector that
//! owns them. The enum is the only table of which kind takes what; a new kind is a new
//! variant, a row of its name and group, and, when its values have limits, a line in [`Kind::check`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SpecError;

/// Which injector a kind belongs to, and so where it is routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// TCP toxics, injected by the fault proxy on the bytes of a connection.
    Network,
    /// HTTP-aware faults, injected by the fault proxy on one request.
    Http,
    /// Silent write-back failures, injected by the mock EHR.
    Silent,
    /// Notification delivery faults, injected by the mock EHR's subscription notifier.
    Notify,
    /// The run's own notification receiver misbehaving, so a run shows whether the
    /// server retries and redelivers.
    Receiver,
}

/// Statuses `http_status` may answer; the first two without forwarding the request.
pub const HTTP_STATUSES: &[u16] = &[429, 503, 502, 504];

/// One fault kind with its attributes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Kind {
    // Network: the TCP toxics (toxiproxy's names).
    /// Each chunk is delayed by `latency` ± `jitter`.
    Latency {
        #[serde(with = "humantime_serde")]
        latency: Duration,
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        jitter: Option<Duration>,
    },
    /// At most `rate` KB/s.
    Bandwidth { rate: u64 },
    /// The close is delayed by `delay`.
    SlowClose {
        #[serde(with = "humantime_serde")]
        delay: Duration,
    },
    /// Data is dropped; the connection is closed after `timeout` (never when zero).
    Timeout {
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        timeout: Option<Duration>,
    },
    /// The connection is reset `timeout` after data arrives.
    ResetPeer {
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        timeout: Option<Duration>,
    },
    /// Chunks are cut into slices of `average_size` ± `size_variation` bytes.
    Slicer {
        average_size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size_variation: Option<u64>,
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        delay: Option<Duration>,
    },
    /// The connection is closed once `bytes` went through.
    LimitData { bytes: u64 },
    /// The proxy refuses connections and closes open ones.
    Down {},
    // HTTP: the proxy's request-aware faults.
    /// Reset the client connection as soon as the request head arrives.
    ResetBefore {},
    /// Forward, read the whole response, reset the client connection.
    ResetAfter {},
    /// Answer this status (with a `Retry-After` for 429/503 when given).
    HttpStatus {
        status: u16,
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        retry_after: Option<Duration>,
    },
    /// Forward, then hold the response for `latency` before sending it.
    Stall {
        #[serde(with = "humantime_serde")]
        latency: Duration,
    },
    // Silent: the mock's write-back failures.
    /// Answer as if written; store nothing.
    AckAndDrop {},
    /// Answer an update 200 with the version in place (the same `versionId` and ETag, as
    /// a server that kept the resource unchanged would); store nothing. Updates only.
    AckAndDropEcho {},
    /// Store with one clinically meaningful element removed.
    Strip {},
    /// Store with a code (or the status) changed.
    Remap {},
    /// Stored, readable by id, absent from searches for `delay`.
    DelayedVisibility {
        #[serde(with = "humantime_serde")]
        delay: Duration,
    },
    /// After an update, reads by id serve the previous version for `delay`.
    StaleRead {
        #[serde(with = "humantime_serde")]
        delay: Duration,
    },
    /// Commit, then reset the connection before any byte of the answer.
    CommitThenReset {},
    /// Commit, then answer 500.
    #[serde(rename = "commit_then_500")]
    CommitThen500 {},
    /// One create of a transaction is not applied; the response claims it was.
    PartialTransaction {},
    /// An update whose `If-Match` names the version before the current one is applied
    /// anyway (the precondition is ignored): the racing writer's change is lost.
    StaleIfMatch {},
    /// An audited interaction writes no AuditEvent.
    AuditDrop {},
    /// An audited interaction's AuditEvent names the wrong action or entity.
    AuditWrong {},
    /// A patient-scoped search also returns another patient's resource.
    Leak {},
    /// A server that slows as it fills: each request is held `latency` for every 1,000
    /// resources the mock holds.
    FillLatency {
        #[serde(with = "humantime_serde")]
        latency: Duration,
    },
    /// The SMART scope guard lets a request its token's scopes do not allow through.
    ScopeBypass {},
    // Notify: the mock's notification delivery.
    /// An event is never sent (its number is used: a topic subscriber sees the gap).
    NotifyDrop {},
    /// An accepted notification is sent again.
    NotifyDup {},
    /// A notification is held back for `delay`.
    NotifyDelay {
        #[serde(with = "humantime_serde")]
        delay: Duration,
    },
    /// No retry after a failed first attempt.
    NotifyGiveUp {},
    // Receiver: the run's notification endpoint.
    /// Answer `status` (400–599, default 500).
    ReceiverError {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
    },
    /// Read the delivery, then reset the connection without answering.
    ReceiverReset {},
    /// Reset every connection as soon as it is accepted, for the window.
    ReceiverDown {},
    /// Answer after `latency`.
    ReceiverSlow {
        #[serde(with = "humantime_serde")]
        latency: Duration,
    },
}

/// Every kind's name and group, in the order scenarios document them (the tests hold it
/// to [`Kind::name`] and [`Kind::group`]).
const TABLE: &[(&str, Group)] = &[
    ("latency", Group::Network),
    ("bandwidth", Group::Network),
    ("slow_close", Group::Network),
    ("timeout", Group::Network),
    ("reset_peer", Group::Network),
    ("slicer", Group::Network),
    ("limit_data", Group::Network),
    ("down", Group::Network),
    ("reset_before", Group::Http),
    ("reset_after", Group::Http),
    ("http_status", Group::Http),
    ("stall", Group::Http),
    ("ack_and_drop", Group::Silent),
    ("ack_and_drop_echo", Group::Silent),
    ("strip", Group::Silent),
    ("remap", Group::Silent),
    ("delayed_visibility", Group::Silent),
    ("stale_read", Group::Silent),
    ("commit_then_reset", Group::Silent),
    ("commit_then_500", Group::Silent),
    ("partial_transaction", Group::Silent),
    ("stale_if_match", Group::Silent),
    ("audit_drop", Group::Silent),
    ("audit_wrong", Group::Silent),
    ("leak", Group::Silent),
    ("fill_latency", Group::Silent),
    ("scope_bypass", Group::Silent),
    ("notify_drop", Group::Notify),
    ("notify_dup", Group::Notify),
    ("notify_delay", Group::Notify),
    ("notify_give_up", Group::Notify),
    ("receiver_error", Group::Receiver),
    ("receiver_reset", Group::Receiver),
    ("receiver_down", Group::Receiver),
    ("receiver_slow", Group::Receiver),
];

/// The names of the kinds in these groups, in the documented order.
pub fn names(groups: &[Group]) -> Vec<&'static str> {
    TABLE
        .iter()
        .filter(|(_, g)| groups.contains(g))
        .map(|(name, _)| *name)
        .collect()
}

/// Every group, for [`names`].
pub const ALL_GROUPS: &[Group] = &[
    Group::Network,
    Group::Http,
    Group::Silent,
    Group::Notify,
    Group::Receiver,
];

impl Kind {
    /// The injector that owns this kind.
    pub fn group(&self) -> Group {
        use Kind::*;
        match self {
            Latency { .. }
            | Bandwidth { .. }
            | SlowClose { .. }
            | Timeout { .. }
            | ResetPeer { .. }
            | Slicer { .. }
            | LimitData { .. }
            | Down {} => Group::Network,
            ResetBefore {} | ResetAfter {} | HttpStatus { .. } | Stall { .. } => Group::Http,
            AckAndDrop {}
            | AckAndDropEcho {}
            | Strip {}
            | Remap {}
            | DelayedVisibility { .. }
            | StaleRead { .. }
            | CommitThenReset {}
            | CommitThen500 {}
            | PartialTransaction {}
            | StaleIfMatch {}
            | AuditDrop {}
            | AuditWrong {}
            | Leak {}
            | FillLatency { .. }
            | ScopeBypass {} => Group::Silent,
            NotifyDrop {} | NotifyDup {} | NotifyDelay { .. } | NotifyGiveUp {} => Group::Notify,
            ReceiverError { .. } | ReceiverReset {} | ReceiverDown {} | ReceiverSlow { .. } => {
                Group::Receiver
            }
        }
    }

    /// The kind's name as scenarios spell it (`reset_peer`).
    pub fn name(&self) -> &'static str {
        use Kind::*;
        match self {
            Latency { .. } => "latency",
            Bandwidth { .. } => "bandwidth",
            SlowClose { .. } => "slow_close",
            Timeout { .. } => "timeout",
            ResetPeer { .. } => "reset_peer",
            Slicer { .. } => "slicer",
            LimitData { .. } => "limit_data",
            Down {} => "down",
            ResetBefore {} => "reset_before",
            ResetAfter {} => "reset_after",
            HttpStatus { .. } => "http_status",
            Stall { .. } => "stall",
            AckAndDrop {} => "ack_and_drop",
            AckAndDropEcho {} => "ack_and_drop_echo",
            Strip {} => "strip",
            Remap {} => "remap",
            DelayedVisibility { .. } => "delayed_visibility",
            StaleRead { .. } => "stale_read",
            CommitThenReset {} => "commit_then_reset",
            CommitThen500 {} => "commit_then_500",
            PartialTransaction {} => "partial_transaction",
            StaleIfMatch {} => "stale_if_match",
            AuditDrop {} => "audit_drop",
            AuditWrong {} => "audit_wrong",
            Leak {} => "leak",
            FillLatency { .. } => "fill_latency",
            ScopeBypass {} => "scope_bypass",
            NotifyDrop {} => "notify_drop",
            NotifyDup {} => "notify_dup",
            NotifyDelay { .. } => "notify_delay",
            NotifyGiveUp {} => "notify_give_up",
            ReceiverError { .. } => "receiver_error",
            ReceiverReset {} => "receiver_reset",
            ReceiverDown {} => "receiver_down",
            ReceiverSlow { .. } => "receiver_slow",
        }
    }

    /// Whether the kind may be limited to some resource types (`resource_types`).
    pub fn takes_resource_types(&self) -> bool {
        !matches!(self.group(), Group::Network | Group::Receiver)
    }

    /// Whether the kind reads `stream` (TCP toxics act on one direction).
    pub fn takes_stream(&self) -> bool {
        matches!(self.group(), Group::Network | Group::Http)
    }

    /// Values in range, once the attribute set is known to fit the kind.
    pub fn check(&self) -> Result<(), SpecError> {
        match self {
            Kind::Bandwidth { rate: 0 } => Err(invalid("rate", "must be at least 1 (KB/s)")),
            Kind::Slicer {
                average_size: 0, ..
            } => Err(invalid("average_size", "must be at least 1 byte")),
            Kind::Slicer {
                average_size,
                size_variation: Some(v),
                ..
            } if v >= average_size => Err(invalid(
                "size_variation",
                format!("must be smaller than average_size ({average_size})"),
            )),
            Kind::HttpStatus { status, .. } if !HTTP_STATUSES.contains(status) => Err(invalid(
                "status",
                format!(
                    "{status} is not one of 429, 503 (answered without forwarding), 502, 504 (answered after the upstream)"
                ),
            )),
            Kind::HttpStatus {
                status,
                retry_after: Some(_),
            } if !matches!(status, 429 | 503) => {
                Err(invalid("retry_after", "only goes with status 429 or 503"))
            }
            Kind::DelayedVisibility { delay }
            | Kind::StaleRead { delay }
            | Kind::NotifyDelay { delay }
                if delay.is_zero() =>
            {
                Err(invalid("delay", "must be more than 0"))
            }
            Kind::ReceiverError {
                status: Some(status),
            } if !(400..=599).contains(status) => Err(invalid(
                "status",
                format!("{status} is not an error status (400–599)"),
            )),
            _ => Ok(()),
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_kind_parses_and_names_itself() {
        assert_eq!(names(ALL_GROUPS).len(), TABLE.len());
        for (name, group) in TABLE {
            let mut table = serde_json::Map::new();
            table.insert("kind".into(), (*name).into());
            // Give each kind what it needs so that the bare kind parses.
            let needs: &[(&str, serde_json::Value)] = match *name {
                "latency" | "stall" | "receiver_slow" | "fill_latency" => {
                    &[("latency", serde_json::json!("1s"))]
                }
                "bandwidth" => &[("rate", serde_json::json!(1))],
                "slow_close" | "delayed_visibility" | "stale_read" | "notify_delay" => {
                    &[("delay", serde_json::json!("1s"))]
                }
                "slicer" => &[("average_size", serde_json::json!(10))],
                "limit_data" => &[("bytes", serde_json::json!(10))],
                "http_status" => &[("status", serde_json::json!(429))],
                _ => &[],
            };
            for (k, v) in needs {
                table.insert((*k).into(), v.clone());
            }
            let kind: Kind = serde_json::from_value(table.into()).unwrap();
            assert_eq!(kind.name(), *name);
            assert_eq!(kind.group(), *group);
            kind.check().unwrap();
        }
    }
}

//! The kinds of finding: the checker's verdict vocabulary, the keys `[slo.findings]`
//! accepts and the `kind` of every finding in `report.json`. The enum is the one source
//! of the names; [`FINDING_KINDS`] is derived from it. Uses nothing else of the crate.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of finding. The audit and scope kinds come from `check::audit` and
/// `check::access` (over the history and the fetched audit trail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Acknowledged, then absent (or reverted) at read-back.
    LostWrite,
    /// Present, but not what was sent.
    CorruptedWrite,
    /// More server resources carry an identifier than the harness wrote.
    DuplicateWrite,
    /// A read begun after a newer version was acknowledged returned an older one.
    StaleRead,
    /// A write that ended `fail` or `info` took effect.
    CommittedDespiteError,
    /// Two `If-Match` updates of the same version were both acknowledged.
    LostUpdate,
    /// An acknowledged create no search showed before the read-back (while probes looked
    /// for it), or one read back by id that no search ever showed.
    InvisibleWrite,
    /// A transaction Bundle acknowledged as a whole (every entry answered 2xx) of which
    /// some entries are absent at read-back while others are there: applied in part.
    PartialTransaction,
    /// An access known to have happened has no AuditEvent.
    AuditGap,
    /// An access's AuditEvent names the wrong agent, action, entity or time, or a
    /// refused access was audited as a success.
    AuditMismatch,
    /// A search scoped to one patient answered another patient's resource.
    ScopeLeak,
    /// A narrower token was allowed an interaction outside its scopes.
    ScopeNotEnforced,
    /// An acknowledged write matching an active subscription got no notification within
    /// the timeout.
    MissedNotification,
    /// One write's notification was delivered (accepted) more than once.
    DuplicateNotification,
    /// A notification for a harness write that did not match, or did not happen.
    UnexpectedNotification,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 15] = [
        Kind::LostWrite,
        Kind::CorruptedWrite,
        Kind::DuplicateWrite,
        Kind::StaleRead,
        Kind::CommittedDespiteError,
        Kind::LostUpdate,
        Kind::InvisibleWrite,
        Kind::PartialTransaction,
        Kind::AuditGap,
        Kind::AuditMismatch,
        Kind::ScopeLeak,
        Kind::ScopeNotEnforced,
        Kind::MissedNotification,
        Kind::DuplicateNotification,
        Kind::UnexpectedNotification,
    ];

    /// The contract name (`lost_write`), as serde writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::LostWrite => "lost_write",
            Kind::CorruptedWrite => "corrupted_write",
            Kind::DuplicateWrite => "duplicate_write",
            Kind::StaleRead => "stale_read",
            Kind::CommittedDespiteError => "committed_despite_error",
            Kind::LostUpdate => "lost_update",
            Kind::InvisibleWrite => "invisible_write",
            Kind::PartialTransaction => "partial_transaction",
            Kind::AuditGap => "audit_gap",
            Kind::AuditMismatch => "audit_mismatch",
            Kind::ScopeLeak => "scope_leak",
            Kind::ScopeNotEnforced => "scope_not_enforced",
            Kind::MissedNotification => "missed_notification",
            Kind::DuplicateNotification => "duplicate_notification",
            Kind::UnexpectedNotification => "unexpected_notification",
        }
    }

    /// The kind with this contract name.
    pub fn named(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The finding kinds of notification judging: judged only when the scenario subscribes.
pub const NOTIFICATION_KINDS: [&str; 3] = [
    Kind::MissedNotification.name(),
    Kind::DuplicateNotification.name(),
    Kind::UnexpectedNotification.name(),
];

/// The contract names of [`Kind::ALL`], in the same order.
pub const FINDING_KINDS: [&str; Kind::ALL.len()] = {
    let mut names = [""; Kind::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = Kind::ALL[i].name();
        i += 1;
    }
    names
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serde_names_and_round_trip() {
        for kind in Kind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, serde_json::Value::String(kind.name().to_owned()));
            assert_eq!(Kind::named(kind.name()), Some(kind));
        }
        assert_eq!(FINDING_KINDS[0], "lost_write");
        assert_eq!(FINDING_KINDS[10], "scope_leak");
        assert_eq!(Kind::named("lost"), None);
    }
}

//! What one FHIR interaction is and how it ended, in the words every module shares: the
//! interaction kind, its three-valued outcome, the run phase it belongs to and the class
//! of error that ended it. Uses nothing else of the crate.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The three-valued outcome of one interaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Fail => "fail",
            Self::Info => "info",
        }
    }
}

/// The kind of FHIR interaction (Jepsen's `:f`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Interaction {
    Create,
    /// Create with `If-None-Exist`: safe to retry.
    ConditionalCreate,
    #[default]
    Read,
    Vread,
    /// Update, with `If-Match` when [`Op::version`] is set.
    Update,
    Search,
    History,
    Transaction,
    Batch,
    Capabilities,
    /// A token request to the authorization server.
    Token,
}

impl Interaction {
    /// Whether the interaction changes server state.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::Create | Self::ConditionalCreate | Self::Update | Self::Transaction | Self::Batch
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::ConditionalCreate => "conditional_create",
            Self::Read => "read",
            Self::Vread => "vread",
            Self::Update => "update",
            Self::Search => "search",
            Self::History => "history",
            Self::Transaction => "transaction",
            Self::Batch => "batch",
            Self::Capabilities => "capabilities",
            Self::Token => "token",
        }
    }
}

impl fmt::Display for Interaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part of the run an interaction belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Load,
    /// The final read-back after faults healed and the settle time passed.
    Readback,
    /// A visibility probe: a search by a just-acknowledged create's identifier, repeated
    /// until it shows (kept apart from the workflow's latencies).
    Probe,
    /// The audit reconciliation's own searches of the target's AuditEvents.
    Audit,
    /// The scope-enforcement probe: requests with a narrower token, outside its scopes.
    ScopeProbe,
}

/// Why an interaction did not end `ok`. Counted by class, never by message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Could not connect; nothing was sent.
    Connect,
    /// No answer in time after sending.
    Timeout,
    /// The connection broke after the request was sent (reset, EOF, truncated body).
    Io,
    /// 429 Too Many Requests.
    RateLimited,
    /// Another 4xx.
    ClientError,
    /// 401 or 403.
    Auth,
    /// 409 or 412: a version or precondition conflict.
    Conflict,
    /// 5xx.
    ServerError,
    /// A 2xx the harness could not interpret (no id, bad JSON).
    BadResponse,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Io => "io",
            Self::RateLimited => "rate_limited",
            Self::ClientError => "client_error",
            Self::Auth => "auth",
            Self::Conflict => "conflict",
            Self::ServerError => "server_error",
            Self::BadResponse => "bad_response",
        }
    }
}

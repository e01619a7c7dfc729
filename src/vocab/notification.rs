//! Subscription records of the history: what the harness subscribed to (and what became
//! of each subscription), every delivery its notification receiver got, and what the
//! server's `$events` replayed for a gap. Bodies are never kept: a delivery carries the
//! digest of its body and the resources it named.

use serde::{Deserialize, Serialize};

/// How a subscription is expressed on an R4 server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// Classic R4: `criteria` is a search URL, `channel.type` = `rest-hook`.
    #[default]
    RestHook,
    /// Subscriptions R5 Backport IG: `criteria` is a SubscriptionTopic canonical, the
    /// search URL goes in `backport-filter-criteria`; notifications carry event numbers.
    Topic,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RestHook => "rest_hook",
            Self::Topic => "topic",
        }
    }
}

/// What the notification body carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// Nothing names the resource: notifications can be counted, not attributed.
    Empty,
    /// References to the resources only.
    IdOnly,
    /// The resources themselves.
    #[default]
    FullResource,
}

/// Where a subscription stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    /// Created; the server has not (yet) said it is active.
    Requested,
    /// The server reported `active`: notifications are expected from here on.
    Active,
    /// The server refused it, or reported `error` / `off`.
    Error,
    /// The harness deleted it at the end of the run.
    Deleted,
    /// The profile or the server does not support this form: not measured.
    Unsupported,
}

/// A subscription of the scenario and what became of it (one record per change).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionMark {
    /// The scenario's name for it; writes name it in [`crate::history::Op::notify`].
    pub name: String,
    pub form: Form,
    pub payload: Payload,
    /// The search URL writes are matched by (`Encounter?status=finished`).
    pub criteria: String,
    /// The topic canonical ([`Form::Topic`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The server's id of the Subscription, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub state: SubscriptionState,
    /// `[subscriptions] timeout`: a notification later than this after its write's
    /// acknowledgement is missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Why, in words (an HTTP status, the profile's reason).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The heartbeat period asked of the server (backport `heartbeat-period`), in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
}

/// What a notification said it was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationType {
    Handshake,
    Heartbeat,
    /// An event notification (classic R4 rest-hook deliveries are always this).
    #[default]
    EventNotification,
    QueryStatus,
    QueryEvent,
    /// An empty POST (a classic rest-hook ping or an empty-payload notification).
    Empty,
}

/// A resource a notification named.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Named {
    pub resource_type: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Harness identifiers on the resource (full-resource payloads only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<String>,
    /// The backport `event-number` that named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<u64>,
}

/// One delivery to the notification receiver (also the ones it refused).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Microseconds from the run start when the body was fully read.
    pub received_us: u64,
    /// The subscription as the body named it (server id or reference), or as the
    /// receiver's path named it (`/notify/<name>`).
    pub subscription: String,
    #[serde(rename = "type")]
    pub kind: NotificationType,
    /// What the receiver answered; `None`: it reset the connection instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered: Option<u16>,
    /// Whether the shared secret header was present and right.
    pub secret_ok: bool,
    /// Backport `events-since-subscription-start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_since_start: Option<u64>,
    /// Backport `event-number`s, in body order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_numbers: Vec<u64>,
    /// The resources it named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub focus: Vec<Named>,
    /// blake3 of the body (never the body), and its length.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The receiver fault that shaped the answer, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// What could not be read from the body, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Notification {
    /// The receiver accepted it (answered 2xx): it counts as delivered.
    pub fn accepted(&self) -> bool {
        self.answered.is_some_and(|s| (200..300).contains(&s))
    }
}

/// What a server's `$events` answered for a gap in a subscription's event numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventsQuery {
    /// The subscription's name in the scenario.
    pub name: String,
    /// The gap asked for, inclusive.
    pub from: u64,
    pub to: u64,
    pub recovery: Recovery,
    /// The events the server replayed, with what they named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Named>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Whether a gap could be replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// Every missing event came back.
    Recovered,
    /// Some or all did not (the server answered, without them).
    Unrecoverable,
    /// The server has no `$events` (404, 405, 501, or not a Bundle).
    Unsupported,
}

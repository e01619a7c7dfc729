//! The mock's audit trail, the way real servers keep one after IHE Basic Audit Log
//! Patterns (BALP): one AuditEvent per interaction on a resource (create, read, vread,
//! update, search, history) and per token request, searchable over the FHIR API.
//!
//! Events are kept compactly (a surge writes half a million of them) and rendered as
//! FHIR only when searched (`event`, `query`). `layer` observes every request on its way
//! through the mock and records what it did; the `audit_drop` and `audit_wrong` faults
//! act here, `leak` acts on search answers (`leak`). How the trail is exposed
//! ([`Exposure`]) follows the emulated EHR. Uses the mock's store, faults and ledger.

mod event;
mod layer;
mod leak;
mod query;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

pub use layer::wrap;

/// How the mock exposes its audit trail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Exposure {
    /// Events are written and served by `AuditEvent` searches.
    #[default]
    Served,
    /// `AuditEvent` searches answer, always empty (events go to a sink the FHIR API
    /// never reads, as seen on a real open-source server).
    Hidden,
    /// No `AuditEvent` endpoint: 404 not-supported.
    Absent,
}

/// How the trail is set up.
#[derive(Clone, Debug)]
pub struct Config {
    pub exposure: Exposure,
    /// The agent named when no SMART client authenticated the request.
    pub agent: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            exposure: Exposure::Served,
            agent: DEFAULT_AGENT.to_owned(),
        }
    }
}

/// The agent recorded for unauthenticated requests unless configured.
pub const DEFAULT_AGENT: &str = "anonymous";

/// The restful-interaction code of an event (BALP `subtype`), or a token request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Create,
    Read,
    Vread,
    Update,
    Patch,
    Delete,
    SearchType,
    HistoryInstance,
    /// A token request (`type` DCM 110114 User Authentication, no subtype).
    Token,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Create => "create",
            Code::Read => "read",
            Code::Vread => "vread",
            Code::Update => "update",
            Code::Patch => "patch",
            Code::Delete => "delete",
            Code::SearchType => "search-type",
            Code::HistoryInstance => "history-instance",
            Code::Token => "token",
        }
    }

    /// BALP's action: C, R, U, D, or E for searches and operations.
    pub fn action(self) -> u8 {
        match self {
            Code::Create => b'C',
            Code::Read | Code::Vread | Code::HistoryInstance => b'R',
            Code::Update | Code::Patch => b'U',
            Code::Delete => b'D',
            Code::SearchType | Code::Token => b'E',
        }
    }
}

/// One audit event, compact: strings only where the event has them.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Wall clock, milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub code: Code,
    /// `C`, `R`, `U`, `D` or `E` (normally `code.action()`; `audit_wrong` changes it).
    pub action: u8,
    /// 0 success, 4 minor failure, 8 serious failure.
    pub outcome: u8,
    pub agent: Arc<str>,
    pub address: Option<IpAddr>,
    /// `Type/id` of the resource, or `Type` for a search.
    pub what: Option<Box<str>>,
    /// `Patient/id` the data is about, when known.
    pub patient: Option<Box<str>>,
    /// The query string of a search, as received.
    pub query: Option<Box<str>>,
}

/// The trail: append-only, its position is the event's id.
pub struct Trail {
    config: Config,
    entries: RwLock<Vec<Entry>>,
    /// Digest of a live access token → the client it was issued to (tokens themselves
    /// are never kept).
    clients: Mutex<HashMap<[u8; 16], Arc<str>>>,
    agent: Arc<str>,
    /// The latest patient-linked writes (`Type/id`, `Patient/id`), whatever the
    /// exposure: where `leak` finds another patient's resource.
    recent: Mutex<VecDeque<(Box<str>, Box<str>)>>,
}

/// How many recent patient-linked writes the trail remembers.
const RECENT: usize = 4096;

impl Trail {
    pub fn new(config: Config) -> Trail {
        let agent = Arc::from(config.agent.as_str());
        Trail {
            config,
            entries: RwLock::default(),
            clients: Mutex::default(),
            agent,
            recent: Mutex::default(),
        }
    }

    pub fn exposure(&self) -> Exposure {
        self.config.exposure
    }

    /// Appends an event (nothing when the trail is absent).
    pub fn record(&self, entry: Entry) {
        if self.config.exposure == Exposure::Absent {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.push(entry);
    }

    /// How many events were written.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no event was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` over the events (read lock held: keep it short).
    pub(super) fn with<T>(&self, f: impl FnOnce(&[Entry]) -> T) -> T {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        f(&entries)
    }

    /// Remembers a patient-linked write.
    pub fn wrote(&self, what: &str, patient: &str) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((what.into(), patient.into()));
    }

    /// The latest write of a `resource_type` about another patient than `patient`.
    pub fn other_patients(&self, resource_type: &str, patient: &str) -> Option<(String, String)> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.iter().rev().find_map(|(what, p)| {
            let (rt, id) = what.split_once('/')?;
            (rt == resource_type && &**p != patient).then(|| (id.to_owned(), p.to_string()))
        })
    }

    /// Remembers who an access token was issued to.
    pub fn issued(&self, token: &str, client: &str) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() > 100_000 {
            clients.clear(); // tokens live minutes; an old one is then `anonymous`
        }
        clients.insert(token_key(token), Arc::from(client));
    }

    /// The agent of a request: the client its bearer token was issued to, else the
    /// configured agent.
    pub fn agent(&self, bearer: Option<&str>) -> Arc<str> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        bearer
            .and_then(|t| clients.get(&token_key(t)).cloned())
            .unwrap_or_else(|| self.agent.clone())
    }
}

fn token_key(token: &str) -> [u8; 16] {
    let hash = blake3::hash(token.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash.as_bytes()[..16]);
    key
}

/// The event outcome of an HTTP status: 0 success, 4 a refusal, 8 a server failure.
pub fn outcome(status: u16) -> u8 {
    match status {
        200..=399 => 0,
        400..=499 => 4,
        _ => 8,
    }
}

/// `Patient/<id>` from a reference as written (relative, absolute, versioned) or a bare
/// id; `None` for a reference to another type.
pub fn patient_ref(value: &str) -> Option<String> {
    let path = value.split(['?', '#']).next()?;
    let parts: Vec<&str> = path.split('/').collect();
    match parts.iter().rposition(|p| *p == "Patient") {
        Some(at) => parts
            .get(at + 1)
            .filter(|id| !id.is_empty())
            .map(|id| format!("Patient/{id}")),
        None if parts.len() == 1 && !value.is_empty() => Some(format!("Patient/{value}")),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_references_in_every_spelling() {
        assert_eq!(patient_ref("Patient/7").as_deref(), Some("Patient/7"));
        assert_eq!(patient_ref("7").as_deref(), Some("Patient/7"));
        assert_eq!(
            patient_ref("http://h/fhir/Patient/7/_history/2").as_deref(),
            Some("Patient/7")
        );
        assert_eq!(patient_ref("Group/7"), None);
    }

    #[test]
    fn tokens_name_their_client_and_others_the_default() {
        let t = Trail::new(Config::default());
        t.issued("tok-1", "client-a");
        assert_eq!(&*t.agent(Some("tok-1")), "client-a");
        assert_eq!(&*t.agent(Some("tok-2")), DEFAULT_AGENT);
        assert_eq!(&*t.agent(None), DEFAULT_AGENT);
        assert_eq!((outcome(201), outcome(403), outcome(503)), (0, 4, 8));
    }
}

//! The ground-truth ledger: every fault an injector (the proxy or the mock EHR) actually
//! injected, with the interaction it touched. Tests score the checker against it; the
//! harness uses it to say which fault touched an interaction. The checker never reads it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Request header the harness sets on every request so injectors can name the
/// interaction they touched: the history index of the invocation.
pub const REQUEST_HEADER: &str = "x-fhirsurge-request";

/// One injected fault.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Microseconds from the injector's clock start (the run start when in-process).
    pub time_us: u64,
    /// The fault's label from its spec (`ack_and_drop#2`).
    pub fault: String,
    /// The fault kind (`ack_and_drop`, `reset_peer`, …).
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Server id of the resource touched, when one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The harness identifier (`system|value`) of the resource touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// The value of [`REQUEST_HEADER`] on the request touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// What was done, in words (`removed valueQuantity`, `code 8867-4 → 8310-5`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Whether the harness can observe it through its own interactions (a missing or
    /// repeated notification, a delivery refused by its own receiver); `None`: not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observable: Option<bool>,
}

/// A shared, append-only ledger. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Ledger {
    inner: Arc<Mutex<Inner>>,
    start: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<Entry>,
    by_request: HashMap<String, Vec<usize>>,
}

impl Ledger {
    /// A ledger whose clock starts at `start` (the run start).
    pub fn new(start: Instant) -> Self {
        Self {
            inner: Arc::default(),
            start,
        }
    }

    /// Time since the ledger's clock start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Appends an entry, stamping its time.
    pub fn record(&self, mut entry: Entry) {
        entry.time_us = self.start.elapsed().as_micros() as u64;
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let at = inner.entries.len();
        if let Some(request) = entry.request.clone() {
            inner.by_request.entry(request).or_default().push(at);
        }
        inner.entries.push(entry);
    }

    /// The kinds of fault that touched the request with this [`REQUEST_HEADER`] value.
    pub fn touched(&self, request: &str) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .by_request
            .get(request)
            .map(|ats| {
                ats.iter()
                    .map(|&i| inner.entries[i].fault.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many faults were injected so far.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every entry so far, in the order recorded.
    pub fn entries(&self) -> Vec<Entry> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.entries.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_faults_that_touched_a_request() {
        let ledger = Ledger::new(Instant::now());
        ledger.record(Entry {
            fault: "reset_peer#0".into(),
            kind: "reset_peer".into(),
            request: Some("17".into()),
            ..Entry::default()
        });
        ledger.record(Entry {
            fault: "http_status#1".into(),
            kind: "http_status".into(),
            request: Some("18".into()),
            ..Entry::default()
        });
        assert_eq!(ledger.touched("17"), vec!["reset_peer#0".to_string()]);
        assert!(ledger.touched("19").is_empty());
        assert_eq!(ledger.clone().entries().len(), 2);
    }
}

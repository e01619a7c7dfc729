//! The versioned resource store: every version of every resource, sharded by
//! `(type, id)` so writers on different resources do not contend, with one mutex per
//! resource for its version chain. Also hands out opaque server ids. Depends on nothing
//! but std, `bytes` and `chrono`.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::vocab::seed::{self, Purpose, mix};

/// One stored version, serialised once at write time.
#[derive(Debug)]
pub struct Version {
    /// `meta.versionId`, 1-based.
    pub number: u64,
    pub last_updated: DateTime<Utc>,
    /// `last_updated` as an HTTP date, for `Last-Modified` (formatted once).
    pub http_date: String,
    /// The whole resource as JSON, with `id` and `meta` set.
    pub body: Bytes,
    /// Search index keys of this version (see `index`).
    pub keys: Box<[String]>,
    /// The harness identifier (`system|value`), for the ledger.
    pub identifier: Option<String>,
    /// Written by `POST` (true) or `PUT` / `PATCH`.
    pub created: bool,
    /// A deletion (`DELETE`): a tombstone with an empty body, no index keys.
    pub deleted: bool,
}

/// A read that should be served from an older version (`stale_read`).
#[derive(Debug)]
pub struct Stale {
    pub until: Instant,
    pub served: Arc<Version>,
    /// Index of the fault in the mock's fault list.
    pub fault: usize,
    /// The update's answer was destroyed (`commit_then_reset` / `commit_then_500`): the
    /// client never learned of the newer version, so serving the older one is not an
    /// anomaly it can observe.
    pub answer_lost: bool,
}

/// The mutable part of a resource.
#[derive(Debug, Default)]
pub struct State {
    /// Oldest first; empty = the id is reserved but nothing was ever stored.
    pub versions: Vec<Arc<Version>>,
    /// Absent from searches until then (`delayed_visibility`).
    pub hidden_until: Option<Instant>,
    pub stale: Option<Stale>,
    /// Kept out of searches by the emulated EHR's workflow (a holding area): declared
    /// behaviour, not a fault, so healing does not end it.
    pub held: Option<Holding>,
}

/// Until when a resource in a holding area stays out of searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holding {
    Until(Instant),
    /// Until a clinician reconciles it: never, in the mock.
    Unreconciled,
}

impl Holding {
    pub fn released(self, now: Instant) -> bool {
        match self {
            Self::Until(t) => now >= t,
            Self::Unreconciled => false,
        }
    }
}

impl State {
    /// The live version: `None` when nothing was stored or the resource is deleted.
    pub fn current(&self) -> Option<&Arc<Version>> {
        self.versions.last().filter(|v| !v.deleted)
    }

    /// The newest version, a deletion included (the next version number follows it).
    pub fn latest(&self) -> Option<&Arc<Version>> {
        self.versions.last()
    }

    /// Whether the newest version is a deletion.
    pub fn deleted(&self) -> bool {
        self.latest().is_some_and(|v| v.deleted)
    }
}

/// One logical resource.
#[derive(Debug)]
pub struct Resource {
    /// Creation order; the stable sort key of searches.
    pub seq: u64,
    pub id: String,
    state: Mutex<State>,
}

impl Resource {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current version, if any.
    pub fn current(&self) -> Option<Arc<Version>> {
        self.lock().current().cloned()
    }
}

type Shard = HashMap<String, Arc<Resource>>;

/// All resources.
#[derive(Debug)]
pub struct Store {
    shards: Box<[RwLock<Shard>]>,
    seq: AtomicU64,
    id_key: u64,
}

impl Store {
    pub fn new(shards: usize, seed: u64) -> Store {
        Store {
            shards: (0..shards.max(1)).map(|_| RwLock::default()).collect(),
            seq: AtomicU64::new(1),
            id_key: seed::derive(seed, Purpose::MockIds),
        }
    }

    fn shard(&self, resource_type: &str, id: &str) -> &RwLock<Shard> {
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one((resource_type, id));
        &self.shards[(h % self.shards.len() as u64) as usize]
    }

    /// The resource, if the id was ever reserved.
    pub fn get(&self, resource_type: &str, id: &str) -> Option<Arc<Resource>> {
        let shard = self.shard(resource_type, id);
        let map = shard.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&key(resource_type, id)).cloned()
    }

    /// Resources held: every id reserved so far (and the few handed out unstored).
    pub fn held(&self) -> u64 {
        self.seq.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// The next sequence number (never reused).
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh server id that no reservation holds yet, not itself reserved (for answers
    /// about writes that are not stored).
    pub fn unused_id(&self) -> String {
        opaque_id(self.id_key, self.next_seq())
    }

    /// Reserves a fresh server id: an empty resource nobody else can take.
    pub fn reserve_new(&self, resource_type: &str) -> Arc<Resource> {
        loop {
            let seq = self.next_seq();
            let id = opaque_id(self.id_key, seq);
            let shard = self.shard(resource_type, &id);
            let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
            let k = key(resource_type, &id);
            if map.contains_key(&k) {
                continue; // a client chose this id with PUT; take the next
            }
            let r = Arc::new(Resource {
                seq,
                id,
                state: Mutex::default(),
            });
            map.insert(k, r.clone());
            return r;
        }
    }

    /// The resource with this id, reserving it (empty) when unknown: update-as-create.
    pub fn reserve(&self, resource_type: &str, id: &str) -> Arc<Resource> {
        if let Some(r) = self.get(resource_type, id) {
            return r;
        }
        let shard = self.shard(resource_type, id);
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        map.entry(key(resource_type, id))
            .or_insert_with(|| {
                Arc::new(Resource {
                    seq: self.next_seq(),
                    id: id.to_owned(),
                    state: Mutex::default(),
                })
            })
            .clone()
    }
}

fn key(resource_type: &str, id: &str) -> String {
    let mut k = String::with_capacity(resource_type.len() + id.len() + 1);
    k.push_str(resource_type);
    k.push('/');
    k.push_str(id);
    k
}

/// A 13-character lower-case base32 id from a bijection of the sequence number: unique
/// per sequence number, not guessable as a small integer, the same for the same seed.
pub fn opaque_id(key: u64, seq: u64) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut x = mix(seq ^ key);
    let mut out = [0u8; 13];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(x & 31) as usize];
        x >>= 5;
    }
    out.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_opaque_unique_and_seeded() {
        let ids: HashSet<String> = (0..10_000).map(|n| opaque_id(7, n)).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|i| i.len() == 13 && i.parse::<u64>().is_err())
        );
        assert_eq!(opaque_id(7, 3), opaque_id(7, 3));
        assert_ne!(opaque_id(7, 3), opaque_id(8, 3));
    }

    #[test]
    fn reservations_are_shared_and_fresh_ids_avoid_them() {
        let store = Store::new(4, 1);
        let a = store.reserve("Patient", "x");
        let b = store.reserve("Patient", "x");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(
            store
                .get("Patient", "x")
                .is_some_and(|r| r.current().is_none())
        );
        assert!(store.get("Observation", "x").is_none());
        let n = store.reserve_new("Patient");
        assert_ne!(n.id, "x");
        assert!(n.seq > a.seq);
    }
}

//! The checker's live state: every write attempt, every harness identifier and every
//! resource the history touched, each a small struct in a `Vec` named by a `u32`, with
//! intrusive lists linking a write to its identifier and its resource. Lookups and the
//! few questions every judgment asks live here; reading records is `ingest`, judging is
//! `stale`, `ident` and `resource`.

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::history::ErrorClass;

use super::content::{ContentId, Contents, NO_CONTENT, Owned, View};
use super::intern::{Interner, NO_SYM, Sym};
use super::{Finding, Options, Stats};

/// No element (end of a list, no identifier, no resource).
pub(crate) const NIL: u32 = u32::MAX;
/// No history index / no time: a write that never completed.
pub(crate) const NEVER: u64 = u64::MAX;
/// A version string no write reported: not in the chain.
pub(crate) const UNKNOWN_VERSION: Sym = u32::MAX - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteKind {
    Create,
    Conditional,
    Update,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Ok,
    Fail,
    Info,
}

/// One write attempt (create, conditional create, update).
pub(crate) struct Write {
    pub invoke: u64,
    pub done: u64,
    pub invoke_us: u64,
    pub done_us: u64,
    /// Invocation index of the first attempt of this request (itself when not a retry).
    pub root: u64,
    pub content: ContentId,
    pub rtype: Sym,
    pub identifier: Sym,
    /// The id addressed (update) or reported (create).
    pub id: Sym,
    pub version: Sym,
    pub if_match: Sym,
    pub next_ident: u32,
    pub next_res: u32,
    /// Intrusive list of an identifier's creates that reported no id and did not fail.
    pub next_orphan: u32,
    pub status: u16,
    pub kind: WriteKind,
    pub outcome: Status,
    pub error: Option<ErrorClass>,
}

impl Write {
    /// A conditional create answered 200: an existing match, nothing written.
    pub(crate) fn existing(&self) -> bool {
        self.kind == WriteKind::Conditional && self.outcome == Status::Ok && self.status == 200
    }

    /// Acknowledged, and a write of something.
    pub(crate) fn acked(&self) -> bool {
        self.outcome == Status::Ok && !self.existing()
    }

    /// Outcome unknown: may take effect at any time after its invocation.
    pub(crate) fn maybe(&self) -> bool {
        matches!(self.outcome, Status::Pending | Status::Info)
    }
}

/// Whether, and what, one probe of the read-back showed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Probe {
    #[default]
    None,
    Failed,
    Absent,
    Present,
}

/// A resource as one read (or search) showed it.
#[derive(Clone, Copy)]
pub(crate) struct Obs {
    pub probe: Probe,
    pub version: Sym,
    pub content: ContentId,
    pub invoke: u64,
    pub done: u64,
    pub invoke_us: u64,
    pub done_us: u64,
}

impl Default for Obs {
    fn default() -> Self {
        Obs {
            probe: Probe::None,
            version: NO_SYM,
            content: NO_CONTENT,
            invoke: NEVER,
            done: NEVER,
            invoke_us: 0,
            done_us: 0,
        }
    }
}

/// A server id seen carrying an identifier.
#[derive(Clone, Copy)]
pub(crate) struct SeenId {
    pub id: Sym,
    /// Completion index of the first record that showed it.
    pub at: u64,
    /// Seen during the read-back.
    pub readback: bool,
}

/// One harness identifier (per resource type) that a create attempt carried.
pub(crate) struct Ident {
    pub rtype: Sym,
    pub identifier: Sym,
    /// Newest create attempt first.
    pub first_write: u32,
    /// Creates that reported no id and did not fail: any resource carrying the
    /// identifier may be theirs.
    pub first_orphan: u32,
    pub seen: Option<SeenId>,
    /// More ids seen carrying it: an index into `State::seen_more`.
    pub seen_more: u32,
    /// Completion time of the first search that showed it.
    pub first_seen_us: u64,
    /// Completion time of the first search before the read-back that showed it.
    pub load_seen_us: u64,
    /// Visibility probes for it that completed `ok`, and the last one's (invoke, done, done time).
    pub probes: u32,
    pub last_probe: (u64, u64, u64),
    /// The read-back search by this identifier.
    pub search: Obs,
}

/// One server resource.
pub(crate) struct Res {
    pub rtype: Sym,
    pub id: Sym,
    pub ident: u32,
    /// Newest write first.
    pub first_write: u32,
    pub first_seen_us: u64,
    /// The read-back read by id.
    pub read: Obs,
    /// The read-back search that showed it.
    pub found: Obs,
    /// The read-back `_history`: an index into `State::histories`.
    pub history: u32,
}

/// A read-back `_history`: every version it listed.
pub(crate) struct History {
    pub invoke: u64,
    pub done: u64,
    pub done_us: u64,
    pub entries: Vec<(Sym, ContentId)>,
}

/// A load-phase read by id awaiting judgment.
pub(crate) struct LoadRead {
    pub res: u32,
    pub invoke: u64,
    pub done: u64,
    pub invoke_us: u64,
    pub done_us: u64,
    pub absent: bool,
    pub version: Sym,
    pub content: Option<Owned>,
}

/// What an invocation awaits.
pub(crate) enum Pending {
    Write(u32),
    Read {
        res: u32,
        readback: bool,
        invoke_us: u64,
    },
    Search {
        ident: u32,
        readback: bool,
        /// A visibility probe.
        probe: bool,
        invoke_us: u64,
    },
    History {
        res: u32,
    },
    Bundle {
        identifier: Sym,
        id: Sym,
    },
    /// A transaction whose entries are recorded as writes of their own.
    Transaction,
    Untracked,
}

/// What transactions and batches (not modelled) may have touched.
#[derive(Default)]
pub(crate) struct Bundles {
    /// One named neither identifier nor id: anything may have been touched.
    pub opaque: bool,
    pub identifiers: FxHashSet<Sym>,
    pub ids: FxHashSet<Sym>,
}

/// A stale read found while streaming, kept until the end decides whether a bundle
/// may explain it, or whether it is a symptom of a lost write.
pub(crate) struct Draft {
    pub res: u32,
    pub reg: super::stale::Regression,
    /// The version the read showed.
    pub shown: Sym,
    pub invoke_us: u64,
    /// The read's invocation and completion indexes.
    pub read: [u64; 2],
}

pub(crate) struct State {
    pub strings: Interner,
    pub contents: Contents,
    pub writes: Vec<Write>,
    pub idents: Vec<Ident>,
    pub ident_of: FxHashMap<(Sym, Sym), u32>,
    pub res: Vec<Res>,
    pub res_of: FxHashMap<(Sym, Sym), u32>,
    pub seen_more: Vec<Vec<SeenId>>,
    /// Where an id sits in `seen_more`, by (identifier, id).
    pub seen_at: FxHashMap<(u32, Sym), u32>,
    pub histories: Vec<History>,
    pub pending: FxHashMap<u64, Pending>,
    pub reads: VecDeque<LoadRead>,
    pub drafts: Vec<Draft>,
    pub findings: Vec<Finding>,
    /// Writes judged lost, with the index in `findings` of the `lost_write` saying so.
    pub lost: FxHashMap<u32, usize>,
    pub lag_us: Vec<u64>,
    pub never_visible: u64,
    pub stats: Stats,
    pub bundles: Bundles,
    /// Transactions whose entries are recorded, by invocation index.
    pub transactions: FxHashMap<u64, super::transaction::Tx>,
    /// Entry writes: their transaction's invocation index and their place in it.
    pub entry_of: FxHashMap<u32, (u64, u32)>,
    /// Acknowledged creates of transaction entries that read-back found present.
    pub applied: FxHashSet<u32>,
    /// Per resource type, the element names whose difference is expected (sorted).
    pub ignore: FxHashMap<Sym, Vec<Sym>>,
    pub prefix: String,
    /// Types the profile declares may be kept out of searches.
    pub held: Vec<Sym>,
    /// The latest time the history has reached.
    pub now_us: u64,
}

impl State {
    pub(crate) fn new(options: &Options) -> State {
        let mut strings = Interner::default();
        let mut ignore = FxHashMap::default();
        for (rtype, names) in &options.expected_changes {
            let t = strings.intern(rtype);
            let mut syms: Vec<Sym> = names.iter().map(|n| strings.intern(n)).collect();
            syms.sort_unstable();
            ignore.insert(t, syms);
        }
        let held = options
            .held_from_search
            .iter()
            .map(|t| strings.intern(t))
            .collect();
        State {
            strings,
            contents: Contents::default(),
            writes: Vec::new(),
            idents: Vec::new(),
            ident_of: FxHashMap::default(),
            res: Vec::new(),
            res_of: FxHashMap::default(),
            seen_more: Vec::new(),
            seen_at: FxHashMap::default(),
            histories: Vec::new(),
            pending: FxHashMap::default(),
            reads: VecDeque::new(),
            drafts: Vec::new(),
            findings: Vec::new(),
            lost: FxHashMap::default(),
            lag_us: Vec::new(),
            never_visible: 0,
            stats: Stats::default(),
            bundles: Bundles::default(),
            transactions: FxHashMap::default(),
            entry_of: FxHashMap::default(),
            applied: FxHashSet::default(),
            ignore,
            prefix: options.harness_system_prefix.clone(),
            held,
            now_us: 0,
        }
    }

    /// Element names whose difference is expected for a resource type.
    pub(crate) fn ignored(&self, rtype: Sym) -> &[Sym] {
        self.ignore.get(&rtype).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn is_harness(&self, identifier: &str) -> bool {
        identifier.starts_with(&self.prefix)
    }

    pub(crate) fn ident_entry(&mut self, rtype: Sym, identifier: Sym) -> u32 {
        let next = self.idents.len() as u32;
        let i = *self.ident_of.entry((rtype, identifier)).or_insert(next);
        if i == next {
            self.idents.push(Ident {
                rtype,
                identifier,
                first_write: NIL,
                first_orphan: NIL,
                seen: None,
                seen_more: NIL,
                first_seen_us: NEVER,
                load_seen_us: NEVER,
                probes: 0,
                last_probe: (NEVER, NEVER, 0),
                search: Obs::default(),
            });
        }
        i
    }

    pub(crate) fn res_entry(&mut self, rtype: Sym, id: Sym) -> u32 {
        let next = self.res.len() as u32;
        let r = *self.res_of.entry((rtype, id)).or_insert(next);
        if r == next {
            self.res.push(Res {
                rtype,
                id,
                ident: NIL,
                first_write: NIL,
                first_seen_us: NEVER,
                read: Obs::default(),
                found: Obs::default(),
                history: NIL,
            });
        }
        r
    }

    /// The resource `(type, id)` when the history has written or seen it.
    pub(crate) fn find_res(&self, rtype: &str, id: &str) -> Option<u32> {
        let t = self.strings.get(rtype)?;
        let i = self.strings.get(id)?;
        self.res_of.get(&(t, i)).copied()
    }

    /// The version of an observation: [`NO_SYM`] when none was shown,
    /// [`UNKNOWN_VERSION`] when no write of ours could have reported it.
    pub(crate) fn version_of(&self, v: Option<&str>) -> Sym {
        v.map_or(NO_SYM, |v| self.strings.get(v).unwrap_or(UNKNOWN_VERSION))
    }

    /// Create attempts of an identifier, newest first.
    pub(crate) fn attempts(&self, ident: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut w = self
            .idents
            .get(ident as usize)
            .map_or(NIL, |i| i.first_write);
        while w != NIL {
            out.push(w);
            w = self.writes[w as usize].next_ident;
        }
        out
    }

    /// Every write that may have shaped a resource: those that reported or addressed its
    /// id, and the creates of its identifier that reported no id and did not fail.
    pub(crate) fn writes_of(&self, res: u32) -> Vec<u32> {
        let r = &self.res[res as usize];
        let mut out = Vec::new();
        let mut w = r.first_write;
        while w != NIL {
            out.push(w);
            w = self.writes[w as usize].next_res;
        }
        let mut w = self
            .idents
            .get(r.ident as usize)
            .map_or(NIL, |i| i.first_orphan);
        while w != NIL {
            out.push(w);
            w = self.writes[w as usize].next_orphan;
        }
        out
    }

    /// Adds a create that reported no id (and did not fail) to its identifier's orphans.
    pub(crate) fn add_orphan(&mut self, w: u32) {
        let wr = &self.writes[w as usize];
        if wr.kind == WriteKind::Update || wr.id != NO_SYM || wr.outcome == Status::Fail {
            return;
        }
        let Some(&i) = self.ident_of.get(&(wr.rtype, wr.identifier)) else {
            return;
        };
        let head = std::mem::replace(&mut self.idents[i as usize].first_orphan, w);
        self.writes[w as usize].next_orphan = head;
    }

    /// Every distinct id seen carrying an identifier.
    pub(crate) fn seen_ids(&self, ident: u32) -> Vec<SeenId> {
        let i = &self.idents[ident as usize];
        let mut out: Vec<SeenId> = i.seen.into_iter().collect();
        if let Some(more) = self.seen_more.get(i.seen_more as usize) {
            out.extend_from_slice(more);
        }
        out
    }

    /// Records that `id` was seen carrying an identifier.
    pub(crate) fn add_seen(&mut self, ident: u32, id: Sym, at: u64, readback: bool) {
        let fresh = SeenId { id, at, readback };
        let i = &mut self.idents[ident as usize];
        match &mut i.seen {
            None => i.seen = Some(fresh),
            Some(s) if s.id == id => s.readback |= readback,
            Some(_) => {
                if i.seen_more == NIL {
                    i.seen_more = self.seen_more.len() as u32;
                    self.seen_more.push(Vec::new());
                }
                let more = &mut self.seen_more[i.seen_more as usize];
                match self.seen_at.get(&(ident, id)) {
                    Some(&pos) => more[pos as usize].readback |= readback,
                    None => {
                        self.seen_at.insert((ident, id), more.len() as u32);
                        more.push(fresh);
                    }
                }
            }
        }
    }

    /// The content a write sent.
    pub(crate) fn sent(&self, w: u32) -> Option<View<'_>> {
        self.contents.view(self.writes[w as usize].content)
    }

    /// Keeps a content seen for a resource, reusing a write's when the digests agree.
    pub(crate) fn keep_seen(&mut self, res: u32, content: &crate::history::Content) -> ContentId {
        let owned = Owned::new(content, &mut self.strings);
        let digest = owned.view().digest;
        for w in self.writes_of(res) {
            let c = self.writes[w as usize].content;
            if self.contents.digest(c) == Some(digest) {
                return c;
            }
        }
        self.contents.add_owned(&owned)
    }

    /// Whether a transaction or batch may have touched this resource or identifier.
    pub(crate) fn bundle_touched(&self, id: Sym, identifier: Sym) -> bool {
        self.bundles.opaque
            || self.bundles.ids.contains(&id)
            || (identifier != NO_SYM && self.bundles.identifiers.contains(&identifier))
    }
}

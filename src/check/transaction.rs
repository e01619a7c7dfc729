//! Transactions whose entries the history records (each entry a write of its own,
//! `Op::entry_of`): every entry is judged like a single write (lost, corrupted,
//! duplicated, committed despite an error); this module then says what the transaction
//! as a whole did. Entries missing at read-back from a transaction acknowledged as a
//! whole, while another of its entries is there, are one `partial_transaction` per
//! missing entry (naming every missing entry); all of them missing stays `lost_write`.
//! Every finding about an entry names its transaction's invocation and completion too.

use rustc_hash::FxHashMap;

use super::Kind;
use super::detail::secs;
use super::state::{NEVER, State, Status};

/// One transaction whose entries are recorded.
pub(crate) struct Tx {
    pub invoke: u64,
    pub done: u64,
    pub done_us: u64,
    pub outcome: Status,
    pub status: u16,
    /// Its entries' writes, in entry order as they were invoked.
    pub writes: Vec<u32>,
}

impl Tx {
    pub(crate) fn new(invoke: u64) -> Tx {
        Tx {
            invoke,
            done: NEVER,
            done_us: 0,
            outcome: Status::Pending,
            status: 0,
            writes: Vec::new(),
        }
    }
}

impl State {
    /// Renames the lost entries of transactions applied in part, and adds each
    /// transaction's records to the evidence of every finding about one of its entries.
    pub(crate) fn judge_transactions(&mut self) {
        if self.transactions.is_empty() {
            return;
        }
        let mut lost_by_tx: FxHashMap<u64, Vec<(u32, usize)>> = FxHashMap::default();
        for (&w, &f) in &self.lost {
            if let Some(&(tx, _)) = self.entry_of.get(&w) {
                lost_by_tx.entry(tx).or_default().push((w, f));
            }
        }
        for (tx, mut lost) in lost_by_tx {
            lost.sort_unstable_by_key(|&(w, _)| self.entry_of.get(&w).map(|e| e.1));
            self.partial(tx, &lost);
        }
        self.cite_transactions();
    }

    /// `lost` (write, finding) are entries of transaction `tx` found lost.
    fn partial(&mut self, tx: u64, lost: &[(u32, usize)]) {
        let Some(t) = self.transactions.get(&tx) else {
            return;
        };
        if t.outcome != Status::Ok {
            return;
        }
        let applied = t.writes.iter().filter(|w| self.applied.contains(w)).count();
        if applied == 0 {
            return; // nothing of it is there: each entry is a lost write
        }
        let names: Vec<String> = lost.iter().map(|&(w, _)| self.entry_name(w)).collect();
        let summary = format!(
            "transaction (invocation {tx}) answered {} at {} for all {} entries, but {} of them {} missing at read-back ({}) while {applied} {} there",
            t.status,
            secs(t.done_us),
            t.writes.len(),
            lost.len(),
            if lost.len() == 1 { "is" } else { "are" },
            names.join(", "),
            if applied == 1 { "is" } else { "are" },
        );
        for &(_, f) in lost {
            let finding = &mut self.findings[f];
            finding.kind = Kind::PartialTransaction;
            finding.detail = format!("{summary}; this entry: {}", finding.detail);
        }
    }

    /// `entry 2 (Observation system|value)`.
    fn entry_name(&self, w: u32) -> String {
        let wr = &self.writes[w as usize];
        let entry = self.entry_of.get(&w).map_or(0, |e| e.1);
        let identifier = match wr.identifier {
            super::intern::NO_SYM => "no identifier".to_owned(),
            i => self.strings.resolve(i).to_owned(),
        };
        format!(
            "entry {entry} ({} {identifier})",
            self.strings.resolve(wr.rtype)
        )
    }

    /// Adds the transaction's invocation and completion to every finding that cites one
    /// of its entries.
    fn cite_transactions(&mut self) {
        let mut of_index: FxHashMap<u64, [u64; 2]> = FxHashMap::default();
        for (&w, &(tx, _)) in &self.entry_of {
            let Some(t) = self.transactions.get(&tx) else {
                continue;
            };
            let wr = &self.writes[w as usize];
            for i in [wr.invoke, wr.done] {
                of_index.insert(i, [t.invoke, t.done]);
            }
        }
        for f in &mut self.findings {
            let add: Vec<u64> = f
                .evidence
                .iter()
                .filter_map(|i| of_index.get(i))
                .flatten()
                .copied()
                .filter(|&i| i != NEVER)
                .collect();
            if add.is_empty() {
                continue;
            }
            f.evidence.extend(add);
            f.evidence.sort_unstable();
            f.evidence.dedup();
        }
    }
}

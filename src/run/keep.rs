//! The history budget: which of the run's records go into the history file. Pure: a
//! line's classification in (`fhir::recorder::Shed`), a yes or no out. The run's judge
//! sees every record whatever this decides; only the file is bounded. Uses `vocab`
//! (the keep mode) and the recorder's classification.

use std::collections::HashSet;

use crate::fhir::recorder::Shed;
use crate::report::HistoryKept;
use crate::vocab::keep::Keep;

/// Decides record by record what the file keeps, and counts.
#[derive(Debug)]
pub struct Filter {
    keep: Keep,
    seed: u64,
    /// Dropped invocations whose completion has not come yet: it is dropped too.
    open: HashSet<u64>,
    tally: HistoryKept,
}

impl Filter {
    /// A filter for `keep`, sampling from the run seed.
    pub fn new(keep: Keep, seed: u64) -> Filter {
        Filter {
            keep,
            seed,
            open: HashSet::new(),
            tally: HistoryKept {
                keep,
                ..HistoryKept::default()
            },
        }
    }

    /// Whether the line classified `shed` goes into the file.
    pub fn keeps(&mut self, shed: Shed) -> bool {
        let kept = match shed {
            Shed::Never => true,
            Shed::Read(index) => {
                let kept = self.keep.keeps_read(self.seed, index);
                if !kept {
                    self.open.insert(index);
                }
                kept
            }
            Shed::Completes(invoke) => self.keep.is_full() || !self.open.remove(&invoke),
        };
        self.tally.records += 1;
        if kept {
            self.tally.kept += 1;
        } else {
            self.tally.dropped += 1;
        }
        kept
    }

    /// What was kept so far.
    pub fn tally(&self) -> HistoryKept {
        self.tally.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read (invocation and completion) and a write, `n` times.
    fn run(keep: Keep, n: u64) -> (Filter, Vec<bool>) {
        let mut f = Filter::new(keep, 11);
        let mut kept = Vec::new();
        for i in 0..n {
            let read = 4 * i;
            kept.push(f.keeps(Shed::Read(read)));
            kept.push(f.keeps(Shed::Completes(read)));
            kept.push(f.keeps(Shed::Never));
            kept.push(f.keeps(Shed::Completes(read + 2)));
        }
        (f, kept)
    }

    #[test]
    fn full_keeps_all_and_writes_keeps_only_writes() {
        let (f, kept) = run(Keep::Full, 50);
        assert!(kept.iter().all(|k| *k));
        assert_eq!((f.tally().records, f.tally().dropped), (200, 0));
        let (f, kept) = run(Keep::Writes, 50);
        for pair in kept.chunks(4) {
            assert_eq!(pair, [false, false, true, true]);
        }
        assert_eq!((f.tally().kept, f.tally().dropped), (100, 100));
        assert!(f.open.is_empty(), "completed reads are forgotten");
    }

    #[test]
    fn a_sampled_read_keeps_its_completion_with_it() {
        let (f, kept) = run(Keep::Sample(0.3), 2_000);
        let mut sampled = 0;
        for quad in kept.chunks(4) {
            assert_eq!(quad[0], quad[1], "invocation and completion go together");
            assert!(quad[2] && quad[3]);
            sampled += usize::from(quad[0]);
        }
        assert!((450..750).contains(&sampled), "{sampled}");
        assert_eq!(f.tally().kept + f.tally().dropped, f.tally().records);
        assert_eq!(run(Keep::Sample(0.3), 2_000).1, kept, "seeded");
    }
}

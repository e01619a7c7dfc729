//! What a run's history file keeps (`[history] keep`, `--keep`): everything, only what
//! the write checks need, or that plus a seeded sample of the load phase's reads and
//! searches. The run's own checker always sees every record; the mode only bounds the
//! file, so what an offline re-check of that file can measure is decided here too.
//! Uses `finding` (the kinds) and `seed` of the vocabulary, nothing else of the crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::finding::Kind;
use super::seed::{self, Purpose};

/// What the history file keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Keep {
    /// Every record.
    #[default]
    Full,
    /// Every write and what its checks need (its completion, transaction entries, the
    /// read-back, audit and scope-probe phases, fault and subscription marks); the load
    /// phase's and the visibility prober's reads and searches are dropped.
    Writes,
    /// As `Writes`, plus each dropped read or search kept with this probability
    /// (0 < P ≤ 1), decided from the run seed and the record's index.
    Sample(f64),
}

/// A `keep` value that is not one of the three forms.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("`{0}` is not \"full\", \"writes\" or \"sample:P\" with 0 < P <= 1")]
pub struct BadKeep(pub String);

impl Keep {
    /// Whether the load-phase read or search at history `index` is kept.
    pub fn keeps_read(self, run_seed: u64, index: u64) -> bool {
        match self {
            Keep::Full => true,
            Keep::Writes => false,
            Keep::Sample(p) => {
                seed::draw(seed::derive(run_seed, Purpose::HistorySample), index) < p
            }
        }
    }

    /// Why an offline check of a history kept this way cannot measure `kind`: the kinds
    /// that read the load phase's reads and searches. `None`: measured as in the run.
    pub fn unmeasured(self, kind: Kind) -> Option<String> {
        let reads = matches!(
            kind,
            Kind::StaleRead
                | Kind::DuplicateWrite
                | Kind::InvisibleWrite
                | Kind::ScopeLeak
                | Kind::AuditGap
                | Kind::AuditMismatch
        );
        (reads && self != Keep::Full).then(|| self.reason())
    }

    /// Why read-based figures (visibility lag, the read-based kinds) are not measured.
    pub fn reason(self) -> String {
        match self {
            Keep::Full => String::new(),
            Keep::Writes => format!("history kept writes only (keep = \"{self}\")"),
            Keep::Sample(_) => format!("history kept sampled reads (keep = \"{self}\")"),
        }
    }

    /// Whether the file holds every record.
    pub fn is_full(self) -> bool {
        self == Keep::Full
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::Full => f.write_str("full"),
            Keep::Writes => f.write_str("writes"),
            Keep::Sample(p) => write!(f, "sample:{p}"),
        }
    }
}

impl FromStr for Keep {
    type Err = BadKeep;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadKeep(s.to_owned());
        match s.trim() {
            "full" => Ok(Keep::Full),
            "writes" => Ok(Keep::Writes),
            other => {
                let p: f64 = other
                    .strip_prefix("sample:")
                    .ok_or_else(bad)?
                    .trim()
                    .parse()
                    .map_err(|_| bad())?;
                if p > 0.0 && p <= 1.0 {
                    Ok(Keep::Sample(p))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl Serialize for Keep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms_and_refuses_the_rest() {
        assert_eq!("full".parse(), Ok(Keep::Full));
        assert_eq!("writes".parse(), Ok(Keep::Writes));
        assert_eq!("sample:0.1".parse(), Ok(Keep::Sample(0.1)));
        assert_eq!("sample:1".parse(), Ok(Keep::Sample(1.0)));
        for bad in [
            "",
            "all",
            "sample:0",
            "sample:1.5",
            "sample:-1",
            "sample:x",
            "sample:NaN",
        ] {
            assert!(bad.parse::<Keep>().is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips_through_its_text() {
        for k in [Keep::Full, Keep::Writes, Keep::Sample(0.25)] {
            assert_eq!(k.to_string().parse(), Ok(k));
        }
    }

    #[test]
    fn samples_close_to_p_and_the_same_way_twice() {
        let k = Keep::Sample(0.1);
        let kept = (0..100_000).filter(|&i| k.keeps_read(7, i)).count();
        assert!((9_000..11_000).contains(&kept), "{kept}");
        let again = (0..100_000).filter(|&i| k.keeps_read(7, i)).count();
        assert_eq!(kept, again);
        assert!(!Keep::Writes.keeps_read(7, 3) && Keep::Full.keeps_read(7, 3));
    }

    #[test]
    fn only_read_based_kinds_go_unmeasured() {
        assert!(Keep::Full.unmeasured(Kind::StaleRead).is_none());
        let why = Keep::Writes.unmeasured(Kind::StaleRead).unwrap_or_default();
        assert!(why.contains("writes only"), "{why}");
        assert!(Keep::Sample(0.1).unmeasured(Kind::AuditGap).is_some());
        assert!(Keep::Writes.unmeasured(Kind::LostWrite).is_none());
        assert!(
            Keep::Writes
                .unmeasured(Kind::CommittedDespiteError)
                .is_none()
        );
    }
}

//! Shards: one run split over N processes (`--shard I/N`, or `JOB_COMPLETION_INDEX` with
//! `--shards N`, the way a Kubernetes Indexed Job hands each pod its index). Shard I runs
//! encounters I, I+N, I+2N, … of the run's population (so identifiers never collide), 1/N
//! of the users and of the arrival rate, under a seed derived from the run seed and I, in
//! its own run directory named after the shard, under the run id all shards share. Each
//! leaves `shard.json` beside its report: what `merge` needs to put the shards back
//! together on one clock. `--start-at` makes every shard begin its load at one instant.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::scenario::{Load, Scenario};
use crate::synth::{CodeTables, Population};

/// The file a shard leaves in its run directory.
pub const FILE: &str = "shard.json";

/// Shard `index` of `count` (0-based, as `JOB_COMPLETION_INDEX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// `I/N` with `0 <= I < N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not `INDEX/COUNT` (e.g. 0/4)"))?;
        let count = n
            .trim()
            .parse()
            .map_err(|_| format!("`{n}` is not a shard count"))?;
        Shard::new(i, count)
    }

    /// Index as text (`JOB_COMPLETION_INDEX`) and a count.
    pub fn new(index: &str, count: u32) -> Result<Shard, String> {
        let index: u32 = index
            .trim()
            .parse()
            .map_err(|_| format!("`{index}` is not a shard index"))?;
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range for {count} shards (0 to {})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// This shard's share of `total` (users, encounters): the shares of all shards add
    /// up to `total`, the first `total % count` shards taking one more.
    pub fn share(&self, total: u64) -> u64 {
        let (i, n) = (u64::from(self.index), u64::from(self.count));
        total / n + u64::from(i < total % n)
    }

    /// The shard's own seed: from the run seed and the index, never equal across shards.
    pub fn seed(&self, run_seed: u64) -> u64 {
        let mut h = blake3::Hasher::new();
        h.update(b"fhirsurge.shard.seed/1\0");
        h.update(&run_seed.to_le_bytes());
        h.update(&self.index.to_le_bytes());
        h.update(&self.count.to_le_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&h.finalize().as_bytes()[..8]);
        u64::from_le_bytes(bytes)
    }

    /// The shard's run directory name.
    pub fn dir_name(&self, run_id: &str) -> String {
        format!("{run_id}-shard-{}-of-{}", self.index, self.count)
    }

    /// Makes `scenario` this shard's part: 1/N of the users (of each step of a ramp),
    /// of the arrival rate and of `max_encounters`, and the derived seed. Refused when a
    /// shard would get no user at all.
    pub fn apply(&self, scenario: &mut Scenario) -> Result<(), String> {
        let users = |u: usize| self.share(u as u64) as usize;
        let too_few = |u: usize| {
            format!(
                "{} shards need at least {} users; the scenario has {u}",
                self.count, self.count
            )
        };
        scenario.load = match scenario.load.clone() {
            Load::Closed {
                users: u,
                duration,
                plan,
            } => {
                let mine = std::num::NonZeroUsize::new(users(u.get())).ok_or(too_few(u.get()))?;
                let plan = match plan {
                    Some(p) => Some(p.scaled(users).map_err(|e| {
                        format!("test plan for shard {}/{}: {e}", self.index, self.count)
                    })?),
                    None => None,
                };
                Load::Closed {
                    users: mine,
                    duration,
                    plan,
                }
            }
            Load::Open {
                rate,
                users: u,
                max_users,
            } => Load::Open {
                rate: rate.divided(f64::from(self.count)),
                users: std::num::NonZeroUsize::new(users(u.get())).ok_or(too_few(u.get()))?,
                max_users: std::num::NonZeroUsize::new(users(max_users.get()))
                    .ok_or(too_few(max_users.get()))?,
            },
        };
        if scenario.max_encounters != u64::MAX {
            scenario.max_encounters = self.share(scenario.max_encounters);
        }
        scenario.seed = self.seed(scenario.seed);
        Ok(())
    }
}

/// How one process takes part in a run beyond its scenario: which shard, under which
/// run id, and when its load begins. The default is a whole run starting at once.
#[derive(Clone, Debug, Default)]
pub struct Part {
    pub shard: Option<Sharded>,
    /// The load phase begins at this instant (wall clock), not before.
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A shard of a run, as the command line set it up.
#[derive(Clone, Debug)]
pub struct Sharded {
    pub shard: Shard,
    /// Shared by every shard: `--run-id`, else the scenario name and `--start-at`.
    pub run_id: String,
    /// The run seed before the shard's own was derived: the population's seed.
    pub run_seed: u64,
    /// The scenario file's text, so `merge` judges the SLOs the shards ran under.
    pub scenario_text: String,
}

impl Part {
    /// The run id: the shard's shared one, else `<scenario>-<start time>`.
    pub fn run_id(&self, scenario: &str, started: chrono::DateTime<chrono::Utc>) -> String {
        match &self.shard {
            Some(s) => s.run_id.clone(),
            None => format!("{scenario}-{}", started.format("%Y%m%dT%H%M%S%.3fZ")),
        }
    }

    /// The run directory's name.
    pub fn dir_name(&self, run_id: &str) -> String {
        match &self.shard {
            Some(s) => s.shard.dir_name(run_id),
            None => run_id.to_owned(),
        }
    }

    /// The population this process draws from: the run's, or the shard's slice of it.
    pub fn population(&self, seed: u64, namespace: &str, tables: CodeTables) -> Population {
        match &self.shard {
            Some(s) => Population::new(s.run_seed, namespace, tables)
                .slice(u64::from(s.shard.index), u64::from(s.shard.count)),
            None => Population::new(seed, namespace, tables),
        }
    }

    /// Sleeps until `--start-at`; returns how late the load begins after it (ms), or
    /// `None` without one. A time already past starts at once (and says how late).
    pub async fn wait_start(&self) -> Option<f64> {
        let at = self.start_at?;
        let now = chrono::Utc::now();
        match (at - now).to_std() {
            Ok(wait) => {
                tracing::info!("load begins at {at} (in {:.1} s)", wait.as_secs_f64());
                tokio::time::sleep(wait).await;
                Some(0.0)
            }
            Err(_) => {
                let late = (now - at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
                tracing::warn!("--start-at {at} had passed by {late:.0} ms: load begins now");
                Some(late)
            }
        }
    }
}

/// Validates a run id given on the command line: it names directories and namespaces.
pub fn check_run_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{id}`: a run id is 1 to 128 of A-Z a-z 0-9 - _ . (not starting with .)"
        ))
    }
}

/// What a shard leaves in `shard.json`: who it was, and its clocks, so that `merge`
/// places its samples and its history on the run's one clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub run_id: String,
    pub scenario: String,
    /// blake3 of the scenario file's text: shards of one run ran the same scenario.
    pub scenario_digest: String,
    pub scenario_text: String,
    pub shard: Shard,
    pub run_seed: u64,
    /// The shard's own seed (fault decisions and other draws).
    pub seed: u64,
    /// The run clock's zero (history `time_us`, interval-log timestamps) on the wall
    /// clock, in µs since the Unix epoch.
    pub clock_zero_unix_us: i64,
    /// When the load phase began, on the run clock.
    pub load_start_s: f64,
    pub load_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// How late the load began after `start_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_late_ms: Option<f64>,
    pub version: String,
}

/// blake3 of a scenario text, hex.
pub fn digest(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// A moment on the wall clock, µs since the Unix epoch.
pub fn unix_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

impl Record {
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(FILE), text)
    }

    /// Reads `dir/shard.json`.
    pub fn read(dir: &Path) -> Result<Record, String> {
        let path = dir.join(FILE);
        let text = std::fs::read(&path).map_err(|e| {
            format!(
                "{}: {e} (not a shard's run directory: run with --shard I/N)",
                path.display()
            )
        })?;
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The end of the load phase on the wall clock, µs since the epoch.
    pub fn load_end_unix_us(&self) -> i64 {
        self.load_start_unix_us() + Duration::from_secs_f64(self.load_s.max(0.0)).as_micros() as i64
    }

    /// The start of the load phase on the wall clock, µs since the epoch.
    pub fn load_start_unix_us(&self) -> i64 {
        self.clock_zero_unix_us
            + Duration::from_secs_f64(self.load_start_s.max(0.0)).as_micros() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_shards() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert!(Shard::parse("4/4").unwrap_err().contains("out of range"));
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("1").is_err());
        assert_eq!(Shard::new("3", 8), Ok(Shard { index: 3, count: 8 }));
        assert!(Shard::new("x", 8).is_err());
    }

    #[test]
    fn shares_add_up_and_seeds_differ() {
        for total in [0u64, 1, 7, 8, 9, 1000] {
            let sum: u64 = (0..8)
                .map(|i| Shard { index: i, count: 8 }.share(total))
                .sum();
            assert_eq!(sum, total);
        }
        let seeds: std::collections::BTreeSet<u64> = (0..16)
            .map(|i| {
                Shard {
                    index: i,
                    count: 16,
                }
                .seed(42)
            })
            .collect();
        assert_eq!(seeds.len(), 16);
    }

    #[test]
    fn slices_of_the_population_are_disjoint_and_cover_it() {
        let tables = CodeTables::builtin().unwrap();
        let whole = Population::new(7, "urn:fhirsurge:t", tables.clone());
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..3u64 {
            let slice = whole.clone().slice(i, 3);
            for k in 0..4u64 {
                let e = slice.encounter(k);
                assert_eq!(e, whole.encounter(k * 3 + i), "slice {i} encounter {k}");
                for r in e.resources() {
                    assert!(seen.insert(r.identifier.clone()), "{} twice", r.identifier);
                }
            }
        }
        assert!(seen.len() >= 12 * 5);
    }

    #[test]
    fn run_ids_are_safe_names() {
        assert!(check_run_id("nightly-2026-01-01").is_ok());
        assert!(check_run_id("../x").is_err());
        assert!(check_run_id("").is_err());
        assert!(check_run_id("a b").is_err());
    }
}

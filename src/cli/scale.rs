//! Running beyond one machine from the command line: the shard flags of `run`
//! (`--shard I/N`, `--shards N` with `JOB_COMPLETION_INDEX`, `--run-id`, `--start-at`),
//! a shard's own ending, and `merge`. Uses `run::shard`, `run::merge` and `scenario`.

use super::bad_input;
use super::exit::{Ending, Failure};
use crate::run::{self, shard};
use crate::scenario::Scenario;
use std::path::{Path, PathBuf};

/// The environment variable a Kubernetes Indexed Job sets to each pod's index.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// `run`'s flags for one shard of a run.
#[derive(clap::Args, Debug)]
pub struct ShardArgs {
    /// Run shard I of N (0-based), e.g. `--shard 0/4`.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    shard: Option<String>,
    /// Run one of N shards, its index read from JOB_COMPLETION_INDEX (what a Kubernetes
    /// Indexed Job sets in each pod).
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
    /// The run id the shards share; names the run directories and the identifier
    /// namespace (default with shards: `<scenario>-<--start-at>`).
    #[arg(long)]
    run_id: Option<String>,
    /// Begin the load phase at this instant, RFC 3339 (e.g. 2026-01-01T02:00:00Z): every
    /// shard given the same time starts together.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    start_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time like 2026-01-01T02:00:00Z: {e}"))
}

impl ShardArgs {
    /// The shard this process runs, if any, from the flags or `JOB_COMPLETION_INDEX`.
    fn shard(&self) -> Result<Option<shard::Shard>, Failure> {
        if let Some(text) = &self.shard {
            return shard::Shard::parse(text)
                .map(Some)
                .map_err(|e| bad_input(format!("--shard: {e}")));
        }
        let Some(count) = self.shards else {
            return Ok(None);
        };
        let index = std::env::var(INDEX_ENV).map_err(|_| {
            bad_input(format!(
                "--shards {count}: {INDEX_ENV} is not set (use --shard I/N outside an Indexed Job)"
            ))
        })?;
        shard::Shard::new(&index, count)
            .map(Some)
            .map_err(|e| bad_input(format!("{INDEX_ENV}: {e}")))
    }

    /// How this process takes part in the run; `scenario` becomes the shard's part.
    pub fn part(
        &self,
        path: &Path,
        scenario: &mut Scenario,
        has_baseline: bool,
    ) -> Result<shard::Part, Failure> {
        let mut part = shard::Part {
            shard: None,
            start_at: self.start_at,
        };
        let Some(shard) = self.shard()? else {
            if self.run_id.is_some() {
                return Err(bad_input("--run-id names a sharded run: add --shard I/N"));
            }
            return Ok(part);
        };
        if has_baseline {
            return Err(bad_input(
                "--baseline with a shard: give it to `fhirsurge merge`, which judges the whole run",
            ));
        }
        let run_id = match (&self.run_id, self.start_at) {
            (Some(id), _) => id.clone(),
            (None, Some(at)) => format!("{}-{}", scenario.name, at.format("%Y%m%dT%H%M%SZ")),
            (None, None) => {
                return Err(bad_input(
                    "a shard needs --run-id or --start-at, so that all shards share one run id",
                ));
            }
        };
        shard::check_run_id(&run_id).map_err(|e| bad_input(format!("--run-id: {e}")))?;
        let scenario_text = std::fs::read_to_string(path)
            .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
        let run_seed = scenario.seed;
        shard.apply(scenario).map_err(|e| {
            bad_input(format!(
                "{}: shard {}/{}: {e}",
                path.display(),
                shard.index,
                shard.count
            ))
        })?;
        part.shard = Some(shard::Sharded {
            shard,
            run_id,
            run_seed,
            scenario_text,
        });
        Ok(part)
    }
}

/// Runs one shard: its SLOs are judged by `merge` over the whole run, so a shard that
/// ran to its end exits 0 whatever its own figures; one stopped early exits 1.
pub async fn run_shard(
    scenario: &Scenario,
    options: run::Options,
    control: run::Control,
    part: &shard::Part,
) -> Result<Ending, Failure> {
    let outcome = run::execute_with(scenario, &options, &control, part).await?;
    print!("{}", outcome.report.table());
    println!("\nshard: {}", outcome.dir.display());
    println!(
        "SLOs are judged over the whole run: `fhirsurge merge <every shard's directory> --out DIR`"
    );
    if outcome.report.run.interrupted {
        eprintln!("error: the shard was stopped before its end: its results are partial");
        return Ok(Ending::Partial);
    }
    Ok(Ending::Passed)
}

/// Merges shard directories into `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<run::Outcome, Failure> {
    Ok(run::merge::merge(dirs, out)?)
}

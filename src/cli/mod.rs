//! The command line: clap commands and their wiring; how each command ends is an
//! [`exit::Ending`], turned into the process exit code in one place (`exit`). Nothing
//! else imports this module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::fault;
use crate::fhir::Tls;
use crate::profile::Profile;
use crate::report::{self, Margins, Report};
use crate::run;
use crate::scenario::{Overrides, Scenario};

mod check;
pub mod exit;
mod flags;
mod limits;
mod scale;
mod serve;
mod signal;
use exit::{Ending, Failure};
use serve::{MockAuth, control_access, serve_mock, serve_proxy};

#[derive(Parser, Debug)]
#[command(
    name = "fhirsurge",
    version,
    about = "Proves whether a FHIR/EHR integration is ready for production."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario and write a report.
    Run {
        scenario: PathBuf,
        /// "mock" or a FHIR base URL; overrides the scenario.
        #[arg(long)]
        target: Option<String>,
        /// Profile name or path; overrides the scenario.
        #[arg(long)]
        profile: Option<String>,
        /// A tenant overlay merged over the profile (see profiles/README.md).
        #[arg(long)]
        profile_overlay: Option<PathBuf>,
        /// Folder under which the run directory is created.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        users: Option<usize>,
        /// Load-phase length, e.g. 30s, 5m.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// What the history file keeps: full, writes, or sample:P (0 < P <= 1); the
        /// run's own findings are judged over every record either way.
        #[arg(long, value_parser = parse_keep)]
        keep: Option<crate::vocab::keep::Keep>,
        /// A previous run's report.json: exit 1 when this run regressed beyond the margins.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Allowed regression against --baseline.
        #[arg(long, default_value = "p99=10%,throughput=5%", value_parser = parse_margins)]
        max_regression: Margins,
        /// Do not verify TLS certificates (overrides [tls]; the report says so).
        #[arg(long, conflicts_with = "ca_cert")]
        insecure: bool,
        /// Also trust the CA certificates in this PEM file (overrides [tls]).
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        /// After Ctrl-C / SIGTERM (or the load phase's planned end), how long in-flight
        /// requests may finish; what is still unanswered is recorded `info`.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        grace: Duration,
        /// After Ctrl-C / SIGTERM, how long the read-back may run; what it did not read
        /// back is unchecked, never lost.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        readback_budget: Duration,
        /// A run stopped by a signal exits 130 (SIGINT) or 143 (SIGTERM) instead of 1 (a
        /// run stopped by a full disk still exits 1).
        #[arg(long)]
        interrupt_exit: bool,
        /// Also write every answer's body (credentials redacted) to bodies.jsonl.zst in
        /// the run directory. Bodies may contain PHI: every output then says so at its top.
        #[arg(long)]
        store_bodies: bool,
        #[command(flatten)]
        scale: scale::ShardArgs,
    },
    /// Combine the run directories of a sharded run's shards into one report, judged as
    /// if it had been one run (exit codes as for `run`).
    Merge {
        /// The shards' run directories (each holding shard.json).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The merged run's directory (created; must not hold a report yet).
        #[arg(long)]
        out: PathBuf,
        /// A previous report.json: exit 1 when the merged run regressed beyond the margins.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Allowed regression against --baseline.
        #[arg(long, default_value = "p99=10%,throughput=5%", value_parser = parse_margins)]
        max_regression: Margins,
    },
    /// Serve the built-in mock EHR.
    ServeMock {
        /// Where to listen; by default a free loopback port, printed at start.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// A silent write-back failure, e.g. `ack_and_drop,probability=0.01` (repeatable).
        #[arg(long = "fault")]
        faults: Vec<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        auth: MockAuth,
        /// Emulate this EHR: a shipped profile name (epic, oracle-health, …) or a path
        /// (default: the us-core baseline).
        #[arg(long)]
        profile: Option<String>,
        /// A tenant overlay merged over `--profile`.
        #[arg(long, requires = "profile")]
        profile_overlay: Option<PathBuf>,
        /// Allow listening on an address other than loopback (the mock's control
        /// endpoints, /__fhirsurge/…, are then refused unless --control-token-env is given).
        #[arg(long)]
        allow_remote: bool,
        /// The control endpoints (/__fhirsurge/…) require this token, read from the
        /// environment variable VAR, in the `x-fhirsurge-control-token` header.
        #[arg(long, value_name = "VAR")]
        control_token_env: Option<String>,
    },
    /// Put the fault proxy in front of a FHIR server.
    Proxy {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        upstream: String,
        /// A fault, e.g. `reset_peer,stream=downstream,probability=0.02` (repeatable).
        #[arg(long = "fault")]
        faults: Vec<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Allow listening on an address other than loopback (its ledger,
        /// /__fhirsurge/ledger, is then refused unless --control-token-env is given).
        #[arg(long)]
        allow_remote: bool,
        /// The ledger (/__fhirsurge/ledger) requires this token, read from the environment
        /// variable VAR, in the `x-fhirsurge-control-token` header.
        #[arg(long, value_name = "VAR")]
        control_token_env: Option<String>,
    },
    /// Re-check a recorded history offline, judged as the run judged it (the run's
    /// `check.json` beside the history), or against the profile given here.
    Check {
        /// A history (`history.jsonl.zst`, `.jsonl`) or a run folder holding one; a history
        /// cut off by a crash is checked up to its last complete line, and stderr says
        /// what was cut.
        history: PathBuf,
        /// Judge with this profile's declared transformations instead.
        #[arg(long)]
        profile: Option<String>,
        /// A tenant overlay merged over `--profile`.
        #[arg(long, requires = "profile")]
        profile_overlay: Option<PathBuf>,
    },
    /// Compare a report with a baseline; exit 1 on a regression beyond the margins.
    Compare {
        /// The baseline's report.json.
        baseline: PathBuf,
        /// The current run's report.json.
        current: PathBuf,
        /// Allowed regressions: p99 may rise, throughput may fall, by this much.
        #[arg(long, default_value = "p99=10%,throughput=5%", value_parser = parse_margins)]
        max_regression: Margins,
    },
    /// Re-render report.html, junit.xml and summary.md from RUN_DIR/report.json.
    Report {
        /// A run folder holding report.json.
        run_dir: PathBuf,
    },
    /// Compare a live server's CapabilityStatement and SMART configuration with a
    /// profile; exit 0 if they agree, 1 if they disagree.
    Probe {
        /// The FHIR base URL.
        #[arg(long)]
        target: String,
        /// Profile name or path.
        #[arg(long, default_value = crate::profile::DEFAULT)]
        profile: String,
        /// A tenant overlay merged over the profile.
        #[arg(long)]
        profile_overlay: Option<PathBuf>,
        /// Accept any TLS certificate.
        #[arg(long)]
        insecure: bool,
        /// Also trust the CA certificates in this PEM file.
        #[arg(long, conflicts_with = "insecure")]
        ca_cert: Option<PathBuf>,
        /// Per-request timeout.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// EHR profiles.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ProfileCommand {
    /// Validate a profile or a tenant overlay (one with `base = "…"`).
    Check { file: PathBuf },
}

/// The profile named by `--profile` (with its overlay), when one is.
fn optional_profile(
    name: Option<String>,
    overlay: Option<&std::path::Path>,
) -> Result<Option<Profile>, Failure> {
    name.map(|p| Profile::load_with_overlay(&p, overlay).map_err(Failure::from))
        .transpose()
}

fn parse_margins(s: &str) -> Result<Margins, String> {
    s.parse()
        .map_err(|e: report::compare::MarginError| e.to_string())
}

/// Parses the arguments, runs the command, and maps the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FHIRSURGE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let ending = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            {
                let _entered = runtime.enter();
                signal::survive_file_size_limit();
            }
            runtime
                .block_on(dispatch(cli.command))
                .unwrap_or_else(Ending::Failure)
        }
        Err(e) => Failure::CannotExecute(format!("cannot start the runtime: {e}")).into(),
    };
    if let Ending::Failure(failure) = &ending {
        eprintln!("error: {}", limits::explain(failure.to_string()));
    }
    ExitCode::from(exit::code(&ending))
}

fn parse_keep(text: &str) -> Result<crate::vocab::keep::Keep, String> {
    text.parse()
        .map_err(|e: crate::vocab::keep::BadKeep| e.to_string())
}

fn bad_input(message: impl ToString) -> Failure {
    Failure::BadInput(message.to_string())
}

async fn dispatch(command: Command) -> Result<Ending, Failure> {
    match command {
        Command::Run {
            scenario,
            target,
            profile,
            profile_overlay,
            out,
            seed,
            users,
            duration,
            keep,
            baseline,
            max_regression,
            insecure,
            ca_cert,
            grace,
            readback_budget,
            interrupt_exit,
            store_bodies,
            scale,
        } => {
            let mut s = Scenario::load(&scenario)?;
            let tls = match (insecure, ca_cert) {
                (true, _) => Some(Tls::Insecure),
                (false, Some(path)) => Some(Tls::Verify {
                    ca_cert: Some(path),
                }),
                (false, None) => None,
            };
            let overrides = Overrides {
                target: flags::target(target)?,
                profile,
                profile_overlay,
                seed,
                users: flags::users(users)?,
                duration: flags::duration(duration)?,
                tls,
                keep,
            };
            s.apply(&overrides)?;
            limits::warn_if_low(s.load.peak_users());
            let part = scale.part(&scenario, &mut s, baseline.is_some())?;
            // A bad baseline is bad input: found before any load is driven.
            let baseline = match baseline {
                Some(path) => Some(Report::read(&path)?),
                None => None,
            };
            let gate = baseline.map(|b| (b, max_regression));
            let control = run::Control {
                interrupt: signal::install(grace, readback_budget),
                bounds: run::Bounds {
                    grace,
                    readback_budget,
                },
            };
            let mut options = run::Options::new(out);
            if store_bodies {
                options.bodies = run::Bodies::Store;
            }
            if part.shard.is_some() {
                return scale::run_shard(&s, options, control, &part).await;
            }
            run_scenario(&s, options, control, gate, interrupt_exit, &part).await
        }
        Command::Merge {
            dirs,
            out,
            baseline,
            max_regression,
        } => {
            let baseline = match baseline {
                Some(path) => Some(Report::read(&path)?),
                None => None,
            };
            let outcome = scale::merge(&dirs, &out)?;
            conclude(outcome, baseline.map(|b| (b, max_regression)), false)
        }
        Command::ServeMock {
            listen,
            faults,
            seed,
            auth,
            profile,
            profile_overlay,
            allow_remote,
            control_token_env,
        } => {
            let control = control_access(
                "serve-mock",
                listen,
                allow_remote,
                control_token_env.as_deref(),
            )?;
            let profile = optional_profile(profile, profile_overlay.as_deref())?;
            let smart = auth.config(profile.as_ref())?;
            serve_mock(listen, &faults, seed, smart, profile, control).await
        }
        Command::Proxy {
            listen,
            upstream,
            faults,
            seed,
            allow_remote,
            control_token_env,
        } => {
            let control =
                control_access("proxy", listen, allow_remote, control_token_env.as_deref())?;
            serve_proxy(listen, &upstream, &faults, seed, control).await
        }
        Command::Check {
            history,
            profile,
            profile_overlay,
        } => {
            let profile = optional_profile(profile, profile_overlay.as_deref())?;
            check::offline(&history, profile.as_ref())
        }
        Command::Compare {
            baseline,
            current,
            max_regression,
        } => compare(&baseline, &current, &max_regression),
        Command::Report { run_dir } => rerender(&run_dir),
        Command::Probe {
            target,
            profile,
            profile_overlay,
            insecure,
            ca_cert,
            timeout,
        } => {
            let tls = if insecure {
                crate::fhir::Tls::Insecure
            } else {
                crate::fhir::Tls::Verify { ca_cert }
            };
            probe(&target, &profile, profile_overlay.as_deref(), &tls, timeout).await
        }
        Command::Profile {
            command: ProfileCommand::Check { file },
        } => check_profile(&file),
    }
}

async fn probe(
    target: &str,
    profile: &str,
    overlay: Option<&std::path::Path>,
    tls: &crate::fhir::Tls,
    timeout: Duration,
) -> Result<Ending, Failure> {
    let base = match flags::target(Some(target.to_owned()))? {
        Some(crate::scenario::Target::Url(url)) => url,
        _ => {
            return Err(bad_input(
                "--target: a FHIR base URL (start one with `serve-mock`)",
            ));
        }
    };
    let profile = Profile::load_with_overlay(profile, overlay)?;
    let findings = crate::probe::probe(&base, &profile, tls, timeout).await?;
    print!("{}", findings.render());
    Ok(if findings.agree() {
        Ending::Passed
    } else {
        Ending::Failed
    })
}

fn check_profile(file: &std::path::Path) -> Result<Ending, Failure> {
    let p = crate::profile::check_file(file)?;
    let errors = p.errors.codes.len();
    println!(
        "{}: profile `{}` is valid ({} resource types with their own rules, {errors} error codes, {} sources)",
        file.display(),
        p.name,
        p.resources.len(),
        p.sources.len()
    );
    Ok(Ending::Passed)
}

fn compare(
    baseline: &std::path::Path,
    current: &std::path::Path,
    margins: &Margins,
) -> Result<Ending, Failure> {
    let baseline = Report::read(baseline)?;
    let current = Report::read(current)?;
    let comparison = report::compare(&baseline, &current, margins);
    print!("{}", comparison.table());
    Ok(if comparison.regressed() {
        Ending::Failed
    } else {
        Ending::Passed
    })
}

fn rerender(dir: &std::path::Path) -> Result<Ending, Failure> {
    let report = Report::read(&dir.join("report.json"))?;
    report.render_into(dir)?;
    for name in report::RENDERED {
        println!("{}", dir.join(name).display());
    }
    Ok(Ending::Passed)
}

async fn run_scenario(
    scenario: &Scenario,
    options: run::Options,
    control: run::Control,
    baseline: Option<(Report, Margins)>,
    interrupt_exit: bool,
    part: &run::shard::Part,
) -> Result<Ending, Failure> {
    let outcome = run::execute_with(scenario, &options, &control, part).await?;
    conclude(outcome, baseline, interrupt_exit)
}

/// Prints a run's (or a merged run's) table and maps its verdict to the exit code.
fn conclude(
    outcome: run::Outcome,
    baseline: Option<(Report, Margins)>,
    interrupt_exit: bool,
) -> Result<Ending, Failure> {
    print!("{}", outcome.report.table());
    println!("\nreport: {}", outcome.dir.join("report.json").display());
    let regressed = match &baseline {
        Some((base, margins)) => {
            let comparison = report::compare(base, &outcome.report, margins);
            println!("\nagainst the baseline:\n{}", comparison.table());
            comparison.regressed()
        }
        None => false,
    };
    if regressed {
        eprintln!("error: regression against the baseline beyond the allowed margins");
    }
    if let Some(stop) = &outcome.report.stop {
        eprintln!(
            "error: partial report: {}",
            outcome.report.partial_reason.as_deref().unwrap_or_default()
        );
        // A plain interrupt exit is for a signal; a run stopped by a full disk is partial.
        return Ok(if interrupt_exit && signal::is_signal(&stop.signal) {
            Ending::Signalled(stop.signal.clone())
        } else {
            Ending::Partial
        });
    }
    if outcome.passed() {
        return Ok(if regressed {
            Ending::Failed
        } else {
            Ending::Passed
        });
    }
    let failed: Vec<&str> = outcome
        .report
        .slo
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name.as_str())
        .collect();
    eprintln!("error: SLOs not met: {}", failed.join("; "));
    Ok(Ending::Failed)
}

fn parse_faults(flags: &[String]) -> Result<Vec<(usize, fault::Spec)>, Failure> {
    flags
        .iter()
        .enumerate()
        .map(|(i, f)| {
            fault::Spec::parse_flag(f)
                .map(|s| (i, s))
                .map_err(bad_input)
        })
        .collect()
}

//! The command line: clap commands, their wiring, and exit codes — 0 all good, 1 an SLO
//! or consistency check failed, 2 bad input, 3 the run could not execute. Nothing else
//! imports this module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fault::{self, Ledger, proxy};
use crate::profile::Profile;
use crate::report::{self, Margins, Report};
use crate::scenario::{Overrides, Scenario};
use crate::{check, history, mock, run};

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
    },
    /// Serve the built-in mock EHR.
    ServeMock {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// A silent write-back failure, e.g. `ack_and_drop,probability=0.01` (repeatable).
        #[arg(long = "fault")]
        faults: Vec<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Emulate this EHR: a shipped profile name (epic, oracle-health, …) or a path.
        #[arg(long)]
        profile: Option<String>,
        /// A tenant overlay merged over `--profile`.
        #[arg(long, requires = "profile")]
        profile_overlay: Option<PathBuf>,
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
        /// Allow listening on an address other than loopback.
        #[arg(long)]
        allow_remote: bool,
    },
    /// Re-check a recorded history offline.
    Check { history: PathBuf },
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(Failure { code, message }) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// An error with its exit code.
struct Failure {
    code: u8,
    message: String,
}

fn bad_input(message: impl ToString) -> Failure {
    Failure {
        code: 2,
        message: message.to_string(),
    }
}

async fn dispatch(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Run {
            scenario,
            target,
            profile,
            out,
            seed,
            users,
            duration,
        } => {
            let mut s = Scenario::load(&scenario).map_err(bad_input)?;
            let overrides = Overrides {
                target,
                profile,
                seed,
                users,
                duration,
            };
            s.apply(&overrides).map_err(bad_input)?;
            run_scenario(&s, out).await
        }
        Command::ServeMock {
            listen,
            faults,
            seed,
            profile,
            profile_overlay,
        } => {
            let profile = match profile {
                Some(p) => Some(
                    Profile::load_with_overlay(&p, profile_overlay.as_deref())
                        .map_err(bad_input)?,
                ),
                None => None,
            };
            serve_mock(listen, &faults, seed, profile).await
        }
        Command::Proxy {
            listen,
            upstream,
            faults,
            seed,
            allow_remote,
        } => serve_proxy(listen, &upstream, &faults, seed, allow_remote).await,
        Command::Check { history } => offline_check(&history),
        Command::Compare {
            baseline,
            current,
            max_regression,
        } => compare(&baseline, &current, &max_regression),
        Command::Report { run_dir } => rerender(&run_dir),
    }
}

fn compare(
    baseline: &std::path::Path,
    current: &std::path::Path,
    margins: &Margins,
) -> Result<ExitCode, Failure> {
    let baseline = Report::read(baseline).map_err(bad_input)?;
    let current = Report::read(current).map_err(bad_input)?;
    let comparison = report::compare(&baseline, &current, margins);
    print!("{}", comparison.table());
    Ok(if comparison.regressed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn rerender(dir: &std::path::Path) -> Result<ExitCode, Failure> {
    let report = Report::read(&dir.join("report.json")).map_err(bad_input)?;
    report.render_into(dir).map_err(|e| Failure {
        code: 3,
        message: e.to_string(),
    })?;
    for name in report::RENDERED {
        println!("{}", dir.join(name).display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_scenario(scenario: &Scenario, out: PathBuf) -> Result<ExitCode, Failure> {
    let outcome = run::execute(scenario, &run::Options { out })
        .await
        .map_err(|e| match e {
            run::Error::BadInput(m) => bad_input(m),
            e @ run::Error::Unreachable { .. } => Failure {
                code: 3,
                message: e.to_string(),
            },
            run::Error::Io(m) => Failure {
                code: 3,
                message: m,
            },
        })?;
    print!("{}", outcome.report.table());
    println!("\nreport: {}", outcome.dir.join("report.json").display());
    if outcome.passed() {
        return Ok(ExitCode::SUCCESS);
    }
    let failed: Vec<&str> = outcome
        .report
        .slo
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name.as_str())
        .collect();
    eprintln!("error: SLOs not met: {}", failed.join("; "));
    Ok(ExitCode::from(1))
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

async fn serve_mock(
    listen: SocketAddr,
    faults: &[String],
    seed: u64,
    profile: Option<Profile>,
) -> Result<ExitCode, Failure> {
    let faults = parse_faults(faults)?;
    for (_, spec) in &faults {
        mock::validate_fault(spec).map_err(bad_input)?;
    }
    let emulated = profile.as_ref().map(|p| p.name.clone());
    let config = mock::Config {
        seed,
        faults,
        profile: profile.map(std::sync::Arc::new),
        ..mock::Config::default()
    };
    let ehr = mock::Ehr::new(config).map_err(bad_input)?;
    let listener = bind(listen).await?;
    eprintln!(
        "mock EHR{}: FHIR base http://{}/ (Ctrl-C stops)",
        emulated
            .map(|n| format!(" emulating `{n}`"))
            .unwrap_or_default(),
        local(&listener)
    );
    let shutdown = ctrl_c_token();
    mock::serve(listener, ehr, shutdown)
        .await
        .map_err(|e| Failure {
            code: 3,
            message: e.to_string(),
        })?;
    Ok(ExitCode::SUCCESS)
}

async fn serve_proxy(
    listen: SocketAddr,
    upstream: &str,
    faults: &[String],
    seed: u64,
    allow_remote: bool,
) -> Result<ExitCode, Failure> {
    proxy::check_listen(listen, allow_remote).map_err(bad_input)?;
    let upstream = url::Url::parse(upstream)
        .map_err(|e| bad_input(format!("--upstream `{upstream}`: {e}")))?;
    let faults = parse_faults(faults)?;
    for (_, spec) in &faults {
        proxy::validate_fault(spec).map_err(bad_input)?;
    }
    let config = proxy::Config {
        upstream,
        faults,
        seed,
        ledger: Ledger::new(std::time::Instant::now()),
        ca_cert: None,
    };
    let p = proxy::Proxy::new(config).map_err(bad_input)?;
    let listener = bind(listen).await?;
    eprintln!("fault proxy: http://{}/ (Ctrl-C stops)", local(&listener));
    proxy::serve(listener, p, ctrl_c_token())
        .await
        .map_err(|e| Failure {
            code: 3,
            message: e.to_string(),
        })?;
    Ok(ExitCode::SUCCESS)
}

fn offline_check(path: &std::path::Path) -> Result<ExitCode, Failure> {
    let reader = history::Reader::open(path).map_err(bad_input)?;
    let mut error = None;
    let records = reader.map_while(|r| r.map_err(|e| error = Some(e)).ok());
    let options = check::Options {
        expected_changes: Default::default(),
        harness_system_prefix: run::HARNESS_PREFIX.to_owned(),
    };
    let outcome = check::check(records, &options);
    if let Some(e) = error {
        return Err(bad_input(e));
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "findings": outcome.findings,
        "finding_counts": outcome.counts,
        "visibility_lag": outcome.visibility_lag,
        "checked": outcome.stats,
    }))
    .map_err(bad_input)?;
    println!("{json}");
    Ok(if outcome.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr).await.map_err(|e| Failure {
        code: 3,
        message: format!("cannot listen on {addr}: {e}"),
    })
}

fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

fn ctrl_c_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        t.cancel();
    });
    token
}

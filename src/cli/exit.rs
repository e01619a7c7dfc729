//! Every way a command ends, and the one `match` from an ending to the process exit code
//! (the README's "Exit codes"): 0 all good; 1 an SLO, a consistency check, a baseline
//! comparison or a probe did not hold, or the run is partial; 2 bad input (scenario,
//! profile, flags, key file); 3 the command could not execute (target unreachable at
//! start, token endpoint refused, cannot listen or write); 128 + the signal for a run
//! stopped under `--interrupt-exit`. The modules below `cli` return their own typed
//! errors and know no exit code. Uses the errors of `run`, `fhir::auth`, `probe`,
//! `scenario`, `profile` and `report`.

use crate::fhir::auth;
use crate::run::{self, merge};
use crate::{probe, profile, report, scenario};

/// How a command ended.
#[derive(Debug)]
pub enum Ending {
    /// Everything judged held.
    Passed,
    /// Something judged did not hold: an SLO, a consistency check, a baseline
    /// comparison, a probe against its profile.
    Failed,
    /// The run stopped before its end: its report is partial.
    Partial,
    /// A run stopped by this signal (`SIGINT`, `SIGTERM`) under `--interrupt-exit`.
    Signalled(String),
    /// The command could not do its work.
    Failure(Failure),
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A flag, file or setting of ours is wrong.
    #[error("{0}")]
    BadInput(String),
    /// The command could not execute (cannot start, listen, or write).
    #[error("{0}")]
    CannotExecute(String),
    /// A run could not be done; an authentication failure is one of these wherever it
    /// was met.
    #[error(transparent)]
    Run(#[from] run::Error),
    #[error(transparent)]
    Merge(#[from] merge::Error),
    #[error(transparent)]
    Probe(#[from] probe::Error),
    #[error(transparent)]
    Scenario(#[from] scenario::Error),
    #[error(transparent)]
    Profile(#[from] profile::Error),
    /// A report given to read (a baseline, a run's report.json) cannot be used.
    #[error(transparent)]
    Report(#[from] report::ReadError),
    /// The report's renderings cannot be written.
    #[error(transparent)]
    Render(#[from] report::WriteError),
}

impl From<auth::Error> for Failure {
    fn from(e: auth::Error) -> Failure {
        Failure::Run(run::Error::Auth(e))
    }
}

impl From<Failure> for Ending {
    fn from(f: Failure) -> Ending {
        Ending::Failure(f)
    }
}

/// The process exit code of `ending`: the only place that knows one.
pub fn code(ending: &Ending) -> u8 {
    use auth::Error as A;
    match ending {
        Ending::Passed => 0,
        Ending::Failed | Ending::Partial => 1,
        Ending::Signalled(signal) if signal == "SIGTERM" => 143,
        Ending::Signalled(_) => 130,
        Ending::Failure(
            Failure::BadInput(_)
            | Failure::Scenario(_)
            | Failure::Profile(_)
            | Failure::Report(_)
            | Failure::Run(
                run::Error::BadInput(_)
                | run::Error::Mock(_)
                | run::Error::Proxy(_)
                | run::Error::Receiver(_)
                | run::Error::ReceiverTls(_)
                | run::Error::Ca(_),
            )
            | Failure::Merge(merge::Error::Refused(_) | merge::Error::Report(_))
            | Failure::Probe(probe::Error::BadInput(_) | probe::Error::Ca(_))
            | Failure::Run(run::Error::Auth(
                A::Secret { .. }
                | A::Key { .. }
                | A::UnsupportedAlg(_)
                | A::Sign(_)
                | A::Discovery { .. }
                | A::NoMethod { .. },
            )),
        ) => 2,
        Ending::Failure(
            Failure::CannotExecute(_)
            | Failure::Render(_)
            | Failure::Run(
                run::Error::Unreachable { .. }
                | run::Error::Io(_)
                | run::Error::Output { .. }
                | run::Error::Load(_),
            )
            | Failure::Merge(
                merge::Error::Io(_)
                | merge::Error::History(_)
                | merge::Error::Write(_)
                | merge::Error::Notes(_),
            )
            | Failure::Probe(probe::Error::Unreachable { .. } | probe::Error::NotFhir { .. })
            | Failure::Run(run::Error::Auth(
                A::Unreachable { .. } | A::Refused { .. } | A::BadTokenResponse { .. },
            )),
        ) => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(f: impl Into<Failure>) -> u8 {
        code(&Ending::Failure(f.into()))
    }

    #[test]
    fn endings_have_the_readme_codes() {
        assert_eq!(code(&Ending::Passed), 0);
        assert_eq!(code(&Ending::Failed), 1);
        assert_eq!(code(&Ending::Partial), 1);
        assert_eq!(code(&Ending::Signalled("SIGINT".into())), 130);
        assert_eq!(code(&Ending::Signalled("SIGTERM".into())), 143);
        assert_eq!(failure(Failure::BadInput("x".into())), 2);
        assert_eq!(failure(Failure::CannotExecute("x".into())), 3);
        assert_eq!(failure(scenario::Error::ZeroDuration), 2);
    }

    #[test]
    fn an_unreadable_profile_or_report_is_bad_input() {
        let missing = std::path::Path::new("/nonexistent/fhirsurge/none");
        let profile = profile::Profile::load(&missing.display().to_string()).unwrap_err();
        assert_eq!(failure(profile), 2);
        let report = report::Report::read(missing).unwrap_err();
        assert_eq!(failure(report), 2);
    }

    #[test]
    fn module_errors_are_bad_input_or_could_not_execute() {
        assert_eq!(failure(run::Error::BadInput("x".into())), 2);
        assert_eq!(failure(run::Error::Io("x".into())), 3);
        assert_eq!(failure(run::Error::Load("x".into())), 3);
        let unreachable = run::Error::Unreachable {
            url: "u".into(),
            reason: "r".into(),
        };
        assert_eq!(failure(unreachable), 3);
        assert_eq!(failure(merge::Error::Refused("x".into())), 2);
        assert_eq!(failure(merge::Error::Io("x".into())), 3);
        assert_eq!(failure(probe::Error::BadInput("x".into())), 2);
        let not_fhir = probe::Error::NotFhir {
            url: "u".into(),
            reason: "r".into(),
        };
        assert_eq!(failure(not_fhir), 3);
    }

    #[test]
    fn an_auth_error_has_one_code_wherever_it_was_met() {
        let refused = || auth::Error::Refused {
            status: 400,
            error: Some("invalid_client".into()),
            description: None,
        };
        let bad_key = || auth::Error::UnsupportedAlg("RS256".into());
        assert_eq!(failure(refused()), 3);
        assert_eq!(failure(run::Error::Auth(refused())), 3);
        assert_eq!(failure(bad_key()), 2);
        assert_eq!(failure(run::Error::Auth(bad_key())), 2);
    }
}

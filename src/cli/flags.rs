//! Flags that override a scenario, parsed into the types [`Overrides`] holds; the flag
//! names are known here, not in `scenario`. Uses `scenario`.
//!
//! [`Overrides`]: crate::scenario::Overrides

use std::num::NonZeroUsize;
use std::time::Duration;

use super::bad_input;
use super::exit::Failure;
use crate::scenario::Target;

/// `--target`: "mock" or a FHIR base URL.
pub(super) fn target(flag: Option<String>) -> Result<Option<Target>, Failure> {
    flag.map(|t| Target::parse(&t).map_err(|e| bad_input(format!("--target: {e}"))))
        .transpose()
}

/// `--users`: at least 1.
pub(super) fn users(flag: Option<usize>) -> Result<Option<NonZeroUsize>, Failure> {
    flag.map(|u| NonZeroUsize::new(u).ok_or_else(|| bad_input("--users: must be at least 1")))
        .transpose()
}

/// `--duration`: longer than 0s.
pub(super) fn duration(flag: Option<Duration>) -> Result<Option<Duration>, Failure> {
    match flag {
        Some(d) if d.is_zero() => Err(bad_input("--duration: must be longer than 0s")),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flag_is_refused_by_its_name() {
        let message = |f: Failure| f.to_string();
        assert_eq!(
            users(Some(0)).map_err(message).unwrap_err(),
            "--users: must be at least 1"
        );
        assert_eq!(
            users(Some(3)).ok().flatten().map(NonZeroUsize::get),
            Some(3)
        );
        assert_eq!(
            duration(Some(Duration::ZERO)).map_err(message).unwrap_err(),
            "--duration: must be longer than 0s"
        );
        assert!(
            target(Some("ftp://x".into()))
                .map_err(message)
                .unwrap_err()
                .starts_with("--target: ")
        );
        assert_eq!(
            target(Some("mock".into())).ok().flatten(),
            Some(Target::Mock)
        );
        assert!(matches!(target(None), Ok(None)));
    }
}

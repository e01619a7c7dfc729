//! Secrets (tokens, passwords, client ids, private keys) and where they come from: an
//! environment variable or a file the scenario names, never the scenario text. A
//! [`Secret`] prints as `[redacted]` in `Debug` and `Display`, so no log line, error or
//! report can show one by accident; only [`Secret::expose`] reads it. Depends on nothing.

use std::fmt;
use std::path::PathBuf;

use super::Error;

/// A secret value. Its `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself: for building a request, never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret is read from. Naming the source is safe; its content is not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable, by name.
    Env(String),
    /// A file, by path (relative paths were resolved against the scenario's folder).
    File(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(var) => write!(f, "environment variable `{var}`"),
            SecretSource::File(path) => write!(f, "file `{}`", path.display()),
        }
    }
}

impl SecretSource {
    /// Reads the secret; surrounding whitespace (a file's final newline) is dropped.
    /// `what` names the setting in errors (`auth.token`), which never show the value.
    pub fn load(&self, what: &'static str) -> Result<Secret, Error> {
        let problem = |problem: String| Error::Secret {
            what,
            source_name: self.to_string(),
            problem,
        };
        let raw = match self {
            SecretSource::Env(var) => std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => problem("is not set".into()),
                std::env::VarError::NotUnicode(_) => problem("is not UTF-8".into()),
            })?,
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| problem(format!("cannot be read ({})", e.kind())))?,
        };
        let value = raw.trim();
        if value.is_empty() {
            return Err(problem("is empty".into()));
        }
        Ok(Secret::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(
            format!("{s} {s:?} {:?}", Some(&s)),
            "[redacted] [redacted] Some([redacted])"
        );
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn a_missing_variable_names_it_but_not_a_value() {
        let src = SecretSource::Env("FHIRSURGE_TEST_SURELY_UNSET_VAR".into());
        let err = src.load("auth.token").unwrap_err().to_string();
        assert!(err.contains("FHIRSURGE_TEST_SURELY_UNSET_VAR"), "{err}");
        assert!(err.contains("is not set"), "{err}");
    }

    #[test]
    fn a_file_secret_loses_its_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc.def\n").unwrap();
        let s = SecretSource::File(path).load("auth.token").unwrap();
        assert_eq!(s.expose(), "abc.def");
    }
}

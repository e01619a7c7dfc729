//! TOML source files (scenarios, profiles): reading one and turning a parse error into
//! `file:line:column: message`, the way a user finds the offending key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A position in a file, 1-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The line and column of byte offset `at` in `text`.
    pub fn at(path: &Path, text: &str, at: usize) -> Location {
        let at = at.min(text.len());
        let before = &text[..floor_char_boundary(text, at)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location {
            path: path.to_owned(),
            line,
            column,
        }
    }

    /// The location of a span, or of the file's start when there is none.
    pub fn of_span(path: &Path, text: &str, span: Option<Range<usize>>) -> Location {
        Location::at(path, text, span.map_or(0, |s| s.start))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// An error in a source file, located.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct SourceError {
    pub location: Location,
    pub message: String,
}

/// Parses TOML text into `T`, locating any error.
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, SourceError> {
    toml::from_str(text).map_err(|e: toml::de::Error| SourceError {
        location: Location::of_span(path, text, e.span()),
        message: e.message().trim().to_owned(),
    })
}

/// Reads a file to text; an unreadable file is located at its start.
pub fn read(path: &Path) -> Result<String, SourceError> {
    std::fs::read_to_string(path).map_err(|e| SourceError {
        location: Location {
            path: path.to_owned(),
            line: 1,
            column: 1,
        },
        message: format!("cannot read: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        name: String,
        #[serde(default)]
        users: u32,
    }

    #[test]
    fn unknown_key_is_located_at_its_line_and_column() {
        let text = "name = \"x\"\n\n  usres = 3\n";
        let err = parse::<T>(Path::new("s.toml"), text).unwrap_err();
        assert_eq!((err.location.line, err.location.column), (3, 3));
        assert!(
            err.to_string()
                .starts_with("s.toml:3:3: unknown field `usres`"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_the_line() {
        let err = parse::<T>(Path::new("s.toml"), "name = \"x\"\nusers = \"ten\"\n").unwrap_err();
        assert_eq!(err.location.line, 2);
    }
}

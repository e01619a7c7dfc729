//! EHR profiles: what one EHR supports and how it really treats a write, as a data file
//! (`profiles/*.toml`). The runner writes the way the profile says; the checker treats the
//! transformations it declares as expected, never as corruption. Depends on `source` only.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::source::{self, SourceError};

/// Profiles shipped inside the binary, by name.
const BUILTIN: &[(&str, &str)] = &[("us-core", include_str!("../profiles/us-core.toml"))];

/// One EHR's behaviour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub fhir_version: Option<String>,
    #[serde(default)]
    pub write: Write,
    /// Per resource type: what the EHR does to a write.
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceRules>,
}

/// How writes are made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Write {
    /// The `Prefer` header to send on writes, if any.
    #[serde(default)]
    pub prefer: Option<String>,
    /// Whether the server supports conditional create (`If-None-Exist`).
    #[serde(default = "yes")]
    pub conditional_create: bool,
}

impl Default for Write {
    fn default() -> Self {
        Self {
            prefer: Some("return=representation".into()),
            conditional_create: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// What the EHR does to one resource type on write.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRules {
    /// Top-level elements the EHR drops.
    #[serde(default)]
    pub drops: Vec<String>,
    /// Top-level elements the EHR rewrites (normalises, truncates, remaps).
    #[serde(default)]
    pub rewrites: Vec<String>,
}

/// A profile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("unknown profile `{0}` (shipped: {1}; or give a path to a .toml file)")]
    Unknown(String, String),
}

impl Profile {
    /// A shipped profile by name, or a profile file by path.
    pub fn load(name_or_path: &str) -> Result<Profile, Error> {
        let path = Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "toml") || path.exists() {
            let text = source::read(path)?;
            return Ok(source::parse(path, &text)?);
        }
        let (_, text) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name_or_path)
            .ok_or_else(|| {
                let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                Error::Unknown(name_or_path.to_owned(), names.join(", "))
            })?;
        let shown = format!("profiles/{name_or_path}.toml");
        Ok(source::parse(Path::new(&shown), text)?)
    }

    /// Elements per resource type the checker must not count as differences.
    pub fn expected_changes(&self) -> BTreeMap<String, Vec<String>> {
        self.resources
            .iter()
            .map(|(rt, r)| {
                (
                    rt.clone(),
                    r.drops.iter().chain(&r.rewrites).cloned().collect(),
                )
            })
            .filter(|(_, v): &(String, Vec<String>)| !v.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_loads() {
        for (name, _) in BUILTIN {
            let p = Profile::load(name).unwrap();
            assert_eq!(&p.name, name);
        }
    }

    #[test]
    fn an_unknown_name_lists_the_shipped_ones() {
        let err = Profile::load("cerner-classic").unwrap_err().to_string();
        assert!(err.contains("us-core"), "{err}");
    }

    #[test]
    fn a_bad_key_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(
            &path,
            "name = \"x\"\ndescription = \"d\"\n[write]\npreferr = 1\n",
        )
        .unwrap();
        let err = Profile::load(path.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml:4:1"), "{err}");
        assert!(err.contains("preferr"), "{err}");
    }
}

//! The fixture histories under `fixtures/histories/`: each gives exactly the findings its
//! `*.expected.json` lists, read through `history::Reader` as `fhirsurge check` does.

use std::path::{Path, PathBuf};

use fhirsurge::check::{self, Finding, Options};
use fhirsurge::history::Reader;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Expected {
    kind: check::Kind,
    resource_type: String,
    id: Option<String>,
    identifier: Option<String>,
    evidence: Vec<u64>,
    #[serde(default)]
    detail_contains: Vec<String>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/histories")
}

fn options() -> Options {
    Options {
        held_from_search: Vec::new(),
        expected_changes: Default::default(),
        harness_system_prefix: "urn:fhirsurge:".into(),
    }
}

fn matches(f: &Finding, e: &Expected) -> bool {
    f.kind == e.kind
        && f.resource_type == e.resource_type
        && f.id == e.id
        && f.identifier == e.identifier
        && f.evidence == e.evidence
        && e.detail_contains
            .iter()
            .all(|p| f.detail.contains(p.as_str()))
}

#[test]
fn every_fixture_history_gives_exactly_its_expected_findings() {
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 9, "fixtures missing: {fixtures:?}");
    for path in fixtures {
        let records: Vec<_> = Reader::open(&path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let out = check::check(records, &options());
        let expected_path = path.with_extension("expected.json");
        let text = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let expected: Vec<Expected> = serde_json::from_str(&text).unwrap();
        assert_eq!(
            out.findings.len(),
            expected.len(),
            "{}: {:#?}",
            path.display(),
            out.findings
        );
        for (f, e) in out.findings.iter().zip(&expected) {
            assert!(
                matches(f, e),
                "{}: got {f:#?}\nexpected {e:#?}",
                path.display()
            );
        }
        let total: u64 = out.counts.values().sum();
        assert_eq!(total, expected.len() as u64);
    }
}

#[test]
fn the_truncated_fixture_stops_at_the_cut_line() {
    let path = dir().join("truncated.jsonl");
    let records: Vec<_> = Reader::open(&path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len(), 9);
    let out = check::check(records, &options());
    assert_eq!(out.stats.incomplete, 1);
    assert_eq!(out.stats.writes_info, 2);
}

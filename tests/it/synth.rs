//! The synthetic encounter generator through its public API: tables read from a
//! directory behave like the embedded ones, a broken table names file, line and column,
//! and an encounter goes through `resolve` and `closed` the way the workflow uses them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fhirsurge::synth::{self, CodeTables, Population};
use serde_json::Value;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/codes")
}

/// A copy of the shipped tables in a temporary directory, with `file` edited.
fn tables_with(file: &str, edit: impl Fn(&str) -> String) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shipped()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit must change {file}");
    std::fs::write(&path, edited).unwrap();
    (dir, path)
}

/// `path:line:column` of the first occurrence of `needle` in the file at `path`.
fn location_of(path: &Path, needle: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let at = text.find(needle).unwrap();
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{}:{line}:{column}", path.display())
}

#[test]
fn tables_loaded_from_a_directory_generate_what_the_builtin_ones_do() {
    let from_dir = Population::new(3, "urn:fhirsurge:a", CodeTables::load(&shipped()).unwrap());
    let builtin = Population::new(3, "urn:fhirsurge:a", CodeTables::builtin().unwrap());
    for n in [0, 1, 99, 123_456] {
        assert_eq!(from_dir.encounter(n), builtin.encounter(n));
    }
}

#[test]
fn an_unknown_key_is_located() {
    let (_dir, path) = tables_with("vitals.toml", |t| {
        t.replacen("unit = \"/min\"", "unit = \"/min\"\ncolour = \"red\"", 1)
    });
    let err = CodeTables::load(path.parent().unwrap()).unwrap_err();
    let want = location_of(&path, "colour");
    assert!(
        err.to_string()
            .starts_with(&format!("{want}: unknown field `colour`")),
        "{err}"
    );
}

#[test]
fn an_unknown_medication_is_located_at_the_reference() {
    let (_dir, path) = tables_with("conditions.toml", |t| {
        t.replacen("[\"860975\", \"314076\"]", "[\"860975\", \"999999\"]", 1)
    });
    let err = CodeTables::load(path.parent().unwrap()).unwrap_err();
    let want = location_of(&path, "\"999999\"");
    assert_eq!(
        err.to_string(),
        format!("{want}: unknown medication `999999`")
    );
}

#[test]
fn a_mistyped_code_is_caught_by_its_check_digit() {
    let (_dir, path) = tables_with("conditions.toml", |t| {
        t.replacen("\"44054006\"", "\"44054007\"", 1)
    });
    let err = CodeTables::load(path.parent().unwrap()).unwrap_err();
    let want = location_of(&path, "{ code = \"44054007\"");
    assert_eq!(
        err.to_string(),
        format!("{want}: `44054007` is not a valid SNOMED CT code")
    );
}

#[test]
fn an_inverted_range_is_located_at_its_vital() {
    let (_dir, path) = tables_with("vitals.toml", |t| {
        t.replacen("min = 50\nmax = 120", "min = 120\nmax = 50", 1)
    });
    let err = CodeTables::load(path.parent().unwrap()).unwrap_err();
    let want = location_of(&path, "120\nmax = 50");
    assert_eq!(
        err.to_string(),
        format!("{want}: `min` = 120 is above `max` = 50")
    );
}

#[test]
fn a_missing_table_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = CodeTables::load(dir.path()).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}:1:1: cannot read",
            dir.path().join("vitals.toml").display()
        )),
        "{err}"
    );
}

/// Written in order with server ids standing in for the keys, nothing is left pointing at
/// a placeholder, and the closed encounter keeps its resolved subject.
#[test]
fn an_encounter_resolves_in_write_order_and_closes() {
    let pop = Population::new(11, "urn:fhirsurge:flow", CodeTables::builtin().unwrap());
    let e = pop.encounter(5);
    let mut ids: HashMap<String, String> = HashMap::new();
    for (i, r) in e.resources().enumerate() {
        let mut body = r.body.clone();
        synth::resolve(&mut body, &ids);
        assert!(
            !body.to_string().contains("urn:uuid:"),
            "{} written before what it references",
            r.identifier
        );
        assert!(r.identifier.starts_with("urn:fhirsurge:flow|"));
        ids.insert(r.key.clone(), format!("{}/{}", r.resource_type, 100 + i));
    }
    let mut enc = e.encounter.body.clone();
    synth::resolve(&mut enc, &ids);
    let closed = synth::closed(&enc);
    assert_eq!(closed["status"], "finished");
    assert_eq!(closed["subject"]["reference"], "Patient/100");
    assert!(
        closed["period"]["end"].as_str().unwrap() > closed["period"]["start"].as_str().unwrap()
    );
    let mrn = &e.patient.body["identifier"][0];
    assert_eq!(
        (
            mrn["system"].as_str(),
            mrn["type"]["coding"][0]["code"].as_str()
        ),
        (Some(synth::MRN_SYSTEM), Some("MR"))
    );
    assert!(matches!(&e.patient.body["birthDate"], Value::String(_)));
}

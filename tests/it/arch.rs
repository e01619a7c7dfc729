//! The module graph of DESIGN.md's table, enforced: every `crate::` path in `src/` is an
//! arrow from the file's top-level module to the module it names, and an arrow the table
//! does not allow fails the test. Paths through the crate root's re-exports
//! (`crate::source`, `crate::HARNESS_PREFIX`) count as arrows to the module that defines
//! them. Comments are not arrows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// DESIGN.md's module table: each module and what it may use. `vocab` is the floor every
/// module may stand on; `verdict` and `notify` are in the table before they exist.
const TABLE: &[(&str, &[&str])] = &[
    ("cli", &["*"]),
    (
        "run",
        &[
            "verdict", "report", "check", "probe", "scenario", "fhir", "mock", "fault", "notify",
            "synth", "profile", "history", "metrics",
        ],
    ),
    ("verdict", &["check", "metrics", "scenario"]),
    ("report", &["verdict", "check", "metrics"]),
    ("check", &["history"]),
    ("probe", &["fhir", "profile"]),
    ("scenario", &["profile"]),
    ("fhir", &["history", "metrics"]),
    ("mock", &["profile"]),
    ("fault", &[]),
    ("notify", &["history"]),
    ("synth", &[]),
    ("profile", &[]),
    ("history", &[]),
    ("metrics", &[]),
    ("vocab", &[]),
];

/// Arrows the table does not allow yet, each by the path it may use and why. The test
/// fails when one is no longer used, so the list only shrinks.
const PENDING: &[(&str, &str, &str)] = &[
    (
        "scenario",
        "fhir::auth",
        "auth settings types; move to vocab once client-secret auth (i18) has landed",
    ),
    (
        "scenario",
        "fhir::Tls",
        "TLS settings type; moves with the auth settings",
    ),
    (
        "scenario",
        "fhir::RetryPolicy",
        "retry settings type; moves with the auth settings",
    ),
    (
        "scenario",
        "fhir::DEFAULT_MAX_BODY",
        "the body cap's default; moves with the target settings",
    ),
    (
        "scenario",
        "fhir::MAX_RETRY_AFTER",
        "the Retry-After cap's default; moves with the retry settings",
    ),
    (
        "scenario",
        "notify::Criteria",
        "subscription criteria are checked with the receiver's own parser; move it to vocab",
    ),
];

/// Whether `from` may use `to`.
fn allowed(from: &str, to: &str) -> bool {
    if from == to || to == "vocab" {
        return true;
    }
    TABLE
        .iter()
        .find(|(m, _)| *m == from)
        .is_some_and(|(_, may)| may.contains(&"*") || may.contains(&to))
}

/// The top-level module a file under `src/` belongs to (`src/mock/emulate/gate.rs` →
/// `mock`); `None` for the crate root files.
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The crate root's re-exports: `pub use vocab::{HARNESS_PREFIX, source};` maps both
/// names to `vocab`.
fn root_aliases(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in code_lines(lib) {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.split(" as ").last().unwrap_or(item).trim();
            let name = name.split("::").next().unwrap_or(name);
            if !name.is_empty() {
                out.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    out
}

/// The source without comments, line by line.
fn code_lines(source: &str) -> impl Iterator<Item = &str> {
    source.lines().map(|l| l.split("//").next().unwrap_or(""))
}

/// Every `crate::` path in `source`, as `(first segment, path)`; a group
/// `crate::{a::X, b}` yields one path per member.
fn crate_paths(source: &str) -> Vec<(String, String)> {
    let code: String = code_lines(source).collect::<Vec<_>>().join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in split_top(&group[..end]) {
                out.push(segment_and_path(&member));
            }
        } else {
            out.push(segment_and_path(rest));
        }
    }
    out.retain(|(first, _)| !first.is_empty());
    out
}

/// Members of a `{…}` group split at top-level commas (nested groups kept whole).
fn split_top(group: &str) -> Vec<String> {
    let (mut out, mut depth, mut current) = (Vec::new(), 0, String::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter().map(|m| m.trim().to_owned()).collect()
}

fn segment_and_path(text: &str) -> (String, String) {
    let path: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let first = path.split("::").next().unwrap_or("").to_owned();
    (first, path)
}

/// One arrow the table does not allow.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    from: String,
    to: String,
    path: String,
}

/// Checks `files` (path under `src/`, source) against the table. Returns the arrows the
/// table refuses and the pending exceptions that were used.
fn violations(
    files: &[(PathBuf, String)],
    aliases: &BTreeMap<String, String>,
) -> (Vec<Violation>, BTreeSet<usize>) {
    let mut bad = Vec::new();
    let mut used = BTreeSet::new();
    for (file, source) in files {
        let Some(from) = module_of(file) else {
            continue;
        };
        for (first, path) in crate_paths(source) {
            let to = aliases.get(&first).cloned().unwrap_or(first);
            if allowed(&from, &to) {
                continue;
            }
            let pending = PENDING
                .iter()
                .position(|(f, prefix, _)| *f == from && path.starts_with(prefix));
            match pending {
                Some(i) => {
                    used.insert(i);
                }
                None => bad.push(Violation {
                    file: file.display().to_string(),
                    from: from.clone(),
                    to,
                    path,
                }),
            }
        }
    }
    bad.sort();
    bad.dedup();
    (bad, used)
}

fn sources(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.strip_prefix(root).unwrap().to_path_buf(), text));
            }
        }
    }
    out
}

#[test]
fn every_arrow_in_src_is_one_the_design_table_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&src);
    assert!(files.len() > 50, "read {} files from {src:?}", files.len());
    let aliases = root_aliases(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let (bad, used) = violations(&files, &aliases);
    let lines: Vec<String> = bad
        .iter()
        .map(|v| format!("{}: {} → {} (`crate::{}`)", v.file, v.from, v.to, v.path))
        .collect();
    assert!(
        bad.is_empty(),
        "arrows DESIGN.md's table does not allow:\n{}",
        lines.join("\n")
    );
    let stale: Vec<_> = (0..PENDING.len()).filter(|i| !used.contains(i)).collect();
    assert!(
        stale.is_empty(),
        "pending exceptions no longer used (remove them): {:?}",
        stale.iter().map(|&i| PENDING[i]).collect::<Vec<_>>()
    );
}

#[test]
fn an_arrow_against_the_table_is_caught_in_every_form() {
    let aliases = root_aliases("pub mod vocab;\npub use vocab::{HARNESS_PREFIX, source};\n");
    assert_eq!(aliases.get("source").map(String::as_str), Some("vocab"));
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_owned());
    let files = vec![
        // Allowed: down the table, the floor, the root's re-exports, comments.
        file(
            "mock/store.rs",
            "use crate::profile::Profile;\nuse crate::vocab::seed;\n\
             use crate::source::SourceError;\n// uses crate::run::execute in words only\n",
        ),
        // Refused: a plain use, a group member, an inline path.
        file("fault/proxy/conn.rs", "use crate::mock::Ehr;\n"),
        file(
            "fhir/mod.rs",
            "use crate::{history::Record, fault::{Ledger, Spec}};\n",
        ),
        file(
            "check/state.rs",
            "fn f() { let _ = crate::report::render(); }\n",
        ),
        // The crate root and `fhirsurge::` paths in main are not module arrows.
        file("main.rs", "fhirsurge::cli::run();\n"),
    ];
    let (bad, _) = violations(&files, &aliases);
    let arrows: Vec<(&str, &str)> = bad
        .iter()
        .map(|v| (v.from.as_str(), v.to.as_str()))
        .collect();
    assert_eq!(
        arrows,
        vec![("check", "report"), ("fault", "mock"), ("fhir", "fault")]
    );
    assert!(bad[2].path.starts_with("fault::"), "{:?}", bad[2]);
}

#[test]
fn a_pending_exception_covers_only_its_own_path() {
    let files = vec![
        (
            PathBuf::from("scenario/auth.rs"),
            "use crate::fhir::auth::Config;\n".to_owned(),
        ),
        (
            PathBuf::from("scenario/mod.rs"),
            "use crate::fhir::Client;\n".to_owned(),
        ),
    ];
    let (bad, used) = violations(&files, &BTreeMap::new());
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].path, "fhir::Client");
    assert!(used.contains(&0));
}

/// What a module below `cli` may not say: process exit codes are decided at the edge
/// (`cli::exit`), from the modules' typed errors.
fn knows_exit_codes(source: &str) -> bool {
    code_lines(source).any(|l| {
        l.contains("ExitCode") || l.contains("fn exit_code") || l.contains("process::exit")
    })
}

#[test]
fn only_cli_knows_process_exit_codes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let knowing: Vec<String> = sources(&src)
        .iter()
        .filter(|(file, _)| module_of(file).is_some_and(|m| m != "cli"))
        .filter(|(_, text)| knows_exit_codes(text))
        .map(|(file, _)| file.display().to_string())
        .collect();
    assert!(knowing.is_empty(), "exit codes outside cli: {knowing:?}");
    assert!(knows_exit_codes(
        "impl E { pub fn exit_code(&self) -> u8 { 2 } }"
    ));
    assert!(!knows_exit_codes(
        "// the caller picks the ExitCode\nlet x = 1;"
    ));
}

/// The modules a header's "Uses …" sentence names in backticks (`fhir::tls` names `fhir`),
/// or `None` when the header has no such sentence.
fn header_uses(source: &str) -> Option<BTreeSet<String>> {
    let header: Vec<&str> = source
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(str::trim)
        .collect();
    let header = header.join(" ");
    let at = header.find("Uses ").or_else(|| header.find("uses "))?;
    let sentence = &header[at..];
    let sentence = sentence.split(". ").next().unwrap_or(sentence);
    let modules = TABLE.iter().map(|(m, _)| *m).collect::<BTreeSet<_>>();
    Some(
        sentence
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|quoted| quoted.split("::").next().unwrap_or(quoted))
            .filter(|m| modules.contains(m))
            .map(str::to_owned)
            .collect(),
    )
}

/// A top-level module's own file: `src/m/mod.rs` or `src/m.rs`.
fn header_file(src: &Path, module: &str) -> Option<PathBuf> {
    [
        src.join(module).join("mod.rs"),
        src.join(format!("{module}.rs")),
    ]
    .into_iter()
    .find(|p| p.exists())
}

#[test]
fn every_module_header_names_exactly_the_modules_it_uses() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&src);
    let aliases = root_aliases(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, source) in &files {
        let Some(from) = module_of(file) else {
            continue;
        };
        for (first, _) in crate_paths(source) {
            let to = aliases.get(&first).cloned().unwrap_or(first);
            if to != from {
                used.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    let mut wrong = Vec::new();
    // `cli` and `run` use everything below them, and say so.
    for (module, _) in TABLE.iter().filter(|(m, _)| !matches!(*m, "cli" | "run")) {
        let Some(path) = header_file(&src, module) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(named) = header_uses(&text) else {
            wrong.push(format!("{module}: its header has no \"Uses …\" sentence"));
            continue;
        };
        let real = used.get(*module).cloned().unwrap_or_default();
        if named != real {
            wrong.push(format!(
                "{module}: header names {named:?}, code uses {real:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_header_names_the_modules_of_its_uses_sentence_only() {
    let text = "//! The thing. It is not `run`. Uses `history` (records), `fhir::tls` and\n\
                //! `vocab`; nothing else.\n\nuse crate::history;\n";
    let named = header_uses(text).unwrap();
    assert_eq!(
        named.into_iter().collect::<Vec<_>>(),
        vec!["fhir", "history", "vocab"]
    );
    assert!(header_uses("//! No dependencies are stated here.\n").is_none());
}

//! Property tests of the scenario parser: the smoke scenario with documented keys
//! switched on, values replaced by hostile ones, lines dropped, or any text at all,
//! parses or is refused with an error located in the file — never a panic. A value of
//! the wrong shape is refused at its line or by its key's name.

use std::path::Path;

use proptest::prelude::*;

use super::*;

const SMOKE: &str = include_str!("../../scenarios/smoke.toml");
const PATH: &str = "scenarios/smoke.toml";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Values that break something: wrong types, out of range, absurd durations, control
/// characters, huge numbers.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "-1",
            "0",
            "1e400",
            "18446744073709551616",
            "\"\"",
            "\"0s\"",
            "\"-5s\"",
            "\"1000000000000h\"",
            "\"\\u0000\"",
            "[]",
            "[[]]",
            "{}",
            "true",
            "nan",
            "inf",
            "\"mock\"",
            "\"http://[::1\"",
            "\"10/s,1m;\"",
            "\"0,0s\"",
            "4294967296",
            "0.0000001",
            "\"ftp://x/\"",
            "{ step = \"nope\" }",
        ])
        .prop_map(str::to_owned),
        ".{0,16}".prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

/// A line `key = value` (commented or not): its key.
fn key_of(line: &str) -> Option<&str> {
    let l = line.trim_start_matches('#').trim();
    let (key, _) = l.split_once(" = ")?;
    let key = key.trim();
    (!key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
    .then_some(key)
}

/// Smoke with the commented `key = value` lines picked by `on` switched on.
fn switched_on(on: &[bool]) -> Vec<String> {
    SMOKE
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let documented = line.starts_with("# ") && key_of(line).is_some();
            if documented && on.get(i).copied().unwrap_or(false) {
                line.trim_start_matches("# ")
                    .split(" #")
                    .next()
                    .unwrap_or("")
                    .to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect()
}

/// Parses; on an error, checks it is located within the file.
fn parse_located(text: &str) -> Result<(), (usize, String)> {
    match Scenario::from_str(text, Path::new(PATH)) {
        Ok(_) => Ok(()),
        Err(Error::Source(e)) => {
            let lines = text.lines().count() + 1;
            assert_eq!(e.location.path, Path::new(PATH), "{e}");
            assert!(
                (1..=lines).contains(&e.location.line),
                "{e} (of {lines} lines)"
            );
            assert!(!e.message.trim().is_empty(), "{e}");
            Err((e.location.line, e.message))
        }
        Err(e) => panic!("an error from a file that names no place: {e}"),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn documented_keys_with_hostile_values_are_parsed_or_located(
        on in prop::collection::vec(prop::bool::weighted(0.05), 140),
        pick in any::<prop::sample::Index>(),
        value in hostile(),
    ) {
        let mut lines = switched_on(&on);
        let valid_before = parse_located(&lines.join("\n")).is_ok();
        let keyed: Vec<usize> = (0..lines.len())
            .filter(|&i| !lines[i].starts_with('#') && key_of(&lines[i]).is_some())
            .collect();
        let at = keyed[pick.index(keyed.len())];
        let key = key_of(&lines[at]).unwrap_or_default().to_owned();
        lines[at] = format!("{key} = {value}");
        let text = lines.join("\n");
        if let Err((line, message)) = parse_located(&text) {
            // In a file valid before, a wrong shape for the key just written is refused
            // at its line, or by its name.
            if valid_before && (value == "{}" || value == "[[]]") {
                prop_assert!(line == at + 1 || message.contains(&key),
                    "`{key} = {value}` at line {}: {line}: {message}", at + 1);
            }
        }
    }

    #[test]
    fn dropped_lines_are_parsed_or_located(
        on in prop::collection::vec(any::<bool>(), 140),
        drop in prop::collection::vec(any::<bool>(), 140),
    ) {
        let lines: Vec<String> = switched_on(&on)
            .into_iter()
            .zip(drop.iter().chain(std::iter::repeat(&false)))
            .filter(|(_, d)| !**d)
            .map(|(l, _)| l)
            .collect();
        let _ = parse_located(&lines.join("\n"));
    }

    #[test]
    fn any_text_is_parsed_or_located(text in "(.|\n){0,300}") {
        let _ = parse_located(&text);
    }

    #[test]
    fn any_text_after_a_valid_head_is_parsed_or_located(tail in "([a-z_\\[\\]=\"0-9. \n{},]){0,200}") {
        let _ = parse_located(&format!("{SMOKE}\n{tail}"));
    }
}

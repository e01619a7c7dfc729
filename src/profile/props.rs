//! Property tests of the profile and overlay parsers: a shipped profile with one value
//! replaced or lines dropped, and tenant overlays built from its keys with hostile
//! values, parse or are refused with an error located in the base or the overlay file —
//! never a panic.

use std::path::PathBuf;

use proptest::prelude::*;

use super::layers::Text;
use super::{BUILTIN, Error, build};

const OVERLAY: &str = "site.toml";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

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
            "\"99999999999999d\"",
            "[]",
            "[[]]",
            "{}",
            "true",
            "\"{host\"",
            "\"a..b\"",
            "[\"\"]",
            "{ source = \"NOPE\" }",
            "\"x[\"",
            "999",
            "4294967296",
        ])
        .prop_map(str::to_owned),
        ".{0,12}".prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn shipped() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop::sample::select(BUILTIN.to_vec())
}

fn text(path: &str, text: String) -> Text {
    Text {
        path: PathBuf::from(path),
        text,
    }
}

fn is_value_line(line: &str) -> bool {
    !line.starts_with('#') && !line.starts_with('[') && line.contains(" = ")
}

/// Builds; on an error, checks it is located within one of the two files.
fn build_located(base: Text, overlay: Option<Text>) {
    let files: Vec<(PathBuf, usize)> = std::iter::once(&base)
        .chain(overlay.as_ref())
        .map(|t| (t.path.clone(), t.text.lines().count() + 1))
        .collect();
    match build(base, overlay) {
        Ok(_) => {}
        Err(Error::Source(e)) => {
            let lines = files.iter().find(|(p, _)| p == &e.location.path);
            let Some((_, lines)) = lines else {
                panic!("error located in no given file: {e}");
            };
            assert!((1..=*lines).contains(&e.location.line), "{e}");
            assert!(!e.message.trim().is_empty(), "{e}");
        }
        Err(e) => panic!("an error that names no place: {e}"),
    }
}

/// A line replaced by `key = value`, keeping its key.
fn replaced(line: &str, value: &str) -> String {
    let key = line.split(" = ").next().unwrap_or_default();
    format!("{key} = {value}")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_profile_with_a_hostile_value_is_parsed_or_located(
        (name, body) in shipped(),
        pick in any::<prop::sample::Index>(),
        value in hostile(),
    ) {
        let mut lines: Vec<String> = body.lines().map(str::to_owned).collect();
        let keyed: Vec<usize> = (0..lines.len()).filter(|&i| is_value_line(&lines[i])).collect();
        let at = keyed[pick.index(keyed.len())];
        lines[at] = replaced(&lines[at], &value);
        build_located(text(&format!("profiles/{name}.toml"), lines.join("\n")), None);
    }

    #[test]
    fn a_profile_with_lines_dropped_is_parsed_or_located(
        (name, body) in shipped(),
        drop in prop::collection::vec(prop::bool::weighted(0.05), 700),
    ) {
        let kept: Vec<&str> = body
            .lines()
            .zip(drop.iter().chain(std::iter::repeat(&false)))
            .filter(|(_, d)| !**d)
            .map(|(l, _)| l)
            .collect();
        build_located(text(&format!("profiles/{name}.toml"), kept.join("\n")), None);
    }

    /// An overlay made of the base's own tables with some of their keys, one of them
    /// given a hostile value.
    #[test]
    fn an_overlay_with_hostile_values_is_parsed_or_located(
        (name, body) in shipped(),
        keep in prop::collection::vec(prop::bool::weighted(0.1), 700),
        value in hostile(),
        junk in proptest::option::of("[a-z_]{1,8} = [0-9]{1,3}"),
    ) {
        let mut overlay = vec![format!("base = {name:?}")];
        let mut replaced_one = false;
        for (line, k) in body.lines().zip(keep.iter().chain(std::iter::repeat(&false))) {
            if line.starts_with('[') {
                overlay.push(line.to_owned());
            } else if *k && is_value_line(line) {
                overlay.push(if replaced_one { line.to_owned() } else { replaced(line, &value) });
                replaced_one = true;
            }
        }
        overlay.extend(junk);
        let base = text(&format!("profiles/{name}.toml"), body.to_owned());
        build_located(base, Some(text(OVERLAY, overlay.join("\n"))));
    }

    #[test]
    fn any_overlay_text_is_parsed_or_located(
        (name, body) in shipped(),
        overlay in "(.|\n){0,200}",
    ) {
        let base = text(&format!("profiles/{name}.toml"), body.to_owned());
        build_located(base, Some(text(OVERLAY, overlay)));
    }
}

//! Unit tests of the profile model's pure parts: element paths, URL placeholders, search
//! requirements, response bodies, maintenance windows, and the overlay merge itself.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::access::placeholders;
use super::layers::{Locator, Text};
use super::*;

#[test]
fn shipped_names_are_the_embedded_ones() {
    let embedded: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    assert_eq!(embedded, shipped());
}

#[test]
fn element_paths_parse_and_name_their_top_level_element() {
    let cases = [
        ("note", "note"),
        ("note.text", "note"),
        ("code.coding.display", "code"),
        ("identifier[0]", "identifier"),
        ("identifier[12].value", "identifier"),
        ("value[x]", "value[x]"),
        ("context.period.end", "context"),
    ];
    for (text, top) in cases {
        let p = ElementPath::parse(text.into()).unwrap();
        assert_eq!(p.top_level(), top, "{text}");
        assert_eq!(p.as_str(), text);
    }
}

#[test]
fn malformed_element_paths_are_refused() {
    for bad in [
        "",
        ".note",
        "note.",
        "note..text",
        "1note",
        "note[",
        "note[]",
        "note[a]",
        "no te",
        "code:text",
    ] {
        assert!(ElementPath::parse(bad.into()).is_err(), "{bad:?} accepted");
    }
}

proptest! {
    #[test]
    fn any_dotted_path_of_names_parses_to_its_first_name(
        names in proptest::collection::vec("[a-z][a-zA-Z0-9]{0,8}", 1..5),
        index in proptest::option::of(0u32..50),
    ) {
        let mut text = names.join(".");
        if let Some(i) = index {
            text = format!("{}[{i}]{}", names[0], &text[names[0].len()..]);
        }
        let p = ElementPath::parse(text.clone()).unwrap();
        prop_assert_eq!(p.top_level(), names[0].as_str());
    }
}

#[test]
fn url_placeholders_are_named_and_balanced() {
    assert_eq!(
        placeholders("https://{host}/{instance}/api/").unwrap(),
        ["host", "instance"]
    );
    assert!(placeholders("https://x/").unwrap().is_empty());
    for bad in [
        "https://{host/",
        "https://host}/",
        "https://{}/",
        "https://{a b}/",
    ] {
        assert!(placeholders(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_search_meets_required_parameters_by_any_listed_set() {
    let rules = SearchRules {
        required_any: vec![
            vec!["patient".into(), "category".into()],
            vec!["patient".into(), "code".into()],
        ],
        missing_error: Some("required_param_missing".into()),
        ..SearchRules::default()
    };
    assert!(rules.satisfied_by(["patient", "category", "date"]));
    assert!(rules.satisfied_by(["code", "patient:Patient"]));
    assert!(!rules.satisfied_by(["patient"]));
    assert!(!rules.satisfied_by(["category", "code"]));
    assert!(SearchRules::default().satisfied_by([]));
}

#[test]
fn the_response_body_follows_prefer_only_when_honoured() {
    let epic = Profile::load("epic").unwrap();
    assert_eq!(epic.write.response_body(None), Body::Empty);
    assert_eq!(
        epic.write.response_body(Some("return=representation")),
        Body::Representation
    );
    let oracle = Profile::load("oracle-health").unwrap();
    assert_eq!(
        oracle.write.response_body(Some("return=representation")),
        Body::Empty
    );
    let us = Profile::load("us-core").unwrap();
    assert_eq!(us.write.response_body(Some("return=minimal")), Body::Empty);
    assert_eq!(us.write.response_body(None), Body::Representation);
}

fn window(days: Vec<chrono::Weekday>, start: &str, hours: u64) -> Maintenance {
    Maintenance {
        name: "w".into(),
        days,
        start: chrono::NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
        utc_offset: "-06:00".parse().unwrap(),
        effect: Effect::Down {
            duration: std::time::Duration::from_secs(hours * 3600),
            error: "down".into(),
        },
        source: vec![],
    }
}

#[test]
fn a_maintenance_window_covers_its_local_time_range_only() {
    // Sunday 2026-03-01 20:00 at -06:00 is 2026-03-02 02:00 UTC.
    let w = window(vec![chrono::Weekday::Sun], "20:00", 1);
    let at = |d, h, m| Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap();
    assert!(!w.covers(at(2, 1, 59)));
    assert!(w.covers(at(2, 2, 0)));
    assert!(w.covers(at(2, 2, 59)));
    assert!(!w.covers(at(2, 3, 0)));
    assert!(
        !w.covers(at(9, 1, 0)),
        "a Sunday evening a week later, before the window"
    );
    assert!(w.covers(at(9, 2, 30)));
}

#[test]
fn a_window_past_midnight_covers_the_next_morning() {
    let w = window(vec![chrono::Weekday::Sat], "23:00", 3);
    // Saturday 2026-03-07 23:00 at -06:00 = Sunday 05:00 UTC; ends Sunday 08:00 UTC.
    assert!(w.covers(Utc.with_ymd_and_hms(2026, 3, 8, 7, 59, 0).unwrap()));
    assert!(!w.covers(Utc.with_ymd_and_hms(2026, 3, 8, 8, 0, 0).unwrap()));
}

#[test]
fn a_wipe_is_an_instant_not_a_window() {
    let epic = Profile::load("epic").unwrap();
    assert_eq!(epic.maintenance[0].effect, Effect::Wipe);
    let sunday_night = Utc.with_ymd_and_hms(2026, 3, 2, 2, 30, 0).unwrap();
    assert!(epic.maintenance_at(sunday_night).is_none());
}

#[derive(Debug, serde::Deserialize)]
struct Merged {
    a: toml::Value,
    t: toml::Value,
}

fn merged(base: &str, overlay: &str) -> Result<Merged, crate::source::SourceError> {
    let text = |p: &str, t: &str| Text {
        path: PathBuf::from(p),
        text: t.to_owned(),
    };
    Locator::new(text("b.toml", base), Some(text("o.toml", overlay))).deserialize()
}

#[test]
fn an_overlay_replaces_values_and_arrays_and_merges_tables() {
    let base = "a = [1, 2]\n[t]\nx = 1\ny = { p = 1, q = 2 }\n";
    let overlay = "base = \"b\"\na = [3]\n[t.y]\nq = 9\n";
    let m = merged(base, overlay).unwrap();
    assert_eq!(m.a, toml::Value::Array(vec![toml::Value::Integer(3)]));
    let t = m.t.as_table().unwrap();
    assert_eq!(t["x"].as_integer(), Some(1));
    assert_eq!(t["y"]["p"].as_integer(), Some(1));
    assert_eq!(t["y"]["q"].as_integer(), Some(9));
}

#[test]
fn merge_errors_point_into_the_file_that_holds_the_value() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        a: u32,
        b: u32,
    }
    let text = |p: &str, t: &str| Text {
        path: PathBuf::from(p),
        text: t.to_owned(),
    };
    let locate = |base: &str, overlay: &str| {
        Locator::new(text("b.toml", base), Some(text("o.toml", overlay)))
            .deserialize::<Strict>()
            .unwrap_err()
            .to_string()
    };
    let e = locate("a = 1\nb = 2\n", "\nb = \"two\"\n");
    assert!(e.starts_with("o.toml:2:5:"), "{e}");
    let e = locate("a = 1\nb = \"x\"\n", "a = 3\n");
    assert!(e.starts_with("b.toml:2:5:"), "{e}");
    let e = locate("a = 1\nb = 2\n", "# site\n\n  c = 3\n");
    assert!(
        e.starts_with("o.toml:3:3:") && e.contains("unknown field `c`"),
        "{e}"
    );
}

//! `run --store-bodies`: without it no body is kept (`bodies_stored: false`, no bodies
//! file); with it every answer's body is in `bodies.jsonl.zst`, credentials redacted (the
//! token endpoint's answer included), and every output says so at its top.

use std::io::BufRead;
use std::path::Path;

use fhirsurge::history::bodies;
use fhirsurge::run::{self, Bodies, Options};
use fhirsurge::scenario::Scenario;

use crate::run::assert_valid_report;

/// The shipped client-secret SMART scenario, its plan shortened to seconds.
fn smart_scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smart-secret-surge.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let shipped = r#"test_plan = "100,5s;100,40s;0,0s""#;
    assert!(text.contains(shipped), "the plan changed: update this test");
    let text = text.replace(shipped, r#"test_plan = "3,1s;3,2s;0,0s""#);
    Scenario::from_str(&text, &path).unwrap()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    let file = std::fs::File::open(path).unwrap();
    let decoded = zstd::stream::read::Decoder::new(file).unwrap();
    std::io::BufReader::new(decoded)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_bodies_are_redacted_and_every_output_says_so_first() {
    let out = tempfile::tempdir().unwrap();
    let mut options = Options::new(out.path().to_owned());
    options.bodies = Bodies::Store;
    let outcome = run::execute(&smart_scenario(), &options).await.unwrap();
    let dir = &outcome.dir;
    assert_valid_report(&dir.join("report.json"));
    assert!(outcome.report.bodies_stored);
    let stored = lines(&dir.join(bodies::FILE));
    let with_body = stored
        .iter()
        .filter(|l| l["body"]["resourceType"].is_string())
        .count();
    assert!(
        with_body > 10,
        "{} lines, {with_body} with a resource",
        stored.len()
    );
    let tokens: Vec<_> = stored
        .iter()
        .filter(|l| l["body"].get("access_token").is_some())
        .collect();
    assert!(
        !tokens.is_empty(),
        "the token endpoint's answers are stored"
    );
    for t in &tokens {
        assert_eq!(t["body"]["access_token"], bodies::REDACTED, "{t}");
    }
    let raw = String::from_utf8(
        zstd::decode_all(std::fs::File::open(dir.join(bodies::FILE)).unwrap()).unwrap(),
    )
    .unwrap();
    let secret = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/keys/TEST-ONLY-client-secret"),
    )
    .unwrap();
    assert!(
        !raw.contains(secret.trim()),
        "the client secret is not stored"
    );
    assert!(!raw.contains("eyJ"), "no JWT (an access token) is stored");
    let warning = fhirsurge::report::BODIES_WARNING;
    assert!(outcome.report.table().starts_with(warning));
    for (file, top) in [("summary.md", 0), ("junit.xml", 1), ("report.html", 0)] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let head: String = text.lines().skip(top).take(1).collect();
        let head = if file == "report.html" {
            text.split("<header>").next().unwrap().to_owned()
        } else {
            head
        };
        assert!(
            head.contains("response bodies were stored"),
            "{file}: {head}"
        );
        assert!(head.contains("PHI"), "{file}: {head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_no_body_is_stored() {
    let outcome = crate::run::run(&crate::run::scenario("")).await;
    assert!(!outcome.dir.join(bodies::FILE).exists());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(outcome.dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["bodies_stored"], false);
    let summary = std::fs::read_to_string(outcome.dir.join("summary.md")).unwrap();
    assert!(!summary.contains("bodies were stored"));
}

/// Through the binary: the flag is taken, and the terminal summary opens with the warning.
#[test]
fn the_flag_through_the_binary_warns_first_on_the_terminal() {
    let out = tempfile::tempdir().unwrap();
    let done = std::process::Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
        .args([
            "run",
            "scenarios/smoke.toml",
            "--duration",
            "1s",
            "--users",
            "1",
        ])
        .arg("--out")
        .arg(out.path())
        .arg("--store-bodies")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(matches!(done.status.code(), Some(0 | 1)), "{stderr}");
    // goose's own launch lines come first on stdout; the summary begins with the warning.
    let lines_out: Vec<&str> = stdout.lines().collect();
    let top = lines_out
        .iter()
        .position(|l| l.starts_with("fhirsurge ") && l.contains(" · scenario "))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    assert!(top > 0, "{stdout}");
    assert_eq!(
        lines_out[top - 1],
        fhirsurge::report::BODIES_WARNING,
        "{stdout}"
    );
    let run_dir = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap();
    assert!(!lines(&run_dir.join(bodies::FILE)).is_empty());
}

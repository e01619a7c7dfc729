//! Unit tests of scenario parsing and validation: the shipped scenarios load, and bad
//! input is refused with file, line, column and key.

use std::path::Path;

use super::*;

const SMOKE: &str = r#"
name = "t"
seed = 3
[target]
url = "mock"
[load]
model = "closed"
users = 4
duration = "2s"
"#;

fn parse(text: &str) -> Result<Scenario, Error> {
    Scenario::from_str(text, Path::new("s.toml"))
}

fn located(text: &str) -> (usize, usize, String) {
    match parse(text).unwrap_err() {
        Error::Source(e) => (e.location.line, e.location.column, e.message),
        e => panic!("not located: {e}"),
    }
}

#[test]
fn a_minimal_scenario_gets_the_defaults() {
    let s = parse(SMOKE).unwrap();
    assert_eq!(s.target, Target::Mock);
    assert_eq!(s.load.duration(), Duration::from_secs(2));
    assert_eq!(s.workflow.len(), Step::ALL.len());
    assert_eq!(s.retry.max_attempts, 1);
    assert_eq!(s.readback.concurrency, 32);
    assert_eq!(s.slo.max_findings("lost_write"), 0);
}

#[test]
fn an_unknown_key_is_located() {
    let text = SMOKE.replace("users = 4", "usres = 4");
    let (line, col, msg) = located(&text);
    assert_eq!((line, col), (8, 1));
    assert!(msg.contains("usres"), "{msg}");
}

#[test]
fn a_bad_duration_and_a_wrong_type_are_located() {
    let (line, _, msg) = located(&SMOKE.replace("\"2s\"", "\"2 parsecs\""));
    assert_eq!(line, 9, "{msg}");
    let (line, _, _) = located(&SMOKE.replace("users = 4", "users = \"four\""));
    assert_eq!(line, 8);
}

#[test]
fn checks_after_parsing_are_located_at_their_key() {
    let (line, col, msg) = located(&SMOKE.replace("users = 4", "users = 0"));
    assert_eq!((line, col), (8, 9), "{msg}");
    assert!(msg.starts_with("load.users"), "{msg}");
    let (line, _, msg) = located(&SMOKE.replace("\"mock\"", "\"ftp://x\""));
    assert_eq!(line, 5, "{msg}");
    let text = format!("{SMOKE}[[faults]]\nkind = \"ack_and_drop\"\nprobability = 1.5\n");
    let (line, _, msg) = located(&text);
    assert_eq!(line, 12, "{msg}");
    assert!(msg.contains("probability"), "{msg}");
    let text = format!("{SMOKE}[slo]\nfindings = {{ lost_writes = 0 }}\n");
    let (line, col, msg) = located(&text);
    assert_eq!((line, col), (11, 14), "{msg}");
    assert!(msg.contains("lost_writes"), "{msg}");
}

#[test]
fn a_missing_load_key_points_at_the_load_table() {
    let (line, _, msg) = located(&SMOKE.replace("duration = \"2s\"\n", ""));
    assert_eq!(line, 6, "{msg}");
    assert!(msg.contains("duration"), "{msg}");
}

#[test]
fn plans_open_model_and_workflow() {
    let text = SMOKE.replace(
        "users = 4\nduration = \"2s\"",
        "test_plan = \"10,5s;50,10s;0,0s\"",
    );
    let s = parse(&text).unwrap();
    assert_eq!(s.load.duration(), Duration::from_secs(15));
    assert_eq!(s.load.peak_users(), 50);
    let text = SMOKE.replace("model = \"closed\"", "model = \"open\"\nrate = 20.0");
    assert!(matches!(parse(&text).unwrap().load, Load::Open { rate, .. } if rate.peak() == 20.0));
    let text = format!(
        "{SMOKE}workflow = [{{ step = \"admit\" }}, {{ step = \"read_back\", weight = 2 }}]\n"
    );
    // `workflow` after a table belongs to it: put it at the top instead.
    assert!(parse(&text).is_err());
    let text = format!(
        "workflow = [{{ step = \"admit\" }}, {{ step = \"read_back\", weight = 2 }}]\n{SMOKE}"
    );
    let s = parse(&text).unwrap();
    assert_eq!(s.workflow, vec![(Step::Admit, 1), (Step::ReadBack, 2)]);
}

#[test]
fn flags_override_the_file() {
    let mut s = parse(&SMOKE.replace(
        "users = 4\nduration = \"2s\"",
        "test_plan = \"10,5s;50,10s\"",
    ))
    .unwrap();
    s.apply(&Overrides {
        target: Some(Target::parse("http://127.0.0.1:9/fhir").unwrap()),
        seed: Some(9),
        duration: Some(Duration::from_secs(3)),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(s.seed, 9);
    assert_eq!(
        s.target,
        Target::Url(Url::parse("http://127.0.0.1:9/fhir/").unwrap())
    );
    assert_eq!(s.load.duration(), Duration::from_secs(3));
    assert_eq!(s.load.peak_users(), 50);
    let bad = s.apply(&Overrides {
        duration: Some(Duration::ZERO),
        ..Overrides::default()
    });
    assert!(matches!(bad, Err(Error::ZeroDuration)), "{bad:?}");
    assert_eq!(s.load.duration(), Duration::from_secs(3));
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 2);
}

#[test]
fn a_token_lifetime_needs_the_mock_and_smart_auth() {
    let smart = "[auth]\nkind = \"smart_backend\"\nclient_id_env = \"A\"\n\
                 private_key_env = \"B\"\nkid = \"k\"\n";
    let with = |url: &str, extra: &str, auth: &str| {
        let text = SMOKE.replace("url = \"mock\"", &format!("url = \"{url}\"\n{extra}"));
        parse(&format!("{text}\n{auth}"))
    };
    let ok = with("mock", "token_lifetime = \"3s\"", smart).unwrap();
    assert_eq!(ok.token_lifetime, Some(Duration::from_secs(3)));
    for (url, extra, auth) in [
        ("https://ehr.test/fhir/", "token_lifetime = \"3s\"", smart),
        ("mock", "token_lifetime = \"3s\"", ""),
        ("mock", "token_lifetime = \"500ms\"", smart),
    ] {
        let err = with(url, extra, auth).unwrap_err().to_string();
        assert!(err.contains("target.token_lifetime"), "{err}");
    }
}

#[test]
fn insecure_or_a_ca_from_the_command_line_replaces_the_tls_section() {
    let mut s = parse(&format!("{SMOKE}\n[tls]\nca_cert = \"/etc/ca.pem\"\n")).unwrap();
    s.apply(&Overrides {
        tls: Some(crate::fhir::Tls::Insecure),
        ..Overrides::default()
    })
    .unwrap();
    assert!(s.tls.is_insecure());
}

#[test]
fn open_model_rate_plans_and_pool_caps() {
    let open = |load: &str| {
        format!("name = \"t\"\n[target]\nurl = \"mock\"\n[load]\nmodel = \"open\"\n{load}\n")
    };
    let s = parse(&open(
        "rate = \"10/s,2s;10/s,3s\"\nusers = 2\nmax_users = 8",
    ))
    .unwrap();
    assert_eq!(s.load.duration(), Duration::from_secs(5));
    assert_eq!(s.load.peak_users(), 8);
    let Load::Open { rate, users, .. } = &s.load else {
        panic!("{:?}", s.load)
    };
    assert_eq!((rate.peak(), users.get()), (10.0, 2));
    // A plan brings its own length.
    let (line, _, m) = located(&open("rate = \"10/s,2s\"\nusers = 2\nduration = \"5s\""));
    assert_eq!(line, 6, "{m}");
    assert!(m.contains("load.rate"), "{m}");
    let (line, _, m) = located(&open("rate = \"10/s,2s;x/s,1s\"\nusers = 2"));
    assert_eq!(line, 6);
    assert!(m.contains("step 2"), "{m}");
    let (line, _, m) = located(&open(
        "rate = 5.0\nusers = 4\nmax_users = 2\nduration = \"1s\"",
    ));
    assert_eq!(line, 8);
    assert!(m.contains("load.max_users"), "{m}");
    // --duration scales a plan; --users keeps the larger cap.
    let mut s = parse(&open(
        "rate = \"10/s,2s;10/s,8s\"\nusers = 2\nmax_users = 8",
    ))
    .unwrap();
    s.apply(&Overrides {
        duration: Some(Duration::from_secs(1)),
        users: NonZeroUsize::new(3),
        ..Overrides::default()
    })
    .unwrap();
    assert_eq!(s.load.duration(), Duration::from_secs(1));
    assert_eq!(s.load.peak_users(), 8);
    let closed = SMOKE.replace("users = 4", "users = 4\nmax_users = 9");
    assert!(located(&closed).2.contains("only for model = \"open\""));
}

#[test]
fn receiver_tls_paths_resolve_and_heartbeats_are_for_topics_only() {
    let text = format!(
        "{SMOKE}\n[subscriptions]\ntls = {{ cert_file = \"keys/r.pem\", key_file = \"/k/r-key.pem\" }}\n\
         [[subscriptions.subscribe]]\nname = \"c\"\nform = \"topic\"\ntopic = \"http://x/t\"\n\
         criteria = \"Condition\"\npayload = \"id_only\"\nheartbeat_period = \"2s\"\n"
    );
    let s = Scenario::from_str(&text, Path::new("/scen/s.toml")).unwrap();
    let subs = s.subscriptions.unwrap();
    let tls = subs.tls.unwrap();
    assert_eq!(tls.cert_file, Path::new("/scen/keys/r.pem"));
    assert_eq!(tls.key_file, Path::new("/k/r-key.pem"));
    assert_eq!(tls.ca_file, None);
    assert_eq!(
        subs.subscribe[0].heartbeat,
        Some(std::time::Duration::from_secs(2))
    );
    let rest_hook = format!(
        "{SMOKE}\n[subscriptions]\n[[subscriptions.subscribe]]\nname = \"e\"\n\
         criteria = \"Encounter\"\npayload = \"full_resource\"\nheartbeat_period = \"2s\"\n"
    );
    let (line, _, m) = located(&rest_hook);
    assert!(m.contains("heartbeat_period") && m.contains("topic"), "{m}");
    assert!(line > 10, "{line}");
    let unknown = format!("{SMOKE}\n[subscriptions]\ntls = {{ cert = \"x\" }}\n");
    assert!(parse(&unknown).is_err());
}

#[test]
fn history_keep_defaults_to_full_and_parses_its_forms() {
    assert_eq!(parse(SMOKE).unwrap().keep, Keep::Full);
    let text = format!("{SMOKE}[history]\nkeep = \"sample:0.1\"\n");
    assert_eq!(parse(&text).unwrap().keep, Keep::Sample(0.1));
    let text = format!("{SMOKE}[history]\nkeep = \"writes\"\n");
    assert_eq!(parse(&text).unwrap().keep, Keep::Writes);
    let soak = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/nightly-soak.toml");
    assert_eq!(Scenario::load(&soak).unwrap().keep, Keep::Sample(0.1));
}

#[test]
fn a_bad_history_keep_is_located_at_its_value() {
    for bad in ["sample:0", "sample:1.5", "reads", "sample:x"] {
        let text = format!("{SMOKE}[history]\nkeep = \"{bad}\"\n");
        let (line, col, msg) = located(&text);
        assert_eq!((line, col), (11, 8), "{bad}: {msg}");
        assert!(msg.starts_with("history.keep:"), "{msg}");
        assert!(msg.contains(bad), "{msg}");
    }
    let text = format!("{SMOKE}[history]\nkept = \"writes\"\n");
    let (line, _, msg) = located(&text);
    assert_eq!(line, 11, "{msg}");
}

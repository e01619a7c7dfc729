//! EHR profiles as users meet them: the shipped profiles load and say what the reference
//! says, tenant overlays override and merge, and every mistake in a profile or an overlay
//! is refused with `file:line:column` and the key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use fhirsurge::history::Interaction;
use fhirsurge::profile::{
    self, AuthKind, CapAction, Change, EncounterNeed, Landing, Lockout, NextLink, Profile,
    RatePolicy, Replay, Retry, TenancyMode, Throttle, Unsupported, Verb,
};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Loads `base` with `overlay` text; the error text if it fails.
fn with_overlay(base: &str, overlay: &str) -> Result<Profile, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "site.toml", overlay);
    Profile::load_with_overlay(base, Some(&path)).map_err(|e| e.to_string())
}

/// The us-core profile text with `from` replaced by `to`, loaded as a file.
fn edited_us_core(from: &str, to: &str) -> Result<Profile, String> {
    let text = std::fs::read_to_string("profiles/us-core.toml").unwrap();
    assert!(
        text.contains(from),
        "test setup: `{from}` not in us-core.toml"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "edited.toml", &text.replacen(from, to, 1));
    Profile::load(path.to_str().unwrap()).map_err(|e| e.to_string())
}

fn line_of(file: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn every_shipped_profile_loads_from_the_binary_and_from_its_file() {
    for name in profile::shipped() {
        let embedded = Profile::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&embedded.name, name);
        let path = format!("profiles/{name}.toml");
        let from_file = profile::check_file(Path::new(&path)).unwrap();
        assert_eq!(embedded, from_file, "{name}");
    }
    for vendor in ["epic", "oracle-health", "athenahealth", "eclinicalworks"] {
        assert!(profile::shipped().contains(&vendor), "{vendor} not shipped");
    }
}

#[test]
fn vendor_profiles_cite_a_source_for_every_behaviour() {
    for name in profile::shipped().iter().filter(|n| **n != "us-core") {
        let p = Profile::load(name).unwrap();
        let mut uncited: Vec<String> = Vec::new();
        let mut need = |what: String, source: &[String]| {
            if source.is_empty() {
                uncited.push(what);
            }
        };
        need("endpoints".into(), &p.endpoints.source);
        need("tenancy".into(), &p.tenancy.source);
        need("auth".into(), &p.auth.source);
        need("paging".into(), &p.paging.source);
        need("write".into(), &p.write.source);
        need("resource_defaults".into(), &p.defaults.source);
        need("rate_limit".into(), &p.rate_limit.source);
        for (rt, r) in &p.resources {
            need(format!("resources.{rt}"), &r.source);
            for rule in r
                .write
                .rewrites
                .iter()
                .map(|x| &x.source)
                .chain(r.write.drops.iter().map(|x| &x.source))
            {
                need(format!("resources.{rt}.write rule"), rule);
            }
        }
        for (code, e) in &p.errors.codes {
            need(format!("errors.codes.{code}"), &e.source);
        }
        assert!(uncited.is_empty(), "{name}: uncited {uncited:?}");
    }
}

#[test]
fn an_unknown_profile_name_lists_the_shipped_ones() {
    let err = Profile::load("cerner-classic").unwrap_err().to_string();
    for name in profile::shipped() {
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn epic_cannot_create_encounters_and_writes_vitals_into_open_ones() {
    let epic = Profile::load("epic").unwrap();
    assert!(!epic.supports("Encounter", Interaction::Create));
    assert!(epic.supports("Encounter", Interaction::Read));
    assert!(epic.supports("Encounter", Interaction::Search));
    assert!(epic.supports("Observation", Interaction::Create));
    assert!(!epic.supports("Observation", Interaction::ConditionalCreate));
    assert!(!epic.supports("MedicationRequest", Interaction::Create));
    assert!(!epic.supports("Patient", Interaction::Transaction));
    assert!(!epic.supports_verb("Patient", Verb::Patch));
    assert!(epic.supports("Patient", Interaction::Token));
    assert!(!epic.write.conditional_create);
    let obs = &epic.resource("Observation").unwrap().write;
    assert!(matches!(obs.encounter, EncounterNeed::Open { .. }));
    let categories = &obs
        .allowed
        .iter()
        .find(|a| a.path.as_str() == "category")
        .unwrap()
        .values;
    assert_eq!(
        categories,
        &vec![serde_json::json!("vital-signs"), serde_json::json!("LDA")]
    );
    assert!(matches!(&obs.replay, Replay::Rejected { error, .. } if error == "reading_exists"));
    assert_eq!(epic.error("reading_exists").unwrap().status, 400);
    let condition = &epic.resource("Condition").unwrap().write;
    assert_eq!(
        condition.landing,
        Landing::HoldingArea {
            visible_after: None
        }
    );
    assert_eq!(condition.replay, Replay::NewRecord);
}

#[test]
fn epic_creates_answer_empty_with_a_relative_location_and_no_etag() {
    let w = Profile::load("epic").unwrap().write;
    assert_eq!(w.create_status, 201);
    assert_eq!(w.create_body, profile::Body::Empty);
    assert_eq!(
        w.location,
        profile::LocationStyle::Relative { versioned: false }
    );
    assert_eq!(w.etag, profile::Etag::None);
    assert_eq!(w.prefer.as_deref(), Some("return=representation"));
}

#[test]
fn epic_paging_is_session_bound_and_capped() {
    let epic = Profile::load("epic").unwrap();
    let NextLink::Session { param, expiry } = &epic.paging().next else {
        panic!("epic paging: {:?}", epic.paging().next);
    };
    assert_eq!(param, "sessionID");
    let expired = epic.error(&expiry.error).unwrap();
    assert_eq!(expired.vendor_code.as_deref(), Some("4113"));
    assert_eq!(expired.retry, Retry::ReissueSearch);
    let patient_cap = epic.page_rules("Patient").result_cap.unwrap();
    assert!(matches!(&patient_cap.on_exceed, CapAction::Error(e) if e == "too_many_results"));
    let obs_cap = epic.page_rules("Observation").result_cap.unwrap();
    assert_eq!(obs_cap.max_total.get(), 100);
    assert!(matches!(obs_cap.on_exceed, CapAction::Truncate { .. }));
    let obs = &epic.resource("Observation").unwrap().search;
    assert!(obs.satisfied_by(["patient", "category"]));
    assert!(!obs.satisfied_by(["patient"]));
    assert!(matches!(
        epic.rate_limit().policy,
        RatePolicy::Unpublished {
            throttle: Throttle::Latency
        }
    ));
}

#[test]
fn oracle_health_pages_repeat_ids_and_writes_need_if_match() {
    let oracle = Profile::load("oracle-health").unwrap();
    assert!(oracle.paging().duplicates_across_pages);
    assert_eq!(oracle.paging().next.param(), "pageContext");
    let obs = oracle.page_rules("Observation");
    assert_eq!(
        (
            obs.default_count.unwrap().get(),
            obs.max_count.unwrap().get()
        ),
        (50, 200)
    );
    assert!(obs.first_page_ignores_count);
    let docs = oracle.page_rules("DocumentReference");
    assert_eq!(
        (
            docs.default_count.unwrap().get(),
            docs.max_count.unwrap().get()
        ),
        (10, 100)
    );
    assert!(matches!(oracle.tenancy.mode, TenancyMode::Path));
    assert!(oracle.tenancy.tenant_scoped_ids);
    let profile::IfMatch::Required { stale_error, .. } = &oracle.write.if_match else {
        panic!("{:?}", oracle.write.if_match);
    };
    assert_eq!(oracle.error(stale_error).unwrap().status, 409);
    assert!(!oracle.write.prefer_honoured);
    assert_eq!(oracle.write.etag, profile::Etag::WeakOpaque);
    assert_eq!(oracle.write.unsupported_elements, Unsupported::Ignored);
    assert_eq!(oracle.create_status("ChargeItem"), 200);
    assert_eq!(oracle.create_status("Observation"), 201);
    assert!(oracle.supports_verb("Patient", Verb::Patch));
    assert!(!oracle.supports("MedicationStatement", Interaction::Read));
    let throttled = oracle.error("throttled").unwrap();
    assert_eq!(
        (throttled.status, throttled.issue.as_str()),
        (429, "throttled")
    );
    let AuthKind::SmartBackend(auth) = &oracle.auth.kind else {
        panic!()
    };
    assert_eq!(
        auth.token_lifetime,
        Some(std::time::Duration::from_secs(570))
    );
}

#[test]
fn athenahealth_scopes_every_request_to_a_practice() {
    let athena = Profile::load("athenahealth").unwrap();
    let TenancyMode::SearchParam {
        name,
        template,
        missing_error,
    } = &athena.tenancy.mode
    else {
        panic!("{:?}", athena.tenancy.mode);
    };
    assert_eq!(
        (name.as_str(), template.as_str()),
        ("ah-practice", "Organization/a-1.Practice-{tenant}")
    );
    assert_eq!(athena.error(missing_error).unwrap().status, 400);
    assert_eq!(
        athena.identifiers.id_style,
        profile::IdStyle::Template("a-{tenant}.E-{n}".into())
    );
    assert!(athena.supports("QuestionnaireResponse", Interaction::Create));
    assert!(!athena.supports("Observation", Interaction::Create));
    assert!(
        !athena
            .resource("Encounter")
            .unwrap()
            .search
            .satisfied_by(["date"])
    );
}

#[test]
fn eclinicalworks_locks_a_practice_out_for_the_rest_of_the_minute() {
    let ecw = Profile::load("eclinicalworks").unwrap();
    let RatePolicy::Limited(limit) = &ecw.rate_limit().policy else {
        panic!("{:?}", ecw.rate_limit().policy);
    };
    assert_eq!((limit.requests.get(), limit.per.as_secs()), (250, 60));
    assert!(limit.includes_auth);
    let Throttle::Error {
        error,
        retry_after,
        lockout,
    } = &limit.throttle
    else {
        panic!()
    };
    assert_eq!(*lockout, Lockout::RestOfWindow);
    assert!(!retry_after);
    assert_eq!(ecw.error(error).unwrap().status, 429);
    assert_eq!(ecw.error("unknown_mapping").unwrap().retry, Retry::Once);
}

fn set(v: &[String]) -> BTreeSet<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn expected_changes_name_dropped_rewritten_truncated_and_remapped_elements() {
    let epic = Profile::load("epic").unwrap().expected_changes();
    assert_eq!(
        set(&epic["AllergyIntolerance"]),
        BTreeSet::from(["category", "code", "recordedDate"])
    );
    assert_eq!(
        set(&epic["Observation"]),
        BTreeSet::from(["code", "note", "valueQuantity"])
    );
    assert_eq!(set(&epic["Condition"]), BTreeSet::from(["note"]));
    assert_eq!(set(&epic["DocumentReference"]), BTreeSet::from(["content"]));
    assert!(!epic.contains_key("Encounter"));
    let oracle = Profile::load("oracle-health").unwrap().expected_changes();
    assert_eq!(
        set(&oracle["MedicationRequest"]),
        BTreeSet::from(["intent"])
    );
    assert_eq!(set(&oracle["Encounter"]), BTreeSet::from(["class"]));
    assert_eq!(set(&oracle["Patient"]), BTreeSet::from(["identifier"]));
    assert!(
        Profile::load("us-core")
            .unwrap()
            .expected_changes()
            .is_empty()
    );
}

#[test]
fn the_baseline_supports_the_whole_restful_api() {
    let us = Profile::load("us-core").unwrap();
    for rt in [
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "DocumentReference",
    ] {
        for i in [
            Interaction::Create,
            Interaction::ConditionalCreate,
            Interaction::Read,
            Interaction::Vread,
            Interaction::Update,
            Interaction::Search,
            Interaction::History,
        ] {
            assert!(us.supports(rt, i), "{rt} {i}");
        }
    }
    assert!(us.supports("", Interaction::Transaction) && us.supports("", Interaction::Batch));
    assert!(
        !us.supports("Patient", Interaction::Token),
        "the baseline is open"
    );
    assert!(us.resource("NotAType").is_none());
    assert!(!us.supports("NotAType", Interaction::Read));
    assert!(matches!(us.rate_limit().policy, RatePolicy::None));
}

#[test]
fn an_overlay_overrides_a_nested_key_and_merges_tables() {
    let overlay = r#"
base = "epic"

[paging]
expires_after = "10m"

[resources.Observation.write]
truncations = [{ path = "note.text", max_len = 60, source = "EPIC-WB" }]

[sources]
SITE = { class = "I", cite = "Acme Health go-live notes, 2026" }

[[maintenance]]
name = "acme downtime"
days = ["tue"]
start = "02:00"
effect = "down"
duration = "2h"
error = "internal_error"
source = "SITE"
"#;
    let p = with_overlay("epic", overlay).unwrap();
    let expiry = p.paging.next.expiry().unwrap();
    assert_eq!(expiry.after, Some(std::time::Duration::from_secs(600)));
    assert_eq!(
        expiry.error, "session_expired",
        "the rest of [paging] is kept"
    );
    assert!(matches!(p.paging.next, NextLink::Session { .. }));
    let obs = &p.resource("Observation").unwrap().write;
    assert_eq!(obs.truncations.len(), 1, "arrays replace");
    assert_eq!(obs.truncations[0].max_len.get(), 60);
    assert!(
        matches!(obs.replay, Replay::Rejected { .. }),
        "the rest of the table is kept"
    );
    assert_eq!(obs.rewrites.len(), 2);
    assert!(p.sources.contains_key("EPIC-CS") && p.sources.contains_key("SITE"));
    assert_eq!(
        p.maintenance.len(),
        1,
        "the array of tables replaces the wipe"
    );
    assert_eq!(p.maintenance[0].name, "acme downtime");
    let base = Profile::load("epic").unwrap();
    assert_eq!(p.write, base.write);
    assert_eq!(p.name, "epic");
}

#[test]
fn an_overlay_can_switch_a_disputed_behaviour() {
    let overlay = "base = \"oracle-health\"\n[write]\nunsupported_elements = \"rejected\"\nunsupported_elements_error = \"business_rule\"\n";
    let p = with_overlay("oracle-health", overlay).unwrap();
    assert_eq!(
        p.write.unsupported_elements,
        Unsupported::Rejected("business_rule".into())
    );
}

#[test]
fn a_bad_key_in_a_profile_is_located() {
    let line = line_of("profiles/us-core.toml", "prefer_honoured = true");
    let err = edited_us_core("prefer_honoured = true", "prefer_honored = true").unwrap_err();
    assert!(err.contains(&format!("edited.toml:{line}:1:")), "{err}");
    assert!(err.contains("unknown field `prefer_honored`"), "{err}");
}

#[test]
fn a_bad_key_in_an_overlay_is_located_in_the_overlay() {
    let err = with_overlay(
        "epic",
        "base = \"epic\"\n\n[write]\n  prefer_honored = false\n",
    )
    .unwrap_err();
    assert!(err.contains("site.toml:4:3:"), "{err}");
    assert!(err.contains("prefer_honored"), "{err}");
    let err = with_overlay(
        "epic",
        "[resources.Observation.search]\nrequired_anyy = []\n",
    )
    .unwrap_err();
    assert!(
        err.contains("site.toml:2:1:") && err.contains("required_anyy"),
        "{err}"
    );
}

#[test]
fn overlay_mistakes_beyond_unknown_keys_are_located_in_the_overlay() {
    let cases = [
        (
            "[write]\ncreate_status = \"201\"\n",
            "site.toml:2:17:",
            "invalid type",
        ),
        (
            "[resources.Observaton]\ninteractions = [\"read\"]\n",
            "site.toml:1:12:",
            "not a FHIR R4 resource type",
        ),
        (
            "[resources.Encounter]\ninteractions = [\"read\", \"creat\"]\n",
            "site.toml:2:25:",
            "creat",
        ),
        (
            "[paging]\nexpired_error = \"gone\"\n",
            "site.toml:2:17:",
            "`gone` is not in the error catalogue",
        ),
        ("[write\n", "site.toml:1:", ""),
        (
            "[rate_limit]\nrequests = 5\n",
            "site.toml:2:12:",
            "takes no requests",
        ),
        (
            "base = \"oracle-health\"\n",
            "site.toml:1:8:",
            "applies to `oracle-health`",
        ),
    ];
    for (overlay, at, what) in cases {
        let err = with_overlay("epic", overlay).unwrap_err();
        assert!(err.contains(at) && err.contains(what), "{overlay:?}: {err}");
    }
}

#[test]
fn an_undefined_source_key_is_refused_where_it_is_cited() {
    let err = with_overlay("epic", "[tenancy]\nsource = [\"EPIC-CS\", \"EPIC-XX\"]\n").unwrap_err();
    assert!(err.contains("site.toml:2:10:"), "{err}");
    assert!(
        err.contains("tenancy.source: source `EPIC-XX` is not defined in [sources]"),
        "{err}"
    );
    let line = line_of("profiles/us-core.toml", "source = \"HAPI\"");
    let err = edited_us_core("source = \"HAPI\"", "source = \"HAPY\"").unwrap_err();
    assert!(
        err.contains(&format!("edited.toml:{line}:10:")) && err.contains("HAPY"),
        "{err}"
    );
}

#[test]
fn inconsistent_profiles_are_refused_with_the_key() {
    let cases = [
        // A conditional create the server does not have.
        (
            "conditional_create = true\n",
            "conditional_create = false\n",
            "conditional_create needs write.conditional_create",
        ),
        // A session without an expiry.
        (
            "style = \"cursor\"",
            "style = \"session\"",
            "needs `expired_error`",
        ),
        // If-Match required without its errors.
        (
            "if_match = \"optional\"",
            "if_match = \"required\"",
            "write.if_match = \"required\" needs",
        ),
        // A source key of the wrong shape.
        ("HAPI = {", "hapi = {", "source keys are upper-case"),
        // A status that is not a success.
        (
            "create_status = 201",
            "create_status = 400",
            "write.create_status: a 2xx status",
        ),
        // An IssueType that does not exist.
        (
            "issue = \"conflict\"",
            "issue = \"clash\"",
            "`clash` is not one of",
        ),
    ];
    for (from, to, what) in cases {
        let err = edited_us_core(from, to).unwrap_err();
        assert!(
            err.contains("edited.toml:") && err.contains(what),
            "{to:?}: {err}"
        );
    }
}

#[test]
fn write_rule_mistakes_are_refused() {
    let rules = |body: &str| {
        with_overlay(
            "us-core",
            &format!(
                "[resources.Observation]\ninteractions = [\"read\", \"create\"]\n[resources.Observation.write]\n{body}\n"
            ),
        )
    };
    let cases = [
        (
            "drops = [{ path = \"value[x]\" }]",
            "name the concrete choice element",
        ),
        (
            "rewrites = [{ path = \"note\", keep_first = 1, transform = \"x\" }]",
            "exactly one of",
        ),
        ("required = [\"subject\"]", "needs `required_error`"),
        (
            "replay = \"rejected\"",
            "needs `replay_key` and `replay_error`",
        ),
        ("encounter = \"open\"", "needs `encounter_error`"),
        ("visible_after = \"5m\"", "needs lands = \"holding_area\""),
        (
            "truncations = [{ path = \"note..text\", max_len = 5 }]",
            "not an element path",
        ),
        ("id_template = \"VS-{id}\"", "must contain `{n}`"),
    ];
    for (body, what) in cases {
        let err = rules(body).unwrap_err();
        assert!(
            err.contains("site.toml:") && err.contains(what),
            "{body}: {err}"
        );
    }
    let read_only = with_overlay(
        "us-core",
        "[resources.Observation]\ninteractions = [\"read\"]\n[resources.Observation.write]\nlands = \"holding_area\"\n",
    );
    assert!(
        read_only
            .unwrap_err()
            .contains("the type has no write interaction")
    );
    let ok = rules("lands = \"holding_area\"\nvisible_after = \"5m\"\nrewrites = [{ path = \"status\", set = \"final\" }]").unwrap();
    let w = &ok.resource("Observation").unwrap().write;
    assert_eq!(
        w.landing,
        Landing::HoldingArea {
            visible_after: Some(std::time::Duration::from_secs(300))
        }
    );
    assert_eq!(
        w.rewrites[0].change,
        Change::Set(serde_json::json!("final"))
    );
}

#[test]
fn check_file_validates_a_profile_or_an_overlay_on_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let overlay = write(
        dir.path(),
        "acme.toml",
        "base = \"epic\"\nname = \"epic-acme\"\n[identifiers]\nmrn_system = \"urn:oid:1.2.840.114350.1.13.99\"\n",
    );
    let p = profile::check_file(&overlay).unwrap();
    assert_eq!(p.name, "epic-acme");
    assert_eq!(
        p.identifiers.mrn_system.as_deref(),
        Some("urn:oid:1.2.840.114350.1.13.99")
    );
    assert!(
        !p.supports("Encounter", Interaction::Create),
        "the rest comes from epic"
    );

    let custom = std::fs::read_to_string("profiles/us-core.toml")
        .unwrap()
        .replace("name = \"us-core\"", "name = \"house\"");
    write(dir.path(), "house.toml", &custom);
    let on_path = write(
        dir.path(),
        "site.toml",
        "base = \"house.toml\"\n[write]\nbatch = false\n",
    );
    let p = profile::check_file(&on_path).unwrap();
    assert_eq!(p.name, "house");
    assert!(!p.write.batch);

    let unknown = write(dir.path(), "bad.toml", "# tenant\nbase = \"cerner\"\n");
    let err = profile::check_file(&unknown).unwrap_err().to_string();
    assert!(
        err.contains("bad.toml:2:8:") && err.contains("unknown profile `cerner`"),
        "{err}"
    );

    let err = profile::check_file(Path::new("profiles/none.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("profiles/none.toml:1:1: cannot read"), "{err}");
}

#[test]
fn the_example_overlay_checks_and_changes_what_it_says() {
    let p = profile::check_file(Path::new("profiles/overlays/acme-epic.toml")).unwrap();
    assert_eq!(p.name, "epic-acme");
    assert!(p.maintenance.is_empty());
    assert_eq!(p.identifiers.source, ["ACME"]);
    assert_eq!(
        p.paging.next.expiry().unwrap().after,
        Some(std::time::Duration::from_secs(600))
    );
    let epic = Profile::load("epic").unwrap();
    assert_eq!((p.write, p.resources), (epic.write, epic.resources));
}

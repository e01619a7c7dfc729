//! Unit tests of the emulation gate: which requests the emulated EHR refuses, pages,
//! rate-limits or locks out, and with which vendor error.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::HeaderValue;

use super::*;
use crate::profile::Profile;

fn emulation(profile: Profile) -> Emulation {
    Emulation::new(Arc::new(profile), 1, std::time::Instant::now())
}

fn call(emu: &Emulation, method: Method, path: &str, query: Option<&str>) -> Call {
    classify(&method, path, query, &HeaderMap::new(), emu)
}

fn refused(d: Decision) -> Refusal {
    match d {
        Decision::Refuse(r) => *r,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn requests_are_classified_by_method_and_path() {
    let emu = emulation(Profile::load("us-core").unwrap());
    let fhir = |rt: Option<&str>, interaction| Call::Fhir {
        rt: rt.map(str::to_owned),
        interaction,
        tenant_named: true,
    };
    assert_eq!(
        call(&emu, Method::GET, "/__fhirsurge/ledger", None),
        Call::Harness
    );
    assert_eq!(
        call(&emu, Method::GET, "/metadata", None),
        fhir(None, Interaction::Capabilities)
    );
    assert_eq!(
        call(&emu, Method::POST, "/", None),
        fhir(None, Interaction::Transaction)
    );
    assert_eq!(
        call(&emu, Method::GET, "/Patient", None),
        fhir(Some("Patient"), Interaction::Search)
    );
    assert_eq!(
        call(&emu, Method::PUT, "/Patient/x", None),
        fhir(Some("Patient"), Interaction::Update)
    );
    assert_eq!(
        call(&emu, Method::GET, "/Patient/x/_history/2", None),
        fhir(Some("Patient"), Interaction::Vread)
    );
    assert_eq!(
        call(&emu, Method::DELETE, "/Patient/x", None),
        Call::Amend {
            rt: "Patient".into(),
            verb: crate::profile::Verb::Delete,
            tenant_named: true
        }
    );
    assert_eq!(call(&emu, Method::DELETE, "/Patient", None), Call::Unrouted);
    assert_eq!(
        call(&emu, Method::DELETE, "/Subscription/s1", None),
        Call::Unrouted
    );
    assert_eq!(call(&emu, Method::POST, "/oauth2/token", None), Call::Auth);
    let mut h = HeaderMap::new();
    h.insert("if-none-exist", HeaderValue::from_static("identifier=a|b"));
    assert_eq!(
        classify(&Method::POST, "/Patient", None, &h, &emu),
        fhir(Some("Patient"), Interaction::ConditionalCreate)
    );
}

#[test]
fn the_baseline_passes_everything() {
    let emu = emulation(Profile::load("us-core").unwrap());
    for (m, path) in [
        (Method::POST, "/"),
        (Method::POST, "/Encounter"),
        (Method::GET, "/Patient/x/_history"),
        (Method::POST, "/token"),
    ] {
        assert_eq!(
            emu.decide(&call(&emu, m, path, None)),
            Decision::Pass,
            "{path}"
        );
    }
}

#[test]
fn unsupported_interactions_are_refused_in_the_profile_envelope() {
    let emu = emulation(Profile::load("epic").unwrap());
    let r = refused(emu.decide(&call(&emu, Method::POST, "/Encounter", None)));
    assert_eq!((r.status, r.issue.as_str()), (405, "not-supported"));
    assert!(r.message.contains("create of Encounter"), "{}", r.message);
    assert!(
        refused(emu.decide(&call(&emu, Method::POST, "/", None)))
            .message
            .contains("Bundles")
    );
    let mut h = HeaderMap::new();
    h.insert("if-none-exist", HeaderValue::from_static("identifier=a|b"));
    let conditional = classify(&Method::POST, "/Condition", None, &h, &emu);
    assert_eq!(refused(emu.decide(&conditional)).status, 405);
    assert_eq!(
        emu.decide(&call(&emu, Method::POST, "/Condition", None)),
        Decision::Pass
    );
    assert_eq!(
        emu.decide(&call(&emu, Method::GET, "/Foo", None)),
        Decision::Pass,
        "not R4"
    );
}

#[test]
fn a_tenancy_parameter_is_required_except_for_metadata() {
    let emu = emulation(Profile::load("athenahealth").unwrap());
    let r = refused(emu.decide(&call(&emu, Method::GET, "/Patient", Some("_id=1"))));
    assert_eq!(
        (r.status, r.envelope),
        (400, crate::profile::Envelope::VendorJson)
    );
    let named = Some("ah-practice=Organization/a-1.Practice-195900&_id=1");
    assert_eq!(
        emu.decide(&call(&emu, Method::GET, "/Patient", named)),
        Decision::Pass
    );
    assert_eq!(
        emu.decide(&call(&emu, Method::GET, "/metadata", None)),
        Decision::Pass
    );
}

fn tight(base: &str, requests: u32, retry_after: bool) -> Emulation {
    let mut p = Profile::load(base).unwrap();
    let RatePolicy::Limited(limit) = &mut p.rate_limit.policy else {
        panic!("{base} is not limited");
    };
    limit.requests = NonZeroU32::new(requests).unwrap();
    limit.per = Duration::from_secs(3600);
    if let Throttle::Error { retry_after: r, .. } = &mut limit.throttle {
        *r = retry_after;
    }
    emulation(p)
}

#[test]
fn over_the_limit_answers_the_catalogue_entry_with_or_without_retry_after() {
    let emu = tight("eclinicalworks", 2, false);
    let meta = call(&emu, Method::GET, "/metadata", None);
    assert_eq!(
        emu.decide(&call(&emu, Method::POST, "/token", None)),
        Decision::Pass
    );
    assert_eq!(emu.decide(&meta), Decision::Pass);
    let r = refused(emu.decide(&meta));
    assert_eq!((r.status, r.retry_after), (429, None));
    assert_eq!(
        emu.decide(&call(&emu, Method::GET, "/__fhirsurge/health", None)),
        Decision::Pass
    );
    let emu = tight("eclinicalworks", 1, true);
    assert_eq!(emu.decide(&meta), Decision::Pass);
    let r = refused(emu.decide(&meta));
    assert!(
        r.retry_after.is_some_and(|s| (1..=3600).contains(&s)),
        "{:?}",
        r.retry_after
    );
    let athena = tight("athenahealth", 1, false);
    assert_eq!(
        athena.decide(&call(&athena, Method::POST, "/token", None)),
        Decision::Pass,
        "auth not counted"
    );
    assert_eq!(athena.decide(&meta), Decision::Pass);
    assert_eq!(refused(athena.decide(&meta)).status, 429);
}

#[test]
fn latency_and_disconnect_throttles() {
    let mut p = Profile::load("eclinicalworks").unwrap();
    let RatePolicy::Limited(limit) = &mut p.rate_limit.policy else {
        panic!()
    };
    limit.requests = NonZeroU32::new(1).unwrap();
    limit.throttle = Throttle::Latency;
    let mut dropping = p.clone();
    let emu = emulation(p);
    let meta = call(&emu, Method::GET, "/metadata", None);
    assert_eq!(emu.decide(&meta), Decision::Pass);
    assert!(matches!(emu.decide(&meta), Decision::Wait(d) if d > Duration::ZERO));
    if let RatePolicy::Limited(l) = &mut dropping.rate_limit.policy {
        l.throttle = Throttle::Disconnect;
    }
    let emu = emulation(dropping);
    assert_eq!(emu.decide(&meta), Decision::Pass);
    assert_eq!(emu.decide(&meta), Decision::Drop);
}

fn in_maintenance(effect: Effect) -> Emulation {
    use chrono::Timelike;
    let mut p = Profile::load("us-core").unwrap();
    let now = chrono::Utc::now();
    let start = chrono::NaiveTime::from_hms_opt(now.hour(), 0, 0).unwrap();
    p.maintenance = vec![crate::profile::Maintenance {
        name: "nightly".into(),
        days: vec![
            chrono::Weekday::Mon,
            chrono::Weekday::Tue,
            chrono::Weekday::Wed,
            chrono::Weekday::Thu,
            chrono::Weekday::Fri,
            chrono::Weekday::Sat,
            chrono::Weekday::Sun,
        ],
        start,
        utc_offset: chrono::FixedOffset::east_opt(0).unwrap(),
        effect,
        source: vec![],
    }];
    emulation(p)
}

#[test]
fn maintenance_windows_refuse_everything_or_only_writes() {
    let two_hours = Duration::from_secs(7200);
    let down = in_maintenance(Effect::Down {
        duration: two_hours,
        error: "unprocessable".into(),
    });
    let read = call(&down, Method::GET, "/Patient/x", None);
    let r = refused(down.decide(&read));
    assert_eq!(r.detail.as_deref(), Some("maintenance: nightly"));
    let read_only = in_maintenance(Effect::ReadOnly {
        duration: two_hours,
        error: "unprocessable".into(),
    });
    assert_eq!(read_only.decide(&read), Decision::Pass);
    let write = call(&read_only, Method::POST, "/Patient", None);
    assert_eq!(refused(read_only.decide(&write)).status, 422);
    let wipe = in_maintenance(Effect::Wipe);
    assert_eq!(
        wipe.decide(&write),
        Decision::Pass,
        "wipes are not emulated"
    );
}

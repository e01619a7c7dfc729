//! One minimal history per finding kind: the checker names it, with its id, identifier
//! and the evidence that proves it.

use serde_json::json;

use crate::history::Phase::{Load, Readback};

use super::{Hist, ident, kinds, obs, only, seen};
use crate::check::Kind;

#[test]
fn lost_write_an_acknowledged_create_absent_at_read_back() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    let [c, d] = h.created([1000, 1200], &body, "abc", "1");
    let s = h.search_back("o-1", vec![]);
    let r = h.read(30_020, 30_030, "abc", None, Readback);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::LostWrite);
    assert_eq!(f.id.as_deref(), Some("abc"));
    assert_eq!(f.identifier, Some(ident("o-1")));
    assert_eq!(f.resource_type, "Observation");
    assert_eq!(f.evidence, vec![c, d, s[0], s[1], r[0], r[1]]);
    assert!(
        f.detail.contains("acknowledged 201 at 1.200 s"),
        "{}",
        f.detail
    );
    assert!(f.detail.contains("404 by id at 30.030 s"), "{}", f.detail);
    assert!(f.detail.contains("0 matches"), "{}", f.detail);
    assert_eq!(out.counts.get(&Kind::LostWrite), Some(&1));
    assert_eq!(
        out.visibility_lag.never_visible, 0,
        "never probed: no lag sample, and lost rather than invisible"
    );
}

#[test]
fn lost_write_an_acknowledged_update_reverted_and_missing_from_history() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    let [u, ud] = h.updated([2000, 2100], &v2, "abc", "1", "2");
    h.search_back("o-1", vec![seen("abc", Some("1"), &v1)]);
    let r = h.read_back("abc", "1", &v1);
    let hist = h.history(30_040, 30_050, "abc", vec![seen("abc", Some("1"), &v1)]);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::LostWrite);
    assert_eq!(f.id.as_deref(), Some("abc"));
    assert_eq!(f.identifier, Some(ident("o-1")));
    for i in [u, ud, r[0], r[1], hist[1]] {
        assert!(f.evidence.contains(&i), "{i} not in {:?}", f.evidence);
    }
    assert!(
        f.detail.contains("_history lacks version 2"),
        "{}",
        f.detail
    );
}

#[test]
fn corrupted_write_names_the_elements() {
    let mut h = Hist::default();
    let sent = obs("o-1", "final", 72.0);
    let mut stored = sent.clone();
    stored.as_object_mut().unwrap().remove("valueQuantity");
    stored["code"] = json!({"text": "pulse"});
    h.created([1000, 1100], &sent, "abc", "1");
    h.found("o-1", "abc", "1", &stored);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::CorruptedWrite);
    assert_eq!(f.id.as_deref(), Some("abc"));
    assert!(f.detail.contains("`valueQuantity` missing"), "{}", f.detail);
    assert!(f.detail.contains("`code` changed"), "{}", f.detail);
}

#[test]
fn duplicate_write_client_caused_by_a_plain_create_resent_after_info() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    let a = h.create(1000, &body, false);
    h.info(6000, a);
    let b = h.retry(6100, a);
    h.ok(6200, b, 201, Some("b2"), Some("1"));
    let shown = vec![seen("a1", Some("1"), &body), seen("b2", Some("1"), &body)];
    h.search_back("o-1", shown);
    h.read_back("b2", "1", &body);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::DuplicateWrite);
    assert_eq!(f.identifier, Some(ident("o-1")));
    assert_eq!(f.id.as_deref(), Some("a1"));
    assert!(f.detail.contains("client-caused"), "{}", f.detail);
    assert!(f.evidence.contains(&a) && f.evidence.contains(&b));
}

#[test]
fn duplicate_write_server_caused_by_racing_conditional_creates() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    let a = h.create(1000, &body, true);
    let b = h.create(1001, &body, true);
    h.ok(1100, a, 201, Some("a1"), Some("1"));
    h.ok(1101, b, 201, Some("b2"), Some("1"));
    let shown = vec![seen("a1", Some("1"), &body), seen("b2", Some("1"), &body)];
    h.search_back("o-1", shown);
    h.read_back("a1", "1", &body);
    h.read_back("b2", "1", &body);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::DuplicateWrite);
    assert!(f.detail.contains("server-caused"), "{}", f.detail);
}

#[test]
fn stale_read_begun_after_the_update_was_acknowledged() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    let [u, _] = h.updated([2000, 2100], &v2, "abc", "1", "2");
    let r = h.read(2200, 2300, "abc", Some(seen("abc", Some("1"), &v1)), Load);
    h.found("o-1", "abc", "2", &v2);
    h.history(
        30_040,
        30_050,
        "abc",
        vec![seen("abc", Some("1"), &v1), seen("abc", Some("2"), &v2)],
    );
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::StaleRead);
    assert_eq!(f.id.as_deref(), Some("abc"));
    assert!(f.evidence.contains(&r[0]) && f.evidence.contains(&r[1]) && f.evidence.contains(&u));
    assert!(
        f.detail
            .contains("read begun at 2.200 s returned version 1"),
        "{}",
        f.detail
    );
    assert_eq!(out.stats.reads_checked, 1);
}

#[test]
fn stale_read_by_content_when_no_version_is_shown() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    let c = h.create(1000, &v1, false);
    h.ok(1100, c, 201, Some("abc"), None);
    let u = h.update(2000, &v2, "abc", None);
    h.ok(2100, u, 200, None, None);
    h.read(2200, 2300, "abc", Some(seen("abc", None, &v1)), Load);
    let out = h.check();
    assert_eq!(kinds(&out), vec![Kind::StaleRead]);
}

#[test]
fn stale_read_at_read_back_when_history_has_the_version() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    h.updated([2000, 2100], &v2, "abc", "1", "2");
    h.read_back("abc", "1", &v1);
    h.history(
        30_040,
        30_050,
        "abc",
        vec![seen("abc", Some("1"), &v1), seen("abc", Some("2"), &v2)],
    );
    let out = h.check();
    assert_eq!(kinds(&out), vec![Kind::StaleRead]);
}

#[test]
fn committed_despite_error_an_info_create_that_took_effect() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    let c = h.create(1000, &body, false);
    let i = h.info(6000, c);
    let s = h.search_back("o-1", vec![seen("x9", Some("1"), &body)]);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::CommittedDespiteError);
    assert_eq!(f.id.as_deref(), Some("x9"));
    assert_eq!(f.identifier, Some(ident("o-1")));
    assert_eq!(f.evidence, vec![c, i, s[0], s[1]]);
    assert!(f.detail.contains("ended info (timeout)"), "{}", f.detail);
}

#[test]
fn committed_despite_error_a_conditional_retry_answered_200() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    let a = h.create(1000, &body, true);
    h.info(6000, a);
    let b = h.retry(6100, a);
    h.ok(6200, b, 200, Some("x9"), Some("1"));
    h.found("o-1", "x9", "1", &body);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::CommittedDespiteError);
    assert!(
        f.detail.contains("shows the earlier attempt had committed"),
        "{}",
        f.detail
    );
    assert_eq!(out.stats.conditional_existing, 1);
}

#[test]
fn committed_despite_error_an_update_that_failed_yet_applied() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    let u = h.update(2000, &v2, "abc", Some("1"));
    h.fail(2100, u, 412);
    h.found("o-1", "abc", "2", &v2);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::CommittedDespiteError);
    assert!(f.evidence.contains(&u));
    assert!(
        f.detail.contains("ended fail (412 conflict)"),
        "{}",
        f.detail
    );
}

#[test]
fn lost_update_two_if_match_updates_of_one_version_both_acknowledged() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let a_body = obs("o-1", "final", 72.0);
    let b_body = obs("o-1", "amended", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    let a = h.update(2000, &a_body, "abc", Some("1"));
    let b = h.update(2001, &b_body, "abc", Some("1"));
    h.ok(2100, a, 200, Some("abc"), Some("2"));
    h.ok(2101, b, 200, Some("abc"), Some("3"));
    h.found("o-1", "abc", "3", &b_body);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::LostUpdate);
    assert!(f.evidence.contains(&a) && f.evidence.contains(&b));
    assert!(f.detail.contains("If-Match W/\"1\""), "{}", f.detail);
}

#[test]
fn visibility_lag_from_ack_to_the_first_search_that_saw_it() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &body, "abc", "1");
    h.probe(1100, 1110, "o-1", vec![]);
    h.search(1200, 1300, None, vec![], Load);
    h.probe(1135, 1150, "o-1", vec![]);
    h.search(1400, 1600, None, vec![seen("abc", Some("1"), &body)], Load);
    h.probe(1600, 1610, "o-1", vec![]);
    h.probe(1625, 1640, "o-1", vec![seen("abc", Some("1"), &body)]);
    h.search_back("o-1", vec![seen("abc", Some("1"), &body)]);
    let out = h.check();
    assert!(out.findings.is_empty(), "{:#?}", out.findings);
    assert_eq!(out.visibility_lag.samples, 1);
    assert_eq!(out.visibility_lag.p50_ms, Some(500.0));
    assert_eq!(out.visibility_lag.max_ms, Some(500.0));
    assert_eq!(out.visibility_lag.never_visible, 0);
}

#[test]
fn lost_write_reverted_under_a_version_no_write_reported() {
    let revert = |history_has_it: bool| {
        let mut h = Hist::default();
        let v1 = obs("o-1", "preliminary", 72.0);
        let v2 = obs("o-1", "final", 72.0);
        h.created([1000, 1100], &v1, "abc", "1");
        h.updated([2000, 2100], &v2, "abc", "1", "2");
        // another resource makes "3" a known string
        let o = h.create(2200, &obs("o-2", "final", 80.0), false);
        h.ok(2300, o, 201, Some("zz"), Some("3"));
        h.read_back("abc", "3", &v1);
        let mut versions = vec![seen("abc", Some("1"), &v1), seen("abc", Some("3"), &v1)];
        if history_has_it {
            versions.insert(1, seen("abc", Some("2"), &v2));
        }
        h.history(30_040, 30_050, "abc", versions);
        h.check()
    };
    let out = revert(false);
    let lost: Vec<_> = out
        .findings
        .iter()
        .filter(|f| f.id.as_deref() == Some("abc"))
        .collect();
    assert_eq!(lost.len(), 1, "{:#?}", out.findings);
    assert_eq!(lost[0].kind, Kind::LostWrite);
    let out = revert(true);
    assert!(
        out.findings.iter().all(|f| f.id.as_deref() != Some("abc")),
        "{:#?}",
        out.findings
    );
}

#[test]
fn corrupted_write_a_new_version_with_the_old_content() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    let [u, _] = h.updated([2000, 2100], &v2, "abc", "1", "2");
    h.found("o-1", "abc", "2", &v1);
    let both = vec![seen("abc", Some("1"), &v1), seen("abc", Some("2"), &v1)];
    h.history(30_040, 30_050, "abc", both);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::CorruptedWrite);
    assert!(f.detail.contains("`status` changed"), "{}", f.detail);
    assert!(f.evidence.contains(&u));
}

#[test]
fn corrupted_write_the_harness_identifier_stripped() {
    let mut h = Hist::default();
    let sent = obs("o-1", "final", 72.0);
    let mut stored = sent.clone();
    stored.as_object_mut().unwrap().remove("identifier");
    h.created([1000, 1100], &sent, "abc", "1");
    h.search_back("o-1", vec![]);
    h.read_back("abc", "1", &stored);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::CorruptedWrite);
    assert!(
        f.detail.contains("without the harness identifier"),
        "{}",
        f.detail
    );
}

#[test]
fn duplicate_write_seen_on_a_next_page() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    let c = h.create(1000, &body, true);
    h.ok(1100, c, 201, Some("a1"), Some("1"));
    h.search_back("o-1", vec![seen("a1", Some("1"), &body)]);
    let page = h.search(
        30_020,
        30_030,
        None,
        vec![seen("q7", Some("1"), &body)],
        Readback,
    );
    h.read(
        30_040,
        30_050,
        "a1",
        Some(seen("a1", Some("1"), &body)),
        Readback,
    );
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::DuplicateWrite);
    assert_eq!(f.id.as_deref(), Some("q7"));
    assert!(f.evidence.contains(&page[1]), "{:?}", f.evidence);
    assert!(f.detail.contains("server-caused"), "{}", f.detail);
}

#[test]
fn an_unprobed_create_is_no_lag_sample() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &body, "abc", "1");
    h.search(1400, 1600, None, vec![seen("abc", Some("1"), &body)], Load);
    h.search_back("o-1", vec![seen("abc", Some("1"), &body)]);
    let out = h.check();
    assert!(out.findings.is_empty(), "{:#?}", out.findings);
    assert_eq!(out.visibility_lag.samples, 0);
    assert_eq!(out.visibility_lag.p50_ms, None, "not measured");
}

#[test]
fn invisible_write_probes_never_saw_it_before_the_read_back() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    let [c, d] = h.created([1000, 1100], &body, "abc", "1");
    h.probe(1100, 1110, "o-1", vec![]);
    let last = h.probe(1125, 1140, "o-1", vec![]);
    let s = h.search_back("o-1", vec![seen("abc", Some("1"), &body)]);
    h.read_back("abc", "1", &body);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::InvisibleWrite);
    assert_eq!(f.id.as_deref(), Some("abc"));
    for e in [c, d, last[0], last[1], s[0], s[1]] {
        assert!(f.evidence.contains(&e), "{e} in {:?}", f.evidence);
    }
    assert!(f.detail.contains("2 visibility probes"), "{}", f.detail);
    assert!(f.detail.contains("showed it"), "{}", f.detail);
    assert_eq!(out.visibility_lag.never_visible, 1);
    assert_eq!(out.visibility_lag.samples, 0);
}

#[test]
fn invisible_write_read_back_by_id_but_no_search_ever_showed_it() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &body, "abc", "1");
    h.search_back("o-1", vec![]);
    h.read_back("abc", "1", &body);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::InvisibleWrite, "not lost: it is there by id");
    assert!(f.detail.contains("read back by id"), "{}", f.detail);
}

#[test]
fn a_declared_holding_area_is_no_invisible_write() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &body, "abc", "1");
    h.probe(1100, 1110, "o-1", vec![]);
    h.search_back("o-1", vec![]);
    h.read_back("abc", "1", &body);
    let mut options = super::options();
    options.held_from_search = vec!["Observation".into()];
    let out = crate::check::check(h.records.clone(), &options);
    assert!(out.findings.is_empty(), "{:#?}", out.findings);
}

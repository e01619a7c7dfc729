//! What a naive checker gets wrong: histories with nothing to report (or something else
//! than the obvious), where a finding would be a false alarm.

use std::path::Path;

use serde_json::json;

use crate::history::Phase::{Load, Readback};
use crate::history::{Reader, Writer};

use super::{Hist, kinds, obs, only, options, seen};
use crate::check::{Kind, check};

fn assert_clean(h: &Hist) -> crate::check::Outcome {
    let out = h.check();
    assert!(out.findings.is_empty(), "{:#?}", out.findings);
    out
}

#[test]
fn an_info_create_absent_at_read_back_is_not_lost() {
    let mut h = Hist::default();
    let c = h.create(1000, &obs("o-1", "final", 72.0), false);
    h.info(6000, c);
    h.search_back("o-1", vec![]);
    let out = assert_clean(&h);
    assert_eq!(out.stats.writes_info, 1);
}

#[test]
fn an_info_create_present_is_committed_not_lost() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    let c = h.create(1000, &body, false);
    h.info(6000, c);
    h.search_back("o-1", vec![seen("x", Some("1"), &body)]);
    assert_eq!(kinds(&h.check()), vec![Kind::CommittedDespiteError]);
}

#[test]
fn a_failed_read_back_cannot_judge() {
    let mut h = Hist::default();
    let c = h.create(1000, &obs("o-1", "final", 72.0), false);
    h.ok(1100, c, 201, Some("abc"), Some("1"));
    h.search_back("o-1", vec![]);
    h.read_failed(30_020, 30_030, "abc", Readback);
    let out = assert_clean(&h);
    assert_eq!(out.stats.identifiers_unverified, 1);
    assert_eq!(out.stats.resources_unverified, 1);
}

#[test]
fn no_read_back_at_all_cannot_judge() {
    let mut h = Hist::default();
    let c = h.create(1000, &obs("o-1", "final", 72.0), false);
    h.ok(1100, c, 201, Some("abc"), Some("1"));
    let out = assert_clean(&h);
    assert_eq!(out.stats.identifiers_unverified, 1);
}

#[test]
fn present_by_id_though_the_search_missed_it_is_invisible_not_lost() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &body, "abc", "1");
    h.search_back("o-1", vec![]);
    h.read_back("abc", "1", &body);
    let out = h.check();
    let kinds: Vec<Kind> = out.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [Kind::InvisibleWrite], "{:#?}", out.findings);
}

#[test]
fn a_conditional_retry_answered_200_is_no_duplicate() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    let a = h.create(1000, &body, true);
    h.info(6000, a);
    let b = h.retry(6100, a);
    h.ok(6200, b, 200, Some("x9"), Some("1"));
    h.search_back("o-1", vec![seen("x9", Some("1"), &body)]);
    let out = h.check();
    assert!(!kinds(&out).contains(&Kind::DuplicateWrite));
}

#[test]
fn two_logical_plain_creates_of_one_identifier_may_make_two() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &body, "a1", "1");
    h.created([2000, 2100], &body, "b2", "1");
    let shown = vec![seen("a1", Some("1"), &body), seen("b2", Some("1"), &body)];
    h.search_back("o-1", shown);
    assert_clean(&h);
}

#[test]
fn an_acknowledged_update_shown_at_read_back_is_fine() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    h.updated([2000, 2100], &v2, "abc", "1", "2");
    h.read(2200, 2300, "abc", Some(seen("abc", Some("2"), &v2)), Load);
    h.found("o-1", "abc", "2", &v2);
    let both = vec![seen("abc", Some("1"), &v1), seen("abc", Some("2"), &v2)];
    h.history(30_040, 30_050, "abc", both);
    let out = assert_clean(&h);
    assert_eq!(out.stats.resources_read_back, 1);
    assert_eq!(out.stats.identifiers_verified, 1);
}

#[test]
fn an_info_update_not_applied_is_not_lost() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    let u = h.update(2000, &obs("o-1", "final", 72.0), "abc", Some("1"));
    h.info(7000, u);
    h.found("o-1", "abc", "1", &v1);
    h.history(30_040, 30_050, "abc", vec![seen("abc", Some("1"), &v1)]);
    assert_clean(&h);
}

#[test]
fn a_read_concurrent_with_the_update_may_return_the_old_version() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    let u = h.update(2000, &v2, "abc", Some("1"));
    h.read(2050, 2300, "abc", Some(seen("abc", Some("1"), &v1)), Load);
    h.ok(2100, u, 200, Some("abc"), Some("2"));
    assert_clean(&h);
}

#[test]
fn an_unknown_version_string_is_not_judged_stale() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "W1");
    h.updated([2000, 2100], &v2, "abc", "W1", "W2");
    h.read(
        2200,
        2300,
        "abc",
        Some(seen("abc", Some("zz-9"), &v1)),
        Load,
    );
    assert_clean(&h);
}

#[test]
fn an_expected_change_is_not_corruption() {
    let mut h = Hist::default();
    let sent = obs("o-1", "final", 72.0);
    let mut stored = sent.clone();
    stored["code"] = json!({"text": "HR", "coding": [{"code": "8867-4"}]});
    h.created([1000, 1100], &sent, "abc", "1");
    h.found("o-1", "abc", "1", &stored);
    assert_eq!(kinds(&h.check()), vec![Kind::CorruptedWrite]);
    let mut opts = options();
    opts.expected_changes
        .insert("Observation".into(), vec!["code".into()]);
    let out = h.check_with(&opts);
    assert!(out.findings.is_empty(), "{:#?}", out.findings);
}

#[test]
fn server_added_elements_are_not_corruption() {
    let mut h = Hist::default();
    let sent = obs("o-1", "final", 72.0);
    let mut stored = sent.clone();
    stored["issued"] = json!("2026-01-01T00:00:00Z");
    h.created([1000, 1100], &sent, "abc", "1");
    h.read_back("abc", "1", &stored);
    h.search_back("o-1", vec![seen("abc", Some("1"), &stored)]);
    assert_clean(&h);
}

#[test]
fn an_if_match_update_retried_after_info_is_no_lost_update() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    let u = h.update(2000, &v2, "abc", Some("1"));
    h.info(7000, u);
    let r = h.retry(7100, u);
    h.ok(7200, r, 200, Some("abc"), Some("2"));
    h.read_back("abc", "2", &v2);
    assert_clean(&h);
}

#[test]
fn a_404_read_after_the_create_is_counted_not_reported() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &body, "abc", "1");
    h.read(1200, 1300, "abc", None, Load);
    h.search_back("o-1", vec![seen("abc", Some("1"), &body)]);
    let out = assert_clean(&h);
    assert_eq!(out.stats.reads_absent_after_create, 1);
}

/// A transaction (not modelled) interleaved with the rest is ignored without a false
/// alarm; one that failed changes nothing, so a lost write is still found.
#[test]
fn transactions_are_ignored_safely() {
    let lost = |transaction_failed: bool| {
        let mut h = Hist::default();
        let c = h.create(1000, &obs("o-1", "final", 72.0), false);
        h.transaction(1050, 1150, transaction_failed);
        h.ok(1100, c, 201, Some("abc"), Some("1"));
        h.search_back("o-1", vec![]);
        h.read(30_020, 30_030, "abc", None, Readback);
        h.check()
    };
    let out = lost(false);
    assert!(out.findings.is_empty(), "{:#?}", out.findings);
    assert_eq!(out.stats.bundles, 1);
    assert!(out.stats.withheld_for_bundles > 0);
    assert_eq!(kinds(&lost(true)), vec![Kind::LostWrite]);
}

#[test]
fn a_truncated_history_gives_the_findings_of_its_prefix() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &body, "abc", "1");
    let c2 = h.create(1000, &obs("o-2", "final", 80.0), false);
    h.info(6000, c2);
    h.search_back("o-1", vec![]);
    h.read(30_020, 30_030, "abc", None, Readback);
    h.search(
        30_040,
        30_050,
        Some("o-2"),
        vec![seen("q", None, &obs("o-2", "final", 80.0))],
        Readback,
    );
    let mut bytes = Vec::new();
    let mut w = Writer::new(&mut bytes);
    for r in &h.records {
        w.write(r).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let lines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    for cut in (0..bytes.len()).step_by(37).chain([bytes.len()]) {
        let complete = lines.iter().filter(|&&end| end <= cut).count();
        let read: Vec<_> = Reader::new(&bytes[..cut], Path::new("h.jsonl"))
            .map_while(Result::ok)
            .collect();
        assert_eq!(read.len(), complete);
        let prefix = check(h.records[..complete].to_vec(), &options());
        assert_eq!(check(read, &options()), prefix, "cut at byte {cut}");
    }
    let full = h.check();
    assert_eq!(
        kinds(&full),
        vec![Kind::LostWrite, Kind::CommittedDespiteError]
    );
    let f = only(&check(h.records[..8].to_vec(), &options())).clone();
    assert_eq!(f.kind, Kind::LostWrite);
}

#[test]
fn an_old_version_label_on_new_content_is_not_stale() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    h.updated([2000, 2100], &v2, "abc", "1", "2");
    h.read(2200, 2300, "abc", Some(seen("abc", Some("1"), &v2)), Load);
    assert_clean(&h);
}

/// The last write stored corrupted shows both at read-back and in `_history`: one
/// anomaly, one finding. A write that reported no version is not judged by `_history`.
#[test]
fn a_corrupted_current_version_is_reported_once() {
    let run = |versions_on_writes: bool| {
        let mut h = Hist::default();
        let v1 = obs("o-1", "preliminary", 72.0);
        let v2 = obs("o-1", "final", 72.0);
        let mut stored = v2.clone();
        stored["status"] = json!("amended");
        let c = h.create(1000, &v1, false);
        let version = |v| versions_on_writes.then_some(v);
        h.ok(1100, c, 201, Some("abc"), version("1"));
        let u = h.update(2000, &v2, "abc", version("1"));
        h.ok(2100, u, 200, Some("abc"), version("2"));
        let current = seen("abc", Some("2"), &stored);
        h.search_back("o-1", vec![current.clone()]);
        h.read(30_020, 30_030, "abc", Some(current.clone()), Readback);
        let mut stripped = v1.clone();
        stripped.as_object_mut().unwrap().remove("valueQuantity");
        let versions = vec![seen("abc", Some("1"), &stripped), current];
        h.history(30_040, 30_050, "abc", versions);
        h.check()
    };
    let out = run(true);
    assert_eq!(
        kinds(&out),
        vec![Kind::CorruptedWrite, Kind::CorruptedWrite],
        "{:#?}",
        out.findings
    );
    assert!(out.findings[0].detail.contains("lists version 1 as stored"));
    assert!(
        out.findings[1]
            .detail
            .contains("read-back read at 30.030 s (version 2)")
    );
    // No version reported: only the current state is judged.
    let out = run(false);
    let f = only(&out);
    assert_eq!(f.kind, Kind::CorruptedWrite);
    assert!(f.detail.contains("`status` changed"), "{}", f.detail);
}

/// A stale read judged against two acknowledged updates, the newest of them lost: the
/// older one is not lost, so the read is still stale, against it; the lost one is a
/// `lost_write` of its own.
#[test]
fn a_stale_read_not_explained_by_the_lost_write_stays() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    let v3 = obs("o-1", "amended", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    h.updated([2000, 2100], &v2, "abc", "1", "2");
    h.updated([2200, 2300], &v3, "abc", "2", "3");
    h.read(2400, 2500, "abc", Some(seen("abc", Some("1"), &v1)), Load);
    let kept = seen("abc", Some("2"), &v2);
    h.search_back("o-1", vec![kept.clone()]);
    h.read(30_020, 30_030, "abc", Some(kept.clone()), Readback);
    h.history(
        30_040,
        30_050,
        "abc",
        vec![seen("abc", Some("1"), &v1), kept],
    );
    let out = h.check();
    assert_eq!(
        kinds(&out),
        vec![Kind::StaleRead, Kind::LostWrite],
        "{:#?}",
        out.findings
    );
    let stale = &out.findings[0];
    assert!(
        stale
            .detail
            .contains("If-Match update acknowledged 200 at 2.100 s (version 2) had completed"),
        "{}",
        stale.detail
    );
    let lost = &out.findings[1];
    assert!(
        lost.detail.contains("_history lacks version 3"),
        "{}",
        lost.detail
    );
    assert!(!lost.detail.contains("already returned"), "{}", lost.detail);
}

/// An update that ended `info`, and a state that holds none of what was sent and no
/// value only that update sent: corrupted, but whether the update took effect is
/// unknown, so it is named as a possible source, not reported as committed.
#[test]
fn an_info_update_that_may_have_made_an_altered_state_is_not_called_committed() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 80.0);
    let mut stored = v2.clone();
    stored["status"] = json!("amended");
    stored.as_object_mut().unwrap().remove("valueQuantity");
    let [c, _] = h.created([1000, 1100], &v1, "abc", "1");
    let u = h.update(2000, &v2, "abc", Some("1"));
    h.info(7000, u);
    let now = seen("abc", Some("2"), &stored);
    h.search_back("o-1", vec![now.clone()]);
    h.read(30_020, 30_030, "abc", Some(now), Readback);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::CorruptedWrite);
    assert!(f.evidence.contains(&c) && f.evidence.contains(&u));
    assert!(
        f.detail.starts_with("create acknowledged 201 at 1.100 s")
            && f.detail.contains("which may have made it: unknown")
            && f.detail
                .contains("`status` changed, `valueQuantity` missing"),
        "{}",
        f.detail
    );
}

/// A conditional create answered 200 after an update began reports a version the
/// update may have made: it says nothing about what the create stored.
#[test]
fn a_version_reported_by_a_late_existing_match_is_not_judged_against_the_create() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    let c = h.create(1000, &v1, true);
    h.ok(1100, c, 201, Some("abc"), Some("1"));
    h.updated([2000, 2100], &v2, "abc", "1", "2");
    let twin = h.create(3000, &v1, true);
    h.ok(3100, twin, 200, Some("abc"), Some("2"));
    let now = seen("abc", Some("2"), &v2);
    h.search_back("o-1", vec![now.clone()]);
    h.read(30_020, 30_030, "abc", Some(now.clone()), Readback);
    h.history(
        30_040,
        30_050,
        "abc",
        vec![seen("abc", Some("1"), &v1), now],
    );
    assert_clean(&h);
}

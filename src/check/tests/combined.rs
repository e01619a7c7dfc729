//! Anomalies that combine, or hide behind a correct final state: versions judged by
//! `_history`, stale reads that a lost write explains, an errored update stored altered,
//! and what a retry's answer attests about the attempt before it.

use serde_json::json;

use crate::history::Phase::{Load, Readback};

use super::{Hist, ident, kinds, obs, only, seen};
use crate::check::Kind;

/// A create stored stripped, then overwritten by an acknowledged update: the current
/// state is right, but `_history` shows version 1 as stored.
#[test]
fn corrupted_write_an_overwritten_version_as_history_lists_it() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    let mut stored = v1.clone();
    stored.as_object_mut().unwrap().remove("valueQuantity");
    let [c, cd] = h.created([1000, 1100], &v1, "abc", "1");
    h.updated([2000, 2100], &v2, "abc", "1", "2");
    let current = seen("abc", Some("2"), &v2);
    h.search_back("o-1", vec![current.clone()]);
    h.read(30_020, 30_030, "abc", Some(current.clone()), Readback);
    let versions = vec![seen("abc", Some("1"), &stored), current];
    let hist = h.history(30_040, 30_050, "abc", versions);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::CorruptedWrite);
    assert_eq!(f.id.as_deref(), Some("abc"));
    assert_eq!(f.identifier, Some(ident("o-1")));
    assert_eq!(f.evidence, vec![c, cd, hist[0], hist[1]]);
    for part in [
        "create acknowledged 201 at 1.100 s (id abc, version 1)",
        "_history at 30.050 s lists version 1 as stored: `valueQuantity` missing",
    ] {
        assert!(f.detail.contains(part), "{}", f.detail);
    }
}

/// An acknowledged update dropped, and a load-phase read after it that already showed
/// version 1: one `lost_write`, with the read as evidence, not a second `stale_read`.
#[test]
fn lost_write_folds_the_stale_read_it_explains() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &v1, "abc", "1");
    h.updated([2000, 2100], &v2, "abc", "1", "2");
    let r = h.read(2210, 2300, "abc", Some(seen("abc", Some("1"), &v1)), Load);
    let old = seen("abc", Some("1"), &v1);
    h.search_back("o-1", vec![old.clone()]);
    h.read(30_020, 30_030, "abc", Some(old.clone()), Readback);
    h.history(30_040, 30_050, "abc", vec![old]);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::LostWrite);
    assert!(f.evidence.contains(&r[0]) && f.evidence.contains(&r[1]));
    assert!(
        f.detail
            .contains("_history lacks version 2; a read at 2.210 s already returned version 1"),
        "{}",
        f.detail
    );
    assert_eq!(out.stats.reads_checked, 1);
}

/// An update that ended `info` took effect, stored altered: the state holds none of what
/// was sent, but shows a value only that update sent. Both anomalies are reported.
#[test]
fn committed_despite_error_and_corrupted_an_info_update_stored_altered() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 80.0);
    let mut stored = v2.clone();
    stored["status"] = json!("amended");
    h.created([1000, 1100], &v1, "abc", "1");
    let u = h.update(2000, &v2, "abc", Some("1"));
    let ui = h.info(7000, u);
    let now = seen("abc", Some("2"), &stored);
    h.search_back("o-1", vec![now.clone()]);
    h.read(30_020, 30_030, "abc", Some(now.clone()), Readback);
    let out = h.check();
    assert_eq!(
        kinds(&out),
        vec![Kind::CorruptedWrite, Kind::CommittedDespiteError],
        "{:#?}",
        out.findings
    );
    let committed = &out.findings[1];
    assert!(committed.evidence.contains(&u) && committed.evidence.contains(&ui));
    assert!(
        committed
            .detail
            .contains("If-Match update that ended info (timeout) at 7.000 s took effect")
            && committed
                .detail
                .contains("shows `valueQuantity` as it sent"),
        "{}",
        committed.detail
    );
    let corrupted = &out.findings[0];
    assert!(corrupted.evidence.contains(&u));
    assert!(
        corrupted
            .detail
            .starts_with("If-Match update that ended info")
            && corrupted.detail.ends_with(": `status` changed"),
        "{}",
        corrupted.detail
    );
}

/// A plain create that ended `info` had committed; its re-send was acknowledged 201 with
/// an id that read-back finds nowhere. The identifier is present, but on the first
/// attempt's resource: the acknowledged one is lost, the first committed despite error.
#[test]
fn lost_write_an_acknowledged_201_absent_though_an_earlier_attempt_committed() {
    let mut h = Hist::default();
    let body = obs("o-1", "final", 72.0);
    let a = h.create(1000, &body, false);
    h.info(6000, a);
    let b = h.retry(6100, a);
    let bd = h.ok(6200, b, 201, Some("b2"), Some("1"));
    h.search_back("o-1", vec![seen("x9", Some("1"), &body)]);
    let r = h.read(30_020, 30_030, "b2", None, Readback);
    let out = h.check();
    assert_eq!(
        kinds(&out),
        vec![Kind::CommittedDespiteError, Kind::LostWrite],
        "{:#?}",
        out.findings
    );
    let lost = &out.findings[1];
    assert_eq!(lost.id.as_deref(), Some("b2"));
    assert!(lost.evidence.contains(&bd) && lost.evidence.contains(&r[1]));
    assert!(
        lost.detail
            .contains("404 by id at 30.030 s, and only id x9 carrying it"),
        "{}",
        lost.detail
    );
    assert_eq!(out.findings[0].id.as_deref(), Some("x9"));
}

/// A conditional create ended `info`; its retry, answered 200, reported the existing
/// version 1. That answer attests version 1, so an acknowledged update reverted to it is
/// lost, and a load-phase read that already showed version 1 is part of that finding.
#[test]
fn lost_write_an_update_reverted_to_a_version_only_a_retry_reported() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    let c = h.create(1000, &v1, true);
    h.info(6000, c);
    let retry = h.retry(6100, c);
    h.ok(6200, retry, 200, Some("abc"), Some("1"));
    let [u, _] = h.updated([7000, 7100], &v2, "abc", "1", "2");
    let r = h.read(7200, 7300, "abc", Some(seen("abc", Some("1"), &v1)), Load);
    let old = seen("abc", Some("1"), &v1);
    h.search_back("o-1", vec![old.clone()]);
    h.read(30_020, 30_030, "abc", Some(old.clone()), Readback);
    h.history(30_040, 30_050, "abc", vec![old]);
    let out = h.check();
    assert_eq!(
        kinds(&out),
        vec![Kind::CommittedDespiteError, Kind::LostWrite],
        "{:#?}",
        out.findings
    );
    let lost = &out.findings[1];
    assert!(lost.evidence.contains(&u) && lost.evidence.contains(&r[0]));
    assert!(
        lost.detail.contains("_history lacks version 2")
            && lost
                .detail
                .contains("a read at 7.200 s already returned version 1"),
        "{}",
        lost.detail
    );
}

/// The version a conditional create's retry reported (the first attempt's, whose answer
/// was lost) is judged in `_history` too, against what the request sent.
#[test]
fn corrupted_write_a_version_only_a_retry_reported() {
    let mut h = Hist::default();
    let v1 = obs("o-1", "preliminary", 72.0);
    let v2 = obs("o-1", "final", 72.0);
    let mut stored = v1.clone();
    stored.as_object_mut().unwrap().remove("valueQuantity");
    let c = h.create(1000, &v1, true);
    h.info(6000, c);
    let retry = h.retry(6100, c);
    h.ok(6200, retry, 200, Some("abc"), Some("1"));
    h.updated([7000, 7100], &v2, "abc", "1", "2");
    let now = seen("abc", Some("2"), &v2);
    h.search_back("o-1", vec![now.clone()]);
    h.read(30_020, 30_030, "abc", Some(now.clone()), Readback);
    h.history(
        30_040,
        30_050,
        "abc",
        vec![seen("abc", Some("1"), &stored), now],
    );
    let out = h.check();
    let corrupted: Vec<_> = out
        .findings
        .iter()
        .filter(|f| f.kind == Kind::CorruptedWrite)
        .collect();
    assert_eq!(corrupted.len(), 1, "{:#?}", out.findings);
    let f = corrupted[0];
    assert!(f.evidence.contains(&c) && f.evidence.contains(&retry));
    assert!(
        f.detail
            .contains("whose version 1 the conditional create answered 200")
            && f.detail
                .contains("lists version 1 as stored: `valueQuantity` missing"),
        "{}",
        f.detail
    );
}

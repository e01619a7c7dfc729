//! Updates acknowledged without a new version: a server that answers an update it did
//! not store with 200 and the version already in place (its `If-Match` version, or a
//! version an earlier acknowledged write reported), or with a fabricated new one. Each
//! is a `lost_write` of the update, never a `corrupted_write` of the create; an honest
//! server that keeps the version of an update that changes nothing gives no finding.
//! Versions are opaque strings: UUIDs and odd weak ETags work the same.

use serde_json::Value;

use crate::history::Phase::{Load, Readback};

use super::{Hist, obs, only, seen};
use crate::check::{Kind, Outcome};

/// Reads the resource back as `shown` at version `version`, with `_history` listing
/// `versions`. Returns the read's indexes.
fn read_back(h: &mut Hist, version: &str, shown: &Value, versions: &[(&str, &Value)]) -> [u64; 2] {
    let now = seen("abc", Some(version), shown);
    h.search_back("o-1", vec![now.clone()]);
    let r = h.read(30_020, 30_030, "abc", Some(now), Readback);
    let listed = versions
        .iter()
        .map(|(v, b)| seen("abc", Some(v), b))
        .collect();
    h.history(30_040, 30_050, "abc", listed);
    r
}

/// A create acknowledged with `v1`, then an update (`If-Match` `if_match`) acknowledged
/// with `acked`, never stored: the read-back shows the create, `_history` only `v1`.
fn echoed(v1: &str, if_match: Option<&str>, acked: &str) -> (Outcome, [u64; 2], [u64; 2]) {
    let mut h = Hist::default();
    let created = obs("o-1", "preliminary", 72.0);
    let closed = obs("o-1", "final", 72.0);
    let c = h.create(1000, &created, false);
    let cd = h.ok(1100, c, 201, Some("abc"), Some(v1));
    let u = h.update(2000, &closed, "abc", if_match);
    let ud = h.ok(2100, u, 200, Some("abc"), Some(acked));
    read_back(&mut h, v1, &created, &[(v1, &created)]);
    (h.check(), [c, cd], [u, ud])
}

fn assert_lost_update(out: &Outcome, update: [u64; 2]) {
    let f = only(out);
    assert_eq!(f.kind, Kind::LostWrite, "{f:#?}");
    assert_eq!(f.id.as_deref(), Some("abc"));
    for i in update {
        assert!(f.evidence.contains(&i), "{i} not in {:?}", f.evidence);
    }
    assert!(f.detail.contains("update"), "{}", f.detail);
}

#[test]
fn an_update_acknowledged_with_its_own_if_match_version_is_a_lost_write() {
    let (out, _, u) = echoed("1", Some("1"), "1");
    assert_lost_update(&out, u);
    let f = only(&out);
    assert!(
        f.detail.contains("the version it was sent with"),
        "{}",
        f.detail
    );
}

#[test]
fn an_update_acknowledged_with_the_version_the_create_reported_is_a_lost_write() {
    // No If-Match: the version equals the one an earlier acknowledged write reported.
    let (out, _, u) = echoed("1", None, "1");
    assert_lost_update(&out, u);
    assert!(
        only(&out)
            .detail
            .contains("an earlier acknowledged write reported"),
        "{}",
        only(&out).detail
    );
}

#[test]
fn opaque_versions_uuids_and_odd_weak_etags() {
    for v in [
        "3f1c9a0e-5b7d-4c2a-9e8f-0a1b2c3d4e5f",
        "W/\"0x8DB1\"",
        "\"quoted\"",
        "v 1 ;x",
    ] {
        let (out, _, u) = echoed(v, Some(v), v);
        assert_lost_update(&out, u);
    }
    // A fabricated new version is lost too, whatever it looks like.
    let (out, _, u) = echoed("a1b2", Some("a1b2"), "ffff-0000-fabricated");
    assert_lost_update(&out, u);
}

#[test]
fn an_honest_update_that_changes_nothing_keeps_its_version_without_a_finding() {
    // A server may answer an update identical to what it holds with the version in place.
    let mut h = Hist::default();
    let created = obs("o-1", "preliminary", 72.0);
    h.created([1000, 1100], &created, "abc", "1");
    h.updated([2000, 2100], &created, "abc", "1", "1");
    read_back(&mut h, "1", &created, &[("1", &created)]);
    let out = h.check();
    assert!(out.findings.is_empty(), "{:#?}", out.findings);
}

#[test]
fn an_honest_server_with_a_new_version_gives_no_finding() {
    let mut h = Hist::default();
    let created = obs("o-1", "preliminary", 72.0);
    let closed = obs("o-1", "final", 72.0);
    let c = h.create(1000, &created, false);
    h.ok(1100, c, 201, Some("abc"), Some("W/\"a\""));
    let u = h.update(2000, &closed, "abc", Some("W/\"a\""));
    h.ok(2100, u, 200, Some("abc"), Some("W/\"b\""));
    // A read during the load sees the update.
    h.read(
        2200,
        2250,
        "abc",
        Some(seen("abc", Some("W/\"b\""), &closed)),
        Load,
    );
    let versions = [("W/\"a\"", &created), ("W/\"b\"", &closed)];
    read_back(&mut h, "W/\"b\"", &closed, &versions);
    let out = h.check();
    assert!(out.findings.is_empty(), "{:#?}", out.findings);
}

#[test]
fn a_later_read_of_the_kept_state_is_folded_into_the_lost_write() {
    let mut h = Hist::default();
    let created = obs("o-1", "preliminary", 72.0);
    let closed = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &created, "abc", "1");
    let [u, ud] = h.updated([2000, 2100], &closed, "abc", "1", "1");
    let r = h.read(
        2200,
        2250,
        "abc",
        Some(seen("abc", Some("1"), &created)),
        Load,
    );
    read_back(&mut h, "1", &created, &[("1", &created)]);
    let out = h.check();
    assert_lost_update(&out, [u, ud]);
    assert!(only(&out).evidence.contains(&r[0]), "{:#?}", out.findings);
}

#[test]
fn two_indistinguishable_attempts_give_one_finding_naming_both() {
    // The first attempt ended `info`; its retry (same content, same If-Match) was
    // acknowledged with the If-Match version, which no applied update can report.
    let mut h = Hist::default();
    let created = obs("o-1", "preliminary", 72.0);
    let closed = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &created, "abc", "1");
    let u1 = h.update(2000, &closed, "abc", Some("1"));
    h.info(2500, u1);
    let u2 = h.retry(2600, u1);
    let u2d = h.ok(2700, u2, 200, Some("abc"), Some("1"));
    read_back(&mut h, "1", &created, &[("1", &created)]);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::LostWrite, "{f:#?}");
    for i in [u1, u2, u2d] {
        assert!(f.evidence.contains(&i), "{i} not in {:?}", f.evidence);
    }
    assert!(f.detail.contains("ended info"), "{}", f.detail);
    assert!(f.detail.contains("acknowledged 200"), "{}", f.detail);
}

/// A create, an update that ended `info`, and its retry refused 412; the read-back shows
/// `shown` (with `_history` listing `versions`). `others`: a write of another request
/// that may have changed the version meanwhile.
fn refused_retry(shown: &Value, versions: &[(&str, &Value)], other: bool) -> (Outcome, u64) {
    let mut h = Hist::default();
    let created = obs("o-1", "preliminary", 72.0);
    let closed = obs("o-1", "final", 72.0);
    h.created([1000, 1100], &created, "abc", "1");
    let u1 = h.update(2000, &closed, "abc", Some("1"));
    h.info(2500, u1);
    if other {
        let o = h.update(2550, &obs("o-1", "amended", 70.0), "abc", None);
        h.info(2560, o);
    }
    let u2 = h.retry(2600, u1);
    h.fail(2700, u2, 412);
    let version = versions.last().map_or("1", |v| v.0);
    read_back(&mut h, version, shown, versions);
    (h.check(), u1)
}

#[test]
fn a_retry_refused_412_proves_the_first_attempt_took_effect() {
    let created = obs("o-1", "preliminary", 72.0);
    let (out, u1) = refused_retry(&created, &[("1", &created)], false);
    let f = only(&out);
    assert_eq!(f.kind, Kind::LostWrite, "{f:#?}");
    assert!(f.evidence.contains(&u1), "{f:#?}");
    assert!(f.detail.contains("412"), "{}", f.detail);
}

#[test]
fn a_412_another_writer_explains_is_no_evidence() {
    let created = obs("o-1", "preliminary", 72.0);
    let (out, _) = refused_retry(&created, &[("1", &created)], true);
    assert!(
        out.findings.iter().all(|f| f.kind != Kind::LostWrite),
        "{:#?}",
        out.findings
    );
}

#[test]
fn a_412_whose_first_attempt_is_in_the_history_is_no_lost_write() {
    // The first attempt took effect and is what the read-back shows: the update
    // committed although its request ended refused (an existing kind, not lost).
    let created = obs("o-1", "preliminary", 72.0);
    let closed = obs("o-1", "final", 72.0);
    let (out, _) = refused_retry(&closed, &[("1", &created), ("2", &closed)], false);
    assert!(
        out.findings.iter().all(|f| f.kind != Kind::LostWrite),
        "{:#?}",
        out.findings
    );
}

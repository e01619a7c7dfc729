//! Transactions whose entries the history records: each entry judged like a single
//! write, a transaction acknowledged whole but applied in part, a refused one that left
//! an entry behind.

use crate::history::{Content, EntryOf, Interaction, Op, Phase};

use super::{Hist, Kind, ident, kinds, obs, only, seen};

/// A transaction of three conditional creates (`a`, `b`, `c`) answered `status`; when
/// acknowledged, each entry answered 201 with id `id-<value>`. Read-back then finds the
/// entries in `present`. Returns the history and the transaction's invocation index.
fn transaction(status: u16, present: &[&str]) -> (Hist, u64) {
    let mut h = Hist::default();
    let values = ["a", "b", "c"];
    let t = h.invoke(
        100,
        Op {
            f: Interaction::Transaction,
            entries: Some(3),
            ..Op::default()
        },
    );
    let entries: Vec<u64> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            h.invoke(
                100,
                Op {
                    f: Interaction::ConditionalCreate,
                    resource_type: "Observation".into(),
                    identifier: Some(ident(v)),
                    content: Some(Content::of(&obs(v, "final", 70.0))),
                    entry_of: Some(EntryOf {
                        transaction: t,
                        entry: i as u32,
                    }),
                    ..Op::default()
                },
            )
        })
        .collect();
    let acked = (200..300).contains(&status);
    if acked {
        h.ok(200, t, status, None, None);
    } else {
        h.fail(200, t, status);
    }
    for (v, e) in values.iter().zip(entries) {
        if acked {
            let id = format!("id-{v}");
            h.ok(200, e, 201, Some(&id), Some("1"));
        } else {
            h.fail(200, e, status);
        }
    }
    for v in values {
        let id = format!("id-{v}");
        let body = obs(v, "final", 70.0);
        let shown = present.contains(&v).then(|| seen(&id, Some("1"), &body));
        h.search(
            900,
            910,
            Some(v),
            shown.clone().into_iter().collect(),
            Phase::Readback,
        );
        if acked || shown.is_some() {
            h.read(920, 930, &id, shown, Phase::Readback);
        }
    }
    (h, t)
}

#[test]
fn a_transaction_applied_whole_is_no_finding() {
    let (h, _) = transaction(200, &["a", "b", "c"]);
    let out = h.check();
    assert!(out.findings.is_empty(), "{:#?}", out.findings);
    assert_eq!(out.stats.transactions, 1);
    assert_eq!(out.stats.bundles, 0, "its entries are judged, not withheld");
    assert_eq!(out.stats.writes_ok, 3);
    assert_eq!(out.stats.identifiers_verified, 3);
}

#[test]
fn an_entry_missing_from_an_acknowledged_transaction_is_a_partial_transaction() {
    let (h, t) = transaction(200, &["a", "c"]);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::PartialTransaction);
    assert_eq!(f.identifier.as_deref(), Some(ident("b").as_str()));
    assert_eq!(f.id.as_deref(), Some("id-b"));
    assert!(f.evidence.contains(&t), "names the transaction: {f:#?}");
    assert!(f.evidence.contains(&4), "and its completion: {f:#?}");
    assert!(f.detail.contains("1 of them is missing"), "{}", f.detail);
    assert!(f.detail.contains("entry 1 (Observation"), "{}", f.detail);
    assert!(f.detail.contains("while 2 are there"), "{}", f.detail);
    assert_eq!(out.counts.get(&Kind::PartialTransaction), Some(&1));
    assert_eq!(out.counts.get(&Kind::LostWrite), None);
}

#[test]
fn two_missing_entries_name_each_other() {
    let (h, _) = transaction(200, &["c"]);
    let out = h.check();
    assert_eq!(kinds(&out), [Kind::PartialTransaction; 2]);
    for f in &out.findings {
        assert!(f.detail.contains("entry 0 (") && f.detail.contains("entry 1 ("));
    }
}

#[test]
fn a_transaction_of_which_nothing_is_there_is_lost_writes() {
    let (h, _) = transaction(200, &[]);
    let out = h.check();
    assert_eq!(kinds(&out), [Kind::LostWrite; 3]);
}

#[test]
fn a_refused_transaction_that_left_an_entry_is_committed_despite_error() {
    let (h, t) = transaction(409, &["b"]);
    let out = h.check();
    let f = only(&out);
    assert_eq!(f.kind, Kind::CommittedDespiteError);
    assert_eq!(f.identifier.as_deref(), Some(ident("b").as_str()));
    assert!(f.evidence.contains(&t), "{f:#?}");
    let (clean, _) = transaction(409, &[]);
    assert!(clean.check().findings.is_empty());
}

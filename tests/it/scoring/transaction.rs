//! Scoring transaction write-backs (`write_back = "transaction"`): the mock's
//! `partial_transaction` skips one create of a transaction while answering 201 for it;
//! each must be a `partial_transaction` naming that entry, and nothing else found. The
//! same run without the fault finds nothing.

use fhirsurge::check::Kind;

use super::{ENOUGH, Run, Shape, rule, run, score};

const TOP: &str = "write_back = \"transaction\"\n";

/// The workload's verdict on whether `partial_transaction` was measured.
fn measured(r: &Run) -> bool {
    r.workload
        .checks
        .iter()
        .any(|c| c.kind == "partial_transaction" && c.measured)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partial_transaction_is_found_with_its_missing_entry() {
    let faults = "[[faults]]\nkind = \"partial_transaction\"\nprobability = 0.3\n";
    let r = run(&Shape {
        top: TOP,
        faults,
        ..Shape::default()
    })
    .await;
    let s = score(
        &r,
        &[rule("partial_transaction", &[Kind::PartialTransaction])],
    );
    s.assert_exact("partial_transaction");
    assert!(s.injected("partial_transaction") >= ENOUGH, "{s}");
    assert!(measured(&r), "{:#?}", r.workload.checks);
    for f in &r.findings {
        assert!(f.detail.contains("missing at read-back"), "{}", f.detail);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_without_faults_find_nothing() {
    let r = run(&Shape {
        top: TOP,
        seconds: 3,
        ..Shape::default()
    })
    .await;
    assert!(measured(&r), "{:#?}", r.workload.checks);
    assert!(r.ledger.is_empty());
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    let transactions = r
        .ops
        .values()
        .filter(|o| o.f == fhirsurge::history::Interaction::Transaction)
        .count();
    assert!(
        transactions as u64 >= r.encounters / 2,
        "{transactions} transactions"
    );
}

/// Every silent fault at once with transaction write-backs, at the rates of
/// `scenarios/silent-transaction.toml` (whose `[[faults]]` this test reads): torn
/// transactions are `partial_transaction`, the rest as the single-write rules say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_silent_fault_with_transactions_is_found_and_nothing_else() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/silent-transaction.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let scenario = fhirsurge::scenario::Scenario::from_str(&text, &path).unwrap();
    assert_eq!(
        scenario.write_back,
        fhirsurge::scenario::WriteBack::Transaction
    );
    // The file's faults; partial_transaction more often, so that a short run on a
    // loaded machine still tears enough transactions to prove something.
    let faults = text[text.find("[[faults]]").unwrap()..].replace(
        "not stored\nprobability = 0.15",
        "not stored\nprobability = 0.4",
    );
    assert!(faults.contains("probability = 0.4"));
    let r = run(&Shape {
        top: TOP,
        seconds: 6,
        settle: "2s",
        faults: &faults,
        ..Shape::default()
    })
    .await;
    let mut rules: Vec<_> = super::silent_rules(super::COMMITTED).into_iter().collect();
    rules.push(rule("partial_transaction", &[Kind::PartialTransaction]));
    let s = score(&r, &rules);
    s.assert_exact("all silent faults, transaction write-back");
    assert!(s.injected("partial_transaction") >= ENOUGH, "{s}");
}

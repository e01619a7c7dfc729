//! `write_back = "transaction"` against the mock: where the profile takes transactions
//! the AI's results go as one Bundle (entries recorded as writes of their own, each
//! completed from the transaction-response); where it does not, single writes, and the
//! report's mapping section says so and `partial_transaction` is not measured.

use std::path::Path;

use fhirsurge::history::{Event, Interaction, Reader};
use fhirsurge::scenario::Scenario;

fn scenario(profile: &str) -> Scenario {
    let text = format!(
        r#"
name = "it-transaction"
seed = 7
profile = "{profile}"
write_back = "transaction"
[target]
url = "mock"
timeout = "5s"
[load]
model = "closed"
users = 3
duration = "2s"
[readback]
settle = "100ms"
"#
    );
    Scenario::from_str(&text, Path::new("it.toml")).unwrap()
}

/// (transactions, entries, entries completed ok with an id) in a run's history.
fn counted(dir: &Path) -> (usize, usize, usize) {
    let mut entries = std::collections::HashSet::new();
    let (mut tx, mut ok) = (0, 0);
    for r in Reader::open(&dir.join(fhirsurge::history::FILE)).unwrap() {
        match r.unwrap().event {
            Event::Invoke(op) if op.f == Interaction::Transaction => tx += 1,
            Event::Invoke(op) if op.entry_of.is_some() => _ = entries.insert(op_index(&op)),
            Event::Ok(c) if c.id.is_some() && c.status == Some(201) => ok += 1,
            _ => {}
        }
    }
    (tx, entries.len(), ok)
}

fn op_index(op: &fhirsurge::history::Op) -> (u64, u32) {
    let e = op.entry_of.unwrap();
    (e.transaction, e.entry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_go_as_one_transaction_where_the_profile_allows() {
    let ran = super::run::run(&scenario("us-core")).await;
    let r = &ran.report;
    let (tx, entries, _) = counted(&ran.dir);
    assert!(
        tx > 0 && entries >= 3 * tx,
        "{tx} transactions, {entries} entries"
    );
    assert!(
        r.operations
            .iter()
            .any(|o| o.op == "transaction" && o.ok > 0)
    );
    assert!(
        !r.operations.iter().any(|o| o.op == "create Condition"),
        "conditions go in the Bundle"
    );
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    let check = r
        .workload
        .checks
        .iter()
        .find(|c| c.kind == "partial_transaction");
    assert!(
        check.is_some_and(|c| c.measured),
        "{:#?}",
        r.workload.checks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_transactions_the_dialect_falls_back_and_says_so() {
    let ran = super::run::run(&scenario("oracle-health")).await;
    let r = &ran.report;
    assert_eq!(counted(&ran.dir).0, 0, "no transaction sent");
    let d = r
        .mapping
        .decisions
        .iter()
        .find(|d| d.interaction == "transaction")
        .unwrap_or_else(|| panic!("{:#?}", r.mapping.decisions));
    assert!(d.reason.contains("not supported by"), "{d:?}");
    assert!(d.outcome.contains("single writes"), "{d:?}");
    let slo = r
        .slo
        .iter()
        .find(|s| s.name.starts_with("partial_transaction"));
    assert!(slo.is_some_and(|s| s.not_measured.is_some()), "{slo:#?}");
}

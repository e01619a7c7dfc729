//! Property tests against the simulated server (`model`): correct histories give no
//! findings; one injected anomaly is found, named with its kind and identifier, and
//! nothing else is reported.

use proptest::prelude::*;

use crate::check::model::{ALL, Inject, World, world};
use crate::check::{Kind, check};

use super::options;

/// The options a run against the simulated server uses: its profile declares that
/// `Observation.code` is rewritten when the server does so.
fn options_sim(w: &World) -> crate::check::Options {
    let mut o = options();
    if w.rewrites_code {
        o.expected_changes
            .insert("Observation".into(), vec!["code".into()]);
    }
    o
}

proptest! {
    #[test]
    fn correct_histories_give_no_findings(seed in any::<u64>(), entities in 1usize..8) {
        let w = world(seed, entities, None);
        let out = check(w.records.clone(), &options_sim(&w));
        prop_assert!(out.findings.is_empty(), "seed {seed}: {:#?}", out.findings);
        prop_assert_eq!(out.stats.orphan_completions, 0);
        prop_assert_eq!(out.stats.identifiers_unverified, 0);
    }

    #[test]
    fn one_injected_anomaly_is_found_and_named(
        seed in any::<u64>(),
        entities in 1usize..6,
        which in 0usize..ALL.len(),
    ) {
        let inject: Inject = ALL[which];
        let w = world(seed, entities, Some(inject));
        let out = check(w.records.clone(), &options_sim(&w));
        let identifier = w.injected.clone();
        prop_assert!(
            out.findings.iter().any(|f| f.kind == inject.expected() && f.identifier == identifier),
            "seed {seed} {inject:?}: expected {:?} for {identifier:?}, got {:#?}", inject.expected(), out.findings
        );
        for f in &out.findings {
            let allowed: Vec<Kind> = std::iter::once(inject.expected()).chain(inject.allowed().iter().copied()).collect();
            prop_assert!(allowed.contains(&f.kind) && f.identifier == identifier,
                "seed {seed} {inject:?}: unexpected {f:#?}");
        }
    }
}

proptest! {
    /// A correct history cut off anywhere (a crash) still gives no findings.
    #[test]
    fn prefixes_of_correct_histories_give_no_findings(seed in any::<u64>(), entities in 1usize..6, cut in 0.0f64..1.0) {
        let w = world(seed, entities, None);
        let keep = (w.records.len() as f64 * cut) as usize;
        let out = check(w.records[..keep].to_vec(), &options_sim(&w));
        prop_assert!(out.findings.is_empty(), "seed {seed} cut {keep}: {:#?}", out.findings);
    }
}

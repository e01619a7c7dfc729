//! Property tests against the simulated server (`model`): correct histories give no
//! findings; one injected anomaly is found, named with its kind and identifier, and
//! nothing else is reported.

use proptest::prelude::*;

use crate::check::model::{ALL, Inject, world};
use crate::check::{Kind, check};

use super::options;

fn options_sim() -> crate::check::Options {
    options()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn correct_histories_give_no_findings(seed in any::<u64>(), entities in 1usize..8) {
        let w = world(seed, entities, None);
        let out = check(w.records.clone(), &options_sim());
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
        let out = check(w.records.clone(), &options_sim());
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

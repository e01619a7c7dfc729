//! `fhirsurge check`: re-judges a recorded history offline, as its run judged it (the
//! run's `check.json`) or with a given profile, says where the history ends and what was
//! cut, and what a history not kept whole cannot measure, and prints the findings as
//! JSON.

use super::bad_input;
use super::exit::{Ending, Failure};
use crate::profile::Profile;
use crate::run;

pub(super) fn offline(
    path: &std::path::Path,
    profile: Option<&Profile>,
) -> Result<Ending, Failure> {
    let path = &run::recheck::history_in(path);
    let (options, source) = run::recheck::options_for(path, profile).map_err(bad_input)?;
    match source {
        run::recheck::Source::Profile(name) => eprintln!("judged with profile `{name}`"),
        run::recheck::Source::File(file) => eprintln!("judged as the run was ({})", file.display()),
        run::recheck::Source::Default => eprintln!(
            "no {} beside the history and no --profile: no transformation is expected",
            run::recheck::OPTIONS_FILE
        ),
    }
    let (mut outcome, end) =
        run::recheck::recheck_to_end(path, &options.options).map_err(bad_input)?;
    // The leak check needs only the history; the audit reconciliation needs the target's
    // trail and the scope probe the target itself: neither is re-run here.
    let (leaks, leak_stats) = run::access::leaks(path).map_err(bad_input)?;
    run::access::add(&mut outcome.findings, &mut outcome.counts, leaks);
    // A history not kept whole cannot show what its dropped reads showed.
    let not_measured = run::recheck::unmeasured(options.keep, &mut outcome);
    if !not_measured.is_empty() {
        eprintln!(
            "not measured ({}): {}",
            options.keep.reason(),
            not_measured
                .keys()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    eprintln!(
        "scope_leak re-run over the history ({} patient-scoped searches); audit reconciliation and the scope probe were not re-run (they need the target)",
        leak_stats.searches_checked
    );
    match &end.cut {
        Some(cut) => eprintln!(
            "{}: the history ends at line {} (the last complete one); cut off after it: {cut}",
            path.display(),
            end.lines
        ),
        None => eprintln!("{}: {} lines, complete", path.display(), end.lines),
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "history_end": end,
        "keep": options.keep,
        "not_measured": not_measured,
        "findings": outcome.findings,
        "finding_counts": outcome.counts,
        // The lag is the probes' searches, which a history not kept whole lost.
        "visibility_lag": if options.keep.is_full() {
            serde_json::json!(outcome.visibility_lag)
        } else {
            serde_json::json!({ "not_measured": options.keep.reason() })
        },
        "checked": outcome.stats,
        "access": {
            "scope_leak": leak_stats,
            "not_rerun": {
                "audit_gap": "audit reconciliation needs the target's audit trail; not re-run offline",
                "audit_mismatch": "audit reconciliation needs the target's audit trail; not re-run offline",
                "scope_not_enforced": "the scope probe needs the target; not re-run offline",
            },
        },
    }))
    .map_err(bad_input)?;
    println!("{json}");
    Ok(if outcome.findings.is_empty() {
        Ending::Passed
    } else {
        Ending::Failed
    })
}

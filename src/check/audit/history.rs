//! Per patient: whose complete access history the audit trail reconstructs, and one
//! patient's reconstructed history as an example (harness identifier, server ids and
//! interaction kinds only: no PHI). Pure.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{Event, Status};
use crate::check::access::{Access, Call};

/// Patients touched and how many have a complete audit history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Patients {
    /// Harness patients at least one reconciled call concerned.
    pub touched: u64,
    /// Those whose every call was found in the trail, exactly.
    pub reconstructable: u64,
    /// Reconciled calls whose patient the history does not say (not counted above).
    pub calls_unattributed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Example>,
}

/// One patient's access history as the audit trail shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The patient's harness identifier (`system|value`).
    pub patient: String,
    pub accesses: Vec<Access1>,
    /// Accesses beyond those listed.
    pub more: u64,
}

/// One access in the example.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Access1 {
    /// Run-relative seconds of the call.
    pub at_s: f64,
    pub interaction: String,
    /// `Type/id`, or `Type` for a search.
    pub resource: String,
    /// `found`, `mismatch` or `missing`.
    pub audit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// Most accesses the example lists.
const EXAMPLE_MAX: usize = 40;

/// Counts patients; the example is the first patient touched, complete if one is.
pub(super) fn patients(
    access: &Access,
    calls: &[(&Call, bool)],
    status: &HashMap<u64, Status>,
    events: &[Event],
) -> Patients {
    let mut by_patient: BTreeMap<(u64, &str), Vec<&Call>> = BTreeMap::new();
    let mut first: HashMap<&str, u64> = HashMap::new();
    let mut out = Patients::default();
    for (call, needed) in calls.iter().filter(|(_, needed)| *needed) {
        let _ = needed;
        let Some(p) = access.patient_of(call) else {
            out.calls_unattributed += 1;
            continue;
        };
        let at = *first.entry(p).or_insert(call.invoke);
        by_patient.entry((at, p)).or_default().push(call);
    }
    let complete = |list: &[&Call]| {
        list.iter()
            .all(|c| matches!(status.get(&c.invoke), Some(Status::Matched(_))))
    };
    out.touched = by_patient.len() as u64;
    out.reconstructable = by_patient.values().filter(|l| complete(l)).count() as u64;
    let chosen = by_patient
        .iter()
        .find(|(_, l)| complete(l))
        .or_else(|| by_patient.iter().next());
    out.example = chosen.map(|((_, p), list)| example(access, p, list, status, events));
    out
}

fn example(
    access: &Access,
    patient: &str,
    list: &[&Call],
    status: &HashMap<u64, Status>,
    events: &[Event],
) -> Example {
    let accesses = list
        .iter()
        .take(EXAMPLE_MAX)
        .map(|c| {
            let (audit, event) = match status.get(&c.invoke) {
                Some(Status::Matched(e)) => ("found", Some(events[*e].id.clone())),
                Some(Status::Mismatch(e)) => ("mismatch", Some(events[*e].id.clone())),
                _ => ("missing", None),
            };
            Access1 {
                at_s: (c.invoke_us as f64 / 1e3).round() / 1e3,
                interaction: c.f.as_str().to_owned(),
                resource: c.what.as_deref().unwrap_or(&c.resource_type).to_owned(),
                audit: audit.to_owned(),
                event,
            }
        })
        .collect();
    Example {
        patient: access.patients.get(patient).cloned().unwrap_or_default(),
        accesses,
        more: list.len().saturating_sub(EXAMPLE_MAX) as u64,
    }
}

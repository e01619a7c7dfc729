//! Silent write-back failures: the fault kinds the mock understands, their validation,
//! the seeded decision of which fire for one write, and the pure edits they make to a
//! resource (`strip`, `remap`). No I/O here: the write path applies the plan.
//! Uses `vocab` (the fault spec shape and seeds) only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

pub use crate::vocab::fault::is_type_name;
use crate::vocab::fault::{Group, Kind as FaultKind, Spec, SpecError, names};
use crate::vocab::seed::{self, Purpose, chance};

/// A silent failure, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Answer as if written; store nothing.
    AckAndDrop,
    /// Answer an update with the version in place; store nothing.
    AckAndDropEcho,
    /// Store with one clinically meaningful element removed.
    Strip,
    /// Store with a code (or the status) changed.
    Remap,
    /// Stored, readable by id, absent from searches for this long.
    DelayedVisibility(Duration),
    /// After an update, reads by id serve the previous version for this long.
    StaleRead(Duration),
    /// Commit, then reset the connection before any byte of the answer.
    CommitThenReset,
    /// Commit, then answer 500.
    CommitThen500,
    /// One create of a transaction is not applied; the response claims it was.
    PartialTransaction,
    /// An update whose `If-Match` names a version no longer current is applied anyway
    /// (as a server that ignores `If-Match` would): a lost update.
    StaleIfMatch,
    /// An audited interaction writes no AuditEvent (`audit`).
    AuditDrop,
    /// An audited interaction's AuditEvent names the wrong action or entity.
    AuditWrong,
    /// A patient-scoped search also returns another patient's resource.
    Leak,
    /// Every request is held this long per 1,000 resources stored (`fill`).
    FillLatency(Duration),
    /// The SMART scope guard lets an out-of-scope request through (`smart::bypass`).
    ScopeBypass,
}

impl Kind {
    /// Whether the fault acts on the audit trail or on search answers, not on writes.
    pub fn is_access(self) -> bool {
        matches!(
            self,
            Kind::AuditDrop | Kind::AuditWrong | Kind::Leak | Kind::ScopeBypass
        )
    }
}

/// What kind of write a decision is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// A create (also a conditional create that creates, and update-as-create).
    Create,
    /// An update of an existing resource.
    Update,
    /// A transaction Bundle with at least one create.
    Transaction,
    /// An update whose `If-Match` does not hold.
    StaleUpdate,
}

/// The silent failure kinds, in the order scenarios document them.
pub fn kinds() -> Vec<&'static str> {
    names(&[Group::Silent])
}

/// Checks that a spec is one the mock injects (its attributes were checked when read).
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    parse(spec).map(|_| ())
}

/// The mock's kind for a silent fault spec; any other group is not the mock's.
pub fn parse(spec: &Spec) -> Result<Kind, SpecError> {
    Ok(match spec.kind {
        FaultKind::AckAndDrop {} => Kind::AckAndDrop,
        FaultKind::AckAndDropEcho {} => Kind::AckAndDropEcho,
        FaultKind::Strip {} => Kind::Strip,
        FaultKind::Remap {} => Kind::Remap,
        FaultKind::DelayedVisibility { delay } => Kind::DelayedVisibility(delay),
        FaultKind::StaleRead { delay } => Kind::StaleRead(delay),
        FaultKind::CommitThenReset {} => Kind::CommitThenReset,
        FaultKind::CommitThen500 {} => Kind::CommitThen500,
        FaultKind::PartialTransaction {} => Kind::PartialTransaction,
        FaultKind::StaleIfMatch {} => Kind::StaleIfMatch,
        FaultKind::AuditDrop {} => Kind::AuditDrop,
        FaultKind::AuditWrong {} => Kind::AuditWrong,
        FaultKind::Leak {} => Kind::Leak,
        FaultKind::FillLatency { latency } => Kind::FillLatency(latency),
        FaultKind::ScopeBypass {} => Kind::ScopeBypass,
        _ => {
            return Err(SpecError::UnknownKind(
                spec.kind.name().to_owned(),
                kinds().join(", "),
            ));
        }
    })
}

/// One configured fault with its own decision counter.
#[derive(Debug)]
pub struct Fault {
    pub label: String,
    pub position: usize,
    pub kind: Kind,
    spec: Spec,
    /// Eligible requests seen so far: the `n` of [`Spec::fires`].
    seen: AtomicU64,
}

impl Fault {
    pub fn new(position: usize, spec: Spec) -> Result<Fault, SpecError> {
        Ok(Fault {
            label: spec.label(position),
            position,
            kind: parse(&spec)?,
            spec,
            seen: AtomicU64::new(0),
        })
    }

    /// The kind as the scenario spelled it (`ack_and_drop`).
    pub fn name(&self) -> &str {
        self.spec.kind.name()
    }

    /// Whether this fault could act on this write (kind, type filter, content).
    pub fn eligible(&self, write: Write, resource_type: &str, resource: &Value) -> bool {
        let types = &self.spec.resource_types;
        if !types.is_empty() && !types.iter().any(|t| t == resource_type) {
            return false;
        }
        match self.kind {
            _ if self.kind.is_access() => false,
            Kind::FillLatency(_) => false,
            Kind::PartialTransaction => write == Write::Transaction,
            Kind::StaleIfMatch => write == Write::StaleUpdate,
            Kind::AckAndDropEcho => write == Write::Update,
            Kind::StaleRead(_) => write == Write::Update,
            _ if matches!(write, Write::Transaction | Write::StaleUpdate) => false,
            Kind::Strip => strip_target(resource_type, resource).is_some(),
            Kind::Remap => remap_target(resource).is_some(),
            _ => true,
        }
    }

    /// Takes the next decision number and says whether the fault fires for it.
    pub fn decide(&self, seed: u64, elapsed: Duration) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        self.spec.fires(seed, self.position, n, elapsed)
    }

    /// Whether this fault could act on an interaction with `resource_type` (its type
    /// filter); for the audit and leak faults.
    pub fn applies_to(&self, resource_type: &str) -> bool {
        let types = &self.spec.resource_types;
        types.is_empty() || types.iter().any(|t| t == resource_type)
    }

    /// A deterministic number for choosing among `len` items once the fault fired.
    pub fn pick(&self, seed: u64, len: usize) -> usize {
        let n = self.seen.load(Ordering::Relaxed);
        let x = chance(
            seed::derive(seed, Purpose::FaultTargets),
            self.position as u64,
            n,
        );
        ((x * len as f64) as usize).min(len.saturating_sub(1))
    }
}

/// What the faults that fired do to one write.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// `ack_and_drop` or `ack_and_drop_echo`: nothing else happens.
    pub drop: Option<&'a Fault>,
    /// `strip` and `remap`, in scenario order.
    pub edits: Vec<&'a Fault>,
    /// `delayed_visibility`.
    pub hide: Option<(&'a Fault, Duration)>,
    /// `stale_read`.
    pub stale: Option<(&'a Fault, Duration)>,
    /// `commit_then_reset` or `commit_then_500` (the first that fired).
    pub after: Option<&'a Fault>,
    /// `stale_if_match`: apply the update whose `If-Match` does not hold.
    pub accept_stale: Option<&'a Fault>,
}

/// Decides every eligible fault (each advances its own counter) and combines those that
/// fired: `ack_and_drop` excludes the rest; edits combine; one visibility fault of each
/// kind; one after-commit failure. `can_reset`: the transport can reset the connection.
pub fn plan<'a>(
    faults: &'a [Fault],
    decide: impl Fn(&Fault) -> bool,
    write: Write,
    resource_type: &str,
    resource: &Value,
    can_reset: bool,
) -> Plan<'a> {
    let mut plan = Plan::default();
    let fired = faults.iter().filter(|f| {
        f.eligible(write, resource_type, resource)
            && (can_reset || f.kind != Kind::CommitThenReset)
            && decide(f)
    });
    for f in fired {
        match f.kind {
            Kind::AckAndDrop | Kind::AckAndDropEcho => {
                plan.drop.get_or_insert(f);
            }
            Kind::Strip | Kind::Remap => plan.edits.push(f),
            Kind::DelayedVisibility(d) => {
                plan.hide.get_or_insert((f, d));
            }
            Kind::StaleRead(d) => {
                plan.stale.get_or_insert((f, d));
            }
            Kind::CommitThenReset | Kind::CommitThen500 => {
                plan.after.get_or_insert(f);
            }
            Kind::StaleIfMatch => {
                plan.accept_stale.get_or_insert(f);
            }
            Kind::PartialTransaction
            | Kind::AuditDrop
            | Kind::AuditWrong
            | Kind::Leak
            | Kind::FillLatency(_)
            | Kind::ScopeBypass => {}
        }
    }
    if plan.drop.is_some() {
        return Plan {
            drop: plan.drop,
            ..Plan::default()
        };
    }
    plan
}

/// The element `strip` removes: the clinically meaningful one for known types, else the
/// first element the client owns (never `resourceType`, `id`, `meta`, `text`, `identifier`).
pub fn strip_target(resource_type: &str, resource: &Value) -> Option<String> {
    let map = resource.as_object()?;
    let preferred: &[&str] = match resource_type {
        "Observation" => &["note", "code"],
        "Condition" => &["code", "clinicalStatus"],
        "MedicationRequest" => &["dosageInstruction"],
        "DocumentReference" => &["content"],
        "Claim" => &["item"],
        "Patient" => &["birthDate"],
        "Encounter" => &["period"],
        _ => &[],
    };
    let value_x = (resource_type == "Observation")
        .then(|| map.keys().find(|k| k.starts_with("value")))
        .flatten();
    value_x
        .or_else(|| {
            preferred
                .iter()
                .copied()
                .find_map(|p| map.get_key_value(p).map(|(k, _)| k))
        })
        .or_else(|| {
            map.keys().find(|k| {
                !["resourceType", "id", "meta", "text", "identifier"].contains(&k.as_str())
            })
        })
        .cloned()
}

/// Removes the [`strip_target`]; returns the ledger detail.
pub fn strip(resource_type: &str, resource: &mut Value) -> Option<String> {
    let name = strip_target(resource_type, resource)?;
    resource.as_object_mut()?.remove(&name);
    Some(format!("removed {name}"))
}

/// Where `remap` changes a value: `code.coding[0].code`, else the medication code, else
/// `status`. Returns the JSON pointer and the current value.
pub fn remap_target(resource: &Value) -> Option<(&'static str, &str)> {
    [
        "/code/coding/0/code",
        "/medicationCodeableConcept/coding/0/code",
        "/status",
    ]
    .into_iter()
    .find_map(|p| Some((p, resource.pointer(p)?.as_str()?)))
}

/// Changes the [`remap_target`] to another plausible value; returns the ledger detail.
pub fn remap(resource: &mut Value) -> Option<String> {
    let (pointer, old) = remap_target(resource)?;
    let old = old.to_owned();
    let new = if pointer == "/status" {
        other_status(&old).to_owned()
    } else {
        other_code(&old)
    };
    *resource.pointer_mut(pointer)? = Value::String(new.clone());
    let what = if pointer == "/status" {
        "status"
    } else {
        "code"
    };
    Some(format!("{what} {old} → {new}"))
}

/// Another code of the same shape: the first run of digits plus one (`8867-4` →
/// `8868-4`), or an `X` appended when there are no digits.
pub fn other_code(code: &str) -> String {
    let Some(start) = code.find(|c: char| c.is_ascii_digit()) else {
        return format!("{code}X");
    };
    let len = code[start..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(code.len() - start);
    let digits = &code[start..start + len];
    let bumped = match digits.parse::<u64>() {
        Ok(n) => format!("{:0width$}", n.wrapping_add(1), width = len),
        Err(_) => format!("{digits}1"),
    };
    format!("{}{bumped}{}", &code[..start], &code[start + len..])
}

fn other_status(status: &str) -> &'static str {
    match status {
        "final" => "amended",
        "preliminary" | "registered" => "final",
        "amended" | "corrected" => "final",
        "active" => "completed",
        "completed" => "active",
        "in-progress" => "finished",
        "finished" => "in-progress",
        "planned" | "arrived" => "cancelled",
        "current" => "superseded",
        _ => "entered-in-error",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(flag: &str) -> Spec {
        Spec::parse_flag(flag).unwrap()
    }

    #[test]
    fn validation_names_what_is_wrong() {
        // Read and checked once (`Spec::parse_flag`), then claimed by the mock or not.
        let checked = |flag: &str| parse(&Spec::parse_flag(flag)?);
        assert!(checked("ack_and_drop,probability=0.1").is_ok());
        assert!(matches!(
            checked("delayed_visibility"),
            Err(SpecError::Missing { field: "delay", .. })
        ));
        assert!(checked("stale_read,delay=2s").is_ok());
        assert!(matches!(
            checked("strip,delay=2s"),
            Err(SpecError::Unexpected { field: "delay", .. })
        ));
        assert!(matches!(
            checked("latency,latency=1s"),
            Err(SpecError::UnknownKind(..))
        ));
        assert!(matches!(
            checked("remap,status=500"),
            Err(SpecError::Unexpected {
                field: "status",
                ..
            })
        ));
        let lower: crate::vocab::fault::SpecFile =
            toml::from_str("kind = \"strip\"\nresource_types = [\"observation\"]").unwrap();
        assert!(matches!(
            Spec::try_from(lower),
            Err(SpecError::Invalid { field, .. }) if field == "resource_types"
        ));
        assert!(matches!(
            checked("strip,probability=2.0"),
            Err(SpecError::Probability(_))
        ));
    }

    #[test]
    fn type_names() {
        assert!(is_type_name("Observation"));
        assert!(!is_type_name("observation"));
        assert!(!is_type_name("O"));
        assert!(!is_type_name("Obs1"));
        assert!(!is_type_name("_history"));
    }

    #[test]
    fn strip_prefers_the_clinical_element() {
        let mut obs = json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "hr"}, "valueQuantity": {"value": 72}});
        assert_eq!(
            strip("Observation", &mut obs).as_deref(),
            Some("removed valueQuantity")
        );
        assert!(obs.get("valueQuantity").is_none());
        let p = json!({"resourceType": "Patient", "id": "x", "identifier": [], "gender": "f"});
        assert_eq!(strip_target("Patient", &p).as_deref(), Some("gender"));
        let bare = json!({"resourceType": "Basic", "id": "x", "meta": {}});
        assert_eq!(strip_target("Basic", &bare), None);
    }

    #[test]
    fn remap_changes_the_code_or_the_status() {
        let mut obs =
            json!({"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}});
        assert_eq!(remap(&mut obs).as_deref(), Some("code 8867-4 → 8868-4"));
        assert_eq!(obs.pointer("/code/coding/0/code"), Some(&json!("8868-4")));
        let mut enc = json!({"status": "in-progress"});
        assert_eq!(
            remap(&mut enc).as_deref(),
            Some("status in-progress → finished")
        );
        assert_eq!(other_code("0999"), "1000");
        assert_eq!(other_code("abc"), "abcX");
        assert!(remap(&mut json!({"gender": "f"})).is_none());
    }

    #[test]
    fn plans_are_deterministic_and_drop_excludes_the_rest() {
        let faults = vec![
            Fault::new(0, spec("strip,probability=0.3")).unwrap(),
            Fault::new(1, spec("ack_and_drop,probability=0.3")).unwrap(),
            Fault::new(2, spec("stale_read,delay=1s")).unwrap(),
        ];
        let obs = json!({"resourceType": "Observation", "status": "final"});
        let run = |faults: &[Fault]| -> Vec<(bool, usize)> {
            (0..200)
                .map(|_| {
                    let p = plan(
                        faults,
                        |f| f.decide(9, Duration::ZERO),
                        Write::Create,
                        "Observation",
                        &obs,
                        true,
                    );
                    assert!(p.stale.is_none(), "stale_read is for updates only");
                    (p.drop.is_some(), p.edits.len())
                })
                .collect()
        };
        let first = run(&faults);
        let again = vec![
            Fault::new(0, spec("strip,probability=0.3")).unwrap(),
            Fault::new(1, spec("ack_and_drop,probability=0.3")).unwrap(),
            Fault::new(2, spec("stale_read,delay=1s")).unwrap(),
        ];
        assert_eq!(first, run(&again));
        assert!(first.iter().all(|(d, e)| !(*d && *e > 0)));
        let drops = first.iter().filter(|(d, _)| *d).count();
        assert!((20..=100).contains(&drops), "{drops}");
    }

    #[test]
    fn the_type_filter_and_the_transport_limit_eligibility() {
        let mut s = spec("commit_then_reset");
        s.resource_types = vec!["Patient".into()];
        let f = vec![Fault::new(0, s).unwrap()];
        let obs = json!({});
        let p = plan(&f, |_| true, Write::Create, "Observation", &obs, true);
        assert!(p.after.is_none());
        let p = plan(&f, |_| true, Write::Create, "Patient", &obs, false);
        assert!(p.after.is_none());
        let p = plan(&f, |_| true, Write::Create, "Patient", &obs, true);
        assert!(p.after.is_some());
    }
}

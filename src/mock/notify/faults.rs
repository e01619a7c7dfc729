//! Notification faults of the mock: which notifications it loses (`notify_drop`), sends
//! twice (`notify_dup`), holds back (`notify_delay`, for `delay`), or stops retrying after
//! the first failed attempt (`notify_give_up`). Decisions are seeded and counted per
//! fault, like the silent failures; the delivery worker applies them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::vocab::fault::{Group, Kind as FaultKind, Spec, SpecError, names};

/// Every notification fault kind.
pub fn kinds() -> Vec<&'static str> {
    names(&[Group::Notify])
}

/// A notification fault, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Drop,
    Dup,
    Delay(Duration),
    GiveUp,
}

/// The notifier's kind for a fault spec (its attributes were checked when read); any
/// other group is not the notifier's.
pub fn parse(spec: &Spec) -> Result<Kind, SpecError> {
    Ok(match spec.kind {
        FaultKind::NotifyDrop {} => Kind::Drop,
        FaultKind::NotifyDup {} => Kind::Dup,
        FaultKind::NotifyDelay { delay } => Kind::Delay(delay),
        FaultKind::NotifyGiveUp {} => Kind::GiveUp,
        _ => {
            return Err(SpecError::UnknownKind(
                spec.kind.name().to_owned(),
                kinds().join(", "),
            ));
        }
    })
}

/// One configured notification fault with its decision counter.
#[derive(Debug)]
pub struct Fault {
    pub label: String,
    pub kind: Kind,
    position: usize,
    spec: Spec,
    seen: AtomicU64,
}

impl Fault {
    pub fn new(position: usize, spec: Spec) -> Result<Fault, SpecError> {
        Ok(Fault {
            label: spec.label(position),
            kind: parse(&spec)?,
            position,
            spec,
            seen: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        self.spec.kind.name()
    }

    /// Whether it fires for the next notification about a resource of type `rt`.
    pub fn decide(&self, seed: u64, elapsed: Duration, rt: &str) -> bool {
        let types = &self.spec.resource_types;
        if !types.is_empty() && !types.iter().any(|t| t == rt) {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        self.spec.fires(seed, self.position, n, elapsed)
    }
}

/// What the faults that fired do to one notification.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    pub drop: Option<&'a Fault>,
    pub dup: Option<&'a Fault>,
    pub delay: Option<(&'a Fault, Duration)>,
    pub give_up: Option<&'a Fault>,
}

/// Decides every fault (each advances its own counter); a drop excludes the rest.
pub fn plan<'a>(faults: &'a [Fault], fires: impl Fn(&Fault) -> bool) -> Plan<'a> {
    let mut plan = Plan::default();
    for f in faults.iter().filter(|f| fires(f)) {
        match f.kind {
            Kind::Drop => {
                plan.drop.get_or_insert(f);
            }
            Kind::Dup => {
                plan.dup.get_or_insert(f);
            }
            Kind::Delay(d) => {
                plan.delay.get_or_insert((f, d));
            }
            Kind::GiveUp => {
                plan.give_up.get_or_insert(f);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str) -> Spec {
        toml::from_str(&format!("kind = \"{kind}\"")).unwrap()
    }

    #[test]
    fn kinds_take_only_their_attributes() {
        assert_eq!(parse(&spec("notify_drop")).unwrap(), Kind::Drop);
        let read = |text: &str| toml::from_str::<Spec>(text);
        assert!(
            read("kind = \"notify_delay\"").is_err(),
            "delay is required"
        );
        let d = read("kind = \"notify_delay\"\ndelay = \"200ms\"").unwrap();
        assert_eq!(parse(&d).unwrap(), Kind::Delay(Duration::from_millis(200)));
        assert!(read("kind = \"notify_dup\"\ndelay = \"1ms\"").is_err());
        assert!(read("kind = \"notify_nothing\"").is_err());
        assert!(parse(&spec("leak")).is_err(), "not the notifier's kind");
    }

    #[test]
    fn a_drop_excludes_the_others() {
        let faults: Vec<Fault> = ["notify_dup", "notify_drop"]
            .iter()
            .enumerate()
            .map(|(i, k)| Fault::new(i, spec(k)).unwrap())
            .collect();
        let p = plan(&faults, |_| true);
        assert!(p.drop.is_some() && p.dup.is_none());
    }
}

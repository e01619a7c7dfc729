//! The final read-back: after the faults heal and the settle time passes, read back
//! everything the load phase wrote — by id, by business identifier, and `_history` for
//! what was updated. These reads are interactions like any other, recorded in the same
//! history, so the checker stays a pure function of it. Reads the EHR does not take
//! (an identifier search without the parameters it requires, `_history` where it has
//! none) are skipped and counted for the report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures::StreamExt;

use super::workflow::Mapper;
use crate::fhir::{Client, Ctx};
use crate::history::{self, Event, Interaction, Phase};
use crate::profile::Verb;
use crate::profile::dialect::Decision;

/// One written resource, as the load phase left it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Target {
    pub resource_type: String,
    pub identifier: String,
    /// Server ids any attempt reported.
    pub ids: BTreeSet<String>,
    pub updated: bool,
}

/// What the history says was written (or may have been), keyed by identifier.
pub fn targets(path: &Path) -> Result<Vec<Target>, history::Error> {
    let mut invokes: BTreeMap<u64, (String, String, Option<String>, bool)> = BTreeMap::new();
    let mut out: BTreeMap<String, Target> = BTreeMap::new();
    for record in history::Reader::open(path)? {
        let record = record?;
        match record.event {
            Event::Invoke(op)
                if op.f.is_write() && matches!(op.phase, Phase::Load | Phase::ScopeProbe) =>
            {
                let Some(identifier) = op.identifier else {
                    continue;
                };
                let updated = op.f == Interaction::Update;
                invokes.insert(record.index, (op.resource_type, identifier, op.id, updated));
            }
            Event::Ok(c) | Event::Fail(c) | Event::Info(c) => {
                let Some((rt, identifier, addressed, updated)) = invokes.remove(&c.invoke) else {
                    continue;
                };
                let t = out.entry(identifier.clone()).or_insert_with(|| Target {
                    resource_type: rt,
                    identifier,
                    ..Target::default()
                });
                t.ids.extend(c.id.into_iter().chain(addressed));
                t.updated |= updated;
            }
            _ => {}
        }
    }
    // Invocations with no completion (a run cut short) may have taken effect too.
    for (_, (rt, identifier, addressed, updated)) in invokes {
        let t = out.entry(identifier.clone()).or_insert_with(|| Target {
            resource_type: rt,
            identifier,
            ..Target::default()
        });
        t.ids.extend(addressed);
        t.updated |= updated;
    }
    Ok(out.into_values().collect())
}

/// Reads every target back, `concurrency` at a time. Returns the interactions made.
pub async fn read_back(
    client: &Client,
    targets: Vec<Target>,
    concurrency: usize,
    first_process: u64,
    mapper: &Mapper,
) -> u64 {
    let reads = futures::stream::iter(targets.into_iter().enumerate())
        .map(|(i, t)| {
            let ctx = Ctx {
                process: first_process + i as u64,
                phase: Phase::Readback,
                step: Some("read_back_all"),
                intended: None,
                group: None,
            };
            async move { one(client, ctx, &t, mapper).await }
        })
        .buffer_unordered(concurrency.max(1));
    reads.fold(0u64, |acc, n| async move { acc + n }).await
}

async fn one(client: &Client, ctx: Ctx, t: &Target, mapper: &Mapper) -> u64 {
    let mut n = 0;
    let rt = t.resource_type.as_str();
    let by_identifier = [("identifier", t.identifier.as_str())];
    let outcome = "identifier search at read-back skipped";
    if let Some(params) = mapper.search(rt, &by_identifier, &[], outcome) {
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        client.search(ctx, rt, &params, Some(&t.identifier)).await;
        n += 1;
    }
    let read = mapper.decide(rt, Verb::Read) == Decision::Do;
    let history = t.updated && mapper.decide(rt, Verb::History) == Decision::Do;
    for id in &t.ids {
        if !read {
            mapper.unsupported(rt, "read", "read-back by id skipped");
            continue;
        }
        client.read(ctx, rt, id).await;
        n += 1;
        if history {
            client.history(ctx, rt, id).await;
            n += 1;
        } else if t.updated {
            mapper.unsupported(rt, "history", "read-back of _history skipped");
        }
    }
    n
}

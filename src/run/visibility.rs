//! The visibility prober: after an acknowledged create (a seeded share of them), it
//! searches by the create's harness identifier at a fixed interval until the resource
//! shows, the timeout passes, or the read-back begins. Every probe is a real search
//! through `fhir::Client`, recorded in the history in the `probe` phase (operation
//! `probe search <Type>`), so its latency never mixes into the workflow's and the checker
//! measures the lag from the history alone (ack → first search that showed it, at the
//! interval's resolution). The load is bounded: at most `concurrency` creates are probed
//! at once; a create acknowledged while all are busy is not probed, and is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::workflow::Mapper;
use crate::fhir::{Client, Ctx};
use crate::history::Phase;
use crate::scenario::Visibility;

/// Probe processes are numbered from here, apart from the encounters' and read-back's.
const FIRST_PROCESS: u64 = 1 << 48;

/// What the prober did, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Acknowledged creates probed.
    pub probed: u64,
    /// Acknowledged creates left out by the sample share.
    pub not_sampled: u64,
    /// Acknowledged creates not probed because `concurrency` probes were running.
    pub busy: u64,
    /// Acknowledged creates whose identifier search the EHR cannot take.
    pub unsearchable: u64,
}

/// Shared by every virtual user; cheap to clone.
#[derive(Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    mapper: Arc<Mapper>,
    settings: Visibility,
    seed: u64,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
    creates: AtomicU64,
    probed: AtomicU64,
    not_sampled: AtomicU64,
    busy: AtomicU64,
    unsearchable: AtomicU64,
}

impl Prober {
    pub fn new(client: Client, mapper: Arc<Mapper>, settings: Visibility, seed: u64) -> Prober {
        Prober {
            inner: Arc::new(Inner {
                client,
                mapper,
                permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
                settings,
                seed,
                stop: CancellationToken::new(),
                creates: AtomicU64::new(0),
                probed: AtomicU64::new(0),
                not_sampled: AtomicU64::new(0),
                busy: AtomicU64::new(0),
                unsearchable: AtomicU64::new(0),
            }),
        }
    }

    /// A create of `resource_type` carrying `identifier` was just acknowledged: probe it
    /// when sampled and a slot is free. Returns at once.
    pub fn watch(&self, resource_type: &str, identifier: &str) {
        let i = &self.inner;
        let n = i.creates.fetch_add(1, Ordering::Relaxed);
        if i.stop.is_cancelled() || !sampled(i.seed, n, i.settings.sample) {
            i.not_sampled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(params) = i
            .mapper
            .search_params(resource_type, &[("identifier", identifier)])
        else {
            i.unsearchable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok(permit) = i.permits.clone().try_acquire_owned() else {
            i.busy.fetch_add(1, Ordering::Relaxed);
            return;
        };
        i.probed.fetch_add(1, Ordering::Relaxed);
        let ctx = Ctx {
            process: FIRST_PROCESS + n,
            phase: Phase::Probe,
            step: Some("visibility_probe"),
            intended: None,
            group: None,
        };
        let probe = Probe {
            inner: self.inner.clone(),
            ctx,
            resource_type: resource_type.to_owned(),
            identifier: identifier.to_owned(),
            params,
        };
        tokio::spawn(async move {
            probe.run().await;
            drop(permit);
        });
    }

    /// Stops every probe (the read-back begins) and waits for them to end.
    pub async fn stop(&self) -> Tally {
        let i = &self.inner;
        i.stop.cancel();
        // Every probe holds a permit until it ends: all of them back means all ended.
        let all = u32::try_from(i.settings.concurrency.max(1)).unwrap_or(u32::MAX);
        let _ = i.permits.acquire_many(all).await;
        Tally {
            probed: i.probed.load(Ordering::Relaxed),
            not_sampled: i.not_sampled.load(Ordering::Relaxed),
            busy: i.busy.load(Ordering::Relaxed),
            unsearchable: i.unsearchable.load(Ordering::Relaxed),
        }
    }
}

/// One create being probed.
struct Probe {
    inner: Arc<Inner>,
    ctx: Ctx,
    resource_type: String,
    identifier: String,
    params: Vec<(String, String)>,
}

impl Probe {
    /// Searches at the interval (the first at once) until the resource shows, the
    /// timeout passes or the prober stops. A search that fails is simply the next tick's
    /// business: only a search that shows the resource ends it.
    async fn run(self) {
        let s = self.inner.settings;
        let deadline = Instant::now() + s.timeout;
        let mut tick = tokio::time::interval(s.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        loop {
            tokio::select! {
                _ = self.inner.stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if Instant::now() >= deadline {
                return;
            }
            let reply = self
                .inner
                .client
                .search(
                    self.ctx,
                    &self.resource_type,
                    &params,
                    Some(&self.identifier),
                )
                .await;
            let shown = reply.is_ok()
                && reply
                    .seen
                    .iter()
                    .any(|seen| seen.identifiers.contains(&self.identifier));
            if shown {
                return;
            }
        }
    }
}

/// Whether create number `n` is probed: a seeded draw against the sample share.
fn sampled(seed: u64, n: u64, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    crate::vocab::seed::draw(seed, n) < share
}

#[cfg(test)]
mod tests {
    use super::sampled;

    #[test]
    fn samples_about_the_share_asked_and_the_same_each_time() {
        let hits = (0..10_000).filter(|&n| sampled(7, n, 0.25)).count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
        let again = (0..10_000).filter(|&n| sampled(7, n, 0.25)).count();
        assert_eq!(hits, again);
        assert!((0..1000).all(|n| sampled(7, n, 1.0)));
        assert!((0..1000).all(|n| !sampled(7, n, 0.0)));
    }
}

//! Stopping a run early. The first request (Ctrl-C, SIGTERM) stops starting
//! encounters and lets in-flight requests finish within a grace period; the read-back
//! and the checker then run on what the history holds, within a budget. A second request
//! skips what is left of the read-back: the report of the load phase is written at once.
//! The edge (`cli`) turns signals into requests; the run only watches the tokens. Uses
//! nothing else of the crate.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Cheap to clone; every clone sees the same requests.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Cancelled by the first request.
    stop: CancellationToken,
    /// Cancelled by the second.
    abort: CancellationToken,
    requests: AtomicU32,
    /// What asked first (`SIGINT`, `SIGTERM`).
    reason: Mutex<Option<String>>,
}

impl Interrupt {
    /// Nothing requested yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One stop request (a signal, named by `reason`). Returns how many have come so far.
    pub fn request(&self, reason: &str) -> u32 {
        let n = self.inner.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            *self
                .inner
                .reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(reason.to_owned());
            self.inner.stop.cancel();
        } else {
            self.inner.abort.cancel();
        }
        n
    }

    /// A stop that is not a signal (the disk filled): the run winds down as after a
    /// second request, at once, skipping the read-back. `reason` names it unless a
    /// signal asked first.
    pub fn halt(&self, reason: &str) {
        self.inner.requests.fetch_add(2, Ordering::SeqCst);
        {
            let mut first = self
                .inner
                .reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if first.is_none() {
                *first = Some(reason.to_owned());
            }
        }
        self.inner.stop.cancel();
        self.inner.abort.cancel();
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.inner.stop.is_cancelled()
    }

    /// Whether a second request came: skip the read-back.
    pub fn is_aborted(&self) -> bool {
        self.inner.abort.is_cancelled()
    }

    /// What asked first.
    pub fn reason(&self) -> Option<String> {
        self.inner
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Resolves once a stop is requested.
    pub async fn stopped(&self) {
        self.inner.stop.cancelled().await;
    }

    /// Resolves once a second request comes.
    pub async fn aborted(&self) {
        self.inner.abort.cancelled().await;
    }

    /// Runs `work` unless, once a stop is requested, `budget` passes or a second request
    /// comes first: `None` when `work` was cut off (and dropped).
    pub async fn bounded<F: Future>(&self, budget: Duration, work: F) -> Option<F::Output> {
        let cutoff = async {
            self.stopped().await;
            tokio::select! {
                _ = tokio::time::sleep(budget) => {}
                _ = self.aborted() => {}
            }
        };
        tokio::select! {
            out = work => Some(out),
            _ = cutoff => None,
        }
    }
}

/// How a stopped run is wound down (`--grace`, `--readback-budget`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// How long in-flight requests may finish after a stop (and after the load phase's
    /// planned end); what is still unanswered then is recorded `info`.
    pub grace: Duration,
    /// How long the read-back may run after a stop.
    pub readback_budget: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(5),
            readback_budget: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_request_stops_and_the_second_aborts() {
        let i = Interrupt::new();
        assert!(!i.is_stopped());
        assert_eq!(i.request("SIGTERM"), 1);
        assert!(i.is_stopped() && !i.is_aborted());
        assert_eq!(i.request("SIGINT"), 2);
        assert!(i.is_aborted());
        assert_eq!(i.reason().as_deref(), Some("SIGTERM"));
    }

    #[test]
    fn a_halt_stops_and_aborts_at_once_and_keeps_a_signal_that_came_first() {
        let i = Interrupt::new();
        i.halt("disk full");
        assert!(i.is_stopped() && i.is_aborted());
        assert_eq!(i.reason().as_deref(), Some("disk full"));
        let j = Interrupt::new();
        j.request("SIGINT");
        j.halt("disk full");
        assert_eq!(j.reason().as_deref(), Some("SIGINT"));
    }

    /// Work that would never end, bounded: it must be cut off.
    fn forever() -> tokio::time::Sleep {
        tokio::time::sleep(Duration::from_secs(3600))
    }

    /// Fails the test instead of hanging it.
    async fn within<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("bounded work ended")
    }

    #[tokio::test]
    async fn bounded_work_runs_whole_until_a_stop_then_within_the_budget() {
        let i = Interrupt::new();
        assert_eq!(i.bounded(Duration::ZERO, async { 7 }).await, Some(7));
        let j = i.clone();
        tokio::spawn(async move { j.request("SIGINT") });
        let cut = within(i.bounded(Duration::from_millis(50), forever())).await;
        assert_eq!(cut, None);
    }

    #[tokio::test]
    async fn a_second_request_cuts_the_budget_short() {
        let i = Interrupt::new();
        i.request("SIGINT");
        let j = i.clone();
        tokio::spawn(async move { j.request("SIGINT") });
        let cut = within(i.bounded(Duration::from_secs(3600), forever())).await;
        assert_eq!(cut, None);
    }
}

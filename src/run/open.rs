//! The open model's dispatcher and pool (k6's arrival-rate executors on goose users).
//! One task walks the rate plan and, at each encounter's due time, hands the start to a
//! free user; when none is free the pool grows by one user, up to `max_users`; when it
//! cannot grow, the start is dropped and counted, never silently lost. A start handed
//! out carries its due time, so whoever takes it is timed from when it was due. Every
//! second of the run counts the starts offered, started and dropped. Uses `scenario`'s
//! rate plan and `metrics`' per-second counts; goose users call [`Pool::member`] and
//! [`Pool::next`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, watch};

use crate::metrics::RateSecond;
use crate::scenario::RatePlan;

/// How long the dispatcher waits for the first `users` to be ready before it starts the
/// schedule anyway (goose starts them within the first second).
const READY_WAIT: Duration = Duration::from_secs(5);

/// One encounter start handed to a user: when it was due, and for which group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    pub due: Instant,
    pub group: Option<u16>,
}

/// The shared state of the dispatcher and the users.
pub struct Pool {
    /// Users allowed to take starts: the first `users`, grown up to `max`.
    allocated: watch::Sender<usize>,
    max: usize,
    initial: usize,
    /// Users waiting for a start, minus starts handed out and not yet taken.
    idle: AtomicI64,
    ready: Notify,
    slots: tokio::sync::Mutex<mpsc::UnboundedReceiver<Start>>,
    /// The groups' weights: starts are dealt out among them (empty: no groups).
    weights: Vec<u32>,
    dropped: AtomicU64,
    clock: Instant,
    seconds: Mutex<Vec<RateSecond>>,
}

impl Pool {
    /// A pool of `users` growing to `max`, its per-second counts on the run clock that
    /// started at `clock`; and the dispatcher's end of the start channel.
    pub fn new(
        users: usize,
        max: usize,
        clock: Instant,
        weights: Vec<u32>,
    ) -> (Arc<Pool>, mpsc::UnboundedSender<Start>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pool = Pool {
            allocated: watch::Sender::new(users),
            max: max.max(users),
            initial: users,
            idle: AtomicI64::new(0),
            ready: Notify::new(),
            slots: tokio::sync::Mutex::new(rx),
            dropped: AtomicU64::new(0),
            clock,
            seconds: Mutex::new(Vec::new()),
            weights,
        };
        (Arc::new(pool), tx)
    }

    /// Walks the plan: each due start goes to a free user, or grows the pool, or is
    /// dropped. Returns when the plan ends (the channel then closes).
    pub async fn dispatch(self: Arc<Self>, plan: RatePlan, tx: mpsc::UnboundedSender<Start>) {
        let _ = tokio::time::timeout(READY_WAIT, self.ready.notified()).await;
        let start = Instant::now();
        let mut k = 0;
        while let Some(offset) = plan.start_of(k) {
            k += 1;
            let due = start + offset;
            let group = (!self.weights.is_empty())
                .then(|| crate::scenario::group_of(&self.weights, k - 1) as u16);
            tokio::time::sleep_until(due.into()).await;
            if goose::is_killswitch_triggered() {
                break;
            }
            self.count(due, |s| s.offered += 1);
            if self.claim_idle() || self.grow() {
                let _ = tx.send(Start { due, group });
            } else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.count(due, |s| s.dropped += 1);
            }
        }
    }

    /// Takes one waiting user, if any.
    fn claim_idle(&self) -> bool {
        self.idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > 0).then_some(n - 1)
            })
            .is_ok()
    }

    /// Lets one more user in, if the cap allows; the start is then theirs (or the first
    /// user's to free up).
    fn grow(&self) -> bool {
        let grown = self.allocated.send_if_modified(|n| {
            let more = *n < self.max;
            if more {
                *n += 1;
            }
            more
        });
        if grown {
            self.idle.fetch_sub(1, Ordering::AcqRel);
        }
        grown
    }

    /// Waits until user `index` (goose's user number) belongs to the pool; `false` when
    /// the pool never grows that far before `deadline`.
    pub async fn member(&self, index: usize, deadline: Instant) -> bool {
        let mut rx = self.allocated.subscribe();
        let admitted = rx.wait_for(|n| index < *n);
        matches!(
            tokio::time::timeout_at(deadline.into(), admitted).await,
            Ok(Ok(_))
        )
    }

    /// The next start this user is to serve; `None` once the plan ended.
    pub async fn next(&self) -> Option<Start> {
        let waiting = self.idle.fetch_add(1, Ordering::AcqRel) + 1;
        if waiting == self.initial as i64 {
            self.ready.notify_one();
        }
        let due = self.slots.lock().await.recv().await;
        match due {
            Some(_) => self.count(Instant::now(), |s| s.started += 1),
            None => {
                self.idle.fetch_sub(1, Ordering::AcqRel);
            }
        }
        due
    }

    /// The number of users the pool reached.
    pub fn allocated(&self) -> usize {
        *self.allocated.borrow()
    }

    /// Starts dropped because no user was free and the pool was at `max_users`.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The per-second counts so far.
    pub fn seconds(&self) -> Vec<RateSecond> {
        self.seconds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn count(&self, at: Instant, f: impl FnOnce(&mut RateSecond)) {
        let second = at.saturating_duration_since(self.clock).as_secs();
        let mut seconds = self.seconds.lock().unwrap_or_else(PoisonError::into_inner);
        let len = seconds.len() as u64;
        if len <= second {
            seconds.extend((len..=second).map(|t_s| RateSecond {
                t_s,
                ..RateSecond::default()
            }));
        }
        if let Some(s) = seconds.get_mut(second as usize) {
            f(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two users, a cap of three, four starts due at once while every user is busy: the
    /// pool grows once and the fourth start is dropped.
    #[tokio::test]
    async fn the_pool_grows_to_its_cap_then_drops() {
        let (pool, tx) = Pool::new(2, 3, Instant::now(), Vec::new());
        let plan = RatePlan::constant(1000.0, Duration::from_millis(4));
        let p = pool.clone();
        let taken = tokio::spawn(async move {
            let (a, b) = tokio::join!(p.next(), p.next());
            (a.is_some(), b.is_some())
        });
        tokio::task::yield_now().await;
        pool.clone().dispatch(plan, tx).await;
        assert_eq!(taken.await.unwrap(), (true, true));
        assert_eq!(pool.allocated(), 3);
        assert_eq!(pool.dropped(), 1);
        assert!(pool.member(2, Instant::now()).await, "the grown user is in");
        assert!(!pool.member(3, Instant::now()).await);
        let s = pool.seconds();
        let offered: u64 = s.iter().map(|s| s.offered).sum();
        let dropped: u64 = s.iter().map(|s| s.dropped).sum();
        assert_eq!((offered, dropped), (4, 1));
        // The grown user takes the start left for it; then the plan is over.
        assert!(pool.next().await.is_some());
        assert!(pool.next().await.is_none());
    }
}

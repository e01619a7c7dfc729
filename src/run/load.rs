//! The load phase: goose virtual users run encounters. One loop, composed from a load
//! model: closed (users and goose test plans) or open (encounters start on a rate plan's
//! schedule, handed to a pool of users by `open`; each encounter's first request is
//! timed from its intended start so a stalled server cannot hide its tail). Every
//! encounter's own latency is recorded as the `encounter` row. Goose's options come from
//! the scenario, never from goose's own command line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::*;
use tokio_util::sync::CancellationToken;

use super::interrupt::Interrupt;
use super::open::Pool;
use super::workflow::{Ended, Workflow};
use crate::history::{Outcome, Phase};
use crate::metrics::{RateSecond, Sample};
use crate::scenario::Load;

/// The latency row of whole encounters.
pub const ENCOUNTER: &str = "encounter";

/// What drove the load.
pub struct Driven {
    pub encounters: u64,
    /// The most encounters in flight at once.
    pub peak_concurrency: u64,
    /// Why goose stopped, if not at the planned end.
    pub goose_error: Option<String>,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// The open model's schedule as it went.
    pub open: Option<Opened>,
    /// Encounters cut off when the grace period after a stop (or after the planned end)
    /// ran out; their unanswered requests are recorded `info`.
    pub cut_off: u64,
}

/// What the open model's schedule did.
#[derive(Clone, Debug, Default)]
pub struct Opened {
    /// Starts no user could serve (every user busy, the pool at `max_users`).
    pub dropped_starts: u64,
    /// The users the pool grew to.
    pub users_reached: u64,
    /// Per second of the run: starts offered, started, dropped.
    pub seconds: Vec<RateSecond>,
}

/// How the load phase winds down: `stop` ends the starting of encounters, `abandon` drops
/// the ones still in flight.
#[derive(Clone, Default)]
struct Winding {
    stop: CancellationToken,
    abandon: CancellationToken,
    cut_off: Arc<AtomicU64>,
}

/// Once a stop is requested (or the phase's planned end passes), waits `grace` (or a
/// second request), then abandons what is still in flight.
async fn wind_down(interrupt: Interrupt, w: Winding, end: Instant, grace: Duration) {
    tokio::select! {
        _ = interrupt.stopped() => {
            w.stop.cancel();
            goose::trigger_killswitch(interrupt.reason().as_deref().unwrap_or("interrupted"));
        }
        _ = tokio::time::sleep_until(end.into()) => {}
    }
    tokio::select! {
        _ = tokio::time::sleep(grace) => {}
        _ = interrupt.aborted() => {}
    }
    w.abandon.cancel();
}

/// What bounds the load phase besides its shape.
pub struct Limits {
    pub max_encounters: u64,
    pub interrupt: Interrupt,
    /// How long in-flight encounters may go on after a stop or the planned end.
    pub grace: Duration,
}

/// Runs the load phase to its planned end (or a stop request, or `max_encounters`);
/// encounters still in flight `grace` after either are cut off.
pub async fn drive(
    flow: Arc<Workflow>,
    load: &Load,
    host: &str,
    limits: Limits,
    active: Arc<AtomicU64>,
) -> Driven {
    let max_encounters = limits.max_encounters;
    let deadline = Instant::now() + load.duration() + Duration::from_secs(1);
    let winding = Winding::default();
    let watcher = tokio::spawn(wind_down(
        limits.interrupt.clone(),
        winding.clone(),
        deadline,
        limits.grace,
    ));
    let (pool, dispatcher) = match load {
        Load::Open {
            rate,
            users,
            max_users,
        } => {
            let clock = flow.client.recorder().start();
            let weights = flow.groups.iter().map(|g| g.weight).collect();
            let (pool, tx) = Pool::new(users.get(), max_users.get(), clock, weights);
            let dispatcher = tokio::spawn(pool.clone().dispatch(rate.clone(), tx));
            (Some(pool), Some(dispatcher))
        }
        Load::Closed { .. } => (None, None),
    };
    let shared = Arc::new(Shared {
        flow: flow.clone(),
        pool: pool.clone(),
        counter: AtomicU64::new(0),
        max_encounters,
        active,
        peak: AtomicU64::new(0),
        deadline,
        winding: winding.clone(),
    });
    let goose_error = run_attack(&shared, load, host, &winding.abandon).await;
    watcher.abort();
    if let Some(d) = dispatcher {
        d.abort();
    }
    Driven {
        encounters: flow.started.load(Ordering::Relaxed),
        peak_concurrency: shared.peak.load(Ordering::Relaxed),
        goose_error,
        interrupted: limits.interrupt.is_stopped() || goose::is_killswitch_triggered(),
        cut_off: winding.cut_off.load(Ordering::Relaxed),
        open: pool.map(|p| Opened {
            dropped_starts: p.dropped(),
            users_reached: p.allocated() as u64,
            seconds: p.seconds(),
        }),
    }
}

/// What every goose user shares.
struct Shared {
    flow: Arc<Workflow>,
    pool: Option<Arc<Pool>>,
    counter: AtomicU64,
    max_encounters: u64,
    active: Arc<AtomicU64>,
    peak: AtomicU64,
    deadline: Instant,
    winding: Winding,
}

impl Shared {
    /// One goose transaction of user `index` (of `group`, closed model): one
    /// encounter, when there is one to run.
    async fn one(&self, index: usize, group: Option<u16>) -> TransactionResult {
        let w = &self.winding;
        if w.stop.is_cancelled() || goose::is_killswitch_triggered() {
            // Stopping: yield to goose's controller instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok(());
        }
        let (intended, group) = match &self.pool {
            Some(pool) => {
                let member = tokio::select! {
                    m = pool.member(index, self.deadline) => m,
                    _ = w.stop.cancelled() => false,
                };
                if !member {
                    return idle(self.deadline, w).await;
                }
                let next = tokio::select! {
                    n = pool.next() => n,
                    _ = w.stop.cancelled() => None,
                };
                match next {
                    Some(start) => (Some(start.due), start.group),
                    None => return idle(self.deadline, w).await,
                }
            }
            None => (None, group),
        };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        if n >= self.max_encounters {
            return idle(self.deadline, w).await;
        }
        self.flow.started.fetch_add(1, Ordering::Relaxed);
        let _busy = Busy::new(&self.active, &self.peak);
        let begun = intended.unwrap_or_else(Instant::now);
        let ended = tokio::select! {
            e = self.flow.encounter(n, intended, group) => e,
            _ = w.abandon.cancelled() => {
                w.cut_off.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        let outcome = match ended {
            Ended::Completed => Outcome::Ok,
            Ended::Abandoned => Outcome::Fail,
            Ended::Interrupted => return Ok(()),
        };
        let recorder = self.flow.client.recorder();
        recorder
            .encounter(Sample {
                op: ENCOUNTER.to_owned(),
                outcome,
                error: None,
                at_us: recorder.now_us(),
                latency_us: begun.elapsed().as_micros() as u64,
                phase: Phase::Load,
                group,
            })
            .await;
        Ok(())
    }
}

/// Runs goose; once encounters are abandoned it gets a few seconds more to wind down its
/// users, then it is left behind (its users only idle by then).
async fn run_attack(
    shared: &Arc<Shared>,
    load: &Load,
    host: &str,
    abandon: &CancellationToken,
) -> Option<String> {
    let run = async {
        match attack(shared, load, host) {
            Ok(attack) => attack.execute().await.err().map(|e| describe(&e)),
            Err(e) => Some(describe(&e)),
        }
    };
    let stuck = async {
        abandon.cancelled().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    tokio::select! {
        e = run => e,
        _ = stuck => Some("goose did not stop its users within 5 s after the grace period".to_owned()),
    }
}

/// A goose error with the detail its `Display` leaves out.
fn describe(e: &GooseError) -> String {
    match e {
        GooseError::InvalidOption {
            option,
            value,
            detail,
        } => format!("goose refused {option} = {value}: {detail}"),
        other => other.to_string(),
    }
}

/// Counts a user as busy with an encounter while it lives.
struct Busy<'a>(&'a AtomicU64);

impl<'a> Busy<'a> {
    /// Also raises `peak` to the number now busy.
    fn new(active: &'a AtomicU64, peak: &AtomicU64) -> Self {
        let now = active.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(now, Ordering::Relaxed);
        Busy(active)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Nothing left to do for this user: wait out the phase (or until the load is stopped)
/// instead of spinning.
async fn idle(until: Instant, w: &Winding) -> TransactionResult {
    tokio::select! {
        _ = tokio::time::sleep_until(until.into()) => {}
        _ = w.stop.cancelled() => {}
        _ = w.abandon.cancelled() => {}
    }
    Ok(())
}

/// The goose scenarios: one per user group, weighted (the closed model's users are
/// shared out by weight); one for the open model's pool, which deals each start to a
/// group itself; one without groups.
fn scenarios(shared: &Arc<Shared>, load: &Load) -> Result<Vec<Scenario>, GooseError> {
    let groups: Vec<(String, u32, Option<u16>)> = match (load, shared.flow.groups.is_empty()) {
        (Load::Closed { .. }, false) => shared
            .flow
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), g.weight, Some(i as u16)))
            .collect(),
        _ => vec![(ENCOUNTER.to_owned(), 1, None)],
    };
    groups
        .into_iter()
        .map(|(name, weight, group)| {
            let s = shared.clone();
            let transaction: TransactionFunction = Arc::new(move |user| {
                let shared = s.clone();
                let index = user.weighted_users_index;
                Box::pin(async move { shared.one(index, group).await })
            });
            Scenario::new(&name)
                .set_weight(weight as usize)
                .map(|s| s.register_transaction(Transaction::new(transaction).set_name(ENCOUNTER)))
        })
        .collect()
}

fn attack(shared: &Arc<Shared>, load: &Load, host: &str) -> Result<Box<GooseAttack>, GooseError> {
    // The harness sends through `fhir::Client`; goose's own client is never used, so
    // every user shares one instead of building hundreds (slow with many users).
    let client = goose::client::GooseClientBuilder::new().without_cookies();
    let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .set_client_builder_without_cookies(client)?;
    for scenario in scenarios(shared, load)? {
        attack = attack.register_scenario(scenario);
    }
    let mut attack = attack
        .set_default(GooseDefault::Host, host)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoErrorSummary, true)?
        .set_default(GooseDefault::Quiet, 1)?;
    // goose refuses `no_reset_metrics` next to a test plan (it never resets them then).
    match load {
        Load::Closed {
            plan: Some(plan), ..
        } => {
            attack = attack.set_default(GooseDefault::TestPlan, plan.as_str())?;
        }
        Load::Closed {
            users, duration, ..
        } => {
            attack = users_for(attack, users.get(), *duration)?;
        }
        // Every user the pool may grow to is started; the ones past `users` wait to be let in.
        Load::Open {
            rate, max_users, ..
        } => {
            attack = users_for(attack, max_users.get(), rate.duration())?;
        }
    }
    Ok(attack)
}

/// `users` goose users for `duration`, all started within the first second.
fn users_for(
    attack: Box<GooseAttack>,
    users: usize,
    duration: Duration,
) -> Result<Box<GooseAttack>, GooseError> {
    attack
        .set_default(GooseDefault::NoResetMetrics, true)?
        .set_default(GooseDefault::Users, users)?
        .set_default(GooseDefault::IncreaseRate, users.to_string().as_str())?
        .set_default(GooseDefault::RunTime, duration.as_secs().max(1) as usize)
}

//! The load phase: goose virtual users run encounters. One loop, composed from a load
//! model: closed (users and goose test plans) or open (a target rate of encounters per
//! second from a pool of users, each encounter timed from its intended start so a
//! stalled server cannot hide its tail). Goose's options come from the scenario, never
//! from goose's own command line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::*;
use tokio_util::sync::CancellationToken;

use super::interrupt::Interrupt;
use super::workflow::Workflow;
use crate::scenario::Load;

/// Hands out intended start times `start + k / rate` (open model).
pub struct Pacer {
    start: Instant,
    interval: Duration,
    next: AtomicU64,
    end: Instant,
}

impl Pacer {
    pub fn new(rate: f64, duration: Duration) -> Self {
        let start = Instant::now();
        Self {
            start,
            interval: Duration::from_secs_f64(1.0 / rate),
            next: AtomicU64::new(0),
            end: start + duration,
        }
    }

    /// The next slot, slept until; `None` once the schedule has ended.
    pub async fn slot(&self) -> Option<Instant> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let intended = self.start + self.interval.mul_f64(k as f64);
        if intended >= self.end {
            return None;
        }
        tokio::time::sleep_until(intended.into()).await;
        Some(intended)
    }
}

/// What drove the load.
pub struct Driven {
    pub encounters: u64,
    /// The most encounters in flight at once.
    pub peak_concurrency: u64,
    /// Why goose stopped, if not at the planned end.
    pub goose_error: Option<String>,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// Encounters cut off when the grace period after a stop (or after the planned end)
    /// ran out; their unanswered requests are recorded `info`.
    pub cut_off: u64,
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
    let pacer = match load {
        Load::Open { rate, duration, .. } => Some(Arc::new(Pacer::new(*rate, *duration))),
        Load::Closed { .. } => None,
    };
    let counter = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let f = flow.clone();
    let p = peak.clone();
    let w = winding.clone();
    let transaction: TransactionFunction = Arc::new(move |_user| {
        let flow = f.clone();
        let pacer = pacer.clone();
        let counter = counter.clone();
        let active = active.clone();
        let peak = p.clone();
        let w = w.clone();
        Box::pin(async move {
            if w.stop.is_cancelled() || goose::is_killswitch_triggered() {
                // Stopping: yield to goose's controller instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Ok(());
            }
            let intended = match &pacer {
                Some(p) => match p.slot().await {
                    Some(at) => Some(at),
                    None => return idle(deadline, &w).await,
                },
                None => None,
            };
            let n = counter.fetch_add(1, Ordering::Relaxed);
            if n >= max_encounters {
                return idle(deadline, &w).await;
            }
            flow.started.fetch_add(1, Ordering::Relaxed);
            let _busy = Busy::new(&active, &peak);
            tokio::select! {
                _ = flow.encounter(n, intended) => {}
                _ = w.abandon.cancelled() => { w.cut_off.fetch_add(1, Ordering::Relaxed); }
            }
            Ok(())
        })
    });
    let goose_error = run_attack(transaction, load, host, &winding.abandon).await;
    watcher.abort();
    Driven {
        encounters: flow.started.load(Ordering::Relaxed),
        peak_concurrency: peak.load(Ordering::Relaxed),
        goose_error,
        interrupted: limits.interrupt.is_stopped() || goose::is_killswitch_triggered(),
        cut_off: winding.cut_off.load(Ordering::Relaxed),
    }
}

/// Runs goose; once encounters are abandoned it gets a few seconds more to wind down its
/// users, then it is left behind (its users only idle by then).
async fn run_attack(
    transaction: TransactionFunction,
    load: &Load,
    host: &str,
    abandon: &CancellationToken,
) -> Option<String> {
    let run = async {
        match attack(transaction, load, host) {
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

fn attack(
    transaction: TransactionFunction,
    load: &Load,
    host: &str,
) -> Result<Box<GooseAttack>, GooseError> {
    let scenario = Scenario::new("encounter")
        .register_transaction(Transaction::new(transaction).set_name("encounter"));
    let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .register_scenario(scenario)
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
        }
        | Load::Open {
            users, duration, ..
        } => {
            let users = users.get();
            attack = attack
                .set_default(GooseDefault::NoResetMetrics, true)?
                .set_default(GooseDefault::Users, users)?
                // Start every user within the first second.
                .set_default(GooseDefault::IncreaseRate, users.to_string().as_str())?
                .set_default(GooseDefault::RunTime, duration.as_secs().max(1) as usize)?;
        }
    }
    Ok(attack)
}

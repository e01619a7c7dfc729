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
}

/// Runs the load phase to its planned end (or Ctrl-C, or `max_encounters`).
pub async fn drive(
    flow: Arc<Workflow>,
    load: &Load,
    host: &str,
    max_encounters: u64,
    active: Arc<AtomicU64>,
) -> Driven {
    let deadline = Instant::now() + load.duration() + Duration::from_secs(1);
    let pacer = match load {
        Load::Open { rate, duration, .. } => Some(Arc::new(Pacer::new(*rate, *duration))),
        Load::Closed { .. } => None,
    };
    let counter = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let f = flow.clone();
    let p = peak.clone();
    let transaction: TransactionFunction = Arc::new(move |_user| {
        let flow = f.clone();
        let pacer = pacer.clone();
        let counter = counter.clone();
        let active = active.clone();
        let peak = p.clone();
        Box::pin(async move {
            let intended = match &pacer {
                Some(p) => match p.slot().await {
                    Some(at) => Some(at),
                    None => return idle(deadline).await,
                },
                None => None,
            };
            let n = counter.fetch_add(1, Ordering::Relaxed);
            if n >= max_encounters {
                return idle(deadline).await;
            }
            flow.started.fetch_add(1, Ordering::Relaxed);
            let _busy = Busy::new(&active, &peak);
            flow.encounter(n, intended).await;
            Ok(())
        })
    });
    let goose_error = match attack(transaction, load, host) {
        Ok(attack) => attack.execute().await.err().map(|e| describe(&e)),
        Err(e) => Some(describe(&e)),
    };
    Driven {
        encounters: flow.started.load(Ordering::Relaxed),
        peak_concurrency: peak.load(Ordering::Relaxed),
        goose_error,
        interrupted: goose::is_killswitch_triggered(),
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

/// Nothing left to do for this user: wait out the phase instead of spinning.
async fn idle(deadline: Instant) -> TransactionResult {
    tokio::time::sleep_until(deadline.into()).await;
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

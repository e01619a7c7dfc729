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

/// Runs the load phase to its planned end (or Ctrl-C, or `max_encounters`).
pub async fn drive(
    flow: Arc<Workflow>,
    load: &Load,
    host: &str,
    max_encounters: u64,
    active: Arc<AtomicU64>,
) -> Driven {
    let deadline = Instant::now() + load.duration() + Duration::from_secs(1);
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
    });
    let goose_error = match attack(&shared, load, host) {
        Ok(attack) => attack.execute().await.err().map(|e| describe(&e)),
        Err(e) => Some(describe(&e)),
    };
    if let Some(d) = dispatcher {
        d.abort();
    }
    Driven {
        encounters: flow.started.load(Ordering::Relaxed),
        peak_concurrency: shared.peak.load(Ordering::Relaxed),
        goose_error,
        interrupted: goose::is_killswitch_triggered(),
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
}

impl Shared {
    /// One goose transaction of user `index` (of `group`, closed model): one
    /// encounter, when there is one to run.
    async fn one(&self, index: usize, group: Option<u16>) -> TransactionResult {
        let (intended, group) = match &self.pool {
            Some(pool) => {
                if !pool.member(index, self.deadline).await {
                    return idle(self.deadline).await;
                }
                match pool.next().await {
                    Some(start) => (Some(start.due), start.group),
                    None => return idle(self.deadline).await,
                }
            }
            None => (None, group),
        };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        if n >= self.max_encounters {
            return idle(self.deadline).await;
        }
        self.flow.started.fetch_add(1, Ordering::Relaxed);
        let _busy = Busy::new(&self.active, &self.peak);
        let begun = intended.unwrap_or_else(Instant::now);
        let ended = self.flow.encounter(n, intended, group).await;
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

//! The delivery worker, on a thread and runtime of its own: one task drains the bounded
//! queue and gives each notification its own task (at most [`IN_FLIGHT`] at once), which
//! waits out a `notify_delay` (counted from the write's commit), POSTs
//! over HTTP with the subscription's headers, and on failure (no answer, or not 2xx)
//! retries with doubling backoff up to `Policy::attempts` — or stops after the first
//! failure under `notify_give_up`. A handshake that succeeds makes the subscription
//! `active`; one that never does, `error`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use super::{Event, QUEUE, Sub};
use crate::vocab::ledger::{Entry, Ledger};

/// Notifications being delivered (or waiting out a delay) at once, at most.
pub const IN_FLIGHT: usize = 256;

/// How the mock delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts per notification in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one (at most 5 s).
    pub backoff: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            attempts: 6,
            backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
        }
    }
}

/// One notification to deliver.
#[derive(Debug)]
pub struct Job {
    pub sub: Arc<Sub>,
    /// `None`: the handshake.
    pub event: Option<Arc<Event>>,
    /// `None`: an empty POST.
    pub body: Option<Arc<Vec<u8>>>,
    pub delay: Duration,
    /// `notify_dup` (label, kind): send it once more after it was accepted.
    pub dup: Option<(String, String)>,
    /// `notify_give_up` (label, kind): no retry after a failed first attempt.
    pub give_up: Option<(String, String)>,
    /// The handshake: accepted, it makes the subscription `active`.
    pub activates: bool,
}

impl Job {
    pub fn handshake(sub: Arc<Sub>) -> Job {
        Job {
            body: super::body::handshake(&sub).map(Arc::new),
            sub,
            event: None,
            delay: Duration::ZERO,
            dup: None,
            give_up: None,
            activates: true,
        }
    }

    /// A heartbeat: the status, no event.
    pub fn heartbeat(sub: Arc<Sub>) -> Job {
        Job {
            body: super::body::heartbeat(&sub).map(Arc::new),
            sub,
            event: None,
            delay: Duration::ZERO,
            dup: None,
            give_up: None,
            activates: false,
        }
    }
}

/// Starts the worker; the queue closes when the mock is dropped.
pub fn start(
    policy: Policy,
    ledger: Ledger,
    roots: Vec<reqwest::Certificate>,
) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(worker(rx, policy, ledger, roots));
    tx
}

/// Records a notification that will never be sent for want of room.
pub fn lost(ledger: &Ledger, job: &Job, why: &str) {
    let Some(e) = &job.event else { return };
    ledger.record(Entry {
        fault: "notify_queue".into(),
        kind: "notify_queue_full".into(),
        resource_type: Some(e.resource_type.clone()),
        id: Some(e.id.clone()),
        request: e.request.clone(),
        detail: format!(
            "event {} of Subscription/{} lost: {why}",
            e.number, job.sub.id
        ),
        observable: true,
        ..Entry::default()
    });
}

async fn worker(
    mut rx: mpsc::Receiver<Job>,
    policy: Policy,
    ledger: Ledger,
    roots: Vec<reqwest::Certificate>,
) {
    let http = match reqwest::Client::builder()
        .timeout(policy.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge(roots)
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("mock: no HTTP client for notifications: {e}");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(job) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (http, ledger) = (http.clone(), ledger.clone());
        tokio::spawn(async move {
            deliver(&http, job, policy, &ledger).await;
            drop(permit);
        });
    }
    // The mock is gone: let the deliveries under way end before the runtime does.
    let _ = slots.acquire_many(IN_FLIGHT as u32).await;
}

async fn deliver(http: &reqwest::Client, job: Job, policy: Policy, ledger: &Ledger) {
    if !job.delay.is_zero() {
        let from = job
            .event
            .as_ref()
            .map_or_else(Instant::now, |e| e.committed);
        tokio::time::sleep_until((from + job.delay).into()).await;
    }
    let mut wait = policy.backoff;
    for attempt in 1..=policy.attempts.max(1) {
        if post(http, &job).await {
            job.sub.sent();
            if job.activates {
                job.sub.set_status("active");
            }
            if let Some((label, kind)) = &job.dup {
                record(ledger, &job, label, kind, "sent a second time");
                post(http, &job).await;
            }
            return;
        }
        if let Some((label, kind)) = &job.give_up {
            record(
                ledger,
                &job,
                label,
                kind,
                "first attempt failed; not retried",
            );
            break;
        }
        if attempt < policy.attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
    if job.sub.status() != "off" {
        job.sub.set_status("error");
    }
    tracing::debug!(sub = %job.sub.id, "mock: notification abandoned");
}

fn record(ledger: &Ledger, job: &Job, label: &str, kind: &str, what: &str) {
    let Some(e) = &job.event else { return };
    ledger.record(Entry {
        fault: label.to_owned(),
        kind: kind.to_owned(),
        resource_type: Some(e.resource_type.clone()),
        id: Some(e.id.clone()),
        request: e.request.clone(),
        detail: format!("event {} of Subscription/{}: {what}", e.number, job.sub.id),
        observable: true,
        ..Entry::default()
    });
}

/// One attempt: true when the endpoint answered 2xx.
async fn post(http: &reqwest::Client, job: &Job) -> bool {
    let mut req = http.post(job.sub.endpoint.clone());
    for (k, v) in &job.sub.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    req = match &job.body {
        Some(b) => req
            .header("content-type", "application/fhir+json")
            .body(b.as_ref().clone()),
        None => req.header("content-length", "0"),
    };
    match req.send().await {
        Ok(resp) => resp.status().is_success(),
        Err(e) => {
            tracing::debug!(sub = %job.sub.id, "mock: notification not delivered: {e}");
            false
        }
    }
}

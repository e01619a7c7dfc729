//! Subscriptions and notification delivery of the mock EHR. It accepts classic R4
//! rest-hook Subscriptions (`criteria` a search URL) and Subscriptions R5 Backport IG
//! ones (`criteria` a topic canonical, the search URL in `backport-filter-criteria`,
//! `backport-payload-content` on the payload), sends a handshake on creation (a ping for
//! classic rest-hook; status `requested` → `active` once the endpoint accepts it, `error`
//! if it never does), and for every committed write matching a subscription POSTs a
//! notification to `channel.endpoint` with the `channel.header` values: the resource for
//! classic rest-hook, a `history` Bundle with event numbers for the backport. Retries
//! with backoff (a bounded number of attempts), a bounded delivery queue, `$events`
//! replays of the retained events (the last [`RETAINED`] per subscription; the mock never
//! loses one). Faults (`faults`): `notify_drop`, `notify_dup`, `notify_delay`,
//! `notify_give_up`, each in the ledger. `$status` says how many events a topic
//! subscription has had; a topic subscription with the backport `heartbeat-period` gets
//! a `heartbeat` whenever that long passed with nothing sent. Not done: topics as
//! resources (any topic canonical is accepted; its filter names the resource type).

mod body;
mod criteria;
mod deliver;
pub mod faults;
pub mod routes;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::outcome::Problem;
use super::store::Version;
use crate::vocab::fault::{Spec, SpecError};
use crate::vocab::ledger::{Entry, Ledger};
use crate::vocab::notification::{Form, Payload};
pub use criteria::Criteria;
pub use deliver::Policy;

/// Events kept per subscription for `$events`.
pub const RETAINED: usize = 10_000;
/// Notifications waiting for delivery at most; beyond, one is lost (in the ledger).
pub const QUEUE: usize = 4096;

/// One committed change a subscription notifies about.
#[derive(Debug)]
pub struct Event {
    pub number: u64,
    pub resource_type: String,
    pub id: String,
    pub version: u64,
    pub created: bool,
    pub timestamp: String,
    /// The stored resource as JSON.
    pub resource: bytes::Bytes,
    /// The request header of the write, for the ledger.
    pub request: Option<String>,
    /// When the write committed: a `notify_delay` counts from here.
    pub committed: Instant,
}

impl Event {
    /// `base/Type/id/_history/n`.
    pub fn focus(&self, base: &str) -> String {
        format!(
            "{base}{}/{}/_history/{}",
            self.resource_type, self.id, self.version
        )
    }
}

/// One accepted subscription.
#[derive(Debug)]
pub struct Sub {
    pub id: String,
    /// This server's base URL as the subscriber addressed it.
    pub base: String,
    pub form: Form,
    pub payload: Payload,
    pub topic: Option<String>,
    pub criteria: Criteria,
    pub endpoint: url::Url,
    pub headers: Vec<(String, String)>,
    /// The resource as submitted (status and id are set when served).
    resource: Value,
    status: Mutex<&'static str>,
    events: AtomicU64,
    log: Mutex<VecDeque<Arc<Event>>>,
    /// The backport `heartbeat-period`: a heartbeat when nothing was sent for this long.
    pub heartbeat: Option<Duration>,
    /// When a notification was last delivered.
    last_sent: Mutex<Instant>,
}

impl Sub {
    pub fn status(&self) -> &'static str {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_status(&self, s: &'static str) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = s;
    }

    /// The Subscription resource as served.
    pub fn json(&self) -> Value {
        let mut r = self.resource.clone();
        r["id"] = json!(self.id);
        r["status"] = json!(self.status());
        r["meta"] = json!({"versionId": "1"});
        r
    }

    /// A notification was delivered now.
    pub fn sent(&self) {
        *self
            .last_sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn quiet_for(&self) -> Duration {
        self.last_sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    /// Events numbered so far (the last event's number).
    pub fn events_so_far(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// The retained events numbered `since..=until`.
    pub fn retained(&self, since: u64, until: u64) -> Vec<Arc<Event>> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.iter()
            .filter(|e| (since..=until).contains(&e.number))
            .cloned()
            .collect()
    }
}

/// The subscriptions of one mock and their delivery.
#[derive(Debug)]
pub struct Notifier {
    subs: Mutex<BTreeMap<String, Arc<Sub>>>,
    next_id: AtomicU64,
    faults: Vec<faults::Fault>,
    seed: u64,
    start: Instant,
    ledger: Ledger,
    policy: Policy,
    /// Extra CA certificates for https endpoints.
    roots: Vec<reqwest::Certificate>,
    queue: OnceLock<mpsc::Sender<deliver::Job>>,
}

impl Notifier {
    pub fn new(
        specs: Vec<(usize, Spec)>,
        seed: u64,
        start: Instant,
        ledger: Ledger,
        policy: Policy,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<Notifier, (String, SpecError)> {
        let faults = specs
            .into_iter()
            .map(|(p, s)| {
                let label = s.label(p);
                faults::Fault::new(p, s).map_err(|e| (label, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Notifier {
            subs: Mutex::default(),
            next_id: AtomicU64::new(1),
            faults,
            seed,
            start,
            ledger,
            policy,
            roots,
            queue: OnceLock::new(),
        })
    }

    /// `POST /Subscription`: accepts it (status `requested`) and queues the handshake.
    /// Must run inside the tokio runtime (the delivery worker starts on first use).
    pub fn subscribe(&self, resource: Value, base: &str) -> Result<Arc<Sub>, Problem> {
        let id = format!("sub-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let sub = Arc::new(parse(resource, id, base)?);
        self.subs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sub.id.clone(), sub.clone());
        self.enqueue(deliver::Job::handshake(sub.clone()));
        if let (Some(period), Some(tx)) = (sub.heartbeat, self.queue.get()) {
            tokio::spawn(heartbeats(Arc::downgrade(&sub), period, tx.downgrade()));
        }
        Ok(sub)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Sub>> {
        let subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
        subs.get(id).cloned()
    }

    /// `DELETE /Subscription/id`: nothing more is sent for it.
    pub fn remove(&self, id: &str) -> Option<Arc<Sub>> {
        let removed = self
            .subs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(s) = &removed {
            s.set_status("off");
        }
        removed
    }

    /// A write committed `v` of `rt/id`: notify every subscription it matches.
    pub fn committed(
        &self,
        rt: &str,
        id: &str,
        v: &Version,
        request: Option<&str>,
        faults_on: bool,
    ) {
        let subs: Vec<Arc<Sub>> = {
            let subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
            if subs.is_empty() {
                return;
            }
            subs.values().cloned().collect()
        };
        let Ok(resource) = serde_json::from_slice::<Value>(&v.body) else {
            return;
        };
        for sub in subs.iter().filter(|s| s.criteria.matches(rt, &resource)) {
            let event = Arc::new(Event {
                number: sub.events.fetch_add(1, Ordering::Relaxed) + 1,
                resource_type: rt.to_owned(),
                id: id.to_owned(),
                version: v.number,
                created: v.created,
                timestamp: v.last_updated.to_rfc3339(),
                resource: v.body.clone(),
                request: request.map(str::to_owned),
                committed: Instant::now(),
            });
            {
                let mut log = sub.log.lock().unwrap_or_else(PoisonError::into_inner);
                if log.len() == RETAINED {
                    log.pop_front();
                }
                log.push_back(event.clone());
            }
            self.notify(sub.clone(), event, faults_on);
        }
    }

    fn notify(&self, sub: Arc<Sub>, event: Arc<Event>, faults_on: bool) {
        let elapsed = self.start.elapsed();
        let plan = faults::plan(&self.faults, |f| {
            faults_on && f.decide(self.seed, elapsed, &event.resource_type)
        });
        let what = format!("event {} of Subscription/{}", event.number, sub.id);
        if let Some(f) = plan.drop {
            self.record(f, &event, format!("{what} never sent"));
            return;
        }
        if let Some((f, d)) = plan.delay {
            let held = humantime::format_duration(d);
            self.record(f, &event, format!("{what} held back {held}"));
        }
        let job = deliver::Job {
            body: body::event(&sub, &event).map(Arc::new),
            sub,
            event: Some(event),
            delay: plan.delay.map_or(Duration::ZERO, |(_, d)| d),
            dup: plan.dup.map(|f| (f.label.clone(), f.name().to_owned())),
            give_up: plan.give_up.map(|f| (f.label.clone(), f.name().to_owned())),
            activates: false,
        };
        self.enqueue(job);
    }

    fn record(&self, f: &faults::Fault, e: &Event, detail: String) {
        self.ledger.record(Entry {
            fault: f.label.clone(),
            kind: f.name().to_owned(),
            resource_type: Some(e.resource_type.clone()),
            id: Some(e.id.clone()),
            request: e.request.clone(),
            detail,
            observable: true,
            ..Entry::default()
        });
    }

    fn enqueue(&self, job: deliver::Job) {
        let tx = self
            .queue
            .get_or_init(|| deliver::start(self.policy, self.ledger.clone(), self.roots.clone()));
        if let Err(e) = tx.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            deliver::lost(&self.ledger, &job, "the delivery queue was full");
        }
    }
}

/// Sends a heartbeat whenever `period` passed with nothing sent, while the subscription
/// is active; ends when it is deleted or the mock is gone.
async fn heartbeats(
    sub: std::sync::Weak<Sub>,
    period: Duration,
    queue: mpsc::WeakSender<deliver::Job>,
) {
    let mut wait = period;
    loop {
        tokio::time::sleep(wait).await;
        let (Some(sub), Some(tx)) = (sub.upgrade(), queue.upgrade()) else {
            return;
        };
        match sub.status() {
            "off" => return,
            "active" if sub.quiet_for() >= period => {
                sub.sent();
                let _ = tx.try_send(deliver::Job::heartbeat(sub.clone()));
                wait = period;
            }
            _ => {
                wait = period
                    .saturating_sub(sub.quiet_for())
                    .max(Duration::from_millis(10))
            }
        }
    }
}

fn parse(mut r: Value, id: String, base: &str) -> Result<Sub, Problem> {
    let text = |v: &Value, p: &str| v.get(p).and_then(Value::as_str).map(str::to_owned);
    if text(&r, "resourceType").as_deref() != Some("Subscription") {
        return Err(Problem::bad("not a Subscription"));
    }
    let criteria = text(&r, "criteria")
        .ok_or_else(|| Problem::unprocessable("Subscription.criteria is required"))?;
    let channel = r.get("channel").cloned().unwrap_or_default();
    if text(&channel, "type").as_deref() != Some("rest-hook") {
        return Err(Problem::unprocessable(
            "only channel.type = rest-hook is supported",
        ));
    }
    let endpoint = text(&channel, "endpoint")
        .and_then(|e| url::Url::parse(&e).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| Problem::unprocessable("channel.endpoint must be an http(s) URL"))?;
    let headers = channel
        .get("header")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let topic_form = !criteria.contains('?') && criteria.starts_with("http");
    let (form, topic, filter, payload) = if topic_form {
        let filter = extension(
            r.get("_criteria"),
            "backport-filter-criteria",
            "valueString",
        )
        .ok_or_else(|| {
            Problem::unprocessable(
                "a topic subscription needs a backport-filter-criteria naming the resource type",
            )
        })?;
        let payload = match extension(
            channel.get("_payload"),
            "backport-payload-content",
            "valueCode",
        )
        .as_deref()
        {
            Some("empty") => Payload::Empty,
            Some("full-resource") => Payload::FullResource,
            Some("id-only") | None => Payload::IdOnly,
            Some(other) => {
                return Err(Problem::unprocessable(format!(
                    "payload content `{other}` is unknown"
                )));
            }
        };
        (Form::Topic, Some(criteria), filter, payload)
    } else {
        let payload = if channel.get("payload").is_some() {
            Payload::FullResource
        } else {
            Payload::Empty
        };
        (Form::RestHook, None, criteria, payload)
    };
    let criteria = Criteria::parse(&filter).map_err(Problem::unprocessable)?;
    let heartbeat = match form {
        Form::Topic => heartbeat_period(&channel),
        Form::RestHook => None,
    };
    r["status"] = json!("requested");
    Ok(Sub {
        id,
        base: base.to_owned(),
        form,
        payload,
        topic,
        criteria,
        endpoint,
        headers,
        resource: r,
        status: Mutex::new("requested"),
        events: AtomicU64::new(0),
        log: Mutex::default(),
        heartbeat,
        last_sent: Mutex::new(Instant::now()),
    })
}

/// The backport `heartbeat-period` extension on the channel, in seconds (0: none).
fn heartbeat_period(channel: &Value) -> Option<Duration> {
    let secs = channel
        .get("extension")?
        .as_array()?
        .iter()
        .find(|e| {
            e.get("url")
                .and_then(Value::as_str)
                .is_some_and(|u| u.ends_with("backport-heartbeat-period"))
        })?
        .get("valueUnsignedInt")?
        .as_u64()?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// The value of the extension whose URL ends with `name`, on an element's `_` sibling.
fn extension(element: Option<&Value>, name: &str, value: &str) -> Option<String> {
    element?
        .get("extension")?
        .as_array()?
        .iter()
        .find(|e| {
            e.get("url")
                .and_then(Value::as_str)
                .is_some_and(|u| u.ends_with(name))
        })?
        .get(value)?
        .as_str()
        .map(str::to_owned)
}

//! The run's subscriptions, from start to end: start the notification receiver, create
//! the scenario's subscriptions (unless the profile says the EHR lacks that form: then
//! they are recorded `unsupported`, not measured), wait for each to become `active`,
//! tag every write with the subscriptions it matches, and at the end wait out the
//! notification timeout, ask `$status` how many events each topic subscription had and
//! `$events` to replay every gap in its event numbers (those after the last delivered
//! one included), and delete the subscriptions. Every step is a history record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{Error, Interrupt};
use crate::fault::{Ledger, Spec};
use crate::fhir::manage::{Managed, Tagger};
use crate::fhir::{Client, Recorder};
use crate::history::{
    Event, EventsQuery, Form, Payload, Recovery, SubscriptionMark, SubscriptionState,
};
use crate::notify::{self, Criteria};
use crate::profile::{Profile, Support};
use crate::scenario::{Subscribe, Subscriptions};

const BACKPORT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
/// Gaps asked of `$events` per subscription, at most.
const MAX_GAP_QUERIES: usize = 100;

/// Accepted event numbers per subscription name, as they arrive.
type Numbers = Arc<Mutex<BTreeMap<String, BTreeSet<u64>>>>;

/// The receiver and the subscriptions of a running run.
pub struct Live {
    receiver: notify::Receiver,
    created: Vec<(Subscribe, String)>,
    numbers: Numbers,
    timeout: Duration,
}

/// Where the receiver listens and what the run's receiver faults are.
pub struct Setup<'a> {
    pub config: &'a Subscriptions,
    pub profile: &'a Profile,
    pub seed: u64,
    pub start: Instant,
    pub faults: Vec<(usize, Spec)>,
    pub ledger: Ledger,
    pub shutdown: &'a CancellationToken,
}

impl Live {
    /// Starts the receiver and creates the subscriptions; bad input when it cannot listen.
    pub async fn start(s: Setup<'_>, client: &Client, recorder: &Recorder) -> Result<Live, Error> {
        let listener = TcpListener::bind(s.config.listen).await.map_err(|e| {
            Error::BadInput(format!("subscriptions.listen {}: {e}", s.config.listen))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Io(e.to_string()))?;
        let tls = match &s.config.tls {
            Some(t) => Some(notify::tls::acceptor(&t.cert_file, &t.key_file)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = match &s.config.callback_url {
            Some(u) => u.clone(),
            None => Url::parse(&format!("{scheme}://{local}/notify/"))
                .map_err(|e| Error::Io(e.to_string()))?,
        };
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let receiver = notify::Receiver::new(notify::Config {
            seed: s.seed,
            start: s.start,
            secret: secret.clone(),
            prefix: crate::HARNESS_PREFIX.to_owned(),
            faults: s.faults,
            ledger: s.ledger,
            deliveries: tx,
            tls,
        })?;
        notify::spawn(listener, receiver.clone(), s.shutdown.clone())
            .map_err(|e| Error::Io(format!("notification receiver: {e}")))?;
        let numbers = Numbers::default();
        tokio::spawn(forward(rx, recorder.clone(), numbers.clone()));
        let mut created = Vec::new();
        for sub in &s.config.subscribe {
            let endpoint = base.join(&sub.name).unwrap_or_else(|_| base.clone());
            if let Some(id) = create(
                client,
                recorder,
                s.profile,
                sub,
                &endpoint,
                &secret,
                (s.config.activation, s.config.timeout),
            )
            .await
            {
                created.push((sub.clone(), id));
            }
        }
        client.set_tagger(tagger(&created));
        Ok(Live {
            receiver,
            created,
            numbers,
            timeout: s.config.timeout,
        })
    }

    /// Receiver faults stop firing.
    pub fn heal(&self) {
        self.receiver.set_faults_enabled(false);
    }

    /// After the load: waits out the notification timeout (less what already passed),
    /// asks `$events` for every gap, deletes the subscriptions. A stop request (before or
    /// during the wait or the recovery) cuts the wait and the recovery short: what was not
    /// delivered by then stays unreconciled; the subscriptions are still deleted.
    pub async fn finish(
        &self,
        client: &Client,
        recorder: &Recorder,
        waited: Duration,
        interrupt: &Interrupt,
    ) {
        if !interrupt.is_stopped() && !self.created.is_empty() {
            let late = async {
                tokio::time::sleep(self.timeout.saturating_sub(waited)).await;
                self.recover(client, recorder).await;
            };
            if interrupt.bounded(Duration::ZERO, late).await.is_none() {
                tracing::info!(
                    "stopped: the late-notification wait and `$events` recovery were cut"
                );
            }
        }
        for (sub, id) in &self.created {
            let answer = client
                .manage(Method::DELETE, &format!("Subscription/{id}"), None)
                .await;
            let (state, detail) = match answer.is_success() {
                true => (SubscriptionState::Deleted, String::new()),
                false => (
                    SubscriptionState::Error,
                    format!("delete: {}", said(&answer)),
                ),
            };
            recorder
                .record(
                    0,
                    &Event::Subscription(mark(sub, self.timeout, Some(id), state, detail)),
                )
                .await;
        }
    }

    async fn recover(&self, client: &Client, recorder: &Recorder) {
        for (sub, id) in self.created.iter().filter(|(s, _)| s.form == Form::Topic) {
            let seen = {
                let numbers = self.numbers.lock().unwrap_or_else(PoisonError::into_inner);
                numbers.get(&sub.name).cloned().unwrap_or_default()
            };
            let mut missing = gaps(&seen);
            let (announced, said) = status(client, id).await;
            let last = seen.last().copied().unwrap_or(0);
            if let Some(n) = announced.filter(|n| *n > last) {
                missing.push((last + 1, n));
            }
            for (from, to) in missing.into_iter().take(MAX_GAP_QUERIES) {
                let mut query = events(client, sub, id, from, to).await;
                if from > last {
                    query.detail =
                        format!("after the last delivered event; {said}; {}", query.detail);
                }
                recorder.record(0, &Event::EventsQuery(query)).await;
            }
        }
    }
}

/// Appends each delivery to the history and notes its event numbers.
async fn forward(
    mut rx: tokio::sync::mpsc::Receiver<crate::history::Notification>,
    recorder: Recorder,
    numbers: Numbers,
) {
    while let Some(n) = rx.recv().await {
        if n.accepted() && !n.event_numbers.is_empty() {
            let mut all = numbers.lock().unwrap_or_else(PoisonError::into_inner);
            all.entry(n.subscription.clone())
                .or_default()
                .extend(&n.event_numbers);
        }
        recorder.record(0, &Event::Notification(n)).await;
    }
}

/// Missing runs `(from, to)` below the highest number seen.
pub fn gaps(seen: &BTreeSet<u64>) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut next = 1;
    for &n in seen {
        if n > next {
            out.push((next, n - 1));
        }
        next = next.max(n + 1);
    }
    out
}

fn tagger(created: &[(Subscribe, String)]) -> Tagger {
    let criteria: Vec<(String, Criteria)> = created
        .iter()
        .filter_map(|(s, _)| Some((s.name.clone(), Criteria::parse(&s.criteria).ok()?)))
        .collect();
    Tagger(Arc::new(move |rt: &str, r: &Value| {
        criteria
            .iter()
            .filter(|(_, c)| c.matches(rt, r))
            .map(|(n, _)| n.clone())
            .collect()
    }))
}

fn mark(
    sub: &Subscribe,
    timeout: Duration,
    id: Option<&str>,
    state: SubscriptionState,
    detail: String,
) -> SubscriptionMark {
    SubscriptionMark {
        name: sub.name.clone(),
        form: sub.form,
        payload: sub.payload,
        criteria: sub.criteria.clone(),
        topic: sub.topic.clone(),
        id: id.map(str::to_owned),
        state,
        timeout_ms: Some(timeout.as_millis() as u64),
        detail,
        heartbeat_ms: sub.heartbeat.map(|h| h.as_millis() as u64),
    }
}

fn said(m: &Managed) -> String {
    match (m.status, &m.error) {
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no answer".into(),
    }
}

/// Creates one subscription and waits for it to become active; its id when it did.
async fn create(
    client: &Client,
    recorder: &Recorder,
    profile: &Profile,
    sub: &Subscribe,
    endpoint: &Url,
    secret: &str,
    (activation, timeout): (Duration, Duration),
) -> Option<String> {
    let support = match sub.form {
        Form::RestHook => profile.subscriptions.rest_hook,
        Form::Topic => profile.subscriptions.topic,
    };
    let record = |id: Option<&str>, state, detail: String| {
        let event = Event::Subscription(mark(sub, timeout, id, state, detail));
        async move { recorder.record(0, &event).await }
    };
    if support == Support::Unsupported {
        let why = format!(
            "profile `{}` says {} subscriptions are unsupported (sources: {})",
            profile.name,
            sub.form.as_str(),
            profile.subscriptions.sources.join(", ")
        );
        record(None, SubscriptionState::Unsupported, why).await;
        return None;
    }
    let answer = client
        .manage(
            Method::POST,
            "Subscription",
            Some(&resource(sub, endpoint, secret)),
        )
        .await;
    let id = answer
        .body
        .as_ref()
        .and_then(|b| b.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| answer.location.as_deref().and_then(id_in_location));
    let id = match (answer.is_success(), id) {
        (true, Some(id)) => id,
        (ok, _) => {
            let state = match answer.status {
                Some(400 | 404 | 405 | 422 | 501) => SubscriptionState::Unsupported,
                _ => SubscriptionState::Error,
            };
            let what = if ok {
                "created, but no id in the answer".into()
            } else {
                said(&answer)
            };
            record(None, state, format!("create: {what}")).await;
            return None;
        }
    };
    record(Some(&id), SubscriptionState::Requested, String::new()).await;
    let (state, detail) = activate(client, &id, activation).await;
    record(Some(&id), state, detail).await;
    (state == SubscriptionState::Active).then_some(id)
}

/// Polls the subscription until `active`, `error`/`off`, or the deadline.
async fn activate(client: &Client, id: &str, within: Duration) -> (SubscriptionState, String) {
    let deadline = Instant::now() + within;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        let answer = client
            .manage(Method::GET, &format!("Subscription/{id}"), None)
            .await;
        let status = answer
            .body
            .as_ref()
            .and_then(|b| b.get("status"))
            .and_then(Value::as_str);
        match status {
            Some("active") => return (SubscriptionState::Active, String::new()),
            Some(s @ ("error" | "off")) => {
                return (SubscriptionState::Error, format!("status {s}"));
            }
            Some(s) => last = format!("status {s}"),
            None => last = said(&answer),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = within.as_secs_f64();
    (
        SubscriptionState::Error,
        format!("not active after {secs} s ({last})"),
    )
}

fn id_in_location(location: &str) -> Option<String> {
    let parts: Vec<&str> = location.split('/').collect();
    let at = parts.iter().rposition(|p| *p == "Subscription")?;
    parts.get(at + 1).map(|s| (*s).to_owned())
}

/// The Subscription resource for one scenario entry. The secret goes to the server only.
fn resource(sub: &Subscribe, endpoint: &Url, secret: &str) -> Value {
    let header = format!("{}: {secret}", notify::SECRET_HEADER);
    let end = chrono::Utc::now() + chrono::Duration::hours(6);
    let mut channel =
        json!({"type": "rest-hook", "endpoint": endpoint.as_str(), "header": [header]});
    let mut r = json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": format!("fhirsurge notification check `{}`", sub.name),
        "end": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "channel": Value::Null,
    });
    match sub.form {
        Form::RestHook => {
            r["criteria"] = json!(sub.criteria);
            if sub.payload != Payload::Empty {
                channel["payload"] = json!("application/fhir+json");
            }
        }
        Form::Topic => {
            r["meta"] = json!({"profile": [format!("{BACKPORT}backport-subscription")]});
            r["criteria"] = json!(sub.topic.clone().unwrap_or_default());
            r["_criteria"] = json!({"extension": [{"url": format!("{BACKPORT}backport-filter-criteria"), "valueString": sub.criteria}]});
            let content = match sub.payload {
                Payload::Empty => "empty",
                Payload::IdOnly => "id-only",
                Payload::FullResource => "full-resource",
            };
            channel["payload"] = json!("application/fhir+json");
            channel["_payload"] = json!({"extension": [{"url": format!("{BACKPORT}backport-payload-content"), "valueCode": content}]});
            if let Some(h) = sub.heartbeat {
                channel["extension"] = json!([{"url": format!("{BACKPORT}backport-heartbeat-period"), "valueUnsignedInt": h.as_secs()}]);
            }
        }
    }
    r["channel"] = channel;
    r
}

/// Asks `$status` how many events the subscription has had (the backport's
/// `events-since-subscription-start`), so events lost after the last one delivered are
/// found too; `None` when the server does not say (and why, in words).
async fn status(client: &Client, id: &str) -> (Option<u64>, String) {
    let answer = client
        .manage(Method::GET, &format!("Subscription/{id}/$status"), None)
        .await;
    let body = answer.body.as_ref().filter(|_| answer.is_success());
    let Some(body) = body else {
        return (None, format!("$status: {}", said(&answer)));
    };
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let events = notify::parse::parse(&bytes, crate::HARNESS_PREFIX).events_since_start;
    match events {
        Some(n) => (
            Some(n),
            format!("$status reported {n} events since the start"),
        ),
        None => (
            None,
            "$status named no events-since-subscription-start".into(),
        ),
    }
}

/// Asks `$events` for `from..=to` and says whether the server replayed them.
async fn events(client: &Client, sub: &Subscribe, id: &str, from: u64, to: u64) -> EventsQuery {
    let path = format!("Subscription/{id}/$events?eventsSinceNumber={from}&eventsUntilNumber={to}");
    let answer = client.manage(Method::GET, &path, None).await;
    let mut q = EventsQuery {
        name: sub.name.clone(),
        from,
        to,
        recovery: Recovery::Unsupported,
        events: Vec::new(),
        detail: String::new(),
    };
    let body = answer.body.as_ref().filter(|_| answer.is_success());
    let Some(body) =
        body.filter(|b| b.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
    else {
        q.detail = format!("$events: {}", said(&answer));
        return q;
    };
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let parsed = notify::parse::parse(&bytes, crate::HARNESS_PREFIX);
    q.events = parsed
        .focus
        .into_iter()
        .filter(|f| f.event.is_some_and(|n| (from..=to).contains(&n)))
        .collect();
    let got: BTreeSet<u64> = parsed
        .event_numbers
        .into_iter()
        .filter(|n| (from..=to).contains(n))
        .collect();
    q.recovery = if got.len() as u64 == to - from + 1 {
        Recovery::Recovered
    } else {
        Recovery::Unrecoverable
    };
    q.detail = format!("{} of {} events replayed", got.len(), to - from + 1);
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_the_missing_runs_below_the_highest_seen() {
        let seen: BTreeSet<u64> = [1, 2, 5, 6, 9].into_iter().collect();
        assert_eq!(gaps(&seen), vec![(3, 4), (7, 8)]);
        assert!(gaps(&[1, 2, 3].into_iter().collect()).is_empty());
        assert_eq!(gaps(&[3].into_iter().collect()), vec![(1, 2)]);
    }
}

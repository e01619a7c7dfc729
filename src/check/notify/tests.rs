//! Notification judging over hand-built histories: writes inside a transaction Bundle.

use super::*;
use crate::check::Kind;
use crate::history::{Named, NotificationType};

fn record(index: u64, time_us: u64, event: Event) -> Record {
    Record {
        index,
        time_us,
        process: 0,
        event,
    }
}

fn active() -> Event {
    Event::Subscription(SubscriptionMark {
        name: "obs".into(),
        form: Form::RestHook,
        payload: Payload::FullResource,
        criteria: "Observation".into(),
        topic: None,
        id: Some("s1".into()),
        state: SubscriptionState::Active,
        timeout_ms: Some(1000),
        detail: String::new(),
        heartbeat_ms: None,
    })
}

fn delivered(rt: &str, id: &str) -> Event {
    Event::Notification(Notification {
        received_us: 60_000,
        subscription: "obs".into(),
        kind: NotificationType::EventNotification,
        answered: Some(200),
        secret_ok: true,
        focus: vec![Named {
            resource_type: rt.into(),
            id: id.into(),
            version: Some("1".into()),
            identifiers: vec!["urn:fhirsurge:r|o1".into()],
            event: None,
        }],
        ..Notification::default()
    })
}

fn write(f: Interaction, rt: &str, notify: &[&str]) -> Event {
    Event::Invoke(Op {
        f,
        resource_type: rt.into(),
        identifier: (f == Interaction::Create).then(|| "urn:fhirsurge:r|o1".into()),
        notify: notify.iter().map(|s| (*s).to_owned()).collect(),
        ..Op::default()
    })
}

fn acked(invoke: u64, id: Option<&str>) -> Event {
    Event::Ok(Completion {
        invoke,
        status: Some(200),
        id: id.map(str::to_owned),
        version: id.map(|_| "1".to_owned()),
        ..Completion::default()
    })
}

fn judge(events: Vec<Event>) -> (Notifications, Vec<crate::check::Finding>) {
    let mut j = Judge::default();
    for (i, e) in events.into_iter().enumerate() {
        j.see(&record(i as u64, 10_000 * (i as u64 + 1), e));
    }
    // The run went on past the timeout.
    j.see(&record(
        99,
        5_000_000,
        Event::FaultStart(Default::default()),
    ));
    j.finish().unwrap()
}

#[test]
fn a_notification_for_a_resource_a_transaction_wrote_is_not_unexpected() {
    let (n, findings) = judge(vec![
        active(),
        write(Interaction::Transaction, "", &["obs"]),
        acked(1, None),
        delivered("Observation", "o1"),
    ]);
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!((n.unattributed, n.unexpected, n.expected), (1, 0, 0));
}

#[test]
fn entries_recorded_one_by_one_are_judged_like_single_writes() {
    // A transaction whose entries are recorded as writes of their own, each tagged from
    // its resource and completed from its `response` (id, version).
    let (n, findings) = judge(vec![
        active(),
        write(Interaction::Transaction, "", &["obs"]),
        write(Interaction::Create, "Observation", &["obs"]),
        acked(1, None),
        acked(2, Some("o1")),
        delivered("Observation", "o1"),
    ]);
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!((n.expected, n.notified, n.unattributed), (1, 1, 0));
    // The same entry, not notified: missed.
    let (_, findings) = judge(vec![
        active(),
        write(Interaction::Transaction, "", &["obs"]),
        write(Interaction::Create, "Observation", &["obs"]),
        acked(1, None),
        acked(2, Some("o1")),
    ]);
    let kinds: Vec<Kind> = findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![Kind::MissedNotification]);
}

#[test]
fn without_a_bundle_the_same_notification_is_unexpected() {
    let (n, findings) = judge(vec![active(), delivered("Observation", "o1")]);
    assert_eq!(n.unattributed, 0);
    let kinds: Vec<Kind> = findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![Kind::UnexpectedNotification]);
    // Nor does a refused transaction excuse it.
    let refused = Event::Fail(Completion {
        invoke: 1,
        status: Some(400),
        ..Completion::default()
    });
    let (_, findings) = judge(vec![
        active(),
        write(Interaction::Transaction, "", &["obs"]),
        refused,
        delivered("Observation", "o1"),
    ]);
    assert_eq!(findings.len(), 1, "{findings:?}");
}

//! Property tests of the answer classifier ([`super::classify`]): any status, any
//! headers, any bytes give an outcome — never a panic — and a broken answer is never
//! taken for a good one (no `ok` write with a body that is not JSON, no empty search
//! result made of an OperationOutcome, no malformed `ETag` used as a version).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Head, classify};
use crate::history::{Interaction, Op, Outcome};

const PREFIX: &str = "urn:fhirsurge:";

/// A few cases each: the whole set of parser properties stays within seconds.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn interaction() -> impl Strategy<Value = Interaction> {
    prop::sample::select(vec![
        Interaction::Create,
        Interaction::ConditionalCreate,
        Interaction::Read,
        Interaction::Vread,
        Interaction::Update,
        Interaction::Search,
        Interaction::History,
        Interaction::Transaction,
        Interaction::Batch,
        Interaction::Capabilities,
        Interaction::Token,
    ])
}

fn op(f: Interaction, resource_type: &str) -> Op {
    Op {
        f,
        resource_type: resource_type.to_owned(),
        ..Op::default()
    }
}

/// JSON shaped like FHIR: a resourceType from a small set, ids, versions, identifiers,
/// entries and links, with arbitrary values mixed in where FHIR puts structure.
fn fhir_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
    ];
    let any_json = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let rtype = prop::sample::select(vec![
        "Bundle",
        "Observation",
        "Patient",
        "OperationOutcome",
        "",
    ]);
    let resource =
        (rtype.clone(), any_json.clone(), ".{0,6}", ".{0,6}").prop_map(|(t, extra, id, v)| {
            json!({"resourceType": t, "id": id, "meta": {"versionId": v},
                   "identifier": [{"system": format!("{PREFIX}r"), "value": extra}],
                   "subject": {"reference": extra}})
        });
    let entry = (resource.clone(), any_json.clone())
        .prop_map(|(r, mode)| json!({"resource": r, "search": {"mode": mode}}));
    (
        rtype,
        prop::collection::vec(entry, 0..4),
        any_json.clone(),
        any_json,
    )
        .prop_map(|(t, entries, link, total)| {
            json!({"resourceType": t, "entry": entries, "total": total,
                   "link": [{"relation": "next", "url": link}]})
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_any_headers_give_an_outcome(
        f in interaction(),
        status in 0u16..1000,
        location in proptest::option::of(".{0,40}"),
        etag in proptest::option::of(".{0,20}"),
        retry_after in proptest::option::of(".{0,30}"),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let head = Head {
            location: location.as_deref(),
            etag: etag.as_deref(),
            retry_after: retry_after.as_deref(),
        };
        let reply = classify(&op(f, "Observation"), PREFIX, status, &head, &body);
        prop_assert!(reply.outcome.is_some());
        // A version is never a malformed ETag's inside.
        if let Some(v) = &reply.version {
            prop_assert!(!v.is_empty() && !v.contains('"') && !v.chars().any(char::is_control));
        }
        let json = serde_json::from_slice::<Value>(&body).is_ok();
        if (200..300).contains(&status) && !body.is_empty() && !json {
            prop_assert_ne!(reply.outcome, Some(Outcome::Ok), "a 2xx body that is not JSON");
            prop_assert!(reply.note.is_some(), "no reason given");
        }
    }

    #[test]
    fn fhir_shaped_bodies_are_answers_or_bad_responses(
        f in interaction(),
        status in prop::sample::select(vec![200u16, 201, 204, 404, 410, 412, 500]),
        body in fhir_json(),
    ) {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let reply = classify(&op(f, "Observation"), PREFIX, status, &Head::default(), &bytes);
        let found = body.get("resourceType").and_then(Value::as_str);
        let searched = matches!(f, Interaction::Search | Interaction::History);
        if searched && (200..300).contains(&status) && found != Some("Bundle") {
            // Never an empty result: a bad response, with its reason.
            prop_assert_eq!(reply.outcome, Some(Outcome::Fail));
            prop_assert!(reply.seen.is_empty() && reply.next.is_none());
            prop_assert!(reply.note.is_some());
        }
        if reply.outcome == Some(Outcome::Ok) && searched {
            prop_assert_eq!(found, Some("Bundle"));
        }
        // Only the harness's own identifiers are taken from what a server showed.
        for seen in &reply.seen {
            prop_assert!(seen.identifiers.iter().all(|i| i.starts_with(PREFIX)), "{:?}", seen);
        }
    }

    #[test]
    fn a_body_cut_short_is_never_ok_for_a_write(
        f in prop::sample::select(vec![Interaction::Create, Interaction::Update, Interaction::ConditionalCreate]),
        body in fhir_json(),
        cut in 1usize..64,
    ) {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let cut = bytes.len().saturating_sub(cut).max(1);
        let short = &bytes[..cut];
        prop_assume!(serde_json::from_slice::<Value>(short).is_err());
        let reply = classify(&op(f, "Observation"), PREFIX, 201, &Head::default(), short);
        prop_assert_eq!(reply.outcome, Some(Outcome::Info));
        prop_assert!(reply.note.is_some_and(|n| n.contains("not JSON")));
    }
}

//! Any answer a server could give — status, `Location`, `ETag`, `Retry-After`, body —
//! to any interaction: classified, never a panic, never a broken body taken for `ok`.
#![no_main]

use fhirsurge::fhir::{Head, classify};
use fhirsurge::history::{Interaction, Op, Outcome};
use libfuzzer_sys::fuzz_target;

const INTERACTIONS: &[Interaction] = &[
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
];

// Input: one byte picks the interaction, two the status, then three header values
// separated by `\n`, then the body after a `\0`.
fuzz_target!(|data: &[u8]| {
    let [pick, s1, s2, rest @ ..] = data else {
        return;
    };
    let f = INTERACTIONS[*pick as usize % INTERACTIONS.len()];
    let status = u16::from_be_bytes([*s1, *s2]) % 1000;
    let (headers, body) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let headers = String::from_utf8_lossy(headers);
    let mut h = headers.split('\n');
    let head = Head {
        location: h.next(),
        etag: h.next(),
        retry_after: h.next(),
    };
    let op = Op {
        f,
        resource_type: "Observation".to_owned(),
        ..Op::default()
    };
    let reply = classify(&op, "urn:fhirsurge:", status, &head, body);
    let is_json = serde_json::from_slice::<serde_json::Value>(body).is_ok();
    if (200..300).contains(&status) && !body.is_empty() && !is_json {
        assert_ne!(reply.outcome, Some(Outcome::Ok));
    }
});

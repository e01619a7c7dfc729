//! The `scope_bypass` fault: the scope guard lets a request its token's scopes do not
//! allow through to the FHIR API, as a server that does not enforce scopes would. Each
//! one is in the ledger with the request it let through and the status the API then
//! answered; it is observable when that status is a success (the out-of-scope request
//! took effect, or its data was served). Uses the mock's faults and ledger.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::mock::Ehr;
use crate::mock::silent::{Fault, Kind};
use crate::vocab::ledger::{Entry, REQUEST_HEADER};

/// The `scope_bypass` fault that fires for an out-of-scope request on `rt`, if any
/// (each eligible fault takes a decision).
pub fn fires<'a>(ehr: &'a Ehr, rt: &str) -> Option<&'a Fault> {
    let s = &ehr.shared;
    if !s.faults_on() {
        return None;
    }
    let elapsed = s.ledger.elapsed();
    s.faults
        .iter()
        .find(|f| f.kind == Kind::ScopeBypass && f.applies_to(rt) && f.decide(s.seed, elapsed))
}

/// Lets the request through and records what the API answered.
pub async fn through(
    ehr: &Ehr,
    fault: &Fault,
    rt: &str,
    refusal: String,
    req: Request,
    next: Next,
) -> Response {
    let request = req
        .headers()
        .get(REQUEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status();
    ehr.shared.ledger.record(Entry {
        fault: fault.label.clone(),
        kind: fault.name().to_owned(),
        resource_type: Some(rt.to_owned()),
        request,
        detail: format!("{refusal}: let through, answered {}", status.as_u16()),
        observable: status.is_success(),
        method: Some(method),
        path: Some(path),
        ..Entry::default()
    });
    resp
}

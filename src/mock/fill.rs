//! The `fill_latency` fault: a server that slows as it fills. Every FHIR request is held
//! `latency` for each 1,000 resources the mock holds before its handler runs, the way a
//! real server's searches slow as its tables and indexes grow. Each hold is in the ledger
//! (resources held, time added). The mock's own `/__fhirsurge/*` endpoints and
//! `/metadata` are never held.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::silent::Kind;
use super::{Ehr, Shared};
use crate::vocab::ledger::{Entry, REQUEST_HEADER};

/// Holds the request when a `fill_latency` fault fires for it.
pub async fn hold(State(ehr): State<Ehr>, req: Request, next: Next) -> Response {
    if let Some(delay) = delay(&ehr.shared, &req) {
        tokio::time::sleep(delay).await;
    }
    next.run(req).await
}

/// How long to hold `req`, recorded in the ledger; `None` when no fault fires.
fn delay(shared: &Shared, req: &Request) -> Option<std::time::Duration> {
    let path = req.uri().path();
    let rt = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if !shared.faults_on() || rt.starts_with("__") || rt == "metadata" {
        return None;
    }
    let elapsed = shared.ledger.elapsed();
    let (f, per_1k) = shared.faults.iter().find_map(|f| match f.kind {
        Kind::FillLatency(per_1k) if f.applies_to(rt) && f.decide(shared.seed, elapsed) => {
            Some((f, per_1k))
        }
        _ => None,
    })?;
    let held = shared.store.held();
    let delay = per_1k.mul_f64(held as f64 / 1000.0);
    shared.ledger.record(Entry {
        fault: f.label.clone(),
        kind: f.name().to_owned(),
        resource_type: (!rt.is_empty()).then(|| rt.to_owned()),
        request: req
            .headers()
            .get(REQUEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        detail: format!(
            "held {:.3} ms: {held} resources stored",
            delay.as_secs_f64() * 1000.0
        ),
        method: Some(req.method().to_string()),
        path: Some(path.to_owned()),
        ..Entry::default()
    });
    Some(delay)
}

//! `Retry-After` honoured: a loopback server answers the first request of each path 429
//! or 503 with a `Retry-After` (seconds or an HTTP date) and notes when every request
//! arrived; the gap it saw before the retry is at least what it asked for, or the
//! scenario's cap when it asked for more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
use fhirsurge::fhir::{Client, Ctx, Note, Recorder, Retry, RetryPolicy, Settings};
use serde_json::json;
use tokio::sync::mpsc::Receiver;

/// Arrival times per path.
type Seen = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// First request of a path: `/wait-<status>-<how>`, `how` = `s<secs>` or `d<secs>` (an
/// HTTP date that many seconds ahead). Later requests: 200 with a Patient.
async fn answer(State(seen): State<Seen>, uri: Uri) -> impl IntoResponse {
    let path = uri.path().to_owned();
    let first = {
        let mut seen = seen.lock().unwrap();
        let times = seen.entry(path.clone()).or_default();
        times.push(Instant::now());
        times.len() == 1
    };
    let mut headers = HeaderMap::new();
    let tag = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let mut parts = tag.split('-').skip(1);
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let how = parts.next().unwrap_or("s0");
    if !first {
        // The resource asked for (the type is the path's first segment).
        let body = json!({"resourceType": tag, "id": "p", "meta": {"versionId": "1"}});
        headers.insert(
            header::CONTENT_TYPE,
            "application/fhir+json".parse().unwrap(),
        );
        return (StatusCode::OK, headers, body.to_string());
    }
    let secs: u64 = how[1..].parse().unwrap();
    let value = if how.starts_with('d') {
        httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs))
    } else {
        secs.to_string()
    };
    headers.insert(header::RETRY_AFTER, value.parse().unwrap());
    (
        StatusCode::from_u16(status).unwrap(),
        headers,
        String::new(),
    )
}

async fn server() -> (String, Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, seen, task)
}

/// A client and the receiving end of its recorder (kept alive; nobody collects).
fn client(base: &str, policy: RetryPolicy, cap: Duration) -> (Client, Receiver<Note>) {
    let settings = Settings {
        base: url::Url::parse(base).unwrap(),
        timeout: Duration::from_secs(5),
        retry: Retry {
            policy,
            max_attempts: 2,
            backoff: Duration::from_millis(1),
            max_retry_after: cap,
        },
        harness_prefix: "urn:fhirsurge:".into(),
        prefer: None,
        ledger: None,
        auth: Default::default(),
        tls: Default::default(),
    };
    let (recorder, rx) = Recorder::new(Instant::now(), 1024);
    (Client::new(settings, recorder).unwrap(), rx)
}

/// The gap the server saw between the first request of `path` and its retry.
fn gap(seen: &Seen, path: &str) -> Duration {
    let seen = seen.lock().unwrap();
    let times = &seen[path];
    assert_eq!(times.len(), 2, "{path}: one retry");
    times[1] - times[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_in_seconds_or_as_a_date_delays_the_retry_up_to_the_cap() {
    let (base, seen, task) = server().await;
    let cap = Duration::from_secs(30);
    let (careful, _a) = client(&base, RetryPolicy::IdempotentOnly, cap);
    let (naive, _b) = client(&base, RetryPolicy::Naive, cap);
    let (capped, _c) = client(&base, RetryPolicy::Naive, Duration::from_millis(300));
    let patient = json!({"resourceType": "Patient"});
    let ctx = Ctx::default();
    let (read, create, date, cap_hit) = tokio::join!(
        // A read is safe to repeat under idempotent-only.
        careful.read(ctx, "wait-429-s1", "p"),
        // A plain create is retried only by naive.
        async {
            let mut p = patient.clone();
            p["resourceType"] = json!("wait-503-s1");
            naive.create(ctx, &p, "urn:fhirsurge:t|1", false).await
        },
        careful.read(ctx, "wait-503-d2", "p"),
        // Asked to wait an hour, the client waits its cap.
        capped.read(ctx, "wait-429-s3600", "p"),
    );
    for r in [&read, &create, &date, &cap_hit] {
        assert_eq!(r.attempts, 2, "{r:?}");
        assert!(r.is_ok(), "{r:?}");
    }
    assert!(gap(&seen, "/wait-429-s1/p") >= Duration::from_secs(1));
    assert!(gap(&seen, "/wait-503-s1") >= Duration::from_secs(1));
    // An HTTP date has whole seconds: 2 s ahead is at least 1 s ahead.
    assert!(gap(&seen, "/wait-503-d2/p") >= Duration::from_secs(1));
    let capped_gap = gap(&seen, "/wait-429-s3600/p");
    assert!(capped_gap >= Duration::from_millis(300), "{capped_gap:?}");
    assert!(capped_gap < Duration::from_secs(60), "{capped_gap:?}");
    task.abort();
}

#[test]
fn retry_after_values_parse() {
    use fhirsurge::fhir::response::retry_after;
    assert_eq!(retry_after(" 120 "), Some(Duration::from_secs(120)));
    assert_eq!(
        retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(Duration::ZERO),
        "a date past is no wait"
    );
    let ahead = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(90));
    let wait = retry_after(&ahead).unwrap();
    assert!(
        wait > Duration::from_secs(80) && wait <= Duration::from_secs(90),
        "{wait:?}"
    );
    assert_eq!(retry_after("soon"), None);
    assert_eq!(retry_after("-1"), None);
}

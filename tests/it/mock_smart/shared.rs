//! Token discipline under load, counted on the mock's token endpoint: 200 concurrent
//! users of one client share one token, and each renewal is one request (no request
//! comes before the previous token reached its renewal point, so two requests never
//! serve one renewal); and the EHR's interval between token requests is honoured even
//! when tokens live shorter than it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fhirsurge::fhir::auth::{self, EhrAuth, Hmac, SecretSource, SmartConfig};
use fhirsurge::fhir::{Client, Ctx, Recorder, Retry, Settings, Tls};
use fhirsurge::history::Event;
use fhirsurge::mock::smart;

use super::secret::SECRET;
use super::{CLIENT, Served, write};

/// A mock taking the client secret, tokens living `lifetime`.
async fn mock(lifetime: Duration) -> Served {
    Served::start(smart::Config {
        clients: vec![CLIENT.into()],
        client_secret: Some(SECRET.into()),
        methods: smart::methods_for(None, true),
        token_lifetime: lifetime,
        ..smart::Config::default()
    })
    .await
}

/// A client of `m` authenticating with the secret (the method left to choose), token
/// requests no closer than `interval`; the recorder is drained in the background,
/// counting 401s.
fn client(
    m: &Served,
    dir: &std::path::Path,
    interval: Option<Duration>,
) -> (Client, Arc<AtomicUsize>) {
    let smart = SmartConfig {
        client_id: SecretSource::File(write(dir, "id", CLIENT)),
        private_key: None,
        client_secret: Some(SecretSource::File(write(dir, "secret", SECRET))),
        alg: auth::Alg::Rs384,
        hmac: Hmac::default(),
        kid: String::new(),
        jku: None,
        token_url: None,
        scopes: vec!["system/Patient.rs".into()],
        method: None,
        ehr: EhrAuth {
            methods: Vec::new(),
            min_token_interval: interval,
        },
    };
    let (recorder, mut rx) = Recorder::new(Instant::now(), 10_000);
    let unauthorized = Arc::new(AtomicUsize::new(0));
    let count = unauthorized.clone();
    tokio::spawn(async move {
        while let Some(note) = rx.recv().await {
            if let Some(r) = note.record()
                && matches!(&r.event, Event::Fail(c) if c.status == Some(401))
            {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let settings = Settings {
        base: url::Url::parse(&m.base).unwrap(),
        timeout: Duration::from_secs(10),
        retry: Retry::default(),
        harness_prefix: "urn:fhirsurge:".into(),
        prefer: None,
        ledger: None,
        auth: auth::Config::Smart(Box::new(smart)),
        tls: Tls::default(),
    };
    (Client::new(settings, recorder).unwrap(), unauthorized)
}

/// `users` tasks read until the token endpoint has seen `requests` token requests (or
/// 30 s, or 5,000 reads each); returns the arrival times it saw.
async fn hammer(m: &Served, c: &Client, users: usize, requests: usize) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..users)
        .map(|u| {
            let (c, stop) = (c.clone(), stop.clone());
            tokio::spawn(async move {
                for _ in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    c.read(Ctx::default(), "Patient", &format!("p{u}")).await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while m.smart().token_requests().len() < requests && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    m.smart().token_requests()
}

/// The smallest gap between consecutive token requests.
fn smallest_gap(times: &[Duration]) -> Duration {
    times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .min()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_users_make_one_token_request_per_renewal() {
    let lifetime = Duration::from_secs(2);
    let m = mock(lifetime).await;
    let dir = tempfile::tempdir().unwrap();
    let (c, unauthorized) = client(&m, dir.path(), None);
    let times = hammer(&m, &c, 200, 4).await;
    assert!(times.len() >= 3, "renewed at least twice: {times:?}");
    // A 2 s token is renewed after half its life: a second request for the same
    // renewal would come sooner than that after the first.
    let gap = smallest_gap(&times);
    assert!(
        gap >= lifetime / 2 - Duration::from_millis(50),
        "two token requests {gap:?} apart: {times:?}"
    );
    let issued = m.smart().issued_methods();
    assert_eq!(issued.len(), times.len(), "every request got a token");
    assert!(
        issued
            .iter()
            .all(|m| *m == fhirsurge::profile::ClientAuth::ClientSecretBasic),
        "the first secret method the server lists: {issued:?}"
    );
    eprintln!(
        "{} token requests, smallest gap {gap:?}, {} 401s",
        times.len(),
        unauthorized.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ehrs_interval_between_token_requests_holds_even_for_short_tokens() {
    // 1 s tokens, but the EHR throttles token requests closer than 1.5 s.
    let interval = Duration::from_millis(1500);
    let m = mock(Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = client(&m, dir.path(), Some(interval));
    let times = hammer(&m, &c, 50, 3).await;
    assert!(times.len() >= 3, "{times:?}");
    let gap = smallest_gap(&times);
    assert!(
        gap >= interval - Duration::from_millis(250),
        "two token requests {gap:?} apart: {times:?}"
    );
}

//! The control endpoints under each policy, over real loopback sockets: with a token a
//! request must carry it (401 otherwise), closed (what a non-loopback bind without a token
//! decides) they answer 403 to everyone, while the FHIR API stays open. The binary refuses
//! a non-loopback address without `--allow-remote` and a token variable that is not set,
//! and never prints the token. Never binds anything but loopback.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fhirsurge::fault::{Ledger, proxy};
use fhirsurge::mock::{self, Ehr};
use fhirsurge::vocab::control::{Access, TOKEN_HEADER, decide};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "tok-5e1d-c0ntrol";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A mock on loopback with `control`; its base URL.
async fn mock_with(control: Access, shutdown: &CancellationToken) -> String {
    let ehr = Ehr::new(mock::Config {
        control,
        ..mock::Config::default()
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(mock::serve(listener, ehr, shutdown.clone()));
    base
}

/// A standalone proxy (serving its ledger) in front of `upstream`, with `control`.
async fn proxy_with(upstream: &str, control: Access, shutdown: &CancellationToken) -> String {
    let p = proxy::Proxy::new(proxy::Config {
        upstream: url::Url::parse(upstream).unwrap(),
        faults: Vec::new(),
        seed: 0,
        ledger: Ledger::new(Instant::now()),
        ca_cert: None,
        serve_ledger: true,
        control,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(proxy::serve(listener, p, shutdown.clone()));
    base
}

async fn status(url: String, token: Option<&str>) -> u16 {
    let mut req = http().get(url);
    if let Some(t) = token {
        req = req.header(TOKEN_HEADER, t);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_mock_control_endpoints_need_the_token_once_one_is_configured() {
    let shutdown = CancellationToken::new();
    let base = mock_with(decide([127, 0, 0, 1].into(), Some(TOKEN)), &shutdown).await;
    for path in ["__fhirsurge/ledger", "__fhirsurge/health"] {
        assert_eq!(status(format!("{base}{path}"), None).await, 401, "{path}");
        assert_eq!(status(format!("{base}{path}"), Some("wrong")).await, 401);
        assert_eq!(status(format!("{base}{path}"), Some(TOKEN)).await, 200);
    }
    // The FHIR API is not a control endpoint.
    assert_eq!(status(format!("{base}metadata"), None).await, 200);
    shutdown.cancel();
}

#[tokio::test]
async fn closed_control_endpoints_refuse_everyone_and_the_fhir_api_stays_open() {
    let shutdown = CancellationToken::new();
    // What a non-loopback bind without a token decides (never bound here).
    let closed = decide("0.0.0.0".parse().unwrap(), None);
    assert_eq!(closed, Access::Closed);
    let base = mock_with(closed.clone(), &shutdown).await;
    assert_eq!(status(format!("{base}__fhirsurge/ledger"), None).await, 403);
    assert_eq!(
        status(format!("{base}__fhirsurge/health"), Some(TOKEN)).await,
        403
    );
    assert_eq!(status(format!("{base}metadata"), None).await, 200);

    let front = proxy_with(&base, closed, &shutdown).await;
    assert_eq!(
        status(format!("{front}__fhirsurge/ledger"), None).await,
        403
    );
    // Forwarded requests are not control requests.
    assert_eq!(status(format!("{front}metadata"), None).await, 200);
    shutdown.cancel();
}

#[tokio::test]
async fn the_proxy_ledger_needs_the_token_and_the_connection_goes_on() {
    let shutdown = CancellationToken::new();
    let base = mock_with(Access::Open, &shutdown).await;
    let control = decide([127, 0, 0, 1].into(), Some(TOKEN));
    let front = proxy_with(&base, control, &shutdown).await;
    let ledger = format!("{front}__fhirsurge/ledger");
    // One client, so the refusal and the answer after it share a keep-alive connection.
    let client = http();
    let refused = client.get(&ledger).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    let ok = client
        .get(&ledger)
        .header(TOKEN_HEADER, TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(
        ok.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!([])
    );
    let wrong = client
        .get(&ledger)
        .header(TOKEN_HEADER, "x")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    shutdown.cancel();
}

fn fhirsurge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fhirsurge"))
}

#[test]
fn the_binary_refuses_remote_binds_without_allow_remote_and_unset_token_variables() {
    for what in ["serve-mock", "proxy"] {
        let mut cmd = fhirsurge();
        cmd.args([what, "--listen", "0.0.0.0:0"]);
        if what == "proxy" {
            cmd.args(["--upstream", "http://127.0.0.1:9/"]);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{what}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("not loopback") && stderr.contains("--control-token-env"),
            "{stderr}"
        );

        // Checked before anything is bound: a token variable that is not set.
        let mut cmd = fhirsurge();
        cmd.args([what, "--listen", "0.0.0.0:0", "--allow-remote"])
            .args(["--control-token-env", "FHIRSURGE_IT_NO_SUCH_VAR"])
            .env_remove("FHIRSURGE_IT_NO_SUCH_VAR");
        if what == "proxy" {
            cmd.args(["--upstream", "http://127.0.0.1:9/"]);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{what}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("FHIRSURGE_IT_NO_SUCH_VAR") && stderr.contains("not set"),
            "{stderr}"
        );
    }
}

/// `serve-mock` with a token on loopback: refuses a request without it, answers one with
/// it, and prints the token nowhere (stderr is read whole after the process ends).
#[test]
fn serve_mock_with_a_control_token_never_prints_it() {
    let mut child = fhirsurge()
        .args([
            "serve-mock",
            "--listen",
            "127.0.0.1:0",
            "--control-token-env",
            "IT_CONTROL_TOKEN",
        ])
        .env("IT_CONTROL_TOKEN", TOKEN)
        .env("FHIRSURGE_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = Kill(child.id());
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no base URL in {first:?}"))
        .to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert_eq!(status(format!("{base}__fhirsurge/ledger"), None).await, 401);
        assert_eq!(
            status(format!("{base}__fhirsurge/ledger"), Some("no")).await,
            401
        );
        assert_eq!(
            status(format!("{base}__fhirsurge/ledger"), Some(TOKEN)).await,
            200
        );
    });
    drop(guard);
    let _ = child.wait();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    let mut stdout = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout);
    for text in [&first, &rest, &stdout] {
        assert!(!text.contains(TOKEN), "the token was printed: {text}");
    }
}

/// Kills the process with this id when dropped.
struct Kill(u32);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

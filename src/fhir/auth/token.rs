//! One access token and the request that gets it. The token request is an interaction
//! like any other: an `Interaction::Token` invocation and completion in the history and
//! a `token` latency sample, through the client's recorder. The record carries no
//! assertion, secret, token or client id, only the status, the error class and the
//! OAuth `error` code. When a token is due for renewal is a pure function of its age.

use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderValue};
use serde::Deserialize;
use url::Url;

use super::{Error, Io};
use crate::fhir::response;
use crate::history::{Completion, ErrorClass, Interaction, Op, Outcome};
use crate::metrics::Sample;

/// Renewal starts when less than this share of a token's life is left...
const RENEW_SHARE: u32 = 10;
/// ...or less than this, whichever is more (but never before half its life).
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// A bearer token in hand.
#[derive(Debug)]
pub struct Token {
    /// `Bearer …`, marked sensitive.
    pub header: HeaderValue,
    /// Counts the tokens fetched; a 401 invalidates only the token it was sent with.
    pub generation: u64,
    pub received: Instant,
    /// `expires_in`; `None` when the server did not say (used until a 401).
    pub lifetime: Option<Duration>,
    /// The `scope` the server says it granted; `None` when it did not say (RFC 6749
    /// §5.1: then what was asked for).
    pub scope: Option<String>,
}

/// A usable token-endpoint answer.
#[derive(Debug)]
pub struct Answer {
    pub header: HeaderValue,
    pub lifetime: Option<Duration>,
    pub scope: Option<String>,
}

/// Where a token stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Still valid, but due for renewal.
    Renew,
    Expired,
}

/// How fresh a token received at `received` and valid for `lifetime` is at `now`.
pub fn freshness(received: Instant, lifetime: Option<Duration>, now: Instant) -> Freshness {
    let Some(life) = lifetime else {
        return Freshness::Fresh;
    };
    let age = now.saturating_duration_since(received);
    if age >= life {
        return Freshness::Expired;
    }
    let margin = (life / RENEW_SHARE).max(RENEW_BEFORE).min(life / 2);
    if age + margin >= life {
        Freshness::Renew
    } else {
        Freshness::Fresh
    }
}

impl Token {
    pub fn freshness(&self, now: Instant) -> Freshness {
        freshness(self.received, self.lifetime, now)
    }
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct Refusal {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// What a token endpoint's answer means, decided from its status and body.
pub fn read_answer(status: u16, body: &[u8]) -> Result<Answer, Error> {
    if !(200..300).contains(&status) {
        let refusal: Refusal = serde_json::from_slice(body).unwrap_or(Refusal {
            error: None,
            error_description: None,
        });
        return Err(Error::Refused {
            status,
            error: refusal.error.map(|e| printable(&e, 64)),
            description: refusal.error_description.map(|d| printable(&d, 300)),
        });
    }
    let bad = |problem: &'static str| Error::BadTokenResponse { status, problem };
    let granted: Granted =
        serde_json::from_slice(body).map_err(|_| bad("no `access_token` in a JSON object"))?;
    if let Some(kind) = &granted.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(bad("`token_type` is not Bearer"));
    }
    let lifetime = match &granted.expires_in {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => return Err(bad("`expires_in` is not a number")),
    }
    .map(|secs| Duration::from_secs_f64(secs.clamp(0.0, 1e9)));
    let mut header = HeaderValue::try_from(format!("Bearer {}", granted.access_token.trim()))
        .map_err(|_| bad("`access_token` cannot be sent in a header"))?;
    header.set_sensitive(true);
    let scope = granted.scope.map(|s| printable(&s, 2000));
    Ok(Answer {
        header,
        lifetime,
        scope,
    })
}

/// Keeps printable ASCII, at most `max` characters: server text for a message.
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

/// What is sent to the token endpoint: the form and, for `client_secret_basic`, an
/// `Authorization` header (marked sensitive).
pub struct Request {
    pub form: String,
    pub authorization: Option<HeaderValue>,
}

/// POSTs the token request and records it as a `token` interaction.
pub async fn request(io: &Io<'_>, token_url: &Url, req: Request) -> Result<Answer, Error> {
    let op = Op {
        f: Interaction::Token,
        phase: io.phase,
        ..Op::default()
    };
    let index = io.recorder.invoke(io.process, &op).await;
    let started = Instant::now();
    let mut post = io
        .http
        .post(token_url.clone())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(authorization) = req.authorization {
        post = post.header(header::AUTHORIZATION, authorization);
    }
    let sent = post.body(req.form).send().await;
    let (answer, status, outcome, class) = match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            let at = ("POST", token_url.as_str());
            io.recorder.body(index, at, Some(status), &body).await;
            let answer = read_answer(status, &body);
            let (outcome, class) = classify(status, &answer);
            (answer, Some(status), outcome, class)
        }
        Err(e) => {
            let (outcome, class) = response::classify_transport(&e);
            let reason = super::transport_reason(&e);
            let answer = Err(Error::Unreachable {
                what: "the token endpoint",
                url: token_url.to_string(),
                reason,
            });
            (answer, None, outcome, Some(class))
        }
    };
    let detail = match &answer {
        Err(Error::Refused { error, .. }) => error.clone(),
        Err(Error::BadTokenResponse { problem, .. }) => Some((*problem).to_owned()),
        _ => None,
    };
    let latency_us = started.elapsed().as_micros() as u64;
    let completion = Completion {
        invoke: index,
        status,
        error: class,
        detail,
        latency_us,
        ..Completion::default()
    };
    let sample = Sample {
        op: Interaction::Token.as_str().to_owned(),
        outcome,
        error: class,
        at_us: io.recorder.now_us(),
        latency_us,
        phase: io.phase,
        group: None,
    };
    io.recorder
        .complete(io.process, outcome, &completion, sample)
        .await;
    answer
}

/// The outcome class of a token answer: a refusal (400/401/403) is an auth failure.
fn classify<T>(status: u16, answer: &Result<T, Error>) -> (Outcome, Option<ErrorClass>) {
    match (status, answer) {
        (200..=299, Ok(_)) => (Outcome::Ok, None),
        (200..=299, Err(_)) => (Outcome::Fail, Some(ErrorClass::BadResponse)),
        (400 | 401 | 403, _) => (Outcome::Fail, Some(ErrorClass::Auth)),
        _ => response::classify_status(Interaction::Token, status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn renewal_starts_at_a_tenth_of_the_life_or_thirty_seconds() {
        let t0 = Instant::now();
        let at = |secs| t0 + S(secs);
        // 570 s (Oracle Health): renew in the last 57 s.
        assert_eq!(freshness(t0, Some(S(570)), at(512)), Freshness::Fresh);
        assert_eq!(freshness(t0, Some(S(570)), at(513)), Freshness::Renew);
        // 300 s: the 30 s floor wins.
        assert_eq!(freshness(t0, Some(S(300)), at(269)), Freshness::Fresh);
        assert_eq!(freshness(t0, Some(S(300)), at(270)), Freshness::Renew);
        assert_eq!(freshness(t0, Some(S(300)), at(300)), Freshness::Expired);
        // A 20 s token is used for half its life before renewal.
        assert_eq!(freshness(t0, Some(S(20)), at(9)), Freshness::Fresh);
        assert_eq!(freshness(t0, Some(S(20)), at(10)), Freshness::Renew);
        // No `expires_in`: fresh until the server says otherwise.
        assert_eq!(freshness(t0, None, at(1_000_000)), Freshness::Fresh);
    }

    #[test]
    fn a_grant_gives_a_sensitive_bearer_header_and_its_lifetime() {
        let body = br#"{"access_token":"tok-1","token_type":"bearer","expires_in":"570","scope":"system/Patient.rs"}"#;
        let a = read_answer(200, body).unwrap();
        assert_eq!(a.header.to_str().unwrap(), "Bearer tok-1");
        assert!(a.header.is_sensitive());
        assert_eq!(a.lifetime, Some(S(570)));
        assert_eq!(a.scope.as_deref(), Some("system/Patient.rs"));
    }

    #[test]
    fn a_refusal_carries_the_oauth_code_and_description() {
        let body = br#"{"error":"invalid_client","error_description":"bad jwt\nsignature"}"#;
        let err = read_answer(400, body).unwrap_err();
        assert!(matches!(err, Error::Refused { status: 400, .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("invalid_client"), "{text}");
        assert!(text.contains("bad jwtsignature"), "{text}");
        let err = read_answer(401, b"").unwrap_err();
        assert!(matches!(err, Error::Refused { error: None, .. }));
    }

    #[test]
    fn an_unusable_grant_is_a_bad_response() {
        for body in [
            &br#"{"token_type":"bearer"}"#[..],
            br#"{"access_token":"x","token_type":"DPoP"}"#,
        ] {
            let err = read_answer(200, body).unwrap_err();
            assert!(matches!(err, Error::BadTokenResponse { .. }), "{err}");
        }
    }
}

//! Who may use the control endpoints (`/__fhirsurge/…`: ledger, health) of the mock EHR
//! and the fault proxy. A pure decision from the listen address and an optional token:
//! on loopback they are open; on any other address they are refused unless a token is
//! configured; with a token every request must carry it in [`TOKEN_HEADER`]. The token
//! is compared in constant time and never printed (its `Debug` hides it). Uses nothing.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// The path prefix of the control endpoints.
pub const PREFIX: &str = "/__fhirsurge/";

/// The request header that carries the control token.
pub const TOKEN_HEADER: &str = "x-fhirsurge-control-token";

/// The policy of one server's control endpoints.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Access {
    /// Anyone who reaches the server (a loopback bind without a token).
    #[default]
    Open,
    /// Only requests carrying this token.
    Token(Arc<str>),
    /// Nobody (a non-loopback bind without a token).
    Closed,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Open => f.write_str("Open"),
            Access::Token(_) => f.write_str("Token(<hidden>)"),
            Access::Closed => f.write_str("Closed"),
        }
    }
}

/// Whether one request may use a control endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused, with the status to answer (401: no or a wrong token; 403: closed).
    Refused(u16, &'static str),
}

/// The policy for a server listening on `ip` with `token` configured (an empty token
/// counts as none).
pub fn decide(ip: IpAddr, token: Option<&str>) -> Access {
    match token.filter(|t| !t.is_empty()) {
        Some(t) => Access::Token(Arc::from(t)),
        None if ip.is_loopback() => Access::Open,
        None => Access::Closed,
    }
}

impl Access {
    /// Judges one request by the token it carries (the header's raw value), if any.
    pub fn admits(&self, presented: Option<&[u8]>) -> Verdict {
        match self {
            Access::Open => Verdict::Allowed,
            Access::Closed => Verdict::Refused(
                403,
                "control endpoints are closed on a non-loopback address without a control token",
            ),
            Access::Token(t) => match presented {
                Some(p) if same(p, t.as_bytes()) => Verdict::Allowed,
                Some(_) => Verdict::Refused(401, "wrong control token"),
                None => Verdict::Refused(401, "control token required (x-fhirsurge-control-token)"),
            },
        }
    }
}

/// Equality in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: [&str; 2] = ["127.0.0.1", "::1"];
    const REMOTE: [&str; 3] = ["0.0.0.0", "10.1.2.3", "::"];

    #[test]
    fn loopback_without_a_token_is_open() {
        for ip in LOOPBACK {
            let a = decide(ip.parse().unwrap(), None);
            assert_eq!(a, Access::Open);
            assert_eq!(a.admits(None), Verdict::Allowed);
            assert_eq!(decide(ip.parse().unwrap(), Some("")), Access::Open);
        }
    }

    #[test]
    fn non_loopback_without_a_token_is_closed_to_everyone() {
        for ip in REMOTE {
            let a = decide(ip.parse().unwrap(), None);
            assert_eq!(a, Access::Closed, "{ip}");
            assert!(matches!(a.admits(None), Verdict::Refused(403, _)));
            assert!(matches!(
                a.admits(Some(b"anything")),
                Verdict::Refused(403, _)
            ));
        }
    }

    #[test]
    fn a_token_is_required_on_any_address() {
        for ip in LOOPBACK.iter().chain(&REMOTE) {
            let a = decide(ip.parse().unwrap(), Some("s3cret"));
            assert_eq!(a.admits(Some(b"s3cret")), Verdict::Allowed, "{ip}");
            assert!(matches!(a.admits(None), Verdict::Refused(401, _)));
            assert!(matches!(a.admits(Some(b"s3cre")), Verdict::Refused(401, _)));
            assert!(matches!(
                a.admits(Some(b"s3cret ")),
                Verdict::Refused(401, _)
            ));
            assert!(matches!(
                a.admits(Some(b"S3cret")),
                Verdict::Refused(401, _)
            ));
        }
    }

    #[test]
    fn the_token_is_never_shown() {
        let a = decide("10.0.0.1".parse().unwrap(), Some("s3cret"));
        assert!(!format!("{a:?}").contains("s3cret"));
        if let Verdict::Refused(_, why) = a.admits(Some(b"nope")) {
            assert!(!why.contains("s3cret"));
        }
    }
}

//! SMART discovery: `{base}/.well-known/smart-configuration` says where the token endpoint
//! is and which client authentication methods, signing algorithms and scopes the server
//! offers. Parsing is a pure
//! function of the document; fetching is one GET. A document without `token_endpoint`
//! is `Error::Discovery` (bad input); a server that cannot be reached or answers 5xx is
//! `Error::Unreachable`.

use reqwest::header;
use serde::Deserialize;
use url::Url;

use super::Error;

/// What the discovery document says that the client uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovered {
    pub token_url: Url,
    /// `token_endpoint_auth_methods_supported`, when given.
    pub methods: Option<Vec<String>>,
    /// `token_endpoint_auth_signing_alg_values_supported`, when given (Epic gives none).
    pub algs: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
}

impl Discovered {
    /// Whether the server says it takes assertions signed with `alg` (`RS384`, …);
    /// `None` when it does not say.
    pub fn offers(&self, alg: &str) -> Option<bool> {
        self.algs
            .as_ref()
            .map(|algs| algs.iter().any(|a| a.eq_ignore_ascii_case(alg)))
    }
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    #[serde(default)]
    scopes_supported: Option<Vec<String>>,
}

/// The discovery URL under a FHIR base, with or without its trailing `/`.
pub fn url(base: &Url) -> Url {
    let mut url = base.clone();
    let path = format!(
        "{}/.well-known/smart-configuration",
        url.path().trim_end_matches('/')
    );
    url.set_path(&path);
    url.set_query(None);
    url
}

/// Reads a discovery document fetched from `at`.
pub fn parse(at: &Url, body: &[u8]) -> Result<Discovered, Error> {
    let bad = |problem: String| Error::Discovery {
        url: at.to_string(),
        problem,
    };
    let doc: Document = serde_json::from_slice(body)
        .map_err(|_| bad("not a SMART configuration (not a JSON object)".into()))?;
    let endpoint = doc
        .token_endpoint
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            bad("has no `token_endpoint`; give `token_url` in the scenario's [auth]".into())
        })?;
    let token_url = Url::parse(endpoint.trim())
        .or_else(|_| at.join(endpoint.trim()))
        .map_err(|_| bad("`token_endpoint` is not a URL".into()))?;
    Ok(Discovered {
        token_url,
        methods: doc.token_endpoint_auth_methods_supported,
        algs: doc.token_endpoint_auth_signing_alg_values_supported,
        scopes: doc.scopes_supported,
    })
}

/// Fetches and reads the discovery document of `base`.
pub async fn fetch(http: &reqwest::Client, base: &Url) -> Result<Discovered, Error> {
    let at = url(base);
    let unreachable = |reason: String| Error::Unreachable {
        what: "SMART discovery",
        url: at.to_string(),
        reason,
    };
    let resp = http
        .get(at.clone())
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| unreachable(super::transport_reason(&e)))?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(unreachable(format!("answered {status}")));
    }
    if !status.is_success() {
        return Err(Error::Discovery {
            url: at.to_string(),
            problem: format!("answered {status}; give `token_url` in the scenario's [auth]"),
        });
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| unreachable(super::transport_reason(&e)))?;
    parse(&at, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Url {
        Url::parse("https://ehr.test/fhir/r4/.well-known/smart-configuration").unwrap()
    }

    #[test]
    fn the_discovery_url_sits_under_the_base_with_or_without_a_slash() {
        for base in ["https://ehr.test/fhir/r4/", "https://ehr.test/fhir/r4"] {
            assert_eq!(url(&Url::parse(base).unwrap()), at());
        }
    }

    #[test]
    fn a_document_gives_the_token_url_and_what_it_offers() {
        let body = br#"{"token_endpoint": "https://auth.test/token",
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384"],
            "scopes_supported": ["system/Patient.rs"]}"#;
        let d = parse(&at(), body).unwrap();
        assert_eq!(d.token_url.as_str(), "https://auth.test/token");
        assert_eq!(d.methods, Some(vec!["client_secret_basic".to_owned()]));
        assert_eq!(d.offers("RS384"), Some(true));
        assert_eq!(d.offers("ES384"), Some(false));
    }

    #[test]
    fn a_document_without_algorithms_offers_nothing_in_particular() {
        let d = parse(&at(), br#"{"token_endpoint": "/oauth2/token"}"#).unwrap();
        assert_eq!(d.token_url.as_str(), "https://ehr.test/oauth2/token");
        assert_eq!(d.offers("ES384"), None);
        assert_eq!(d.methods, None);
    }

    #[test]
    fn no_token_endpoint_is_bad_input() {
        for body in [
            &br#"{"issuer": "x"}"#[..],
            b"<html>",
            br#"{"token_endpoint": ""}"#,
        ] {
            let err = parse(&at(), body).unwrap_err();
            assert!(matches!(err, Error::Discovery { .. }), "{err}");
        }
    }
}

//! Refusals in the emulated EHR's own shape: a catalogue entry (`[errors.codes]`) with its
//! HTTP status, rendered in its envelope (an OperationOutcome, one carrying the vendor
//! code in `issue.details.coding`, a numeric-status JSON body, an OAuth error or vendor
//! JSON), or with an empty body when the profile says that status has none. Pure apart
//! from building the response.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::mock::outcome::Problem;
use crate::profile::{Envelope, Profile, Severity};

/// One error the emulated EHR answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub envelope: Envelope,
    pub severity: Severity,
    /// FHIR IssueType, or the OAuth `error`.
    pub issue: String,
    pub vendor_code: Option<String>,
    pub message: String,
    /// What exactly was wrong (an element, a parameter), as OperationOutcome diagnostics.
    pub detail: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// The profile answers this status with an empty body.
    empty: bool,
}

impl Refusal {
    /// The catalogue entry `name`. A validated profile only refers to entries it defines;
    /// a missing one answers 500 naming it (a mock bug, not the EHR's behaviour).
    pub fn named(profile: &Profile, name: &str) -> Refusal {
        let Some(def) = profile.error(name) else {
            return Self::synthesized(
                profile,
                500,
                "exception",
                format!("mock: the profile names the error `{name}` but does not define it"),
            );
        };
        Refusal {
            status: def.status,
            envelope: def.envelope,
            severity: def.severity,
            issue: def.issue.clone(),
            vendor_code: def.vendor_code.clone(),
            message: def.message.clone(),
            detail: None,
            retry_after: None,
            empty: profile.errors.empty_body_on.contains(&def.status),
        }
    }

    /// An interaction the EHR does not have. No profile documents what its EHR answers
    /// then, so: 405 `not-supported` in the profile's envelope, without a vendor code.
    pub fn unsupported(profile: &Profile, what: String) -> Refusal {
        Self::synthesized(profile, 405, "not-supported", what)
    }

    fn synthesized(profile: &Profile, status: u16, issue: &str, message: String) -> Refusal {
        let envelope = match profile.errors.envelope {
            Envelope::OperationOutcomeVendorCode => Envelope::OperationOutcome,
            other => other,
        };
        Refusal {
            status,
            envelope,
            severity: Severity::Error,
            issue: issue.to_owned(),
            vendor_code: None,
            message,
            detail: None,
            retry_after: None,
            empty: profile.errors.empty_body_on.contains(&status),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Refusal {
        self.detail = Some(detail.into());
        self
    }

    /// The body, `None` when the profile answers this status with an empty body.
    pub fn body(&self) -> Option<Value> {
        if self.empty {
            return None;
        }
        Some(match self.envelope {
            Envelope::OperationOutcome | Envelope::OperationOutcomeVendorCode => self.outcome(),
            Envelope::NumericStatus => {
                let code = self.vendor_code.as_deref().unwrap_or("2");
                let status = code
                    .parse::<u64>()
                    .map_or_else(|_| json!(code), |n| json!(n));
                let mut body = json!({"status": status, "message": self.message});
                if let Some(d) = &self.detail {
                    body["details"] = json!(d);
                }
                body
            }
            Envelope::Oauth => json!({"error": self.issue, "error_description": self.message}),
            Envelope::VendorJson => json!({"details": self.message}),
        })
    }

    /// The OperationOutcome of this refusal (also used inside searchsets). With a vendor
    /// code: the code and message in `issue.details`, the specifics in `diagnostics`;
    /// without: the message in `diagnostics`, followed by the specifics.
    pub fn outcome(&self) -> Value {
        let mut issue = Map::new();
        issue.insert("severity".into(), json!(severity(self.severity)));
        issue.insert("code".into(), json!(self.issue));
        let diagnostics = match (&self.vendor_code, &self.detail) {
            (Some(code), detail) => {
                let coding = json!([{"code": code, "display": self.message}]);
                issue.insert(
                    "details".into(),
                    json!({"coding": coding, "text": self.message}),
                );
                detail.clone()
            }
            (None, Some(d)) => Some(format!("{}: {d}", self.message)),
            (None, None) => Some(self.message.clone()),
        };
        if let Some(d) = diagnostics {
            issue.insert("diagnostics".into(), json!(d));
        }
        json!({"resourceType": "OperationOutcome", "issue": [issue]})
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = match self.envelope {
            Envelope::OperationOutcome | Envelope::OperationOutcomeVendorCode => {
                "application/fhir+json"
            }
            _ => "application/json",
        };
        let mut r = match self.body() {
            Some(body) => {
                let mut r = Response::new(Body::from(Bytes::from(
                    serde_json::to_vec(&body).unwrap_or_default(),
                )));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                r
            }
            None => Response::new(Body::empty()),
        };
        *r.status_mut() = status;
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// Why the emulated EHR refuses a request: a rule of the mock's own (malformed JSON, a
/// wrong `resourceType`), or the EHR's.
#[derive(Debug)]
pub enum Refused {
    Mock(Problem),
    Ehr(Box<Refusal>),
}

impl From<Problem> for Refused {
    fn from(p: Problem) -> Refused {
        Refused::Mock(p)
    }
}

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Refused {
        Refused::Ehr(Box::new(r))
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Mock(p) => p.into_response(),
            Refused::Ehr(r) => (*r).into_response(),
        }
    }
}

pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Fatal => "fatal",
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Information => "information",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_codes_go_into_issue_details() {
        let epic = Profile::load("epic").unwrap();
        let r = Refusal::named(&epic, "session_expired").with_detail("sessionID=9");
        let body = r.body().unwrap();
        let issue = &body["issue"][0];
        assert_eq!(issue["severity"], "fatal");
        assert_eq!(issue["code"], "expired");
        assert_eq!(issue["details"]["coding"][0]["code"], "4113");
        assert_eq!(issue["diagnostics"], "sessionID=9");
        assert_eq!(r.status, 400);
    }

    #[test]
    fn every_envelope_has_its_shape() {
        let ecw = Profile::load("eclinicalworks").unwrap();
        let numeric = Refusal::named(&ecw, "invalid_patient").body().unwrap();
        assert_eq!(
            numeric,
            json!({"status": 100, "message": "INVALID_PATIENT"})
        );
        let oauth = Refusal::named(&ecw, "invalid_client").body().unwrap();
        assert_eq!(oauth["error"], "invalid_client");
        let athena = Profile::load("athenahealth").unwrap();
        let vendor = Refusal::named(&athena, "missing_practice").body().unwrap();
        assert!(vendor["details"].as_str().unwrap().contains("ah-practice"));
        let epic = Profile::load("epic").unwrap();
        assert_eq!(Refusal::named(&epic, "api_not_enabled").body(), None);
        let missing = Refusal::named(&epic, "no_such_entry");
        assert_eq!(missing.status, 500);
        let unsupported = Refusal::unsupported(&epic, "no".into()).body().unwrap();
        assert_eq!(unsupported["issue"][0]["code"], "not-supported");
        assert_eq!(unsupported["issue"][0]["diagnostics"], "no");
        assert!(unsupported["issue"][0].get("details").is_none());
        let oracle = Profile::load("oracle-health").unwrap();
        let throttled = Refusal::named(&oracle, "throttled").body().unwrap();
        assert_eq!(
            throttled["issue"][0],
            json!({"severity": "error", "code": "throttled", "diagnostics": "Too Many Requests"}),
            "as Oracle Health answers it"
        );
    }
}

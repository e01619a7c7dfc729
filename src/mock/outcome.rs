//! Refusals and their OperationOutcome: one `Problem` type every layer of the mock
//! returns, rendered with the right status. Depends on nothing else in the mock.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// A request the mock refuses, or a failure it reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    /// The OperationOutcome `issue.code` (`invalid`, `not-found`, `conflict`, …).
    pub code: &'static str,
    pub text: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            text: text.into(),
        }
    }

    /// 400: malformed request.
    pub fn bad(text: impl Into<String>) -> Problem {
        Self::new(StatusCode::BAD_REQUEST, "invalid", text)
    }

    /// 404: no such resource.
    pub fn not_found(resource_type: &str, id: &str) -> Problem {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{resource_type}/{id} is not known"),
        )
    }

    /// 410: the resource was deleted.
    pub fn gone(resource_type: &str, id: &str) -> Problem {
        Self::new(
            StatusCode::GONE,
            "deleted",
            format!("{resource_type}/{id} was deleted"),
        )
    }

    /// 412: a precondition (`If-Match`, `If-None-Exist`) does not hold.
    pub fn precondition(text: impl Into<String>) -> Problem {
        Self::new(StatusCode::PRECONDITION_FAILED, "conflict", text)
    }

    /// 422: valid JSON that breaks a rule the mock enforces.
    pub fn unprocessable(text: impl Into<String>) -> Problem {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "required", text)
    }

    /// The same problem, said to be about entry `n` of a Bundle.
    pub fn in_entry(mut self, n: usize) -> Problem {
        self.text = format!("Bundle.entry[{n}]: {}", self.text);
        self
    }

    /// The OperationOutcome.
    pub fn to_json(&self) -> Value {
        let severity = if self.status.is_server_error() {
            "fatal"
        } else {
            "error"
        };
        outcome(severity, self.code, &self.text)
    }
}

/// An OperationOutcome with one issue.
pub fn outcome(severity: &str, code: &str, text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": text}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_carry_severity_code_and_text() {
        let p = Problem::not_found("Patient", "x").in_entry(2);
        let v = p.to_json();
        assert_eq!(v["issue"][0]["code"], "not-found");
        assert_eq!(v["issue"][0]["severity"], "error");
        assert_eq!(
            v["issue"][0]["diagnostics"],
            "Bundle.entry[2]: Patient/x is not known"
        );
        let p = Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "exception", "boom");
        assert_eq!(p.to_json()["issue"][0]["severity"], "fatal");
    }
}

//! Telling which catalogue entry a failed answer is: by the vendor code in the
//! OperationOutcome when the entry has one (Epic 4113), else by status and issue code;
//! with no body, by status alone. Used to re-issue a search whose paging session expired.

use serde_json::Value;

use crate::profile::{ErrorDef, Profile, Retry};

/// Whether an answer (`status`, OperationOutcome `body`) is the catalogue entry `def`.
pub fn matches_error(def: &ErrorDef, status: Option<u16>, body: Option<&Value>) -> bool {
    let issues = body
        .filter(|b| b.get("resourceType").and_then(Value::as_str) == Some("OperationOutcome"))
        .and_then(|b| b.get("issue"))
        .and_then(Value::as_array);
    let same_status = status == Some(def.status);
    let Some(issues) = issues else {
        return same_status;
    };
    let by_code = || {
        same_status
            && issues
                .iter()
                .any(|i| i.get("code").and_then(Value::as_str) == Some(def.issue.as_str()))
    };
    match &def.vendor_code {
        Some(code) => {
            issues.iter().any(|i| {
                i.pointer("/details/coding")
                    .and_then(Value::as_array)
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c.get("code").and_then(Value::as_str) == Some(code))
                    })
            }) || by_code()
        }
        None => by_code(),
    }
}

/// Whether a failed `next` page is the EHR's expired paging session, which the client
/// must answer by re-issuing the original search (not by retrying the link).
pub fn page_expired(profile: &Profile, status: Option<u16>, body: Option<&Value>) -> bool {
    let Some(expiry) = profile.paging().next.expiry() else {
        return false;
    };
    profile
        .error(&expiry.error)
        .is_some_and(|def| def.retry == Retry::ReissueSearch && matches_error(def, status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(code: &str, vendor: &str) -> Value {
        json!({"resourceType": "OperationOutcome", "issue": [{"severity": "fatal", "code": code,
            "details": {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369", "code": vendor}]}}]})
    }

    #[test]
    fn an_epic_expired_session_is_told_from_other_errors() {
        let epic = Profile::load("epic").unwrap();
        assert!(page_expired(
            &epic,
            Some(400),
            Some(&outcome("expired", "4113"))
        ));
        // The vendor code decides even when the status is not the documented one.
        assert!(page_expired(
            &epic,
            Some(404),
            Some(&outcome("processing", "4113"))
        ));
        assert!(!page_expired(
            &epic,
            Some(400),
            Some(&outcome("required", "4111"))
        ));
        assert!(page_expired(&epic, Some(400), None));
        assert!(!page_expired(&epic, Some(500), None));
        let us = Profile::load("us-core").unwrap();
        assert!(!page_expired(
            &us,
            Some(400),
            Some(&outcome("expired", "4113"))
        ));
    }

    #[test]
    fn entries_without_a_vendor_code_match_by_status_and_issue() {
        let oracle = Profile::load("oracle-health").unwrap();
        let (name, def) = oracle
            .errors
            .codes
            .iter()
            .find(|(_, d)| d.vendor_code.is_none() && d.status >= 400)
            .unwrap();
        let body = json!({"resourceType": "OperationOutcome", "issue": [{"code": def.issue}]});
        assert!(matches_error(def, Some(def.status), Some(&body)), "{name}");
        let other =
            json!({"resourceType": "OperationOutcome", "issue": [{"code": "something-else"}]});
        assert!(
            !matches_error(def, Some(def.status), Some(&other)),
            "{name}"
        );
    }
}

//! What a response shows of the EHR beyond its outcome: an empty 2xx write, a create
//! status other than 201, a relative or missing `Location`, no `ETag`, a 429 with or
//! without `Retry-After`; and which elements of a written resource came back different.
//! Pure functions of the reply.

use crate::fhir::Reply;
use crate::history::Content;
use crate::profile::dialect::Quirk;

/// Behaviours a successful create (`created`) or update answer shows.
pub fn write_quirks(created: bool, reply: &Reply) -> Vec<Quirk> {
    let mut out = Vec::new();
    if !reply.is_ok() {
        return out;
    }
    if reply.body.is_none() {
        out.push(Quirk::EmptyWriteBody);
    }
    if created {
        match reply.status {
            Some(201) | None => {}
            Some(s) => out.push(Quirk::CreateStatus(s)),
        }
        match reply.location.as_deref() {
            None => out.push(Quirk::NoLocation),
            Some(l) if url::Url::parse(l).is_err() => out.push(Quirk::RelativeLocation),
            Some(_) => {}
        }
    }
    if reply.etag.is_none() {
        out.push(Quirk::NoEtag);
    }
    out
}

/// A 429, and whether it said when to come back.
pub fn throttled(reply: &Reply) -> Option<Quirk> {
    (reply.status == Some(429)).then(|| Quirk::RateLimited {
        retry_after: reply.retry_after.is_some(),
    })
}

/// Top-level elements of what was written that came back different or not at all.
pub fn changed_elements<'a>(sent: &'a Content, seen: &Content) -> Vec<&'a str> {
    sent.elements
        .iter()
        .filter(|(k, v)| seen.elements.get(*k) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;
    use serde_json::json;

    fn ok(status: u16) -> Reply {
        Reply {
            outcome: Some(Outcome::Ok),
            status: Some(status),
            ..Reply::default()
        }
    }

    #[test]
    fn an_epic_create_shows_an_empty_body_a_relative_location_and_no_etag() {
        let mut r = ok(201);
        r.location = Some("Observation/abc".into());
        assert_eq!(
            write_quirks(true, &r),
            vec![
                Quirk::EmptyWriteBody,
                Quirk::RelativeLocation,
                Quirk::NoEtag
            ]
        );
        r.location = Some("https://ehr/fhir/Observation/abc/_history/1".into());
        r.etag = Some("W/\"1\"".into());
        r.body = Some(json!({"resourceType": "Observation"}));
        assert!(write_quirks(true, &r).is_empty());
        let mut charge = ok(200);
        charge.etag = Some("W/\"0$0\"".into());
        charge.body = Some(json!({}));
        assert_eq!(
            write_quirks(true, &charge),
            vec![Quirk::CreateStatus(200), Quirk::NoLocation]
        );
        // Failures show nothing of this kind.
        assert!(write_quirks(true, &Reply::default()).is_empty());
    }

    #[test]
    fn a_429_says_whether_it_had_retry_after() {
        let mut r = Reply {
            status: Some(429),
            ..Reply::default()
        };
        assert_eq!(
            throttled(&r),
            Some(Quirk::RateLimited { retry_after: false })
        );
        r.retry_after = Some(std::time::Duration::from_secs(1));
        assert_eq!(
            throttled(&r),
            Some(Quirk::RateLimited { retry_after: true })
        );
        assert_eq!(throttled(&ok(200)), None);
    }

    #[test]
    fn changed_elements_are_the_sent_ones_that_differ() {
        let sent = Content::of(
            &json!({"resourceType": "AllergyIntolerance", "id": "1", "code": {"text": "a"}, "recordedDate": "2025", "patient": {"reference": "Patient/p"}}),
        );
        let seen = Content::of(
            &json!({"resourceType": "AllergyIntolerance", "id": "1", "meta": {"versionId": "1"}, "code": {"text": "b"}, "patient": {"reference": "Patient/p"}, "extra": 1}),
        );
        assert_eq!(changed_elements(&sent, &seen), vec!["code", "recordedDate"]);
    }
}

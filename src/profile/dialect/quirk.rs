//! EHR behaviours a client can see in responses that depart from a plain FHIR R4 server
//! (an empty 201, a relative `Location`, no `ETag`, a 429, an expired paging session,
//! the same resource on two pages, an element changed on the way in), and whether a
//! profile declares each: the report lists what was seen against what was declared.

use std::fmt;

use crate::profile::{Body, Etag, LocationStyle, Profile, RatePolicy, Throttle};

/// One behaviour seen in responses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quirk {
    /// A successful create or update answered with no body.
    EmptyWriteBody,
    /// A successful create answered with a 2xx status other than 201.
    CreateStatus(u16),
    /// A create's `Location` is relative (`Observation/123`).
    RelativeLocation,
    /// A successful create carried no `Location`.
    NoLocation,
    /// A successful create or update carried no `ETag`.
    NoEtag,
    /// A 429, with or without `Retry-After`.
    RateLimited { retry_after: bool },
    /// A `next` link answered the EHR's expired-session error.
    PagingSessionExpired,
    /// One search showed the same resource on two pages.
    DuplicatesAcrossPages,
    /// A declared drop, rewrite, truncation or remap seen at read-back: what was read
    /// differs from what was written in this element.
    ExpectedChange {
        resource_type: String,
        element: String,
    },
}

impl Quirk {
    /// A stable snake_case name.
    pub fn id(&self) -> &'static str {
        match self {
            Self::EmptyWriteBody => "empty_write_body",
            Self::CreateStatus(_) => "create_status",
            Self::RelativeLocation => "relative_location",
            Self::NoLocation => "no_location",
            Self::NoEtag => "no_etag",
            Self::RateLimited { .. } => "rate_limited",
            Self::PagingSessionExpired => "paging_session_expired",
            Self::DuplicatesAcrossPages => "duplicates_across_pages",
            Self::ExpectedChange { .. } => "expected_change",
        }
    }
}

impl fmt::Display for Quirk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyWriteBody => f.write_str("write answered 2xx with an empty body"),
            Self::CreateStatus(s) => write!(f, "create answered {s} instead of 201"),
            Self::RelativeLocation => f.write_str("relative Location on create"),
            Self::NoLocation => f.write_str("no Location on create"),
            Self::NoEtag => f.write_str("no ETag on a write"),
            Self::RateLimited { retry_after: true } => f.write_str("429 with Retry-After"),
            Self::RateLimited { retry_after: false } => f.write_str("429 without Retry-After"),
            Self::PagingSessionExpired => {
                f.write_str("paging session expired (the search was re-issued)")
            }
            Self::DuplicatesAcrossPages => {
                f.write_str("the same resource on two pages of a search")
            }
            Self::ExpectedChange {
                resource_type,
                element,
            } => write!(
                f,
                "{resource_type}.{element} changed by the server, as declared"
            ),
        }
    }
}

/// Whether the profile declares the behaviour.
pub fn declares(profile: &Profile, quirk: &Quirk) -> bool {
    let w = &profile.write;
    match quirk {
        Quirk::EmptyWriteBody => w.response_body(w.prefer.as_deref()) == Body::Empty,
        Quirk::CreateStatus(s) => {
            w.create_status == *s
                || profile
                    .resources
                    .values()
                    .any(|r| r.write.create_status == Some(*s))
        }
        Quirk::RelativeLocation => matches!(w.location, LocationStyle::Relative { .. }),
        Quirk::NoLocation => w.location == LocationStyle::None,
        Quirk::NoEtag => w.etag == Etag::None,
        Quirk::RateLimited { retry_after } => throttle(profile).is_some_and(
            |t| matches!(t, Throttle::Error { retry_after: r, .. } if r == retry_after),
        ),
        Quirk::PagingSessionExpired => profile.paging.next.expiry().is_some(),
        Quirk::DuplicatesAcrossPages => profile.paging.duplicates_across_pages,
        Quirk::ExpectedChange {
            resource_type,
            element,
        } => profile
            .expected_changes()
            .get(resource_type)
            .is_some_and(|names| names.contains(element)),
    }
}

fn throttle(profile: &Profile) -> Option<&Throttle> {
    match &profile.rate_limit.policy {
        RatePolicy::None => None,
        RatePolicy::Unpublished { throttle } => Some(throttle),
        RatePolicy::Limited(limit) => Some(&limit.throttle),
    }
}

/// The response-level behaviours the profile declares (element changes aside): what a
/// run may expect to see.
pub fn declared(profile: &Profile) -> Vec<Quirk> {
    let mut statuses: Vec<u16> = std::iter::once(profile.write.create_status)
        .chain(
            profile
                .resources
                .values()
                .filter_map(|r| r.write.create_status),
        )
        .filter(|s| *s != 201)
        .collect();
    statuses.sort_unstable();
    statuses.dedup();
    let candidates = [
        Quirk::EmptyWriteBody,
        Quirk::RelativeLocation,
        Quirk::NoLocation,
        Quirk::NoEtag,
        Quirk::RateLimited { retry_after: true },
        Quirk::RateLimited { retry_after: false },
        Quirk::PagingSessionExpired,
        Quirk::DuplicatesAcrossPages,
    ];
    statuses
        .into_iter()
        .map(Quirk::CreateStatus)
        .chain(candidates)
        .filter(|q| declares(profile, q))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> Profile {
        Profile::load(name).unwrap()
    }

    #[test]
    fn epic_declares_relative_locations_no_etag_and_expiring_sessions() {
        let epic = load("epic");
        assert_eq!(
            declared(&epic),
            vec![
                Quirk::RelativeLocation,
                Quirk::NoEtag,
                Quirk::PagingSessionExpired
            ]
        );
        // Epic answers an empty 201 only without Prefer; fhirsurge sends it.
        assert!(!declares(&epic, &Quirk::EmptyWriteBody));
        assert!(declares(
            &epic,
            &Quirk::ExpectedChange {
                resource_type: "AllergyIntolerance".into(),
                element: "recordedDate".into()
            }
        ));
        assert!(!declares(
            &epic,
            &Quirk::ExpectedChange {
                resource_type: "Patient".into(),
                element: "name".into()
            }
        ));
    }

    #[test]
    fn oracle_declares_empty_bodies_a_200_create_and_duplicates_across_pages() {
        let oracle = load("oracle-health");
        let d = declared(&oracle);
        for q in [
            Quirk::CreateStatus(200),
            Quirk::EmptyWriteBody,
            Quirk::DuplicatesAcrossPages,
        ] {
            assert!(d.contains(&q), "{q:?} not in {d:?}");
        }
        assert!(!d.contains(&Quirk::RelativeLocation));
    }

    #[test]
    fn us_core_declares_none() {
        assert!(declared(&load("us-core")).is_empty());
        assert_eq!(Quirk::NoEtag.id(), "no_etag");
        assert_eq!(Quirk::NoEtag.to_string(), "no ETag on a write");
    }
}

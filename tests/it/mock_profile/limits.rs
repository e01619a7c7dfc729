//! Throttling as each EHR throttles: 429 with or without `Retry-After`, the
//! eClinicalWorks lock-out for the rest of the window, daily caps.

use super::*;

fn limited(base: &str, extra: &str) -> Profile {
    overlaid(base, &format!("[rate_limit]\n{extra}"))
}

#[tokio::test]
async fn ecw_locks_the_client_out_for_the_rest_of_the_window_without_retry_after() {
    let m = start(Some(limited(
        "eclinicalworks",
        "requests = 3\nper = \"1h\"\n",
    )))
    .await;
    for _ in 0..3 {
        assert_eq!(m.get("metadata").await.status, StatusCode::OK);
    }
    for path in ["metadata", "Patient?_id=x", "Patient/x", "metadata"] {
        let a = m.get(path).await;
        assert_eq!(
            a.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{path}: locked out"
        );
        assert_eq!(a.retry_after, None);
        assert_eq!(a.issue()["code"], "throttled");
    }
    assert_eq!(
        m.get("__fhirsurge/health").await.status,
        StatusCode::OK,
        "not counted"
    );
}

#[tokio::test]
async fn a_lockout_ends_with_its_window() {
    let m = start(Some(limited(
        "eclinicalworks",
        "requests = 2\nper = \"1s\"\n",
    )))
    .await;
    let mut refused = false;
    for _ in 0..50 {
        if m.get("metadata").await.status == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
    }
    assert!(refused, "the limit bites");
    m.until("metadata", |a| a.status == StatusCode::OK).await;
}

#[tokio::test]
async fn retry_after_is_sent_when_the_profile_says_so() {
    let m = start(Some(limited(
        "eclinicalworks",
        "requests = 1\nper = \"1h\"\nretry_after = true\n",
    )))
    .await;
    assert_eq!(m.get("metadata").await.status, StatusCode::OK);
    let a = m.get("metadata").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = a.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&secs), "{secs}");
}

#[tokio::test]
async fn a_daily_cap_refuses_what_is_over_it() {
    let cap = "daily_caps = [{ limit = 2, error = \"throttled\" }]\n";
    let m = start(Some(limited("athenahealth", cap))).await;
    let path = "Patient?ah-practice=Organization/a-1.Practice-1&_id=x";
    assert_eq!(m.get(path).await.status, StatusCode::OK);
    assert_eq!(m.get(path).await.status, StatusCode::OK);
    let over = m.get(path).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(over.retry_after.is_some(), "until the next UTC day");
}

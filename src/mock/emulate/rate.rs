//! Throttling as the emulated EHR does it: a known request limit (a sliding window; a
//! window aligned to the clock that locks the client out for the rest of it once
//! exhausted; or a token bucket when the profile declares a burst) and per-day caps.
//! Pure: the time comes in as an argument, as wall-clock time since the Unix epoch read
//! from a monotonic clock, so windows align with the top of the minute.

use std::collections::VecDeque;
use std::time::Duration;

use crate::profile::{DailyCap, Limit, Lockout, Throttle, Verb};

/// A request limit and what it has counted.
#[derive(Debug)]
pub enum Limiter {
    /// At most `requests` in any trailing `per`: only requests over it are refused.
    Sliding {
        requests: usize,
        per: Duration,
        admitted: VecDeque<Duration>,
    },
    /// At most `requests` per clock-aligned window; once over, refused until it ends.
    Fixed {
        requests: u32,
        per: Duration,
        window: u64,
        used: u32,
    },
    /// `requests` per `per` refill a bucket of `capacity`.
    Bucket {
        rate: f64,
        capacity: f64,
        tokens: f64,
        at: Duration,
    },
}

impl Limiter {
    pub fn new(limit: &Limit) -> Limiter {
        let lockout = matches!(
            limit.throttle,
            Throttle::Error {
                lockout: Lockout::RestOfWindow,
                ..
            }
        );
        match (limit.burst, lockout) {
            (Some(burst), _) => Limiter::Bucket {
                rate: f64::from(limit.requests.get()) / limit.per.as_secs_f64(),
                capacity: f64::from(burst.get()),
                tokens: f64::from(burst.get()),
                at: Duration::ZERO,
            },
            (None, true) => Limiter::Fixed {
                requests: limit.requests.get(),
                per: limit.per,
                window: 0,
                used: 0,
            },
            (None, false) => Limiter::Sliding {
                requests: limit.requests.get() as usize,
                per: limit.per,
                admitted: VecDeque::new(),
            },
        }
    }

    /// Counts a request at `now`: `Ok` admitted, `Err(wait)` over the limit, with the
    /// time until one would be admitted.
    pub fn admit(&mut self, now: Duration) -> Result<(), Duration> {
        match self {
            Limiter::Sliding {
                requests,
                per,
                admitted,
            } => {
                while admitted.front().is_some_and(|t| *t + *per <= now) {
                    admitted.pop_front();
                }
                if admitted.len() < *requests {
                    admitted.push_back(now);
                    return Ok(());
                }
                Err(admitted
                    .front()
                    .map_or(*per, |t| (*t + *per).saturating_sub(now)))
            }
            Limiter::Fixed {
                requests,
                per,
                window,
                used,
            } => {
                let current = window_of(now, *per);
                if current != *window {
                    *window = current;
                    *used = 0;
                }
                if *used < *requests {
                    *used += 1;
                    return Ok(());
                }
                Err(window_end(current, *per).map_or(*per, |end| end.saturating_sub(now)))
            }
            Limiter::Bucket {
                rate,
                capacity,
                tokens,
                at,
            } => {
                let elapsed = now.saturating_sub(*at).as_secs_f64();
                *tokens = (*tokens + elapsed * *rate).min(*capacity);
                *at = now.max(*at);
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    return Ok(());
                }
                Err(Duration::from_secs_f64((1.0 - *tokens) / *rate))
            }
        }
    }
}

fn window_of(now: Duration, per: Duration) -> u64 {
    let per = per.as_nanos().max(1);
    u64::try_from(now.as_nanos() / per).unwrap_or(u64::MAX)
}

fn window_end(window: u64, per: Duration) -> Option<Duration> {
    let nanos = per.as_nanos().checked_mul(u128::from(window) + 1)?;
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Requests counted against each daily cap, per UTC day.
#[derive(Debug, Default)]
pub struct DailyCounts {
    day: u64,
    counts: Vec<u32>,
}

const DAY: Duration = Duration::from_secs(86_400);

impl DailyCounts {
    /// Counts a request of `verb` on `rt` (`None`: not a FHIR interaction on a type);
    /// the first cap it goes over, with the time until the next UTC day. A cap without
    /// a published number is not enforced.
    pub fn count<'c>(
        &mut self,
        caps: &'c [DailyCap],
        rt: Option<&str>,
        verb: Option<Verb>,
        now: Duration,
    ) -> Option<(&'c DailyCap, Duration)> {
        let day = window_of(now, DAY);
        if day != self.day || self.counts.len() != caps.len() {
            self.day = day;
            self.counts = vec![0; caps.len()];
        }
        let until = window_end(day, DAY).unwrap_or(DAY).saturating_sub(now);
        let mut over = None;
        for (cap, count) in caps.iter().zip(self.counts.iter_mut()) {
            let type_ok = cap.resource_type.as_deref().is_none_or(|t| Some(t) == rt);
            let verb_ok = cap.interaction.is_none_or(|v| Some(v) == verb);
            let Some(limit) = cap.limit.filter(|_| type_ok && verb_ok) else {
                continue;
            };
            *count = count.saturating_add(1);
            if *count > limit.get() && over.is_none() {
                over = Some((cap, until));
            }
        }
        over
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::profile::LimitScope;

    fn limit(requests: u32, per_s: u64, burst: Option<u32>, lockout: Lockout) -> Limit {
        Limit {
            requests: NonZeroU32::new(requests).unwrap(),
            per: Duration::from_secs(per_s),
            burst: burst.and_then(NonZeroU32::new),
            scope: LimitScope::Tenant,
            includes_auth: true,
            throttle: Throttle::Error {
                error: "throttled".into(),
                retry_after: false,
                lockout,
            },
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_lockout_lasts_until_the_top_of_the_window() {
        let mut l = Limiter::new(&limit(3, 60, None, Lockout::RestOfWindow));
        let t0 = Duration::from_secs(60 * 1000 + 10);
        for i in 0..3 {
            assert_eq!(l.admit(t0 + ms(i)), Ok(()));
        }
        assert_eq!(l.admit(t0 + ms(5)), Err(Duration::from_secs(50) - ms(5)));
        assert!(l.admit(t0 + Duration::from_secs(49)).is_err(), "locked");
        assert_eq!(l.admit(t0 + Duration::from_secs(50)), Ok(()), "next minute");
    }

    #[test]
    fn a_sliding_window_refuses_only_what_is_over() {
        let mut l = Limiter::new(&limit(2, 1, None, Lockout::None));
        assert_eq!(l.admit(ms(1000)), Ok(()));
        assert_eq!(l.admit(ms(1600)), Ok(()));
        assert_eq!(l.admit(ms(1700)), Err(ms(300)));
        assert_eq!(l.admit(ms(2000)), Ok(()), "the first fell out");
        assert!(l.admit(ms(2100)).is_err());
    }

    #[test]
    fn a_bucket_lets_a_burst_through_then_refills() {
        let mut l = Limiter::new(&limit(10, 1, Some(2), Lockout::None));
        assert_eq!(l.admit(ms(0)), Ok(()));
        assert_eq!(l.admit(ms(0)), Ok(()));
        assert!(l.admit(ms(0)).is_err());
        assert_eq!(l.admit(ms(100)), Ok(()));
    }

    #[test]
    fn daily_caps_count_matching_requests_per_utc_day() {
        let caps = vec![
            DailyCap {
                resource_type: Some("DocumentReference".into()),
                interaction: Some(Verb::Search),
                limit: NonZeroU32::new(2),
                error: "try_tomorrow".into(),
                source: vec![],
            },
            DailyCap {
                resource_type: None,
                interaction: None,
                limit: None,
                error: "x".into(),
                source: vec![],
            },
        ];
        let mut c = DailyCounts::default();
        let noon = Duration::from_secs(86_400 * 20_000 + 43_200);
        let doc = Some("DocumentReference");
        assert!(c.count(&caps, doc, Some(Verb::Search), noon).is_none());
        assert!(
            c.count(&caps, Some("Patient"), Some(Verb::Search), noon)
                .is_none()
        );
        assert!(c.count(&caps, doc, Some(Verb::Read), noon).is_none());
        assert!(c.count(&caps, doc, Some(Verb::Search), noon).is_none());
        let (cap, wait) = c.count(&caps, doc, Some(Verb::Search), noon).unwrap();
        assert_eq!(
            (cap.error.as_str(), wait),
            ("try_tomorrow", Duration::from_secs(43_200))
        );
        assert!(
            c.count(&caps, doc, Some(Verb::Search), noon + DAY)
                .is_none()
        );
    }
}

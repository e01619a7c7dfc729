//! Open-model arrival rates: a constant `rate = 40.0` or a rate plan
//! `"10/s,1m;50/s,5m;0/s,0s"` — each step ramps the encounter start rate linearly from
//! the previous step's rate (0 before the first) to its own over its span, as goose test
//! plans ramp users. [`RatePlan::start_of`] is the pure schedule: when the k-th encounter
//! is due. Uses `plan`'s time spans; nothing that runs.

use std::fmt;
use std::time::Duration;

/// The most encounters per second a plan may ask for.
const MAX_RATE: f64 = 100_000.0;

/// A validated arrival schedule: segments `(rate at start, rate at end, span)`.
#[derive(Clone, Debug, PartialEq)]
pub struct RatePlan {
    /// The plan as written; `None` for a constant rate.
    text: Option<String>,
    segments: Vec<(f64, f64, Duration)>,
}

impl RatePlan {
    /// `rate` encounters per second for `duration`.
    pub fn constant(rate: f64, duration: Duration) -> RatePlan {
        RatePlan {
            text: None,
            segments: vec![(rate, rate, duration)],
        }
    }

    /// Parses `rate/s,span;rate/s,span;…` (the `/s` may be left out).
    pub fn parse(text: &str) -> Result<RatePlan, String> {
        let mut segments = Vec::new();
        let mut previous = 0.0;
        for (i, step) in text.split(';').enumerate() {
            let step = step.trim();
            if step.is_empty() {
                continue;
            }
            let n = i + 1;
            let (rate, span) = step
                .split_once(',')
                .ok_or_else(|| format!("step {n}: `{step}` is not `rate/s,time`"))?;
            let rate = rate.trim();
            let number = rate.strip_suffix("/s").unwrap_or(rate).trim();
            let rate: f64 = number
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && (0.0..=MAX_RATE).contains(r))
                .ok_or_else(|| {
                    format!("step {n}: `{rate}` is not a rate like 10/s (0 to {MAX_RATE})")
                })?;
            let span = super::plan::timespan(span.trim())
                .ok_or_else(|| format!("step {n}: `{span}` is not a time like 1m30s"))?;
            segments.push((previous, rate, span));
            previous = rate;
        }
        if segments.len() > 100 {
            return Err("at most 100 steps".into());
        }
        let plan = RatePlan {
            text: Some(text.trim().to_owned()),
            segments,
        };
        if plan.expected() < 1.0 {
            return Err("the plan starts no encounter (every rate is 0 or every span 0s)".into());
        }
        Ok(plan)
    }

    /// The plan's total length.
    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.2).sum()
    }

    /// The highest rate the plan reaches, per second.
    pub fn peak(&self) -> f64 {
        self.segments
            .iter()
            .map(|s| s.0.max(s.1))
            .fold(0.0, f64::max)
    }

    /// How many encounters the plan starts in all.
    pub fn expected(&self) -> f64 {
        self.segments
            .iter()
            .map(|(a, b, span)| (a + b) / 2.0 * span.as_secs_f64())
            .sum()
    }

    /// The text as written, for a plan (`None` for a constant rate).
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The same shape over `duration`: every span scaled by one factor (a day in
    /// miniature keeps its morning peak).
    pub fn scaled_to(&self, duration: Duration) -> RatePlan {
        let total = self.duration().as_secs_f64();
        let factor = if total > 0.0 {
            duration.as_secs_f64() / total
        } else {
            1.0
        };
        RatePlan {
            text: self.text.clone(),
            segments: self
                .segments
                .iter()
                .map(|&(a, b, span)| (a, b, span.mul_f64(factor)))
                .collect(),
        }
    }

    /// The same schedule at `1/n` of every rate (one shard's part of the arrivals).
    pub fn divided(&self, n: f64) -> RatePlan {
        let segments: Vec<_> = self
            .segments
            .iter()
            .map(|&(a, b, span)| (a / n, b / n, span))
            .collect();
        let text = self.text.as_ref().map(|t| format!("({t}) / {n}"));
        RatePlan { text, segments }
    }

    /// When the `k`-th encounter (from 0) is due, from the schedule's start: the time at
    /// which the plan's cumulative count of starts reaches `k`; `None` past the end.
    pub fn start_of(&self, k: u64) -> Option<Duration> {
        let mut left = k as f64;
        let mut at = 0.0;
        for &(r0, r1, span) in &self.segments {
            let t = span.as_secs_f64();
            let area = (r0 + r1) / 2.0 * t;
            if left < area && t > 0.0 {
                return Some(Duration::from_secs_f64(at + within(r0, r1, t, left)));
            }
            left -= area;
            at += t;
        }
        None
    }
}

/// Seconds into a segment ramping `r0` → `r1` over `t` at which `count` starts have
/// accumulated: solves `r0·s + (r1 − r0)/(2t)·s² = count`.
fn within(r0: f64, r1: f64, t: f64, count: f64) -> f64 {
    let a = (r1 - r0) / (2.0 * t);
    let s = if a.abs() < 1e-12 {
        if r0 > 0.0 { count / r0 } else { 0.0 }
    } else {
        let disc = (r0 * r0 + 4.0 * a * count).max(0.0);
        (-r0 + disc.sqrt()) / (2.0 * a)
    };
    s.clamp(0.0, t)
}

impl fmt::Display for RatePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(text) => f.write_str(text),
            None => write!(f, "{}/s", self.segments.first().map_or(0.0, |s| s.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_rate_is_evenly_spaced() {
        let p = RatePlan::constant(40.0, Duration::from_secs(2));
        assert_eq!(p.start_of(0), Some(Duration::ZERO));
        assert_eq!(p.start_of(1), Some(Duration::from_millis(25)));
        assert_eq!(p.start_of(79), Some(Duration::from_millis(1975)));
        assert_eq!(p.start_of(80), None, "80 starts in 2 s at 40/s");
        assert_eq!(p.peak(), 40.0);
    }

    #[test]
    fn a_plan_ramps_holds_and_ends() {
        let p = RatePlan::parse("10/s,2s;10/s,3s;0/s,0s").unwrap();
        assert_eq!(p.duration(), Duration::from_secs(5));
        assert_eq!(p.expected(), 10.0 + 30.0);
        // The ramp 0 → 10/s over 2 s has started 2.5·s² encounters after s seconds.
        let at = |k| p.start_of(k).unwrap().as_secs_f64();
        assert!((at(10) - 2.0).abs() < 1e-9, "{}", at(10));
        assert!((at(5) - 2f64.sqrt()).abs() < 1e-9, "{}", at(5));
        assert!((at(20) - 3.0).abs() < 1e-9, "{}", at(20));
        assert!((at(39) - 4.9).abs() < 1e-9);
        assert_eq!(p.start_of(40), None);
        let times: Vec<f64> = (0..40).map(at).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "monotone");
        assert_eq!(p.to_string(), "10/s,2s;10/s,3s;0/s,0s");
    }

    #[test]
    fn a_plan_scales_to_a_shorter_day() {
        let p = RatePlan::parse("5/s,10s;30/s,10s;5/s,20s").unwrap();
        let short = p.scaled_to(Duration::from_secs(4));
        assert_eq!(short.duration(), Duration::from_secs(4));
        assert_eq!(short.peak(), 30.0);
        assert!((short.expected() - p.expected() / 10.0).abs() < 1e-9);
    }

    #[test]
    fn a_divided_plan_starts_its_share_on_the_same_clock() {
        let p = RatePlan::parse("10/s,2s;10/s,3s;0/s,0s").unwrap();
        let third = p.divided(3.0);
        assert_eq!(third.duration(), p.duration());
        assert!((third.expected() * 3.0 - p.expected()).abs() < 1e-9);
        assert_eq!(third.start_of(0), Some(Duration::ZERO));
    }

    #[test]
    fn bad_plans_name_the_step() {
        assert!(RatePlan::parse("").is_err());
        assert!(RatePlan::parse("0/s,10s").is_err());
        let e = RatePlan::parse("10/s,1m;x/s,1m").unwrap_err();
        assert!(e.starts_with("step 2"), "{e}");
        assert!(RatePlan::parse("-1/s,1m").is_err());
        assert!(RatePlan::parse("10/s,1 minute").is_err());
        assert!(RatePlan::parse("10,5s").is_ok(), "the /s is optional");
    }
}

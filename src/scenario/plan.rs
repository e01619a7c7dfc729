//! Goose-style test plans: `"50,10s;200,1m;0,0s"` — each step ramps to a number of users
//! over a time span. Parsed and checked here so a bad plan is refused with its position
//! before goose ever sees it; goose gets the same text.

use std::fmt;
use std::time::Duration;

/// A validated test plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestPlan {
    text: String,
    steps: Vec<(usize, Duration)>,
}

impl TestPlan {
    /// Parses `users,span;users,span;…`; spans are `1h2m3s`-style or plain seconds.
    pub fn parse(text: &str) -> Result<TestPlan, String> {
        let mut steps = Vec::new();
        for (i, step) in text.split(';').enumerate() {
            let step = step.trim();
            if step.is_empty() {
                continue;
            }
            let (users, span) = step
                .split_once(',')
                .ok_or_else(|| format!("step {}: `{step}` is not `users,time`", i + 1))?;
            let users: usize = users
                .trim()
                .parse()
                .map_err(|_| format!("step {}: `{users}` is not a number of users", i + 1))?;
            let span = timespan(span.trim())
                .ok_or_else(|| format!("step {}: `{span}` is not a time like 1m30s", i + 1))?;
            steps.push((users, span));
        }
        if steps.is_empty() {
            return Err("the plan has no steps".into());
        }
        if steps.len() > 100 {
            return Err("at most 100 steps".into());
        }
        if steps.iter().all(|(u, _)| *u == 0) {
            return Err("no step has any users".into());
        }
        Ok(TestPlan {
            text: text.trim().to_owned(),
            steps,
        })
    }

    /// The plan's total length.
    pub fn duration(&self) -> Duration {
        self.steps.iter().map(|(_, d)| *d).sum()
    }

    /// The most users any step reaches.
    pub fn peak_users(&self) -> usize {
        self.steps.iter().map(|(u, _)| *u).max().unwrap_or(0)
    }

    /// The same ramp with each step's users mapped by `users` (one shard's share); an
    /// error when no step keeps any user.
    pub fn scaled(&self, users: impl Fn(usize) -> usize) -> Result<TestPlan, String> {
        let text: Vec<String> = self
            .steps
            .iter()
            .map(|(u, d)| format!("{},{}s", users(*u), d.as_secs()))
            .collect();
        TestPlan::parse(&text.join(";"))
    }

    /// The text goose is given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for TestPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `1h2m3s`, `90s`, `2m`, or `45` (seconds) — the spans goose accepts.
pub(super) fn timespan(text: &str) -> Option<Duration> {
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    let mut last_unit = 0u8;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let (rank, scale) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return None,
        };
        if number.is_empty() || rank <= last_unit {
            return None;
        }
        total += number.parse::<u64>().ok()? * scale;
        number.clear();
        last_unit = rank;
    }
    number.is_empty().then(|| Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_goose_plans() {
        let p = TestPlan::parse("50,10s;200,1m;0,0s").unwrap();
        assert_eq!(p.duration(), Duration::from_secs(70));
        assert_eq!(p.peak_users(), 200);
        assert_eq!(p.as_str(), "50,10s;200,1m;0,0s");
        assert_eq!(
            TestPlan::parse("10,1h2m3s").unwrap().duration(),
            Duration::from_secs(3723)
        );
    }

    #[test]
    fn refuses_bad_plans_naming_the_step() {
        assert!(TestPlan::parse("").is_err());
        assert!(TestPlan::parse("0,10s").is_err());
        let e = TestPlan::parse("10,10s;x,1m").unwrap_err();
        assert!(e.starts_with("step 2"), "{e}");
        assert!(TestPlan::parse("10,15mins").is_err());
        assert!(TestPlan::parse("10,1s1m").is_err());
    }
}

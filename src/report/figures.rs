//! How figures are written in the human outputs (HTML, Markdown, JUnit, the comparison
//! table): latencies, counts, rates, percentages and run-clock times. Pure formatting;
//! depends on nothing.

/// A latency in milliseconds with the precision it deserves: `0.42`, `7.31`, `48.2`, `1,250`.
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let a = v.abs();
    if a < 10.0 {
        format!("{v:.2}")
    } else if a < 100.0 {
        format!("{v:.1}")
    } else {
        grouped(v.round() as i64)
    }
}

/// An axis tick: as few digits as the value needs (`0`, `2.5`, `0.05`, `1,000`).
pub fn tick(v: f64) -> String {
    if v.abs() >= 1000.0 {
        return grouped(v.round() as i64);
    }
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" || text.is_empty() {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A count with thousands separators: `12,345`.
pub fn count(n: u64) -> String {
    grouped(i64::try_from(n).unwrap_or(i64::MAX))
}

fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate per second: `0.85`, `12.4`, `1,530`.
pub fn rate(v: f64) -> String {
    ms(v)
}

/// A percentage of a fraction: `0.125` → `12.5 %`; small ones keep their digits.
pub fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if p == 0.0 {
        "0 %".to_owned()
    } else if p.abs() < 0.1 {
        format!("{p:.3} %")
    } else if p.abs() < 10.0 {
        format!("{p:.2} %")
    } else {
        format!("{p:.1} %")
    }
}

/// A signed change in percent: `+12.5 %`, `-3.0 %`.
pub fn signed_percent(p: f64) -> String {
    if !p.is_finite() {
        return "n/a".to_owned();
    }
    format!("{p:+.1} %")
}

/// Seconds on the run clock: `42 s` below two minutes, else `3:05`.
pub fn clock(s: f64, span_s: f64) -> String {
    if span_s < 120.0 {
        let t = (s * 10.0).round() / 10.0;
        if t.fract() == 0.0 {
            format!("{t:.0} s")
        } else {
            format!("{t:.1} s")
        }
    } else {
        let total = s.round().max(0.0) as u64;
        let (h, m, sec) = (total / 3600, total / 60 % 60, total % 60);
        if h > 0 {
            format!("{h}:{m:02}:{sec:02}")
        } else {
            format!("{m}:{sec:02}")
        }
    }
}

/// A duration in seconds for metadata: `60 s`, `5 min`, `1 h 30 min`.
pub fn duration(s: f64) -> String {
    if s < 120.0 {
        format!("{} s", (s * 10.0).round() / 10.0)
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        let m = (s / 60.0).round() as u64;
        format!("{} h {} min", m / 60, m % 60)
    }
}

/// The value of an SLO in its unit: ms, a fraction as percent, a rate, a count.
pub fn in_unit(v: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{} ms", ms(v)),
        "fraction" => percent(v),
        "1/s" => format!("{}/s", rate(v)),
        "count" => count(v.max(0.0).round() as u64),
        other => format!("{} {other}", ms(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_like_a_person_wrote_them() {
        assert_eq!(ms(0.4213), "0.42");
        assert_eq!(ms(48.25), "48.2");
        assert_eq!(ms(1250.4), "1,250");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(0.05), "0.05");
        assert_eq!(tick(10_000.0), "10,000");
        assert_eq!(percent(0.125), "12.5 %");
        assert_eq!(percent(0.0004), "0.040 %");
        assert_eq!(signed_percent(20.0), "+20.0 %");
        assert_eq!(clock(42.0, 60.0), "42 s");
        assert_eq!(clock(185.0, 600.0), "3:05");
        assert_eq!(clock(3725.0, 4000.0), "1:02:05");
        assert_eq!(duration(300.0), "5 min");
        assert_eq!(in_unit(0.02, "fraction"), "2.00 %");
        assert_eq!(in_unit(3.0, "count"), "3");
    }
}

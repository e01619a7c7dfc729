//! The synthetic calendar: every time is an offset from a fixed reference Monday
//! (2026-01-05T07:00:00Z), never the wall clock, so the same encounter has the same
//! times in every run. Also closing an encounter, whose end follows from its start and
//! the `length` it was generated with.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::Value;

/// 2026-01-05T07:00:00Z, the Monday morning the synthetic surge starts.
const REFERENCE_EPOCH_S: i64 = 1_767_596_400;

/// Encounters start in one of this many 30-second slots after the reference instant
/// (28 days), by `n`, so any `n` lands in the same four weeks.
const SLOTS: u64 = 28 * 24 * 120;

/// How long an encounter lasts when its body says nothing usable.
const DEFAULT_LENGTH_MIN: i64 = 30;

/// The reference instant.
pub(crate) fn reference() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH + TimeDelta::seconds(REFERENCE_EPOCH_S)
}

/// The reference date, against which ages are counted.
pub(crate) fn reference_date() -> NaiveDate {
    reference().date_naive()
}

/// The start of encounter `n`: its slot plus `jitter_s` (0–29) seconds.
pub(crate) fn start(n: u64, jitter_s: u32) -> DateTime<Utc> {
    let slot = (n % SLOTS) as i64;
    reference() + TimeDelta::seconds(slot * 30 + i64::from(jitter_s))
}

/// `t` as a FHIR instant, to the second, in UTC.
pub(crate) fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `d` as a FHIR date.
pub(crate) fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The encounter closed: `status` "finished" and `period.end` = `period.start` + its
/// `length` (30 minutes when it has none). Everything else is kept; an unparsable
/// start leaves `period` alone.
pub fn closed(encounter: &Value) -> Value {
    let mut out = encounter.clone();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    obj.insert("status".into(), Value::from("finished"));
    let start = obj
        .get("period")
        .and_then(|p| p.get("start"))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc));
    let length = obj
        .get("length")
        .and_then(length_of)
        .unwrap_or(TimeDelta::minutes(DEFAULT_LENGTH_MIN));
    if let (Some(start), Some(Value::Object(period))) = (start, obj.get_mut("period")) {
        period.insert("end".into(), Value::String(instant(start + length)));
    }
    out
}

/// An R4 `Duration` (UCUM s, min, h, d or wk) as a non-negative time span.
fn length_of(q: &Value) -> Option<TimeDelta> {
    let value = q.get("value")?.as_f64()?;
    let unit = q.get("code").or_else(|| q.get("unit"))?.as_str()?;
    let seconds = match unit {
        "s" => 1.0,
        "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "wk" => 604_800.0,
        _ => return None,
    };
    let total = value * seconds;
    (total.is_finite() && (0.0..=1e9).contains(&total))
        .then(|| TimeDelta::seconds(total.round() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_reference_is_a_monday_morning() {
        assert_eq!(instant(reference()), "2026-01-05T07:00:00Z");
        assert_eq!(reference_date().format("%A").to_string(), "Monday");
        assert_eq!(instant(start(2, 5)), "2026-01-05T07:01:05Z");
        assert_eq!(start(SLOTS, 0), reference());
    }

    #[test]
    fn closing_adds_the_length_to_the_start() {
        let enc = json!({"status": "in-progress", "period": {"start": "2026-01-05T07:00:00Z"},
            "length": {"value": 90, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}});
        let c = closed(&enc);
        assert_eq!(c["status"], "finished");
        assert_eq!(c["period"]["end"], "2026-01-05T08:30:00Z");
        assert_eq!(c["length"], enc["length"]);
    }

    #[test]
    fn closing_without_a_length_uses_the_default_and_keeps_offsets_ordered() {
        let c = closed(&json!({"period": {"start": "2026-01-05T09:00:00+02:00"}}));
        assert_eq!(c["period"]["end"], "2026-01-05T07:30:00Z");
        let c = closed(
            &json!({"period": {"start": "not a time"}, "length": {"value": -5, "code": "min"}}),
        );
        assert_eq!(c["status"], "finished");
        assert!(c["period"].get("end").is_none());
        assert_eq!(closed(&json!([1])), json!([1]));
    }
}

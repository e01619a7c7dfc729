//! The charts over run time that share a clock: throughput (ok / fail / info stacked)
//! and error classes, both with the fault windows shaded; and the time binning the
//! latency panels use too. Built from the report's `series` and `faults` only.

use std::collections::BTreeMap;

use super::svg::{self, Axis, Frame, Key, Scale, Swatch};
use crate::report::{Report, figures};
use crate::vocab::interaction::ErrorClass;

pub const OK: &str = "#4e79a7";
pub const FAIL: &str = "#e15759";
pub const INFO: &str = "#f28e2b";

/// Round steps of the run clock, in seconds.
const TIME_STEPS: [f64; 17] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    10_800.0, 21_600.0, 43_200.0,
];

/// Charts are drawn with at most about this many time bins, however long the run.
const MAX_BINS: f64 = 240.0;

/// The run clock the time charts share.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Seconds shown on the x axis.
    pub span: f64,
    /// Seconds per bin (1 for runs up to four minutes).
    pub bin: f64,
}

impl Clock {
    pub fn of(r: &Report) -> Clock {
        let latest = r
            .latency_series
            .values()
            .flat_map(|points| points.last())
            .map(|p| p.t_s)
            .fold(0.0, f64::max);
        let windows = r
            .faults
            .windows
            .iter()
            .map(|w| w.until_s.unwrap_or(w.from_s))
            .fold(0.0, f64::max);
        let span = (r.series.len() as f64).max(latest).max(windows).max(1.0);
        Clock {
            span,
            bin: (span / MAX_BINS).ceil().max(1.0),
        }
    }

    /// The run-time x axis, ticks at round clock steps (10 s, 5 min, 1 h, …).
    pub fn axis(&self, ticks: usize) -> Axis {
        let span = self.span;
        let want = span / ticks.max(1) as f64;
        let step = TIME_STEPS
            .iter()
            .copied()
            .find(|s| *s >= want)
            .unwrap_or_else(|| (want / 86_400.0).ceil() * 86_400.0);
        let count = ((span / step).floor() as usize).min(40);
        Axis {
            scale: Scale::Linear,
            min: 0.0,
            max: span,
            ticks: (0..=count)
                .map(|k| k as f64 * step)
                .map(|t| (t, figures::clock(t, span)))
                .collect(),
            title: "run time".to_owned(),
        }
    }

    /// The bin a second belongs to.
    fn bin_of(&self, second: usize) -> usize {
        (second as f64 / self.bin) as usize
    }
}

/// Shades every fault window, `until` absent meaning to the end of the run; `labelled`
/// names each at its top left.
pub fn fault_bands(out: &mut String, f: &Frame, r: &Report, clock: &Clock, labelled: bool) {
    for w in &r.faults.windows {
        let until = w.until_s.unwrap_or(clock.span);
        let tip = format!(
            "fault {} ({}, p={}) from {} to {}",
            w.fault,
            w.kind,
            w.probability,
            figures::clock(w.from_s, clock.span),
            figures::clock(until, clock.span)
        );
        f.band(out, w.from_s, until, "fault", &tip);
        if labelled {
            f.band_label(out, w.from_s, &w.kind);
        }
    }
}

fn frame(clock: &Clock, y: Axis, top: f64) -> Frame {
    Frame {
        width: 1100.0,
        height: 260.0 + top,
        left: 64.0,
        right: 24.0,
        top,
        bottom: 40.0,
        x: clock.axis(10),
        y,
    }
}

/// One stacked bar per bin: per-second averages of each layer, bottom first.
fn stacked(
    out: &mut String,
    f: &Frame,
    clock: &Clock,
    bins: &[Vec<f64>],
    layers: &[(&'static str, &'static str)],
) {
    for (i, values) in bins.iter().enumerate() {
        let x0 = i as f64 * clock.bin;
        let x1 = (x0 + clock.bin).min(clock.span);
        let mut base = 0.0;
        for ((name, colour), v) in layers.iter().zip(values) {
            if *v <= 0.0 {
                continue;
            }
            let tip = format!(
                "{}: {} {name}/s",
                figures::clock(x0, clock.span),
                figures::rate(*v)
            );
            f.rect(
                out,
                (x0 + 0.04 * clock.bin, x1),
                (base, base + v),
                colour,
                &tip,
            );
            base += v;
        }
    }
}

/// Sums per bin, turned into per-second averages.
fn binned(
    clock: &Clock,
    seconds: usize,
    layers: usize,
    value: impl Fn(usize, usize) -> f64,
) -> Vec<Vec<f64>> {
    let n = clock.bin_of(seconds.saturating_sub(1)) + 1;
    let mut bins = vec![vec![0.0; layers]; if seconds == 0 { 0 } else { n }];
    for s in 0..seconds {
        let b = &mut bins[clock.bin_of(s)];
        for (l, slot) in b.iter_mut().enumerate() {
            *slot += value(s, l) / clock.bin;
        }
    }
    bins
}

/// What a time chart is called and says.
struct Titles {
    id: &'static str,
    label: &'static str,
    y: &'static str,
    empty: &'static str,
}

fn time_chart(
    out: &mut String,
    r: &Report,
    clock: &Clock,
    titles: &Titles,
    layers: &[(&'static str, &'static str)],
    bins: &[Vec<f64>],
) {
    let peak = bins
        .iter()
        .map(|b| b.iter().sum::<f64>())
        .fold(0.0, f64::max);
    let mut keys: Vec<Key> = layers
        .iter()
        .map(|(name, colour)| Key {
            colour,
            swatch: Swatch::Box,
            label: (*name).to_owned(),
        })
        .collect();
    if !r.faults.windows.is_empty() {
        keys.push(Key {
            colour: "",
            swatch: Swatch::Band,
            label: "fault window".to_owned(),
        });
    }
    let rows = svg::legend_rows(64.0, 1076.0, &keys).max(1);
    let y = Axis::linear(0.0, peak.max(1.0), 5, titles.y, figures::tick);
    let f = frame(clock, y, 18.0 + rows as f64 * 16.0);
    f.begin(out, titles.id, titles.label);
    fault_bands(out, &f, r, clock, true);
    f.axes(out);
    stacked(out, &f, clock, bins, layers);
    if peak <= 0.0 {
        f.note(out, titles.empty);
    }
    svg::legend(out, 64.0, 16.0, 1076.0, &keys);
    Frame::end(out);
}

/// Interactions per second, ok / fail / info stacked, fault windows shaded.
pub fn throughput(out: &mut String, r: &Report, clock: &Clock) {
    let layers = [("ok", OK), ("fail", FAIL), ("info", INFO)];
    let bins = binned(clock, r.series.len(), 3, |s, l| {
        let sec = &r.series[s];
        [sec.ok, sec.fail, sec.info][l] as f64
    });
    let titles = Titles {
        id: "throughput",
        label: "Throughput over time: interactions per second by outcome",
        y: "interactions / s",
        empty: "no interactions recorded",
    };
    time_chart(out, r, clock, &titles, &layers, &bins);
}

/// The colour of each error class, fixed so that reports compare at a glance.
pub fn class_colour(c: ErrorClass) -> &'static str {
    match c {
        ErrorClass::Connect => "#9c755f",
        ErrorClass::Timeout => "#f28e2b",
        ErrorClass::Io => "#e15759",
        ErrorClass::RateLimited => "#edc948",
        ErrorClass::ClientError => "#b07aa1",
        ErrorClass::Auth => "#ff9da7",
        ErrorClass::Conflict => "#76b7b2",
        ErrorClass::ServerError => "#8c2d04",
        ErrorClass::BadResponse => "#7f7f7f",
    }
}

/// Errors per second by class, fault windows shaded.
pub fn errors(out: &mut String, r: &Report, clock: &Clock) {
    let mut seen: BTreeMap<ErrorClass, u64> = BTreeMap::new();
    for s in &r.series {
        for (c, n) in &s.errors {
            *seen.entry(*c).or_default() += n;
        }
    }
    let classes: Vec<ErrorClass> = seen.keys().copied().collect();
    let layers: Vec<(&'static str, &'static str)> = classes
        .iter()
        .map(|c| (c.as_str(), class_colour(*c)))
        .collect();
    let bins = binned(clock, r.series.len(), classes.len(), |s, l| {
        r.series[s].errors.get(&classes[l]).copied().unwrap_or(0) as f64
    });
    let titles = Titles {
        id: "errors",
        label: "Errors over time: failed and unknown-outcome interactions per second by error class",
        y: "errors / s",
        empty: "no errors recorded",
    };
    time_chart(out, r, clock, &titles, &layers, &bins);
}

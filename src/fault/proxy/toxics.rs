//! The pure side of the TCP toxics: given a chunk of bytes and the toxics active on one
//! direction of a connection, decide how the chunk is delivered (which slices, after which
//! delays), dropped, or whether the connection is reset or closed. The I/O layer (`chain`)
//! carries the plan out. No I/O and no clock here.

use std::ops::Range;
use std::time::Duration;

use super::faults::Toxic;
use crate::vocab::seed::{GAMMA, chance};

/// A piece of the chunk to write after waiting `delay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Segment {
    pub delay: Duration,
    pub range: Range<usize>,
}

/// What happens to one chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Write these segments in order; close the connection afterwards when `close`.
    Segments { segments: Vec<Segment>, close: bool },
    /// Drop the chunk on the floor (`timeout`).
    Drop,
    /// Reset the connection after `after`, delivering nothing (`reset_peer`).
    Reset { after: Duration },
}

/// Seeded random draws for one toxic on one connection: uniform numbers in [0, 1).
#[derive(Clone, Debug)]
pub(super) struct Draws {
    key: u64,
    stream: u64,
    n: u64,
}

impl Draws {
    pub(super) fn new(seed: u64, position: usize, connection: u64) -> Draws {
        Draws {
            key: seed ^ connection.wrapping_mul(GAMMA).rotate_left(29),
            stream: position as u64,
            n: 0,
        }
    }

    fn next(&mut self) -> f64 {
        let x = chance(self.key, self.stream, self.n);
        self.n += 1;
        x
    }

    /// A whole number in `[low, high]`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        let span = high.saturating_sub(low) + 1;
        (low + (self.next() * span as f64) as u64).min(high)
    }
}

/// One toxic on one direction of one connection, with what it remembers.
#[derive(Clone, Debug)]
pub(super) struct State {
    pub toxic: Toxic,
    pub draws: Draws,
    /// Bytes let through so far (`limit_data`).
    pub passed: u64,
}

impl State {
    pub(super) fn new(toxic: Toxic, draws: Draws) -> State {
        State {
            toxic,
            draws,
            passed: 0,
        }
    }
}

/// Plans the delivery of a chunk of `len` bytes through the active toxics, in order.
pub(super) fn plan<'a>(len: usize, active: impl IntoIterator<Item = &'a mut State>) -> Delivery {
    let mut segments = vec![Segment {
        delay: Duration::ZERO,
        range: 0..len,
    }];
    let mut close = false;
    for state in active {
        match state.toxic {
            Toxic::Timeout { .. } => return Delivery::Drop,
            Toxic::ResetPeer { timeout } => return Delivery::Reset { after: timeout },
            Toxic::LimitData { bytes } => {
                let room = bytes.saturating_sub(state.passed);
                segments = truncate(segments, room);
                state.passed += total(&segments);
                close |= state.passed >= bytes;
            }
            Toxic::Latency { latency, jitter } => {
                if let Some(first) = segments.first_mut() {
                    first.delay += jittered(latency, jitter, &mut state.draws);
                }
            }
            Toxic::Bandwidth { rate } => segments = pace(segments, rate),
            Toxic::Slicer {
                average,
                variation,
                delay,
            } => segments = slice(segments, average, variation, delay, &mut state.draws),
            Toxic::SlowClose { .. } => {}
        }
    }
    Delivery::Segments { segments, close }
}

fn total(segments: &[Segment]) -> u64 {
    segments.iter().map(|s| s.range.len() as u64).sum()
}

/// `latency` ± up to `jitter`, never below zero (toxiproxy's rule).
fn jittered(latency: Duration, jitter: Duration, draws: &mut Draws) -> Duration {
    if jitter.is_zero() {
        return latency;
    }
    let span = jitter.as_micros() as u64;
    let offset = draws.between(0, 2 * span);
    let micros = (latency.as_micros() as u64 + offset).saturating_sub(span);
    Duration::from_micros(micros)
}

/// Keeps the first `room` bytes.
fn truncate(segments: Vec<Segment>, mut room: u64) -> Vec<Segment> {
    let mut out = Vec::with_capacity(segments.len());
    for mut s in segments {
        if room == 0 {
            break;
        }
        let keep = (s.range.len() as u64).min(room);
        s.range.end = s.range.start + keep as usize;
        room -= keep;
        out.push(s);
    }
    out
}

/// toxiproxy's bandwidth: pieces of at most 100 ms worth of data, each delayed by the time
/// its bytes take at `rate` KB/s.
fn pace(segments: Vec<Segment>, rate: u64) -> Vec<Segment> {
    let piece = (rate * 100).max(1) as usize;
    let mut out = Vec::new();
    for s in segments {
        let mut extra = s.delay;
        let mut at = s.range.start;
        while at < s.range.end {
            let end = (at + piece).min(s.range.end);
            // bytes / (rate × 1000 B/s) in µs = bytes × 1000 / rate.
            let micros = ((end - at) as u64 * 1000).div_ceil(rate);
            out.push(Segment {
                delay: extra + Duration::from_micros(micros),
                range: at..end,
            });
            extra = Duration::ZERO;
            at = end;
        }
    }
    out
}

/// toxiproxy's slicer: slices of `average` ± `variation` bytes, `delay` apart.
fn slice(
    segments: Vec<Segment>,
    average: u64,
    variation: u64,
    delay: Duration,
    draws: &mut Draws,
) -> Vec<Segment> {
    let mut out = Vec::new();
    for s in segments {
        let mut wait = s.delay;
        let mut at = s.range.start;
        while at < s.range.end {
            let size = draws
                .between(average - variation, average + variation)
                .max(1);
            let end = (at + size as usize).min(s.range.end);
            out.push(Segment {
                delay: wait,
                range: at..end,
            });
            wait = delay;
            at = end;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(toxic: Toxic) -> State {
        State::new(toxic, Draws::new(7, 0, 1))
    }

    fn segments(d: Delivery) -> (Vec<Segment>, bool) {
        match d {
            Delivery::Segments { segments, close } => (segments, close),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limit_data_lets_exactly_the_budget_through_then_closes() {
        let mut s = state(Toxic::LimitData { bytes: 100 });
        let (first, close) = segments(plan(60, [&mut s]));
        assert_eq!((total(&first), close), (60, false));
        let (second, close) = segments(plan(60, [&mut s]));
        assert_eq!((total(&second), close), (40, true));
        let (third, close) = segments(plan(5, [&mut s]));
        assert_eq!((total(&third), close), (0, true));
    }

    #[test]
    fn slicer_cuts_within_the_variation_and_spaces_the_slices() {
        let delay = Duration::from_millis(2);
        let mut s = state(Toxic::Slicer {
            average: 10,
            variation: 3,
            delay,
        });
        let (slices, _) = segments(plan(1000, [&mut s]));
        assert!(slices.len() >= 1000 / 13);
        assert_eq!(total(&slices), 1000);
        assert_eq!(slices[0].delay, Duration::ZERO);
        for w in slices.windows(2) {
            assert_eq!(w[0].range.end, w[1].range.start);
            assert_eq!(w[1].delay, delay);
        }
        let last = slices.len() - 1;
        assert!(
            slices[..last]
                .iter()
                .all(|s| (7..=13).contains(&s.range.len()))
        );
    }

    #[test]
    fn bandwidth_delays_by_the_bytes_over_the_rate() {
        let mut s = state(Toxic::Bandwidth { rate: 10 });
        let (pieces, _) = segments(plan(2500, [&mut s]));
        // 10 KB/s: pieces of 1000 bytes, 100 ms each; 2500 bytes take 250 ms.
        assert_eq!(pieces.len(), 3);
        let sum: Duration = pieces.iter().map(|p| p.delay).sum();
        assert_eq!(sum, Duration::from_millis(250));
    }

    #[test]
    fn latency_jitter_stays_in_range_and_is_seeded() {
        let toxic = Toxic::Latency {
            latency: Duration::from_millis(100),
            jitter: Duration::from_millis(20),
        };
        let (mut a, mut b) = (state(toxic), state(toxic));
        for _ in 0..200 {
            let (x, _) = segments(plan(10, [&mut a]));
            let (y, _) = segments(plan(10, [&mut b]));
            assert_eq!(x, y);
            let d = x[0].delay;
            assert!(
                d >= Duration::from_millis(80) && d <= Duration::from_millis(120),
                "{d:?}"
            );
        }
    }

    #[test]
    fn timeout_drops_and_reset_peer_resets_before_anything_else() {
        let mut t = state(Toxic::Timeout {
            timeout: Duration::ZERO,
        });
        let mut l = state(Toxic::LimitData { bytes: 1 });
        assert_eq!(plan(10, [&mut t, &mut l]), Delivery::Drop);
        assert_eq!(l.passed, 0);
        let mut r = state(Toxic::ResetPeer {
            timeout: Duration::from_secs(1),
        });
        assert_eq!(
            plan(10, [&mut r]),
            Delivery::Reset {
                after: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn toxics_compose_in_order() {
        let mut l = state(Toxic::LimitData { bytes: 30 });
        let mut s = state(Toxic::Slicer {
            average: 10,
            variation: 0,
            delay: Duration::from_millis(1),
        });
        let (slices, close) = segments(plan(100, [&mut l, &mut s]));
        assert_eq!(slices.len(), 3);
        assert!(close);
    }
}

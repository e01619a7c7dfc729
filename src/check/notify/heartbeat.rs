//! Heartbeats of a topic subscription that asked for them (backport `heartbeat-period`):
//! how many arrived and the longest silence — no delivery of any kind, accepted or not —
//! from the first delivery (the handshake) to the end of the history. A silence longer
//! than twice the period is a heartbeat the server did not keep. Pure.

use serde::{Deserialize, Serialize};

use super::Judge;
use crate::history::NotificationType;

/// What was seen of one subscription's heartbeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub period_ms: u64,
    pub received: u64,
    /// `None`: nothing was delivered at all.
    pub longest_silence_ms: Option<f64>,
    /// The longest silence was at most twice the period.
    pub kept: bool,
}

pub(super) fn judge(j: &Judge, name: &str, period_ms: u64) -> Heartbeat {
    let mut times: Vec<u64> = j
        .notes
        .iter()
        .filter(|(_, n)| n.subscription == name)
        .map(|(_, n)| n.received_us)
        .collect();
    let received = j
        .notes
        .iter()
        .filter(|(_, n)| n.subscription == name && n.accepted())
        .filter(|(_, n)| n.kind == NotificationType::Heartbeat)
        .count() as u64;
    times.sort_unstable();
    let longest = match times.first() {
        Some(_) => {
            times.push(j.end_us.max(times.last().copied().unwrap_or(0)));
            times.windows(2).map(|w| w[1] - w[0]).max()
        }
        None => None,
    };
    Heartbeat {
        period_ms,
        received,
        longest_silence_ms: longest.map(|us| us as f64 / 1000.0),
        kept: longest.is_some_and(|us| us <= 2 * period_ms * 1000),
    }
}

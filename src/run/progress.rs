//! Live progress on stderr while the load runs: elapsed / planned time, completions per
//! second, errors. Plain periodic lines, so CI logs stay readable.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::collector::Live;

/// Prints a line every few seconds until aborted.
pub fn spawn(live: Live, planned: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut last = live.snapshot();
        let every = Duration::from_secs(5);
        let mut tick = tokio::time::interval_at((start + every).into(), every);
        loop {
            tick.tick().await;
            let now = live.snapshot();
            let rate = (now.completions - last.completions) as f64 / every.as_secs_f64();
            eprintln!(
                "[{:>5.0}s / {:.0}s] {:>8} interactions ({rate:.0}/s), {} fail, {} info",
                start.elapsed().as_secs_f64(),
                planned.as_secs_f64(),
                now.completions,
                now.fail,
                now.info,
            );
            last = now;
        }
    })
}

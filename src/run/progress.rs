//! Live progress while the load runs: elapsed / planned time, busy users, completions per
//! second, errors and faults injected so far. A bar on a terminal (indicatif); plain
//! periodic lines otherwise, so CI logs stay readable. Findings come only after the
//! read-back, so the line says how many writes await checking.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::collector::{Live, LiveCounts};
use crate::fault::Ledger;

/// What the progress display reads.
pub struct Gauges {
    pub live: Live,
    /// Users busy with an encounter.
    pub active: Arc<AtomicU64>,
    pub ledgers: Vec<Ledger>,
    pub planned: Duration,
}

impl Gauges {
    fn faults(&self) -> usize {
        self.ledgers.iter().map(Ledger::len).sum()
    }

    fn line(&self, now: &LiveCounts, rate: f64) -> String {
        format!(
            "{} users · {} interactions ({rate:.0}/s) · {} fail · {} info · {} faults injected",
            self.active.load(Ordering::Relaxed),
            now.completions,
            now.fail,
            now.info,
            self.faults()
        )
    }
}

/// Shows progress until the returned handle is aborted (the bar is left as it was).
pub fn spawn(g: Gauges) -> JoinHandle<()> {
    let tty = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let start = Instant::now();
        let every = if tty {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        let bar = tty.then(|| bar(g.planned));
        let mut last = g.live.snapshot();
        let mut tick = tokio::time::interval_at((start + every).into(), every);
        loop {
            tick.tick().await;
            let now = g.live.snapshot();
            let rate = (now.completions - last.completions) as f64 / every.as_secs_f64();
            let line = g.line(&now, rate);
            match &bar {
                Some(bar) => {
                    bar.set_position(start.elapsed().as_secs().min(g.planned.as_secs()));
                    bar.set_message(line);
                }
                None => eprintln!(
                    "[{:>5.0}s / {:.0}s] {line}",
                    start.elapsed().as_secs_f64(),
                    g.planned.as_secs_f64()
                ),
            }
            last = now;
        }
    })
}

fn bar(planned: Duration) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(planned.as_secs()), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{elapsed_precise} / {len}s [{bar:30}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

//! Signals into stop requests: SIGINT (Ctrl-C) and SIGTERM each make one request of the
//! run's [`Interrupt`]. Our SIGINT handler is installed before goose starts, so goose's
//! own (which stopped the load but left the runtime spinning) never takes over.

use std::time::Duration;

use crate::run::Interrupt;

/// Installs the handlers; every signal after that is a request on the returned value.
pub fn install(grace: Duration, budget: Duration) -> Interrupt {
    let interrupt = Interrupt::new();
    let i = interrupt.clone();
    if let Err(e) = ctrlc::set_handler(move || announce(i.request("SIGINT"), grace, budget)) {
        tracing::warn!("cannot handle Ctrl-C: {e}");
    }
    let i = interrupt.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            tracing::warn!("cannot handle SIGTERM");
            return;
        };
        while term.recv().await.is_some() {
            announce(i.request("SIGTERM"), grace, budget);
        }
    });
    interrupt
}

/// Says on stderr what the request does.
fn announce(n: u32, grace: Duration, budget: Duration) {
    if n == 1 {
        eprintln!(
            "\nstopping: no new encounters; in-flight requests get {} to finish, then the read-back runs for at most {}. Press Ctrl-C again to skip the read-back.",
            humantime::format_duration(grace),
            humantime::format_duration(budget)
        );
    } else {
        eprintln!("\nskipping the read-back: writing the report of the load phase now");
    }
}

/// Whether a run's stop came from a signal (`SIGINT`, `SIGTERM`) rather than from the run
/// itself (the disk filled).
pub fn is_signal(stop: &str) -> bool {
    matches!(stop, "SIGINT" | "SIGTERM")
}

/// SIGXFSZ, on Linux.
const SIGXFSZ: i32 = 25;

/// Catches SIGXFSZ (a file outgrew `ulimit -f`), which would otherwise kill the process
/// without a word: the write then fails with `EFBIG`, and the run stops as on a full
/// disk, with a partial report or a message saying where the history ends. Needs the
/// runtime entered.
pub fn survive_file_size_limit() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::from_raw(SIGXFSZ)) {
        // The handler stays installed for the life of the process; the stream is drained
        // so deliveries do not pile up.
        Ok(mut s) => {
            tokio::spawn(async move { while s.recv().await.is_some() {} });
        }
        Err(e) => tracing::warn!("cannot catch SIGXFSZ: {e}"),
    }
}

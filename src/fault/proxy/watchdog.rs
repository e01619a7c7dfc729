//! Connection-wide faults that act on time rather than on bytes: `down` resets an open
//! connection when its window opens (or the faults are enabled again), and `timeout` closes
//! the connection `timeout` after it came into force. When a blackhole ends (healed, or its
//! window is over) after it dropped bytes, the HTTP stream is broken, so the connection is
//! closed rather than released.

use humantime::format_duration;
use std::sync::atomic::Ordering;

use super::Shared;
use super::conn::{Conn, Ending};
use super::faults::{Kind, Toxic};
use crate::fault::Window;

/// Resolves when one of the connection's guarded faults ends it; never when there is none.
pub(super) async fn watch(conn: &Conn<'_>, guards: &[usize]) -> Ending {
    if guards.is_empty() {
        return std::future::pending().await;
    }
    let all = guards.iter().map(|&i| Box::pin(guard(conn, i)));
    futures::future::select_all(all).await.0
}

async fn guard(conn: &Conn<'_>, i: usize) -> Ending {
    let shared = conn.shared;
    let fault = &shared.faults[i];
    let window = fault.spec.window();
    loop {
        if !in_force(shared, window).await {
            return std::future::pending().await;
        }
        let timeout = match fault.kind {
            Kind::Down => {
                let (_, tag) = conn.current();
                conn.record(i, &tag, "down: open connection reset".into());
                return Ending::Reset;
            }
            Kind::Toxic(Toxic::Timeout { timeout }) => timeout,
            _ => return std::future::pending().await,
        };
        let expired = if timeout.is_zero() {
            out_of_force(shared, window).await;
            false
        } else {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => true,
                _ = out_of_force(shared, window) => false,
            }
        };
        if expired {
            let (_, tag) = conn.current();
            let detail = format!(
                "timeout: connection closed after {} {}",
                format_duration(timeout),
                fault.spec.stream
            );
            conn.record(i, &tag, detail);
            return Ending::Close;
        }
        if conn.dropped.load(Ordering::SeqCst) {
            return Ending::Close;
        }
    }
}

/// Waits until the fault is in force (enabled, inside its window): false if it never will be.
async fn in_force(shared: &Shared, window: Window) -> bool {
    let mut heal = shared.heal.subscribe();
    loop {
        let elapsed = shared.ledger.elapsed();
        if window
            .length
            .is_some_and(|len| elapsed >= window.from + len)
        {
            return false;
        }
        if elapsed < window.from {
            tokio::time::sleep(window.from - elapsed).await;
            continue;
        }
        if !*heal.borrow_and_update() {
            if heal.changed().await.is_err() {
                return false;
            }
            continue;
        }
        return true;
    }
}

/// Waits until the fault is no longer in force: healed, or its window is over.
async fn out_of_force(shared: &Shared, window: Window) {
    let mut heal = shared.heal.subscribe();
    let left = window
        .length
        .map(|len| (window.from + len).saturating_sub(shared.ledger.elapsed()));
    let window_over = async {
        match left {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = window_over => {}
        _ = heal.wait_for(|on| !*on) => {}
    }
}

//! Backing off from a server that refuses connections: after a failed connect every
//! attempt of the client waits, twice as long after each further failure (50 ms up to
//! 2 s), until one connects. A dead server then sees a few attempts a second, not a storm
//! of them, and the run goes on recording each as `fail`.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const FIRST: Duration = Duration::from_millis(50);
const MAX: Duration = Duration::from_secs(2);

/// Shared by every clone of a client.
#[derive(Debug, Default)]
pub struct Backoff {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Connection failures in a row.
    failures: u32,
    /// No attempt before this.
    until: Option<Instant>,
}

impl Backoff {
    /// Waits until an attempt may be made.
    pub async fn wait(&self) {
        let until = self.lock().until;
        if let Some(until) = until.filter(|u| *u > Instant::now()) {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// A connection was refused: the next attempts wait. Attempts that failed together
    /// (while a wait was already set) count once.
    pub fn failed(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        if s.until.is_some_and(|u| u > now) {
            return;
        }
        s.failures = s.failures.saturating_add(1);
        s.until = Some(now + delay(s.failures));
    }

    /// The server answered: no more waiting.
    pub fn connected(&self) {
        let mut s = self.lock();
        if s.failures > 0 || s.until.is_some() {
            *s = State::default();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The wait after `failures` failures in a row.
fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_two_seconds() {
        assert_eq!(delay(1), Duration::from_millis(50));
        assert_eq!(delay(2), Duration::from_millis(100));
        assert_eq!(delay(6), Duration::from_millis(1600));
        assert_eq!(delay(7), MAX);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[tokio::test]
    async fn a_connection_clears_the_wait() {
        let b = Backoff::default();
        b.failed();
        assert!(b.lock().until.is_some());
        b.connected();
        assert!(b.lock().until.is_none());
        // Returns at once with nothing to wait for.
        tokio::time::timeout(Duration::from_secs(5), b.wait())
            .await
            .unwrap();
    }
}

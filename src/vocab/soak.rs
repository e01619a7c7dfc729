//! Settings for long runs that the scenario and the run share: the growth windows
//! (`[growth]`). The scenario parses them, the run applies them, the report says what was
//! used. Uses nothing else of the crate.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the run's growth curves are windowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Growth {
    /// One window's length; `None`: a twentieth of the planned load phase, between 1 s
    /// and 5 min.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Duration>,
}

impl Growth {
    /// The window length for a load phase planned to last `planned`.
    pub fn window_for(&self, planned: Duration) -> Duration {
        self.window.unwrap_or_else(|| {
            (planned / 20).clamp(Duration::from_secs(1), Duration::from_secs(300))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_window_is_a_twentieth_within_bounds() {
        let g = Growth::default();
        assert_eq!(
            g.window_for(Duration::from_secs(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            g.window_for(Duration::from_secs(600)),
            Duration::from_secs(30)
        );
        assert_eq!(
            g.window_for(Duration::from_secs(8 * 3600)),
            Duration::from_secs(300)
        );
    }
}

//! Every random stream of a run comes from its one seed, here: the SplitMix64 mixer (its
//! only copy), the seeded uniform draw behind every fault decision, and one derivation of
//! a sub-seed per purpose, so two purposes never share a stream by accident. Synthetic
//! encounters take their own per-encounter streams from a hash of `(seed, n)` (`synth`).
//! Uses nothing else of the crate.

/// The SplitMix64 increment (the golden ratio in 64 bits).
pub const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// What a sub-seed is for. Each purpose has its own salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Whether a fault fires for a connection or request (proxy and mock). Keyed by the
    /// run seed itself, the root of the tree, so a seed injects what it always did.
    FaultDecisions,
    /// Which of several candidates a mock fault touches once it fired.
    FaultTargets,
    /// The mock's opaque server ids.
    MockIds,
    /// The mock's paging-session tokens.
    PagingSessions,
    /// Which load-phase reads a sampled history keeps (`[history] keep = "sample:P"`).
    HistorySample,
}

impl Purpose {
    fn salt(self) -> u64 {
        match self {
            Purpose::FaultDecisions => 0,
            Purpose::FaultTargets => 0x5eed,
            Purpose::MockIds => 0x1d5_u64.rotate_left(40),
            Purpose::PagingSessions => 0x9a6e_5e55_1011,
            Purpose::HistorySample => 0x4ee9_5a3b_1e00,
        }
    }
}

/// The sub-seed of `seed` for `purpose`.
pub fn derive(seed: u64, purpose: Purpose) -> u64 {
    match purpose {
        Purpose::FaultDecisions => seed,
        other => mix(seed ^ other.salt()),
    }
}

/// The SplitMix64 finaliser: a bijection on u64.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One SplitMix64 output for state `z`: advance by [`GAMMA`], then mix.
fn step(z: u64) -> u64 {
    mix(z.wrapping_add(GAMMA))
}

/// A uniform number in [0, 1) from a seed, a stream and a sequence number.
pub fn chance(seed: u64, stream: u64, n: u64) -> f64 {
    unit(step(seed ^ step(stream.wrapping_add(GAMMA)) ^ step(n)))
}

/// Draw `n` of a seed: uniform in [0, 1), one SplitMix64 output per `n`.
pub fn draw(seed: u64, n: u64) -> f64 {
    unit(mix(seed ^ n.wrapping_mul(GAMMA)))
}

/// The top 53 bits of `x` as a number in [0, 1).
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_get_distinct_streams_and_decisions_keep_the_run_seed() {
        let subs = [
            derive(42, Purpose::FaultDecisions),
            derive(42, Purpose::FaultTargets),
            derive(42, Purpose::MockIds),
            derive(42, Purpose::PagingSessions),
        ];
        for (i, a) in subs.iter().enumerate() {
            for b in &subs[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(subs[0], 42);
        assert_eq!(derive(42, Purpose::MockIds), derive(42, Purpose::MockIds));
        assert_ne!(derive(42, Purpose::MockIds), derive(43, Purpose::MockIds));
    }

    #[test]
    fn chance_is_uniform_enough_and_in_range() {
        let draws: Vec<f64> = (0..10_000).map(|n| chance(7, 3, n)).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        // Mean of 10,000 uniforms: sd ≈ 0.0029; 5 sigma.
        assert!((mean - 0.5).abs() < 0.015, "{mean}");
    }
}

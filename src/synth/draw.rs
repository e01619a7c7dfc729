//! The random draws: one ChaCha8 stream per encounter, seeded from a hash of
//! `(seed, n)` so encounter `n` never depends on encounters drawn before it, and the few
//! ways of drawing from it (weighted choice, distinct sample, a measured value at its
//! table's precision).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use super::tables::{Code, Measure};

pub(crate) type Rng = ChaCha8Rng;

/// The stream of encounter `n` of the population seeded with `seed`.
pub(crate) fn rng(seed: u64, n: u64) -> Rng {
    let mut h = blake3::Hasher::new();
    h.update(b"fhirsurge.synth.rng/1\0");
    h.update(&seed.to_le_bytes());
    h.update(&n.to_le_bytes());
    Rng::from_seed(*h.finalize().as_bytes())
}

/// The index of one of `items`, each as likely as its weight; 0 for an empty or
/// all-zero list (tables are validated non-empty with weights of at least 1).
pub(crate) fn weighted<T>(rng: &mut Rng, items: &[T], weight: impl Fn(&T) -> u32) -> usize {
    let total: u64 = items.iter().map(|t| u64::from(weight(t))).sum();
    if total == 0 {
        return 0;
    }
    let mut r = rng.random_range(0..total);
    for (i, t) in items.iter().enumerate() {
        let w = u64::from(weight(t));
        if r < w {
            return i;
        }
        r -= w;
    }
    0
}

/// `amount` distinct indices below `len` (fewer if `len` is smaller), in draw order.
pub(crate) fn sample(rng: &mut Rng, len: usize, amount: usize) -> Vec<usize> {
    rand::seq::index::sample(rng, len, amount.min(len)).into_vec()
}

/// A value of `m`, uniform over its steps, in units of `10^-decimals`.
pub(crate) fn measure(rng: &mut Rng, m: &Measure) -> i64 {
    rng.random_range(m.lo..=m.hi)
}

/// The components of a panel, correlated: one shared level and a small jitter each, so
/// that, say, a high systolic pressure comes with a high diastolic one.
pub(crate) fn panel(rng: &mut Rng, components: &[(Code, Measure)]) -> Vec<i64> {
    let level: f64 = rng.random();
    components
        .iter()
        .map(|(_, m)| {
            let t = (level + rng.random_range(-0.15..0.15)).clamp(0.0, 1.0);
            m.lo + (t * (m.hi - m.lo) as f64).round() as i64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_depends_on_seed_and_n_only() {
        let a: u64 = rng(7, 3).random();
        assert_eq!(a, rng(7, 3).random::<u64>());
        assert_ne!(a, rng(7, 4).random::<u64>());
        assert_ne!(a, rng(8, 3).random::<u64>());
    }

    #[test]
    fn weighted_choice_follows_the_weights() {
        let mut r = rng(1, 1);
        let items = [1u32, 0, 3];
        let mut counts = [0u32; 3];
        for _ in 0..4000 {
            counts[weighted(&mut r, &items, |w| *w)] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(counts[2] > 2 * counts[0], "{counts:?}");
    }

    #[test]
    fn sample_is_distinct_and_clamped() {
        let mut r = rng(1, 2);
        let s = sample(&mut r, 4, 10);
        assert_eq!(s.len(), 4);
        let mut sorted = s.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
    }
}

//! Seeded random samples of a binned distribution, for statistical tests of the drift
//! statistics (the unit tests of `stats` and the simulated years of `tests/integration/retrain.rs`).

#![allow(dead_code)]

use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};

/// A random source that gives the same numbers on every run.
pub fn seeded() -> TestRng {
    TestRng::deterministic_rng(RngAlgorithm::ChaCha)
}

/// Counts per bin of `n` samples of the distribution `p` (proportions per bin, summing to 1).
pub fn counts(rng: &mut TestRng, p: &[f64], n: usize) -> Vec<f64> {
    let mut counts = vec![0.0; p.len()];
    for _ in 0..n {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut cumulative = 0.0;
        let bin = p.iter().position(|x| {
            cumulative += x;
            u < cumulative
        });
        counts[bin.unwrap_or(p.len() - 1)] += 1.0;
    }
    counts
}

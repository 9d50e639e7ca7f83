//! Each statistic against values computed independently with SciPy 1.x and NumPy:
//!
//! ```python
//! p, q = e / e.sum(), a / a.sum()
//! psi = np.sum((np.maximum(q, 1e-4) - np.maximum(p, 1e-4)) * np.log(np.maximum(q, 1e-4) / np.maximum(p, 1e-4)))
//! ks  = np.max(np.abs(np.cumsum(p) - np.cumsum(q)))
//! js  = scipy.spatial.distance.jensenshannon(p, q, base=2)
//! ```

use super::*;

fn h(counts: &[f64]) -> Histogram {
    Histogram { bounds: (1..=counts.len()).map(|i| i as f64 / 10.0).collect(), counts: counts.to_vec() }
}

#[track_caller]
fn close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
}

#[test]
fn a_shifted_distribution() {
    let (e, a) = (h(&[10.0, 20.0, 40.0, 20.0, 10.0]), h(&[5.0, 10.0, 30.0, 30.0, 25.0]));
    close(psi(&e, &a).unwrap(), 0.3107304049211096);
    close(ks(&e, &a).unwrap(), 0.25000000000000006);
    close(jensen_shannon(&e, &a).unwrap(), 0.23402957422711393);
}

#[test]
fn an_empty_reference_bin_is_floored_for_psi_only() {
    let (e, a) = (h(&[0.0, 50.0, 50.0]), h(&[10.0, 45.0, 45.0]));
    // By hand: (0.1 − 1e-4)·ln(0.1/1e-4) + 2·(0.45 − 0.5)·ln(0.45/0.5) = 0.69007 + 0.01054
    close(psi(&e, &a).unwrap(), 0.7006208039360982);
    close(ks(&e, &a).unwrap(), 0.1);
    close(jensen_shannon(&e, &a).unwrap(), 0.22781387210026435);
}

#[test]
fn disjoint_distributions_are_as_far_apart_as_can_be() {
    let (e, a) = (h(&[100.0, 0.0]), h(&[0.0, 100.0]));
    close(psi(&e, &a).unwrap(), 18.41883867587797);
    close(ks(&e, &a).unwrap(), 1.0);
    close(jensen_shannon(&e, &a).unwrap(), 1.0);
}

#[test]
fn identical_shapes_are_zero_whatever_the_sample_sizes() {
    let (e, a) = (h(&[3.0, 5.0, 7.0]), h(&[6.0, 10.0, 14.0]));
    close(psi(&e, &a).unwrap(), 0.0);
    close(ks(&e, &a).unwrap(), 0.0);
    close(jensen_shannon(&e, &a).unwrap(), 0.0);
}

#[test]
fn a_single_bucket_never_drifts() {
    let (e, a) = (h(&[42.0]), h(&[7.0]));
    close(psi(&e, &a).unwrap(), 0.0);
    close(ks(&e, &a).unwrap(), 0.0);
    close(jensen_shannon(&e, &a).unwrap(), 0.0);
}

#[test]
fn different_bucket_layouts_are_refused_not_compared() {
    let e = h(&[1.0, 2.0, 3.0]);
    let mut a = h(&[1.0, 2.0, 3.0]);
    a.bounds[1] = 0.25;
    assert!(matches!(psi(&e, &a), Err(StatsError::DifferentBuckets { .. })));
    assert!(matches!(ks(&e, &h(&[1.0, 2.0])), Err(StatsError::DifferentBuckets { .. })));
}

#[test]
fn an_empty_prometheus_inf_bucket_is_ignored_a_full_one_refused() {
    let reference = h(&[1.0, 2.0, 3.0]);
    let mut live = h(&[1.0, 2.0, 3.0]);
    live.bounds.push(f64::INFINITY);
    live.counts.push(0.0);
    close(psi(&reference, &live).unwrap(), 0.0);
    live.counts[3] = 4.0;
    let err = psi(&reference, &live).unwrap_err().to_string();
    assert!(err.contains("4 live samples are above the reference's last bound 0.3"), "{err}");
}

#[test]
fn an_empty_distribution_gives_no_verdict() {
    assert_eq!(jensen_shannon(&h(&[1.0, 1.0]), &h(&[0.0, 0.0])), Err(StatsError::NoSamples("live")));
}

#[test]
fn prometheus_cumulative_buckets_become_counts() {
    let hist = Histogram::from_cumulative(vec![(f64::INFINITY, 10.0), (0.5, 4.0), (0.1, 1.0)]).unwrap();
    assert_eq!(hist.bounds, [0.1, 0.5, f64::INFINITY]);
    assert_eq!(hist.counts, [1.0, 3.0, 6.0]);
    assert_eq!(hist.total(), 10.0);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn counts() -> impl Strategy<Value = Vec<f64>> {
        proptest::collection::vec(0u32..1000, 6).prop_map(|v| v.into_iter().map(f64::from).collect())
    }

    proptest! {
        #[test]
        fn distances_are_symmetric_bounded_and_zero_on_self(a in counts(), b in counts()) {
            prop_assume!(a.iter().sum::<f64>() > 0.0 && b.iter().sum::<f64>() > 0.0);
            let (a, b) = (h(&a), h(&b));
            let js = jensen_shannon(&a, &b).unwrap();
            prop_assert!((0.0..=1.0 + 1e-12).contains(&js));
            prop_assert!((js - jensen_shannon(&b, &a).unwrap()).abs() < 1e-12);
            prop_assert!((0.0..=1.0 + 1e-12).contains(&ks(&a, &b).unwrap()));
            prop_assert!(psi(&a, &b).unwrap() >= -1e-12);
            prop_assert!(jensen_shannon(&a, &a).unwrap() < 1e-7);
        }
    }
}

/// Critical values against SciPy 1.17:
///
/// ```python
/// c = scipy.stats.chi2.ppf(1 - a, bins - 1)
/// psi = c * (1/n + 1/m)
/// ks = scipy.special.kolmogi(a) * sqrt((n + m) / (n * m))   # the exact asymptotic c(α)
/// js = sqrt(c * (1/n + 1/m) / (8 * log(2)))
/// ```
#[test]
fn critical_values_match_scipy() {
    let cases = [
        // (α, reference, live, bins, psi, ks, js)
        (0.01, 1000.0, 100.0, 10, 0.23832593766808116, 0.17070660452517325, 0.20731366585109415),
        (0.05, 500.0, 500.0, 20, 0.12057410882258464, 0.0858936997486955, 0.14745832837531977),
        (0.001, 100.0, 100.0, 10, 0.5575432974251314, 0.27569734237777993, 0.3170892915008558),
    ];
    for (alpha, reference, live, bins, psi, ks, js) in cases {
        let sizes = Sizes { reference, live, bins };
        let near = |a: f64, b: f64, tolerance: f64| assert!((a - b).abs() < tolerance, "α {alpha}: {a} != {b}");
        near(psi_critical(alpha, sizes).unwrap(), psi, 1e-9);
        // c(α) = sqrt(−ln(α/2)/2) is SciPy's kolmogi(α) to 1e-6 at these α.
        near(ks_critical(alpha, sizes).unwrap(), ks, 1e-6);
        near(js_critical(alpha, sizes).unwrap(), js, 1e-9);
    }
}

#[test]
fn a_critical_value_needs_samples_two_bins_and_a_significance_below_one() {
    let sizes = Sizes { reference: 100.0, live: 100.0, bins: 10 };
    assert_eq!(psi_critical(0.01, Sizes { live: 0.0, ..sizes }), Err(StatsError::NoSamples("live")));
    assert_eq!(ks_critical(0.01, Sizes { reference: 0.0, ..sizes }), Err(StatsError::NoSamples("reference")));
    assert!(matches!(js_critical(0.01, Sizes { bins: 1, ..sizes }), Err(StatsError::Malformed(_))));
    assert!(matches!(psi_critical(1.0, sizes), Err(StatsError::Malformed(_))));
    let used = Sizes::of(&h(&[5.0, 0.0, 3.0, 0.0]), &h(&[1.0, 0.0, 0.0, 2.0]));
    assert_eq!(used, Sizes { reference: 8.0, live: 3.0, bins: 3 }, "a bin empty on both sides does not count");
}

#[path = "../../tests/support/sampling.rs"]
mod sampling;

/// `n` samples of the distribution `p`, from `rng`.
fn sample(rng: &mut proptest::test_runner::TestRng, p: &[f64], n: usize) -> Histogram {
    h(&sampling::counts(rng, p, n))
}

/// On unchanged data the critical value at significance α is exceeded about α of the time, at
/// small and large samples alike; a fixed PSI threshold of 0.1 fires most of the time at 100
/// samples and 10 bins (the reference of the same size), and a real shift is caught.
/// With this seed, at α = 0.05 and 100 / 2,000 samples a side: PSI 7.0% / 4.4% (its chi-square
/// approximation runs a little light at small samples), Jensen-Shannon 5.8% / 5.0%, KS 1.5% /
/// 1.8% (conservative on binned CDFs); PSI > 0.1 fires on 84% of unchanged samples of 100.
#[test]
fn critical_values_fire_at_their_significance_on_unchanged_data_and_catch_a_shift() {
    let mut rng = sampling::seeded();
    let p = [0.08, 0.09, 0.1, 0.11, 0.12, 0.12, 0.11, 0.1, 0.09, 0.08];
    let shifted = [0.02, 0.04, 0.06, 0.08, 0.1, 0.13, 0.15, 0.16, 0.14, 0.12];
    let trials = 2000;
    let alpha = 0.05;
    type Pair = (fn(&Histogram, &Histogram) -> Result<f64, StatsError>, fn(f64, Sizes) -> Result<f64, StatsError>);
    let methods: [(&str, Pair); 3] =
        [("PSI", (psi, psi_critical)), ("KS", (ks, ks_critical)), ("JS", (jensen_shannon, js_critical))];
    for n in [100, 2000] {
        for (name, (statistic, critical)) in methods {
            let (mut false_alarms, mut caught, mut fixed) = (0, 0, 0);
            for _ in 0..trials {
                let reference = sample(&mut rng, &p, n);
                let live = sample(&mut rng, &p, n);
                let moved = sample(&mut rng, &shifted, n);
                let sizes = Sizes::of(&reference, &live);
                false_alarms += usize::from(statistic(&reference, &live).unwrap() > critical(alpha, sizes).unwrap());
                let sizes = Sizes::of(&reference, &moved);
                caught += usize::from(statistic(&reference, &moved).unwrap() > critical(alpha, sizes).unwrap());
                fixed += usize::from(name == "PSI" && psi(&reference, &live).unwrap() > 0.1);
            }
            let rate = false_alarms as f64 / trials as f64;
            // KS on 10 binned CDFs is conservative (fires less often than α); the others are close to α.
            assert!(rate <= alpha * 1.6, "{name} at n={n}: unchanged data fired {rate} of the time, α {alpha}");
            if name != "KS" {
                assert!(rate >= alpha * 0.5, "{name} at n={n}: fired only {rate} of the time, α {alpha}");
            }
            assert!(caught as f64 / trials as f64 > 0.5, "{name} at n={n}: the shift was caught {caught}/{trials}");
            if name == "PSI" && n == 100 {
                assert!(fixed as f64 / trials as f64 > 0.5, "PSI > 0.1 fired {fixed}/{trials} on unchanged data");
            }
        }
    }
}

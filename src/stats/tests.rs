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

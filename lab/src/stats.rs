//! The one percentile definition and the one summary of every figure the lab reports
//! (`switchyard bench`, the intake, events and polling benchmarks), so that their figures
//! compare.

use serde::{Deserialize, Serialize};

/// The `p`-th percentile of `sorted` (ascending) by **nearest rank**: with `n` values,
/// rank = ⌈p/100 · n⌉ and the value is `sorted[rank − 1]`, one of the values measured, never
/// an interpolation. `p` is 0 to 100 (clamped); `p = 0` gives the minimum, `p = 100` the
/// maximum, `p = 50` the lower median when `n` is even. `None` when `sorted` is empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Order statistics of a set of measurements (milliseconds, seconds, …): the count, the
/// nearest-rank p50, p90 and p99 ([`percentile`]), the maximum and the mean.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// The summary of `values` in any order; values that are not finite are left out. All
    /// zero (and `n = 0`) when nothing is left.
    pub fn of(values: &[f64]) -> Summary {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let at = |p: f64| percentile(&v, p).unwrap_or(0.0);
        Summary {
            n: v.len(),
            p50: at(50.0),
            p90: at(90.0),
            p99: at(99.0),
            max: at(100.0),
            mean: if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            },
        }
    }
}

/// `x` rounded to `digits` decimal places, for figures in JSON.
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// `n` (any integer) with thousands separators: `12,345`.
pub fn thousands(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let s = n.unsigned_abs().to_string();
    let mut out = String::from(if n < 0 { "-" } else { "" });
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        for (p, want) in [
            (0.0, 1.0),
            (1.0, 1.0),
            (50.0, 50.0),
            (90.0, 90.0),
            (99.0, 99.0),
            (99.5, 100.0),
            (100.0, 100.0),
            (250.0, 100.0),
        ] {
            assert_eq!(percentile(&hundred, p), Some(want), "p{p}");
        }
        let four = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&four, 50.0), Some(2.0), "the lower median");
        assert_eq!(percentile(&four, 51.0), Some(3.0));
        assert_eq!(percentile(&four, 99.0), Some(4.0));
        assert_eq!(percentile(&[7.0], 0.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn a_summary_sorts_and_drops_what_is_not_finite() {
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Summary::of(&values);
        assert_eq!(
            (s.n, s.p50, s.p90, s.p99, s.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(s.mean, 50.5);
        let one = Summary::of(&[7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(Summary::of(&[]), Summary::default());
        assert_eq!(Summary::of(&[f64::NAN, 3.0, f64::INFINITY]).n, 1);
    }
}

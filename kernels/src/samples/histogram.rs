//! The histogram sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::histogram`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::histogram::*;

/// A histogram of n seeded random values in `[0, max_value + max_value/16]`
/// (so about one in 17 lands above `max_value`, in the last bin; all of
/// u32 when `max_value` is `u32::MAX`); the histogram starts poisoned
/// (0xDEADBEEF).
///
/// Tolerance: exact counts.
pub type HistogramTrial = Sampled<HistogramProblem>;

/// The values of a [`HistogramTrial`].
pub struct HistogramProblem {
    histogram: Histogram,
    max_value: u32,
    bins: usize,
    values: Input<u32>,
}

/// Prepares a histogram of `n` values in `bins` bins over `[0, max_value]`.
pub fn trial(
    rt: &Runtime,
    (n, bins, max_value): (usize, usize, u32),
    seed: u64,
) -> Result<HistogramTrial> {
    let top = max_value.saturating_add(max_value / 16 + 1);
    let mut rng = verify::rng(seed);
    let problem = HistogramProblem {
        histogram: Histogram::new()?,
        max_value,
        bins,
        values: Input::new(rt, (0..n).map(|_| rng.random_range(0..=top)).collect()),
    };
    Ok(Sampled::poisoned(rt, problem, bins, 0xDEAD_BEEF))
}

impl Problem for HistogramProblem {
    type Out = u32;
    const TOLERANCE: &'static str = "exact counts";
    fn shape(&self) -> String {
        let (n, bins) = (self.values.len(), self.bins);
        format!("{n}, {bins} bins to {}", self.max_value)
    }
    fn work(&self, _: &[u32]) -> Work {
        Work::per(self.values.len() + self.bins, 0.0, 4.0)
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.values.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, hist: &Buffer<u32>) -> Result<RunInfo> {
        let values = self.values.buf();
        self.histogram.run(rt, target, values, hist, self.max_value)
    }
    fn compare(&mut self, got: &[u32]) -> Compare {
        let want = reference(&self.values, self.bins as u32, self.max_value);
        verify::compare(verify::f64s(got), want.iter().map(|&c| c as f64), |_| 0.0)
    }
}

/// The sample's bins and range: 256 bins over [0, 999,999], widths 3906
/// and 3907 (256 does not divide 1,000,000).
pub(crate) const SAMPLE_BINS: usize = 256;
pub(crate) const SAMPLE_MAX: u32 = 999_999;

//! The histogram sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::histogram`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::Sample;
use super::verify::{self, Check, Trial, Work};
use crate::histogram::*;

/// A histogram of n seeded random values in `[0, max_value + max_value/16]`
/// (so about one in 17 lands above `max_value`, in the last bin; all of
/// u32 when `max_value` is `u32::MAX`); the histogram starts poisoned
/// (0xDEADBEEF).
///
/// Tolerance: exact counts.
pub struct HistogramTrial {
    histogram: Histogram,
    max_value: u32,
    data: Vec<u32>,
    values: Buffer<u32>,
    hist: Buffer<u32>,
    got: Vec<u32>,
}

/// Prepares a histogram of `n` values in `bins` bins over `[0, max_value]`.
pub fn trial(
    rt: &Runtime,
    (n, bins, max_value): (usize, usize, u32),
    seed: u64,
) -> Result<HistogramTrial> {
    let top = max_value.saturating_add(max_value / 16 + 1);
    let mut rng = verify::rng(seed);
    let data: Vec<u32> = (0..n).map(|_| rng.random_range(0..=top)).collect();
    Ok(HistogramTrial {
        histogram: Histogram::new()?,
        max_value,
        values: rt.buffer(&data),
        hist: rt.zeros(bins),
        data,
        got: Vec::new(),
    })
}

impl Trial for HistogramTrial {
    fn shape(&self) -> String {
        format!(
            "{}, {} bins to {}",
            self.data.len(),
            self.hist.len(),
            self.max_value
        )
    }
    fn work(&self) -> Work {
        Work {
            flops: 0.0,
            bytes: 4.0 * (self.data.len() + self.hist.len()) as f64,
        }
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.values, &self.data)?;
        rt.write(&self.hist, &vec![0xDEAD_BEEF; self.hist.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self
            .histogram
            .run(rt, target, &self.values, &self.hist, self.max_value)?;
        rt.read_to_vec(&self.hist, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let bins = self.hist.len();
        let want = reference(&self.data, bins as u32, self.max_value);
        let cmp = verify::compare(
            self.got.iter().map(|&c| c as f64),
            want.iter().map(|&c| c as f64),
            |_| 0.0,
        );
        cmp.into_check(
            self.shape(),
            backend,
            bins.abs_diff(self.got.len()),
            "exact counts",
        )
    }
}

/// Counts seeded random values and checks the histogram (see
/// [`HistogramTrial`]).
pub fn check(rt: &Runtime, target: Target, dims: (usize, usize, u32), seed: u64) -> Result<Check> {
    verify::run_check(&mut trial(rt, dims, seed)?, rt, target)
}

/// The sample's bins and range: 256 bins over [0, 999,999], widths 3906
/// and 3907 (256 does not divide 1,000,000).
const SAMPLE_BINS: usize = 256;
const SAMPLE_MAX: u32 = 999_999;

/// This module's entries in [`samples`](super::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "histogram",
        about: "counts of u32 values in 256 equal-width bins; per-workgroup histograms with atomics in workgroup memory on the GPU (memory-bound)",
        size_meaning: "values",
        default_size: 1 << 24,
        tour_size: 1 << 21,
        prepare: |rt, n, seed| super::boxed(trial(rt, (n, SAMPLE_BINS, SAMPLE_MAX), seed)),
    }]
}

//! histogram: counts of u32 values in N equal-width bins over
//! `[0, max_value]`.
//!
//! Value `v ≤ max_value` goes to bin `floor(v·N / (max_value + 1))`,
//! computed exactly (in 64 bits; see [`bin`]); values above `max_value`
//! are counted in the last bin, so the counts always add up to the number
//! of values. When N divides `max_value + 1` every bin is
//! `(max_value + 1) / N` values wide; otherwise widths differ by at most one.
//!
//! Per value: no floating-point operations (a 32×32→64-bit product and a
//! compare or two place it), 4 bytes read; the 4·N bytes of counts are
//! written once per run. Memory-bound, with atomics on the GPU.
//!
//! A run clears the histogram, then counts. The GPU counts each block of
//! consecutive values into a histogram of its own in workgroup memory
//! (atomics there are cheap), then adds its non-zero bins into the result
//! with global atomics; that histogram takes 1 KiB up to 256 bins and
//! 16 KiB up to [`LOCAL_BINS`], and with more bins than that every value is
//! an atomic add straight into the result.
//! The CPU counts chunks into a histogram per rayon task and merges them.

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result};
use rayon::prelude::*;

use crate::launch::{Launch, builder, run_and_submit};
use crate::par::fill_par;
use crate::uniform::wgsl_struct;
use crate::{ensure, u32_len};

/// The most bins a GPU workgroup counts in workgroup memory (16 KiB of
/// u32, the least every WebGPU device offers); more go straight to global
/// atomics.
pub const LOCAL_BINS: usize = 4096;

/// The most bins the GPU's smaller workgroup histogram (1 KiB) holds.
const SMALL_LOCAL_BINS: usize = 256;

/// Invocations in a GPU workgroup.
const WG: usize = 256;

/// Values one CPU task counts at the least.
const CPU_GRAIN: usize = 1 << 16;

wgsl_struct! {
    histogram_params => Params;
    /// The shader's uniform block (every entry point).
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct HistogramParams {
        /// Values.
        pub n: u32,
        /// Bins N (at least 1).
        pub bins: u32,
        /// The top of the range; larger values count in the last bin.
        pub max_value: u32,
        /// Values each invocation of the workgroup-memory shader counts.
        pub items: u32,
        /// Workgroups of the workgroup-memory shader: `ceil(n / (256·items))`.
        pub groups: u32,
        /// `bins / (max_value + 1)`, the shader's first guess at a bin.
        pub scale: f32,
    }
}

/// The WGSL source: `main` and `main_4k` (bins in workgroup memory),
/// `direct` (global atomics) and `clear`.
pub const WGSL: &str = concat!(
    include_str!("../../shaders/histogram.wgsl"),
    include_str!("../../shaders/lib/mul_wide.wgsl"),
    histogram_params!(),
);

/// The bin of `value` among `bins` equal-width bins over `[0, max_value]`:
/// `floor(value·bins / (max_value + 1))`, or `bins - 1` for a value above
/// `max_value` (and 0 when `bins` is 0).
///
/// # Examples
///
/// ```
/// use pel_kernels::histogram::bin;
/// assert_eq!(bin(0, 4, 99), 0);
/// assert_eq!(bin(24, 4, 99), 0);
/// assert_eq!(bin(25, 4, 99), 1);
/// assert_eq!(bin(99, 4, 99), 3);
/// assert_eq!(bin(1000, 4, 99), 3); // above max_value: the last bin
/// assert_eq!(bin(u32::MAX, 256, u32::MAX), 255);
/// ```
pub fn bin(value: u32, bins: u32, max_value: u32) -> u32 {
    if value > max_value {
        return bins.saturating_sub(1);
    }
    (value as u64 * bins as u64 / (max_value as u64 + 1)) as u32
}

/// [`bin`] without a division, for the CPU.
///
/// With fewer bins than values in range (`bins < d = max_value + 1`), one
/// multiply by a 64-bit reciprocal: `floor(v·m / 2⁶⁴)` with
/// `m = ceil(bins·2⁶⁴ / d)` is exact, since it exceeds `v·bins / d` by less
/// than `v / 2⁶⁴ < 2⁻³² ≤ 1/d`, while `v·bins / d` falls at least `1/d`
/// short of the next integer. Otherwise a guess in f64 (within one bin),
/// corrected with exact 64-bit products.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BinMap {
    bins: u64,
    max_value: u32,
    d: u64,
    reciprocal: Option<u64>,
    scale: f64,
}

impl BinMap {
    fn new(bins: u32, max_value: u32) -> Self {
        let d = max_value as u64 + 1;
        let bins = (bins as u64).max(1);
        BinMap {
            bins,
            max_value,
            d,
            // bins < d, so m < 2⁶⁴.
            reciprocal: (bins < d).then(|| ((bins as u128) << 64).div_ceil(d as u128) as u64),
            scale: bins as f64 / d as f64,
        }
    }

    /// The bin of `v` by the reciprocal `m`.
    #[inline]
    fn by_reciprocal(&self, m: u64, v: u32) -> usize {
        if v > self.max_value {
            return self.bins as usize - 1;
        }
        ((v as u128 * m as u128) >> 64) as usize
    }

    /// The bin of `v` by a guess and a correction.
    #[inline]
    fn by_estimate(&self, v: u32) -> usize {
        if v > self.max_value {
            return self.bins as usize - 1;
        }
        let prod = v as u64 * self.bins;
        let mut b = ((v as f64 * self.scale) as u64).min(self.bins - 1);
        // b < bins ≤ u32::MAX and d ≤ 2³², so neither product overflows.
        while b > 0 && b * self.d > prod {
            b -= 1;
        }
        while b + 1 < self.bins && (b + 1) * self.d <= prod {
            b += 1;
        }
        b as usize
    }
}

/// Counts `values` into a histogram per rayon task, merges them, and adds
/// the counts to `hist` (as the GPU's atomics do).
fn count_values(values: &[u32], hist: &mut [u32], p: &HistogramParams) {
    let n = (p.n as usize).min(values.len());
    let bins = p.bins as usize;
    if bins == 0 || hist.len() < bins || n == 0 {
        return;
    }
    let map = BinMap::new(p.bins, p.max_value);
    let total = match map.reciprocal {
        Some(m) => count_with(&values[..n], bins, |v| map.by_reciprocal(m, v)),
        None => count_with(&values[..n], bins, |v| map.by_estimate(v)),
    };
    if let Some(total) = total {
        for (h, t) in hist.iter_mut().zip(&total) {
            *h = h.wrapping_add(*t);
        }
    }
}

/// The counts of `values` in `bins` bins by `bin_of`: a histogram per rayon
/// task, merged.
fn count_with(
    values: &[u32],
    bins: usize,
    bin_of: impl Fn(u32) -> usize + Sync,
) -> Option<Vec<u32>> {
    // A task counts at least as many values as it has bins to merge.
    let grain = CPU_GRAIN.max(bins);
    values
        .par_chunks(grain)
        .fold(
            || vec![0u32; bins],
            |mut h, chunk| {
                for &v in chunk {
                    h[bin_of(v)] += 1;
                }
                h
            },
        )
        .reduce_with(|mut a, b| {
            for (x, y) in a.iter_mut().zip(&b) {
                *x += y;
            }
            a
        })
}

/// The histogram kernels (counting in workgroup memory, counting with
/// global atomics, clearing) and the driver that clears, then counts.
#[derive(Debug, Clone)]
pub struct Histogram {
    small: Kernel,
    local: Kernel,
    direct: Kernel,
    clear: Kernel,
}

impl Histogram {
    /// Builds the kernels.
    pub fn new() -> Result<Self> {
        let counting = |name: &str, entry: &str| {
            type Args = (Read<u32>, ReadWrite<u32>);
            builder::<HistogramParams, Args>(name, WGSL, |(values, hist), p| {
                count_values(values, hist, p)
            })
            .entry(entry)
            .cost(|p, _| p.n as u64)
        };
        let small = counting("histogram", "main")
            .workgroups(|p, _| p.groups as u64)
            .build()?;
        let local = counting("histogram_4k", "main_4k")
            .workgroups(|p, _| p.groups as u64)
            .build()?;
        let direct = counting("histogram_direct", "direct")
            .invocations(|p, _| p.n as u64)
            .build()?;
        let clear =
            builder::<HistogramParams, (ReadWrite<u32>,)>("histogram_clear", WGSL, |(hist,), p| {
                let bins = (p.bins as usize).min(hist.len());
                fill_par(&mut hist[..bins], 0, CPU_GRAIN);
            })
            .entry("clear")
            .invocations(|p, _| p.bins as u64)
            .cost(|p, _| p.bins as u64)
            .build()?;
        Ok(Histogram {
            small,
            local,
            direct,
            clear,
        })
    }

    /// The counting kernel for `bins` bins: in workgroup memory up to
    /// [`LOCAL_BINS`] (1 KiB of it up to 256 bins), with global atomics
    /// beyond.
    pub fn kernel(&self, bins: usize) -> &Kernel {
        if bins <= SMALL_LOCAL_BINS {
            &self.small
        } else if bins <= LOCAL_BINS {
            &self.local
        } else {
            &self.direct
        }
    }

    /// The kernel that clears the histogram.
    pub fn clear_kernel(&self) -> &Kernel {
        &self.clear
    }

    run_and_submit! {
        /// Counts `values` into `hist`, whose length is the number of bins N,
        /// over `[0, max_value]` (see [`bin`]). `hist` is cleared first; both
        /// passes run at `target`, the counts staying where they are computed.
        run,
        /// Submits the passes of [`run`](Self::run) and returns the counting
        /// pass's task without waiting.
        submit = passes(values: &Buffer<u32>, hist: &Buffer<u32>, max_value: u32);
    }

    /// Launches the clearing pass, then the counting pass, and returns what
    /// the last gave.
    fn passes<L: Launch>(
        &self,
        l: &mut L,
        values: &Buffer<u32>,
        hist: &Buffer<u32>,
        max_value: u32,
    ) -> Result<L::Out> {
        let p = Self::params(values, hist, max_value)?;
        l.launch(&self.clear, &[hist], &p)?;
        l.launch(self.kernel(hist.len()), &[values, hist], &p)
    }

    /// The params of a run, checked: at least one bin, and sizes a shader
    /// can index.
    pub fn params(
        values: &Buffer<u32>,
        hist: &Buffer<u32>,
        max_value: u32,
    ) -> Result<HistogramParams> {
        ensure(!hist.is_empty(), "histogram", "hist", || {
            "hist has 0 elements, so 0 bins; a histogram needs at least 1 bin".into()
        })?;
        let n = u32_len("histogram", "values", values.len())?;
        let bins = u32_len("histogram", "hist", hist.len())?;
        // Larger histograms get more values per workgroup, so that merging
        // into the result costs at most a quarter of an atomic per value.
        let items = (bins / 64).clamp(16, 64);
        let groups = values.len().div_ceil(items as usize * WG);
        Ok(HistogramParams {
            n,
            bins,
            max_value,
            items,
            groups: groups as u32,
            scale: (bins as f64 / (max_value as f64 + 1.0)) as f32,
        })
    }
}

/// The serial reference: the count in each of `bins` bins, by [`bin`].
pub fn reference(values: &[u32], bins: u32, max_value: u32) -> Vec<u64> {
    let mut counts = vec![0u64; bins as usize];
    for &v in values {
        if let Some(c) = counts.get_mut(bin(v, bins, max_value) as usize) {
            *c += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::verify;
    use rand::Rng;

    /// Both ways of the CPU's bin mapping agree with the defining formula
    /// at the edges of the range and in between.
    #[test]
    fn bin_map_is_exact() {
        let cases: &[(u32, u32)] = &[
            (1, 0),
            (3, 0),
            (1, u32::MAX),
            (256, u32::MAX),
            (255, u32::MAX - 1),
            (7, 999_999),
            (256, 999_999),
            (1_000_000, 999_999),
            (1_000_001, 999_999),
            (4097, 3_999_999_999),
            (u32::MAX, u32::MAX),
            (u32::MAX, 12_345),
            (65_536, 65_535),
            (300, 99),
        ];
        let mut rng = verify::rng(5);
        for &(bins, max) in cases {
            let map = BinMap::new(bins, max);
            let edges = [
                0,
                1,
                max / 2,
                max.saturating_sub(1),
                max,
                max.saturating_add(1),
                u32::MAX,
            ];
            let random = (0..2000).map(|_| rng.random::<u32>());
            let scaled = (0..2000).map(|i| (max as u64 * i / 2000) as u32);
            for v in edges.into_iter().chain(random).chain(scaled) {
                let want = bin(v, bins, max) as usize;
                assert_eq!(
                    map.by_estimate(v),
                    want,
                    "estimate: {v} in {bins} bins to {max}"
                );
                if let Some(m) = map.reciprocal {
                    assert_eq!(
                        map.by_reciprocal(m, v),
                        want,
                        "reciprocal: {v} in {bins} bins to {max}"
                    );
                }
            }
        }
    }
}

//! softmax: `yᵢⱼ = exp(xᵢⱼ − mᵢ) / Σⱼ exp(xᵢⱼ − mᵢ)` along each row of a
//! rows×cols f32 matrix, `mᵢ` the row's maximum, so no exp can overflow
//! however large the inputs (a naive `exp(x)` overflows f32 past 88.7).
//!
//! Per element: about 5 floating-point operations (a comparison, a
//! subtraction and an exp, an addition, a division; the GPU recomputes the
//! subtraction and the exp for the output), 8 bytes moved (read x, write y).
//! Memory-bound on a GPU; on a CPU the exp is a good part of the cost.
//!
//! The GPU gives each row a segment of up to 256 invocations (a whole
//! workgroup for long rows, a few invocations for short ones), the maximum
//! and the sum each reduced by a tree in workgroup memory. The CPU runs rows
//! in parallel, each in three sweeps (maximum, exp and sum, scale) over
//! eight interleaved lanes, the first and the last vectorised.

use pel_runtime::{
    Backend, Buffer, Kernel, Read, ReadWrite, Result, RunInfo, Runtime, Target, Task,
};
use rand::Rng;
use rayon::prelude::*;

use crate::verify::{self, Check, Trial, Work};
use crate::{Sample, invalid, u32_len};

/// The WGSL source.
pub const WGSL: &str = include_str!("../../shaders/softmax.wgsl");

/// The shader's uniform block.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SoftmaxParams {
    /// Rows.
    pub rows: u32,
    /// Elements per row.
    pub cols: u32,
    /// Invocations per row on the GPU: see [`segment`].
    pub seg: u32,
    /// Workgroups: `ceil(rows / (256 / seg))`.
    pub groups: u32,
}

/// Invocations of a 256-invocation workgroup that share one row of `cols`
/// elements: the smallest power of two that covers the row, at most 256.
/// Short rows are packed many to a workgroup rather than leaving most of
/// one idle.
pub fn segment(cols: usize) -> u32 {
    cols.clamp(1, 256).next_power_of_two() as u32
}

/// The row-wise softmax kernel.
#[derive(Debug, Clone)]
pub struct Softmax {
    kernel: Kernel,
}

/// The maximum of a row, in eight lanes (vectorisable: no NaN semantics).
/// An empty row's maximum is `f32::MIN`, as in the shader.
fn row_max(x: &[f32]) -> f32 {
    let mut lanes = [f32::MIN; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = if v > *m { v } else { *m };
        }
    }
    let mut m = f32::MIN;
    for &v in lanes.iter().chain(it.remainder()) {
        m = if v > m { v } else { m };
    }
    m
}

/// One row: `y = exp(x − max)` summed in eight interleaved lanes, then
/// scaled by the sum. Every term is in (0, 1] and the maximum's is 1, so the
/// sum is at least 1 and at most `cols`.
fn softmax_row(x: &[f32], y: &mut [f32]) {
    let m = row_max(x);
    let mut acc = [0.0f32; 8];
    let mut xs = x.chunks_exact(8);
    let mut ys = y.chunks_exact_mut(8);
    for (x8, y8) in (&mut xs).zip(&mut ys) {
        for ((a, y), &x) in acc.iter_mut().zip(y8.iter_mut()).zip(x8) {
            let e = (x - m).exp();
            *y = e;
            *a += e;
        }
    }
    let mut tail = 0.0f32;
    for (&x, y) in xs.remainder().iter().zip(ys.into_remainder()) {
        let e = (x - m).exp();
        *y = e;
        tail += e;
    }
    let sum =
        ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])) + tail;
    for y in y.iter_mut() {
        *y /= sum;
    }
}

impl Softmax {
    /// Builds the kernel.
    pub fn new() -> Result<Self> {
        let kernel = Kernel::builder("softmax", WGSL)
            .params::<SoftmaxParams>()
            .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, p| {
                let (x, y) = args.split();
                let (rows, cols) = (p.rows as usize, p.cols as usize);
                if rows == 0 || cols == 0 {
                    return;
                }
                // Tasks of at least 16 Ki elements: whole rows, enough of
                // them to amortise rayon's cost when rows are short.
                y[..rows * cols]
                    .par_chunks_mut(cols)
                    .zip(x[..rows * cols].par_chunks(cols))
                    .with_min_len((1 << 14) / cols + 1)
                    .for_each(|(y, x)| softmax_row(x, y));
            })
            .workgroups(|p, _| p.groups as u64)
            .cost(|p, _| p.rows as u64 * p.cols as u64)
            .build()?;
        Ok(Softmax { kernel })
    }

    /// The underlying kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// `y` = the row-wise softmax of `x`, both rows×cols and row-major.
    pub fn run(
        &self,
        rt: &Runtime,
        target: Target,
        x: &Buffer<f32>,
        y: &Buffer<f32>,
        rows: usize,
        cols: usize,
    ) -> Result<RunInfo> {
        let p = Self::params(x, y, rows, cols)?;
        rt.execute(target, &self.kernel, &[x, y], &p)
    }

    /// Submits the softmax of [`run`](Self::run) and returns its task at once.
    pub fn submit(
        &self,
        rt: &Runtime,
        target: Target,
        x: &Buffer<f32>,
        y: &Buffer<f32>,
        rows: usize,
        cols: usize,
    ) -> Result<Task> {
        let p = Self::params(x, y, rows, cols)?;
        rt.submit_to(target, &self.kernel, &[x, y], &p)
    }

    /// The params of a softmax of a rows×cols `x` into `y`, checked.
    pub fn params(
        x: &Buffer<f32>,
        y: &Buffer<f32>,
        rows: usize,
        cols: usize,
    ) -> Result<SoftmaxParams> {
        for (arg, buf) in [("x", x), ("y", y)] {
            if rows.checked_mul(cols) != Some(buf.len()) {
                return Err(invalid(
                    "softmax",
                    arg,
                    format!(
                        "a {rows}×{cols} matrix needs {} elements, but {arg} has {}",
                        rows as u128 * cols as u128,
                        buf.len()
                    ),
                ));
            }
        }
        u32_len("softmax", "x", x.len())?;
        let (rows, cols) = (
            u32_len("softmax", "rows", rows)?,
            u32_len("softmax", "cols", cols)?,
        );
        let seg = segment(cols as usize);
        Ok(SoftmaxParams {
            rows,
            cols,
            seg,
            groups: if cols == 0 {
                0
            } else {
                rows.div_ceil(256 / seg)
            },
        })
    }
}

/// The serial reference in f64.
pub fn reference(x: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    let mut y = Vec::with_capacity(rows * cols);
    for row in x.chunks_exact(cols.max(1)).take(rows) {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let start = y.len();
        y.extend(row.iter().map(|&v| (v as f64 - m).exp()));
        let sum: f64 = y[start..].iter().sum();
        for v in &mut y[start..] {
            *v /= sum;
        }
    }
    y
}

/// A softmax of a seeded random rows×cols matrix; y starts poisoned (NaN).
/// Each row is, at random, one of: logits in [-8, 8); values in [-80, 80);
/// values in [-4, 4) with one dominant value of 100 (`exp(100)` overflows
/// f32); values 1000 + [-4, 4) (every naive exp overflows).
///
/// Tolerance: element `j` of a row with maximum `m` within
/// `ε·yⱼ·(16 + ⌈cols/8⌉ + 3|xⱼ − m| + 3Σₖ yₖ|xₖ − m|) + 2·f32::MIN_POSITIVE`:
/// WGSL lets `exp(a)` be off by `3 + 2|a|` ulp and the rounding of `xⱼ − m`
/// adds `|xⱼ − m|/2` more; the sum's error is the softmax-weighted mean of
/// its terms' errors plus the chunked summation's (`⌈cols/8⌉ + 10`
/// roundings deep on the CPU, at most `⌈cols/seg⌉ + 30` on the GPU, never
/// more than `⌈cols/8⌉ + 16` on either); the division adds 2.5 ulp. GPUs
/// flush subnormals, and llvmpipe's exp flushes results just above them
/// too, hence the absolute `2·f32::MIN_POSITIVE`.
pub struct SoftmaxTrial {
    softmax: Softmax,
    rows: usize,
    cols: usize,
    xs: Vec<f32>,
    x: Buffer<f32>,
    y: Buffer<f32>,
    got: Vec<f32>,
}

/// Seeded rows of the four kinds [`SoftmaxTrial`] describes.
fn random_rows(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = verify::rng(seed);
    let mut xs = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        match rng.random_range(0..4) {
            0 => xs.extend((0..cols).map(|_| rng.random_range(-8.0f32..8.0))),
            1 => xs.extend((0..cols).map(|_| rng.random_range(-80.0f32..80.0))),
            2 => {
                let hot = rng.random_range(0..cols.max(1));
                xs.extend((0..cols).map(|j| {
                    let v = rng.random_range(-4.0f32..4.0);
                    if j == hot { 100.0 } else { v }
                }));
            }
            _ => xs.extend((0..cols).map(|_| 1000.0 + rng.random_range(-4.0f32..4.0))),
        }
    }
    xs
}

/// Prepares a softmax of a rows×cols matrix.
pub fn trial(rt: &Runtime, (rows, cols): (usize, usize), seed: u64) -> Result<SoftmaxTrial> {
    let xs = random_rows(rows, cols, seed);
    Ok(SoftmaxTrial {
        softmax: Softmax::new()?,
        rows,
        cols,
        x: rt.buffer(&xs),
        y: rt.zeros(xs.len()),
        xs,
        got: Vec::new(),
    })
}

impl Trial for SoftmaxTrial {
    fn shape(&self) -> String {
        format!("{}×{}", self.rows, self.cols)
    }
    fn work(&self) -> Work {
        Work::per(self.rows * self.cols, 5.0, 8.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.x, &self.xs)?;
        rt.write(&self.y, &vec![f32::NAN; self.y.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self
            .softmax
            .run(rt, target, &self.x, &self.y, self.rows, self.cols)?;
        rt.read_to_vec(&self.y, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (rows, cols, xs) = (self.rows, self.cols, &self.xs);
        let want = reference(xs, rows, cols);
        // Per row: its maximum, and Σ yₖ|xₖ − m| (the sum's error weight).
        let row_terms: Vec<(f64, f64)> = xs
            .chunks_exact(cols.max(1))
            .zip(want.chunks_exact(cols.max(1)))
            .map(|(x, y)| {
                let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let w = x.iter().zip(y).map(|(&v, y)| y * (m - v as f64)).sum();
                (m, w)
            })
            .collect();
        let eps = f32::EPSILON as f64;
        let depth = 16.0 + cols.div_ceil(8) as f64;
        let cmp = verify::compare(
            self.got.iter().map(|&v| v as f64),
            want.iter().copied(),
            |i| {
                let (m, w) = row_terms[i / cols];
                let a = m - xs[i] as f64;
                eps * want[i] * (depth + 3.0 * a + 3.0 * w) + 2.0 * f32::MIN_POSITIVE as f64
            },
        );
        cmp.into_check(
            self.shape(),
            backend,
            (rows * cols).abs_diff(self.got.len()),
            "ε·yⱼ·(16 + ⌈cols/8⌉ + 3|xⱼ−m| + 3Σₖyₖ|xₖ−m|) + 2·MIN_POSITIVE per element, m the row max",
        )
    }
}

/// Runs a softmax of a seeded random rows×cols matrix and checks it (see
/// [`SoftmaxTrial`]).
pub fn check(rt: &Runtime, target: Target, dims: (usize, usize), seed: u64) -> Result<Check> {
    verify::run_check(&mut trial(rt, dims, seed)?, rt, target)
}

/// Columns of the sample's matrix: a 1,024-token attention row.
const SAMPLE_COLS: usize = 1024;

/// This module's entries in [`samples`](crate::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "softmax",
        about: "row-wise softmax, f32, stable at any magnitude; up to a workgroup per row on the GPU (memory-bound)",
        size_meaning: "rows of 1,024 columns",
        default_size: 4096,
        tour_size: 512,
        prepare: |rt, rows, seed| crate::boxed(trial(rt, (rows, SAMPLE_COLS), seed)),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::verify::cpu_runtime as cpu;

    #[test]
    fn rows_a_naive_exp_overflows_come_out_right() {
        // exp(100) and exp(1000) are infinite in f32.
        let x = [100.0f32, 0.0, -100.0, 1000.0, 1000.0, 999.0];
        let mut y = [f32::NAN; 6];
        for (x, y) in x.chunks_exact(3).zip(y.chunks_exact_mut(3)) {
            softmax_row(x, y);
        }
        let want = reference(&x, 2, 3);
        for (got, want) in y.iter().zip(&want) {
            assert!(
                (*got as f64 - want).abs() <= 1e-6 * want + 1e-30,
                "{y:?} vs {want:?}"
            );
        }
        assert_eq!(y[0], 1.0);
    }

    #[test]
    fn the_check_catches_a_wrong_element() {
        let rt = cpu();
        let mut t = trial(&rt, (5, 40), 1).expect("trial");
        let check = verify::run_check(&mut t, &rt, Target::On(Backend::Cpu)).expect("runs");
        assert!(check.verified(), "{check}");
        // The row's largest output, a thousandth off.
        let (i, _) = t.got[..40]
            .iter()
            .enumerate()
            .fold((0, 0.0), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
        t.got[i] *= 1.001;
        let check = t.verify(Backend::Cpu);
        assert_eq!(
            (check.mismatches, check.first_bad.map(|b| b.0)),
            (1, Some(i))
        );
    }
}

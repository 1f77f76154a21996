//! layernorm: `yᵢⱼ = (xᵢⱼ − μᵢ)/√(σᵢ² + eps)·γⱼ + βⱼ`, layer normalisation
//! along each row of a rows×cols f32 matrix, `μᵢ` and `σᵢ²` the row's mean
//! and population variance, `γ` and `β` one value per column.
//!
//! Per element: 11 floating-point operations (2 for the mean's sum, 4 for
//! the squared deviations', 5 for the output: two subtractions, two
//! multiplies and an add), 8 bytes moved (read x, write y; γ and β are
//! read once per row and stay in cache). Memory-bound.
//!
//! Numerically stable: two passes (the mean, then the squared deviations
//! from it), both over `x − x₀`, `x₀` the row's first element, so a row of
//! 10⁴ + noise keeps the noise's precision; the one-pass `E[x²] − E[x]²`
//! loses every digit there. The GPU gives each row a segment of up to 256
//! invocations (a whole workgroup for long rows, a few invocations for short
//! ones), each sum a tree in workgroup memory; the CPU runs rows in
//! parallel, each sum in eight interleaved, vectorisable lanes.

use pel_runtime::{
    Backend, Buffer, Kernel, Read, ReadWrite, Result, RunInfo, Runtime, Target, Task,
};
use rand::Rng;
use rayon::prelude::*;

use crate::softmax::segment;
use crate::verify::{self, Check, Trial, Work};
use crate::{Sample, invalid, u32_len};

/// The WGSL source.
pub const WGSL: &str = include_str!("../../shaders/layernorm.wgsl");

/// The `eps` of PyTorch's `LayerNorm`, used by the sample.
pub const DEFAULT_EPS: f32 = 1e-5;

/// The shader's uniform block.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LayerNormParams {
    /// Rows.
    pub rows: u32,
    /// Elements per row (and of γ and β).
    pub cols: u32,
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Invocations per row on the GPU: see [`segment`], as for softmax.
    pub seg: u32,
    /// Workgroups: `ceil(rows / (256 / seg))`.
    pub groups: u32,
    /// Padding to the uniform block's 16-byte alignment.
    pub _pad: [u32; 3],
}

/// The layer-norm kernel.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    kernel: Kernel,
}

/// `Σ f(x)` in eight interleaved lanes: vectorisable, and its rounding error
/// grows with `len/8` rather than `len`.
#[inline(always)]
fn lanes_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let tail: f32 = it.remainder().iter().map(|&v| f(v)).sum();
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])) + tail
}

/// One non-empty row, in the shader's order of operations.
fn layernorm_row(x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], eps: f32) {
    let n = x.len() as f32;
    let shift = x[0];
    let mean = lanes_sum(x, |v| v - shift) / n;
    let q = lanes_sum(x, |v| {
        let d = (v - shift) - mean;
        d * d
    });
    let r = 1.0 / (q / n + eps).sqrt();
    for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
        *y = ((x - shift) - mean) * r * g + b;
    }
}

impl LayerNorm {
    /// Builds the kernel.
    pub fn new() -> Result<Self> {
        let kernel = Kernel::builder("layernorm", WGSL)
            .params::<LayerNormParams>()
            .cpu::<(Read<f32>, Read<f32>, Read<f32>, ReadWrite<f32>)>(|args, p| {
                let (x, gamma, beta, y) = args.split();
                let (rows, cols) = (p.rows as usize, p.cols as usize);
                if rows == 0 || cols == 0 {
                    return;
                }
                let eps = p.eps;
                // Tasks of at least 16 Ki elements, in whole rows.
                y[..rows * cols]
                    .par_chunks_mut(cols)
                    .zip(x[..rows * cols].par_chunks(cols))
                    .with_min_len((1 << 14) / cols + 1)
                    .for_each(|(y, x)| layernorm_row(x, gamma, beta, y, eps));
            })
            .workgroups(|p, _| p.groups as u64)
            .cost(|p, _| p.rows as u64 * p.cols as u64)
            .build()?;
        Ok(LayerNorm { kernel })
    }

    /// The underlying kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// `y` = the layer norm of `x` (both rows×cols, row-major) with
    /// per-column `gamma` and `beta` (cols each).
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        rt: &Runtime,
        target: Target,
        x: &Buffer<f32>,
        gamma: &Buffer<f32>,
        beta: &Buffer<f32>,
        y: &Buffer<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<RunInfo> {
        let p = Self::params(x, gamma, beta, y, rows, cols, eps)?;
        rt.execute(target, &self.kernel, &[x, gamma, beta, y], &p)
    }

    /// Submits the layer norm of [`run`](Self::run) and returns its task at
    /// once.
    #[allow(clippy::too_many_arguments)]
    pub fn submit(
        &self,
        rt: &Runtime,
        target: Target,
        x: &Buffer<f32>,
        gamma: &Buffer<f32>,
        beta: &Buffer<f32>,
        y: &Buffer<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<Task> {
        let p = Self::params(x, gamma, beta, y, rows, cols, eps)?;
        rt.submit_to(target, &self.kernel, &[x, gamma, beta, y], &p)
    }

    /// The params of a layer norm, checked: `x` and `y` rows×cols, `gamma`
    /// and `beta` cols, `eps` finite and not negative.
    pub fn params(
        x: &Buffer<f32>,
        gamma: &Buffer<f32>,
        beta: &Buffer<f32>,
        y: &Buffer<f32>,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<LayerNormParams> {
        for (arg, buf) in [("x", x), ("y", y)] {
            if rows.checked_mul(cols) != Some(buf.len()) {
                return Err(invalid(
                    "layernorm",
                    arg,
                    format!(
                        "a {rows}×{cols} matrix needs {} elements, but {arg} has {}",
                        rows as u128 * cols as u128,
                        buf.len()
                    ),
                ));
            }
        }
        for (arg, buf) in [("gamma", gamma), ("beta", beta)] {
            if buf.len() != cols {
                return Err(invalid(
                    "layernorm",
                    arg,
                    format!(
                        "{arg} has {} elements but the matrix has {cols} columns; it needs one per column",
                        buf.len()
                    ),
                ));
            }
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(invalid(
                "layernorm",
                "eps",
                format!("eps is {eps}; it must be finite and at least 0 (1e-5 is usual)"),
            ));
        }
        u32_len("layernorm", "x", x.len())?;
        let (rows, cols) = (
            u32_len("layernorm", "rows", rows)?,
            u32_len("layernorm", "cols", cols)?,
        );
        let seg = segment(cols as usize);
        Ok(LayerNormParams {
            rows,
            cols,
            eps,
            seg,
            groups: if cols == 0 {
                0
            } else {
                rows.div_ceil(256 / seg)
            },
            _pad: [0; 3],
        })
    }
}

/// The serial reference in f64 (two-pass).
pub fn reference(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    cols: usize,
    eps: f32,
) -> Vec<f64> {
    let mut y = Vec::with_capacity(rows * cols);
    for row in x.chunks_exact(cols.max(1)).take(rows) {
        let (mean, sigma) = mean_sigma(row, eps);
        y.extend(
            row.iter()
                .zip(gamma.iter().zip(beta))
                .map(|(&v, (&g, &b))| (v as f64 - mean) / sigma * g as f64 + b as f64),
        );
    }
    y
}

/// A row's mean and `√(σ² + eps)`, in f64.
fn mean_sigma(row: &[f32], eps: f32) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, (var + eps as f64).sqrt())
}

/// A layer norm of a seeded random rows×cols matrix with eps = 1e-5, γ in
/// [0.5, 1.5) and β in [-0.5, 0.5); y starts poisoned (NaN). Each row is, at
/// random, one of: values in [-3, 3); 10⁴ + [-1, 1) (a large common offset);
/// values in [-100, 100); 5 + [-10⁻³, 10⁻³) (variance far below eps).
///
/// Tolerance: element `j` within
/// `(⌈cols/8⌉ + 16)·ε·(|γⱼ|·(|xⱼ − μ| + |xⱼ − x₀| + mean|x − x₀|)/√(σ² + eps) + |βⱼ|)`,
/// `x₀` the row's first element (both implementations sum `x − x₀`): the
/// worst case of the chunked sums (`⌈cols/8⌉ + 10` roundings deep on the
/// CPU, at most `⌈cols/seg⌉ + 30` on the GPU, never more than
/// `⌈cols/8⌉ + 16` on either) carried through the mean, the variance,
/// WGSL's 2-ulp `inverseSqrt` and the output's multiply-adds, with a factor
/// of 2 to spare (a rounding is off by at most ε/2).
pub struct LayerNormTrial {
    layernorm: LayerNorm,
    rows: usize,
    cols: usize,
    xs: Vec<f32>,
    gs: Vec<f32>,
    bs: Vec<f32>,
    x: Buffer<f32>,
    gamma: Buffer<f32>,
    beta: Buffer<f32>,
    y: Buffer<f32>,
    got: Vec<f32>,
}

/// Seeded rows of the four kinds [`LayerNormTrial`] describes.
fn random_rows(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = verify::rng(seed);
    let mut xs = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let (offset, half) = match rng.random_range(0..4) {
            0 => (0.0f32, 3.0f32),
            1 => (1e4, 1.0),
            2 => (0.0, 100.0),
            _ => (5.0, 1e-3),
        };
        xs.extend((0..cols).map(|_| offset + rng.random_range(-half..half)));
    }
    xs
}

/// Prepares a layer norm of a rows×cols matrix.
pub fn trial(rt: &Runtime, (rows, cols): (usize, usize), seed: u64) -> Result<LayerNormTrial> {
    let xs = random_rows(rows, cols, seed);
    let gs = verify::random_f32(seed + 1, cols, 0.5, 1.5);
    let bs = verify::random_f32(seed + 2, cols, -0.5, 0.5);
    Ok(LayerNormTrial {
        layernorm: LayerNorm::new()?,
        rows,
        cols,
        x: rt.buffer(&xs),
        gamma: rt.buffer(&gs),
        beta: rt.buffer(&bs),
        y: rt.zeros(xs.len()),
        xs,
        gs,
        bs,
        got: Vec::new(),
    })
}

impl Trial for LayerNormTrial {
    fn shape(&self) -> String {
        format!("{}×{}", self.rows, self.cols)
    }
    fn work(&self) -> Work {
        Work::per(self.rows * self.cols, 11.0, 8.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.x, &self.xs)?;
        rt.write(&self.gamma, &self.gs)?;
        rt.write(&self.beta, &self.bs)?;
        rt.write(&self.y, &vec![f32::NAN; self.y.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.layernorm.run(
            rt,
            target,
            &self.x,
            &self.gamma,
            &self.beta,
            &self.y,
            self.rows,
            self.cols,
            DEFAULT_EPS,
        )?;
        rt.read_to_vec(&self.y, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (rows, cols, xs, gs, bs) = (self.rows, self.cols, &self.xs, &self.gs, &self.bs);
        let want = reference(xs, gs, bs, rows, cols, DEFAULT_EPS);
        // Per row: μ, √(σ² + eps), x₀ and mean|x − x₀|.
        let row_terms: Vec<(f64, f64, f64, f64)> = xs
            .chunks_exact(cols.max(1))
            .map(|row| {
                let (mean, sigma) = mean_sigma(row, DEFAULT_EPS);
                let x0 = row[0] as f64;
                let spread =
                    row.iter().map(|&v| (v as f64 - x0).abs()).sum::<f64>() / row.len() as f64;
                (mean, sigma, x0, spread)
            })
            .collect();
        let scale = (cols.div_ceil(8) as f64 + 16.0) * f32::EPSILON as f64;
        let cmp = verify::compare(self.got.iter().map(|&v| v as f64), want, |i| {
            let (mean, sigma, x0, spread) = row_terms[i / cols];
            let (x, j) = (xs[i] as f64, i % cols);
            let centred = (x - mean).abs() + (x - x0).abs() + spread;
            scale * ((gs[j] as f64).abs() * centred / sigma + (bs[j] as f64).abs())
        });
        cmp.into_check(
            self.shape(),
            backend,
            (rows * cols).abs_diff(self.got.len()),
            "(⌈cols/8⌉+16)·ε·(|γⱼ|(|xⱼ−μ| + |xⱼ−x₀| + mean|x−x₀|)/√(σ²+eps) + |βⱼ|) per element",
        )
    }
}

/// Runs a layer norm of a seeded random rows×cols matrix and checks it (see
/// [`LayerNormTrial`]).
pub fn check(rt: &Runtime, target: Target, dims: (usize, usize), seed: u64) -> Result<Check> {
    verify::run_check(&mut trial(rt, dims, seed)?, rt, target)
}

/// Columns of the sample's matrix: a transformer's hidden size.
const SAMPLE_COLS: usize = 1024;

/// This module's entries in [`samples`](crate::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "layernorm",
        about: "row-wise layer normalisation with γ and β, f32, two-pass and shifted so offsets cost no precision (memory-bound)",
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
    fn a_large_common_offset_costs_no_precision() {
        let cols = 1000;
        let x: Vec<f32> = verify::random_f32(5, cols, -1.0, 1.0)
            .into_iter()
            .map(|v| 1e4 + v)
            .collect();
        let (gamma, beta) = (vec![1.0f32; cols], vec![0.0f32; cols]);
        let want = reference(&x, &gamma, &beta, 1, cols, DEFAULT_EPS);
        let mut y = vec![f32::NAN; cols];
        layernorm_row(&x, &gamma, &beta, &mut y, DEFAULT_EPS);
        let err = |y: &[f32]| {
            y.iter()
                .zip(&want)
                .map(|(&g, w)| (g as f64 - w).abs())
                .fold(0.0, f64::max)
        };
        assert!(err(&y) < 1e-4, "shifted two-pass: error {}", err(&y));

        // The one-pass E[x²] − E[x]² in f32 loses the noise entirely.
        let n = cols as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| v * v).sum::<f32>() / n - mean * mean;
        let naive: Vec<f32> = x
            .iter()
            .map(|v| (v - mean) / (var + DEFAULT_EPS).max(0.0).sqrt())
            .collect();
        assert!(err(&naive) > 0.1, "one-pass: error {}", err(&naive));
    }

    #[test]
    fn the_check_catches_a_wrong_element() {
        let rt = cpu();
        let mut t = trial(&rt, (6, 33), 2).expect("trial");
        let check = verify::run_check(&mut t, &rt, Target::On(Backend::Cpu)).expect("runs");
        assert!(check.verified(), "{check}");
        t.got[40] += 1e-3;
        let check = t.verify(Backend::Cpu);
        assert_eq!(
            (check.mismatches, check.first_bad.map(|b| b.0)),
            (1, Some(40))
        );
    }
}

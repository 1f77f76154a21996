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

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result};

use crate::launch::{builder, one_kernel};
use crate::par::{for_each_row, lanes_sum};
use crate::softmax::row_layout;
use crate::uniform::wgsl_struct;
use crate::{ensure, expect_2d};

/// The `eps` of PyTorch's `LayerNorm`, used by the sample.
pub const DEFAULT_EPS: f32 = 1e-5;

wgsl_struct! {
    layer_norm_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct LayerNormParams {
        /// Rows.
        pub rows: u32,
        /// Elements per row (and of γ and β).
        pub cols: u32,
        /// Added to the variance before the square root.
        pub eps: f32,
        /// Invocations per row on the GPU: see [`segment`](crate::softmax::segment), as for softmax.
        pub seg: u32,
        /// Workgroups: `ceil(rows / (256 / seg))`.
        pub groups: u32,
        /// Padding to the uniform block's 16-byte alignment.
        pub _pad0: u32,
        /// Padding.
        pub _pad1: u32,
        /// Padding.
        pub _pad2: u32,
    }
}

/// The WGSL source.
pub const WGSL: &str = concat!(
    include_str!("../../shaders/layernorm.wgsl"),
    include_str!("../../shaders/lib/segments.wgsl"),
    layer_norm_params!(),
);

/// One non-empty row, in the shader's order of operations.
pub(crate) fn layernorm_row(x: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], eps: f32) {
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

one_kernel! {
    /// The layer-norm kernel.
    LayerNorm = build();
    /// `y` = the layer norm of `x` (both rows×cols, row-major) with
    /// per-column `gamma` and `beta` (cols each).
    run,
    /// Submits the layer norm of [`run`](Self::run) and returns its task at
    /// once.
    submit(x: &Buffer<f32>, gamma: &Buffer<f32>, beta: &Buffer<f32>, y: &Buffer<f32>, rows: usize, cols: usize, eps: f32)
        => [x, gamma, beta, y], Self::params(x, gamma, beta, y, rows, cols, eps);
}

fn build() -> Result<Kernel> {
    type Args = (Read<f32>, Read<f32>, Read<f32>, ReadWrite<f32>);
    builder::<LayerNormParams, Args>("layernorm", WGSL, |(x, gamma, beta, y), p| {
        let eps = p.eps;
        for_each_row(y, x, p.rows as usize, p.cols as usize, |y, x| {
            layernorm_row(x, gamma, beta, y, eps)
        });
    })
    .workgroups(|p, _| p.groups as u64)
    .cost(|p, _| p.rows as u64 * p.cols as u64)
    .build()
}

impl LayerNorm {
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
            expect_2d("layernorm", arg, buf.len(), (rows, cols), "matrix")?;
        }
        for (arg, buf) in [("gamma", gamma), ("beta", beta)] {
            ensure(buf.len() == cols, "layernorm", arg, || {
                format!(
                    "{arg} has {} elements but the matrix has {cols} columns; it needs one per column",
                    buf.len()
                )
            })?;
        }
        ensure(eps.is_finite() && eps >= 0.0, "layernorm", "eps", || {
            format!("eps is {eps}; it must be finite and at least 0 (1e-5 is usual)")
        })?;
        let [rows, cols, seg, groups] = row_layout("layernorm", x.len(), rows, cols)?;
        Ok(LayerNormParams {
            rows,
            cols,
            eps,
            seg,
            groups,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
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
pub(crate) fn mean_sigma(row: &[f32], eps: f32) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, (var + eps as f64).sqrt())
}

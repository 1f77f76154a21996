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

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result};

use crate::launch::{builder, one_kernel};
use crate::par::for_each_row;
use crate::uniform::wgsl_struct;
use crate::{expect_2d, u32_len};

wgsl_struct! {
    softmax_params => Params;
    /// The shader's uniform block.
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
}

/// The WGSL source.
pub const WGSL: &str = concat!(
    include_str!("../../shaders/softmax.wgsl"),
    include_str!("../../shaders/lib/segments.wgsl"),
    softmax_params!(),
);

/// Invocations of a 256-invocation workgroup that share one row of `cols`
/// elements: the smallest power of two that covers the row, at most 256.
/// Short rows are packed many to a workgroup rather than leaving most of
/// one idle.
pub fn segment(cols: usize) -> u32 {
    cols.clamp(1, 256).next_power_of_two() as u32
}

/// The rows, columns, segment and workgroups of a row-wise pass over a
/// rows×cols `x` of `len` elements (checked to match), as the shader takes
/// them: each row gets a [`segment`] of a 256-invocation workgroup.
pub(crate) fn row_layout(kernel: &str, len: usize, rows: usize, cols: usize) -> Result<[u32; 4]> {
    u32_len(kernel, "x", len)?;
    let (rows, cols) = (
        u32_len(kernel, "rows", rows)?,
        u32_len(kernel, "cols", cols)?,
    );
    let seg = segment(cols as usize);
    let groups = if cols == 0 {
        0
    } else {
        rows.div_ceil(256 / seg)
    };
    Ok([rows, cols, seg, groups])
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
pub(crate) fn softmax_row(x: &[f32], y: &mut [f32]) {
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

one_kernel! {
    /// The row-wise softmax kernel.
    Softmax = build();
    /// `y` = the row-wise softmax of `x`, both rows×cols and row-major.
    run,
    /// Submits the softmax of [`run`](Self::run) and returns its task at once.
    submit(x: &Buffer<f32>, y: &Buffer<f32>, rows: usize, cols: usize) => [x, y], Self::params(x, y, rows, cols);
}

fn build() -> Result<Kernel> {
    builder::<SoftmaxParams, (Read<f32>, ReadWrite<f32>)>("softmax", WGSL, |(x, y), p| {
        for_each_row(y, x, p.rows as usize, p.cols as usize, |y, x| {
            softmax_row(x, y)
        });
    })
    .workgroups(|p, _| p.groups as u64)
    .cost(|p, _| p.rows as u64 * p.cols as u64)
    .build()
}

impl Softmax {
    /// The params of a softmax of a rows×cols `x` into `y`, checked.
    pub fn params(
        x: &Buffer<f32>,
        y: &Buffer<f32>,
        rows: usize,
        cols: usize,
    ) -> Result<SoftmaxParams> {
        for (arg, buf) in [("x", x), ("y", y)] {
            expect_2d("softmax", arg, buf.len(), (rows, cols), "matrix")?;
        }
        let [rows, cols, seg, groups] = row_layout("softmax", x.len(), rows, cols)?;
        Ok(SoftmaxParams {
            rows,
            cols,
            seg,
            groups,
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

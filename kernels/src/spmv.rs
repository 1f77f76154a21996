//! spmv: `y = A·x` for a sparse f32 matrix A in CSR form.
//!
//! Per non-zero: 2 floating-point operations, 12 bytes read (its value, its
//! column index, and the element of x it picks, unless a cache still holds
//! it); per row, 4 bytes of row pointer read and 4 bytes of y written. So
//! `2·nnz` flops over `12·nnz + 8·rows` bytes. Memory-bound, with irregular
//! reads of x.
//!
//! [`CsrMatrix`] validates the matrix once, when it is built, and holds its
//! three arrays as pel buffers; every run then reads them in place. The GPU
//! shader gives each row 8 invocations that share out its non-zeros and add
//! their partial sums in workgroup memory; the CPU side runs blocks of rows
//! as rayon tasks, each row's dot product with four accumulators.

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result, Runtime};
use rand::Rng;
use rayon::prelude::*;

use crate::launch::{builder, one_kernel};
use crate::samples::verify;
use crate::uniform::wgsl_struct;
use crate::{ensure, invalid, u32_len};

/// Rows one workgroup computes (8 invocations each).
pub const ROWS_PER_GROUP: usize = 32;

/// Rows per rayon task.
const TASK_ROWS: usize = 1024;

wgsl_struct! {
    spmv_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct SpmvParams {
        /// Rows of A (elements of y).
        pub rows: u32,
    }
}

/// The WGSL source.
pub const WGSL: &str = concat!(include_str!("../../shaders/spmv.wgsl"), spmv_params!());

/// A sparse f32 matrix in compressed sparse row (CSR) form, validated and
/// held in pel buffers.
///
/// Row `i`'s non-zeros are `values[row_ptr[i]..row_ptr[i + 1]]`, in the
/// columns `col_idx[row_ptr[i]..row_ptr[i + 1]]` (in any order; a repeated
/// column adds up).
#[derive(Debug, Clone)]
pub struct CsrMatrix {
    rows: usize,
    cols: usize,
    row_ptr: Buffer<u32>,
    col_idx: Buffer<u32>,
    values: Buffer<f32>,
}

impl CsrMatrix {
    /// Checks a CSR matrix of `rows`×`cols` and copies it into buffers of
    /// `rt`. `row_ptr` must have `rows + 1` entries, start at 0, never
    /// decrease, and end at the number of non-zeros, which is the length of
    /// both `col_idx` and `values`; every column index must be below `cols`.
    /// Anything else is an
    /// [`Error::InvalidInput`](pel_runtime::Error::InvalidInput) naming the
    /// first offending entry.
    pub fn new(
        rt: &Runtime,
        rows: usize,
        cols: usize,
        row_ptr: &[u32],
        col_idx: &[u32],
        values: &[f32],
    ) -> Result<CsrMatrix> {
        validate(rows, cols, row_ptr, col_idx, values)?;
        Ok(CsrMatrix {
            rows,
            cols,
            row_ptr: rt.buffer(row_ptr),
            col_idx: rt.buffer(col_idx),
            values: rt.buffer(values),
        })
    }

    /// Rows (the length of y).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (the length of x).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Stored non-zeros.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// The row pointers, `rows + 1` of them.
    pub fn row_ptr(&self) -> &Buffer<u32> {
        &self.row_ptr
    }

    /// The column index of each non-zero.
    pub fn col_idx(&self) -> &Buffer<u32> {
        &self.col_idx
    }

    /// The value of each non-zero.
    pub fn values(&self) -> &Buffer<f32> {
        &self.values
    }
}

/// Every rule of [`CsrMatrix::new`], with the first entry that breaks one.
fn validate(
    rows: usize,
    cols: usize,
    row_ptr: &[u32],
    col_idx: &[u32],
    values: &[f32],
) -> Result<()> {
    let err = |arg: &str, message: String| Err(invalid("spmv", arg, message));
    u32_len("spmv", "rows", rows)?;
    let cols32 = u32_len("spmv", "cols", cols)?;
    let nnz = u32_len("spmv", "col_idx", col_idx.len())?;
    if rows.checked_add(1) != Some(row_ptr.len()) {
        return err(
            "row_ptr",
            format!(
                "row_ptr has {} entries; a matrix of {rows} rows needs rows + 1 = {}",
                row_ptr.len(),
                rows as u128 + 1
            ),
        );
    }
    if values.len() != col_idx.len() {
        return err(
            "values",
            format!(
                "values has {} entries but col_idx has {}; there is one of each per non-zero",
                values.len(),
                col_idx.len()
            ),
        );
    }
    if row_ptr[0] != 0 {
        return err(
            "row_ptr",
            format!("row_ptr[0] is {}; it must be 0", row_ptr[0]),
        );
    }
    if let Some(i) = row_ptr.par_windows(2).position_first(|w| w[1] < w[0]) {
        return err(
            "row_ptr",
            format!(
                "row_ptr[{}] = {} is less than row_ptr[{i}] = {}; row pointers never decrease",
                i + 1,
                row_ptr[i + 1],
                row_ptr[i]
            ),
        );
    }
    if row_ptr[rows] != nnz {
        return err(
            "row_ptr",
            format!(
                "row_ptr[{rows}] (the last) is {} but there are {nnz} non-zeros (the length of col_idx and values); they must match",
                row_ptr[rows]
            ),
        );
    }
    if let Some(k) = col_idx.par_iter().position_first(|&c| c >= cols32) {
        // The row holding non-zero k: the last whose start is at or before k.
        let row = row_ptr.partition_point(|&s| s as usize <= k) - 1;
        return err(
            "col_idx",
            format!(
                "col_idx[{k}] = {} (in row {row}) is out of range; the matrix has {cols} columns",
                col_idx[k]
            ),
        );
    }
    Ok(())
}

/// One row's dot product with x: four accumulators, to overlap the
/// irregular loads of x rather than wait on one chain of additions.
#[inline]
fn row_dot(vals: &[f32], cols: &[u32], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    let (mut v4, mut c4) = (vals.chunks_exact(4), cols.chunks_exact(4));
    for (v, c) in (&mut v4).zip(&mut c4) {
        for l in 0..4 {
            acc[l] += v[l] * x[c[l] as usize];
        }
    }
    let tail: f32 = v4
        .remainder()
        .iter()
        .zip(c4.remainder())
        .map(|(&v, &c)| v * x[c as usize])
        .sum();
    ((acc[0] + acc[2]) + (acc[1] + acc[3])) + tail
}

one_kernel! {
    /// The spmv kernel.
    Spmv = build();
    /// `y = a·x` at `target`; x has `a.cols()` elements and y `a.rows()`.
    run,
    /// Submits `y = a·x` at `target` and returns its task at once.
    submit(a: &CsrMatrix, x: &Buffer<f32>, y: &Buffer<f32>)
        => [&a.row_ptr, &a.col_idx, &a.values, x, y], Self::params(a, x, y);
}

fn build() -> Result<Kernel> {
    type Args = (Read<u32>, Read<u32>, Read<f32>, Read<f32>, ReadWrite<f32>);
    builder::<SpmvParams, Args>("spmv", WGSL, |(row_ptr, col_idx, values, x, y), p| {
        y[..p.rows as usize]
            .par_chunks_mut(TASK_ROWS)
            .enumerate()
            .for_each(|(t, ys)| {
                let ptr = &row_ptr[t * TASK_ROWS..];
                for (y, w) in ys.iter_mut().zip(ptr.windows(2)) {
                    let (lo, hi) = (w[0] as usize, w[1] as usize);
                    *y = row_dot(&values[lo..hi], &col_idx[lo..hi], x);
                }
            });
    })
    .workgroups(|p, _| (p.rows as u64).div_ceil(ROWS_PER_GROUP as u64))
    // Non-zeros and rows: what the run time grows with.
    .cost(|p, lens| lens[1] as u64 + p.rows as u64)
    .build()
}

impl Spmv {
    fn params(a: &CsrMatrix, x: &Buffer<f32>, y: &Buffer<f32>) -> Result<SpmvParams> {
        for (arg, buf, want, what) in [("x", x, a.cols, "columns"), ("y", y, a.rows, "rows")] {
            ensure(buf.len() == want, "spmv", arg, || {
                format!(
                    "{arg} has {} elements but the {}×{} matrix has {want} {what}; they must match",
                    buf.len(),
                    a.rows,
                    a.cols
                )
            })?;
        }
        Ok(SpmvParams {
            rows: a.rows as u32,
        })
    }
}

/// The serial reference in f64: y, and `Σ_j |a_ij·x_j|` per row (for the
/// tolerance). Expects a valid CSR matrix (see [`CsrMatrix::new`]).
pub fn reference(
    row_ptr: &[u32],
    col_idx: &[u32],
    values: &[f32],
    x: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    row_ptr
        .windows(2)
        .map(|w| {
            (w[0] as usize..w[1] as usize).fold((0.0, 0.0), |(s, m), k| {
                let t = values[k] as f64 * x[col_idx[k] as usize] as f64;
                (s + t, m + t.abs())
            })
        })
        .unzip()
}

/// A seeded random `rows`×`cols` CSR matrix with `nnz` non-zeros (none when
/// either dimension is 0): each non-zero goes to a random row, weighted so
/// that about 1 row in 8 stays empty and 1 in 32 gets 16 times as many as
/// the others; columns are random (sorted in each row), values in [-1, 1).
pub fn random_csr(
    seed: u64,
    rows: usize,
    cols: usize,
    nnz: usize,
) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let mut rng = verify::rng(seed);
    let nnz = if rows == 0 || cols == 0 { 0 } else { nnz };
    // Cumulative row weights; a non-zero's row is where a uniform draw falls.
    let mut total = 0u64;
    let mut cum: Vec<u64> = (0..rows)
        .map(|_| {
            total += match rng.random_range(0..32) {
                0..4 => 0,
                4 => 16,
                _ => 1,
            };
            total
        })
        .collect();
    if total == 0 && rows > 0 {
        cum.iter_mut().for_each(|c| *c += 1);
        total = 1;
    }
    let mut counts = vec![0u32; rows];
    for _ in 0..nnz {
        let draw = rng.random_range(0..total);
        counts[cum.partition_point(|&c| c <= draw)] += 1;
    }
    let mut row_ptr = Vec::with_capacity(rows + 1);
    row_ptr.push(0u32);
    let mut col_idx = Vec::with_capacity(nnz);
    for &c in &counts {
        let start = col_idx.len();
        col_idx.extend((0..c).map(|_| rng.random_range(0..cols as u32)));
        col_idx[start..].sort_unstable();
        row_ptr.push(col_idx.len() as u32);
    }
    let values = verify::random_f32(seed + 1, nnz, -1.0, 1.0);
    (row_ptr, col_idx, values)
}

/// How many ε of `Σ_j |a_ij·x_j|` a row may be off by.
pub(crate) const TOL_EPS: f64 = 4.0;

//! The spmv sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::spmv`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};

use super::Sample;
use super::verify::{self, Check, Trial, Work};
use crate::spmv::*;

/// y = A·x for a seeded random CSR matrix (see [`random_csr`]) and x in
/// [-1, 1); y starts poisoned (NaN).
///
/// Tolerance: each `y[i]` within `4·ε·Σ_j |a_ij·x_j|` of the f64 reference.
/// An f32 dot product of k terms may be off by up to about k·ε of that sum
/// in the worst case, whatever the order of its additions; with random
/// signs the errors cancel, and the worst seen stays well within 4ε (each
/// check prints its worst as a fraction of the tolerance).
pub struct SpmvTrial {
    spmv: Spmv,
    dims: (usize, usize, usize),
    row_ptr: Vec<u32>,
    col_idx: Vec<u32>,
    values: Vec<f32>,
    xs: Vec<f32>,
    a: CsrMatrix,
    x: Buffer<f32>,
    y: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares y = A·x for a `rows`×`cols` matrix with `nnz` non-zeros.
pub fn trial(
    rt: &Runtime,
    (rows, cols, nnz): (usize, usize, usize),
    seed: u64,
) -> Result<SpmvTrial> {
    let (row_ptr, col_idx, values) = random_csr(seed, rows, cols, nnz);
    let xs = verify::random_f32(seed + 2, cols, -1.0, 1.0);
    Ok(SpmvTrial {
        spmv: Spmv::new()?,
        dims: (rows, cols, col_idx.len()),
        a: CsrMatrix::new(rt, rows, cols, &row_ptr, &col_idx, &values)?,
        x: rt.buffer(&xs),
        y: rt.zeros(rows),
        row_ptr,
        col_idx,
        values,
        xs,
        got: Vec::new(),
    })
}

impl Trial for SpmvTrial {
    fn shape(&self) -> String {
        let (rows, cols, nnz) = self.dims;
        format!("{rows}×{cols}, {nnz} nz")
    }
    fn work(&self) -> Work {
        let (rows, _, nnz) = self.dims;
        Work {
            flops: 2.0 * nnz as f64,
            bytes: (12 * nnz + 8 * rows) as f64,
        }
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.x, &self.xs)?;
        rt.write(&self.y, &vec![f32::NAN; self.y.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.spmv.run(rt, target, &self.a, &self.x, &self.y)?;
        rt.read_to_vec(&self.y, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (want, mag) = reference(&self.row_ptr, &self.col_idx, &self.values, &self.xs);
        let eps = f32::EPSILON as f64;
        let c = verify::compare(self.got.iter().map(|&v| v as f64), want, |i| {
            TOL_EPS * eps * mag[i] + f32::MIN_POSITIVE as f64
        });
        c.into_check(
            self.shape(),
            backend,
            self.dims.0.abs_diff(self.got.len()),
            "4·ε·Σ|a_ij·x_j| per row",
        )
    }
}

/// Multiplies a seeded random CSR matrix by a vector and checks it (see
/// [`SpmvTrial`]).
pub fn check(
    rt: &Runtime,
    target: Target,
    dims: (usize, usize, usize),
    seed: u64,
) -> Result<Check> {
    verify::run_check(&mut trial(rt, dims, seed)?, rt, target)
}

/// Average non-zeros per row of the sample's matrices.
const SAMPLE_ROW_NNZ: usize = 8;

/// This module's entries in [`samples`](super::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "spmv",
        about: "y = A·x, f32 CSR, varying non-zeros per row; 8 invocations per row on the GPU (memory-bound)",
        size_meaning: "non-zeros, in a square matrix with 8 per row on average",
        default_size: 1 << 21,
        tour_size: 1 << 17,
        prepare: |rt, nnz, seed| {
            let rows = nnz.div_ceil(SAMPLE_ROW_NNZ);
            super::boxed(trial(rt, (rows, rows, nnz), seed))
        },
    }]
}

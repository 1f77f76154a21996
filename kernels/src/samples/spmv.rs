//! The spmv sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::spmv`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::spmv::*;

/// y = A·x for a seeded random CSR matrix (see [`random_csr`]) and x in
/// [-1, 1); y starts poisoned (NaN).
///
/// Tolerance: each `y[i]` within `4·ε·Σ_j |a_ij·x_j|` of the f64 reference.
/// An f32 dot product of k terms may be off by up to about k·ε of that sum
/// in the worst case, whatever the order of its additions; with random
/// signs the errors cancel, and the worst seen stays well within 4ε (each
/// check prints its worst as a fraction of the tolerance).
pub type SpmvTrial = Sampled<SpmvProblem>;

/// The inputs of a [`SpmvTrial`], the matrix's CSR arrays kept on the host
/// for the reference.
pub struct SpmvProblem {
    spmv: Spmv,
    dims: (usize, usize, usize),
    csr: (Vec<u32>, Vec<u32>, Vec<f32>),
    a: CsrMatrix,
    x: Input<f32>,
}

/// Prepares y = A·x for a `rows`×`cols` matrix with `nnz` non-zeros.
pub fn trial(
    rt: &Runtime,
    (rows, cols, nnz): (usize, usize, usize),
    seed: u64,
) -> Result<SpmvTrial> {
    let (row_ptr, col_idx, values) = random_csr(seed, rows, cols, nnz);
    let problem = SpmvProblem {
        spmv: Spmv::new()?,
        dims: (rows, cols, col_idx.len()),
        a: CsrMatrix::new(rt, rows, cols, &row_ptr, &col_idx, &values)?,
        csr: (row_ptr, col_idx, values),
        x: Input::new(rt, verify::random_f32(seed + 2, cols, -1.0, 1.0)),
    };
    Ok(Sampled::poisoned(rt, problem, rows, f32::NAN))
}

impl Problem for SpmvProblem {
    type Out = f32;
    const TOLERANCE: &'static str = "4·ε·Σ|a_ij·x_j| per row";
    fn shape(&self) -> String {
        let (rows, cols, nnz) = self.dims;
        format!("{rows}×{cols}, {nnz} nz")
    }
    fn work(&self, _: &[f32]) -> Work {
        let (rows, _, nnz) = self.dims;
        Work {
            flops: 2.0 * nnz as f64,
            bytes: (12 * nnz + 8 * rows) as f64,
        }
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.x.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, y: &Buffer<f32>) -> Result<RunInfo> {
        self.spmv.run(rt, target, &self.a, self.x.buf(), y)
    }
    fn compare(&mut self, got: &[f32]) -> Compare {
        let (row_ptr, col_idx, values) = &self.csr;
        let (want, mag) = reference(row_ptr, col_idx, values, &self.x);
        let eps = f32::EPSILON as f64;
        verify::compare(verify::f64s(got), want, |i| {
            TOL_EPS * eps * mag[i] + f32::MIN_POSITIVE as f64
        })
    }
}

/// Average non-zeros per row of the sample's matrices.
pub(crate) const SAMPLE_ROW_NNZ: usize = 8;

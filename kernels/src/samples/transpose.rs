//! The transpose sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::transpose`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::transpose::*;

/// The transpose of a seeded random m×n matrix with values in [-1, 1); B
/// starts poisoned (NaN).
///
/// Tolerance: none; every element must equal the reference's exactly.
pub type TransposeTrial = Sampled<TransposeProblem>;

/// The input of a [`TransposeTrial`].
pub struct TransposeProblem {
    transpose: Transpose,
    dims: (usize, usize),
    a: Input<f32>,
}

/// Prepares the transpose of an m×n matrix.
pub fn trial(rt: &Runtime, (m, n): (usize, usize), seed: u64) -> Result<TransposeTrial> {
    let problem = TransposeProblem {
        transpose: Transpose::new()?,
        dims: (m, n),
        a: Input::new(rt, verify::random_f32(seed, m * n, -1.0, 1.0)),
    };
    Ok(Sampled::poisoned(rt, problem, m * n, f32::NAN))
}

impl Problem for TransposeProblem {
    type Out = f32;
    const TOLERANCE: &'static str = "exact";
    fn shape(&self) -> String {
        format!("{}×{}", self.dims.0, self.dims.1)
    }
    fn work(&self, _: &[f32]) -> Work {
        Work::per(self.a.len(), 0.0, 8.0)
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.a.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, b: &Buffer<f32>) -> Result<RunInfo> {
        let (m, n) = self.dims;
        self.transpose.run(rt, target, self.a.buf(), b, m, n)
    }
    fn compare(&mut self, got: &[f32]) -> Compare {
        let (m, n) = self.dims;
        verify::exact(got, &reference(&self.a, m, n))
    }
}

/// The m×n shape `pel run transpose --size N` uses: near-square, m·n ≤ N.
pub(crate) fn shape_for(elements: usize) -> (usize, usize) {
    let m = (elements as f64).sqrt().round().max(1.0) as usize;
    (m, elements / m)
}

//! The transpose sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::transpose`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};

use super::Sample;
use super::verify::{self, Check, Trial, Work};
use crate::transpose::*;

/// The transpose of a seeded random m×n matrix with values in [-1, 1); B
/// starts poisoned (NaN).
///
/// Tolerance: none; every element must equal the reference's exactly.
pub struct TransposeTrial {
    transpose: Transpose,
    dims: (usize, usize),
    av: Vec<f32>,
    a: Buffer<f32>,
    b: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares the transpose of an m×n matrix.
pub fn trial(rt: &Runtime, (m, n): (usize, usize), seed: u64) -> Result<TransposeTrial> {
    let av = verify::random_f32(seed, m * n, -1.0, 1.0);
    Ok(TransposeTrial {
        transpose: Transpose::new()?,
        dims: (m, n),
        a: rt.buffer(&av),
        b: rt.zeros(m * n),
        av,
        got: Vec::new(),
    })
}

impl Trial for TransposeTrial {
    fn shape(&self) -> String {
        format!("{}×{}", self.dims.0, self.dims.1)
    }
    fn work(&self) -> Work {
        Work::per(self.dims.0 * self.dims.1, 0.0, 8.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.a, &self.av)?;
        rt.write(&self.b, &vec![f32::NAN; self.b.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let (m, n) = self.dims;
        let info = self.transpose.run(rt, target, &self.a, &self.b, m, n)?;
        rt.read_to_vec(&self.b, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (m, n) = self.dims;
        let want = reference(&self.av, m, n);
        let c = verify::compare(
            self.got.iter().map(|&v| v as f64),
            want.iter().map(|&v| v as f64),
            |_| 0.0,
        );
        c.into_check(
            self.shape(),
            backend,
            (m * n).abs_diff(self.got.len()),
            "exact",
        )
    }
}

/// Transposes a seeded random m×n matrix and checks it (see
/// [`TransposeTrial`]).
pub fn check(rt: &Runtime, target: Target, dims: (usize, usize), seed: u64) -> Result<Check> {
    verify::run_check(&mut trial(rt, dims, seed)?, rt, target)
}

/// The m×n shape `pel run transpose --size N` uses: near-square, m·n ≤ N.
fn shape_for(elements: usize) -> (usize, usize) {
    let m = (elements as f64).sqrt().round().max(1.0) as usize;
    (m, elements / m)
}

/// This module's entries in [`samples`](super::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "transpose",
        about: "B = Aᵀ, f32, any m×n; 16×16 tiles through workgroup memory on the GPU (memory-bound)",
        size_meaning: "elements, as a near-square m×n matrix (m = √size)",
        default_size: 1 << 20,
        tour_size: 1 << 17,
        prepare: |rt, elements, seed| super::boxed(trial(rt, shape_for(elements), seed)),
    }]
}

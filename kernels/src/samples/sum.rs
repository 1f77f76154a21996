//! The sum sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::sum`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};

use super::Sample;
use super::verify::{self, Check, Trial, Work};
use crate::sum::*;

/// A sum of seeded random values in [-1, 1); the result starts poisoned (NaN).
///
/// Tolerance: within `1e-5 · Σ|x|`. The f32 error grows with the depth of
/// the additions each element goes through: per pass at most 16 + 8 on the
/// GPU and 32 + 16 on the CPU, two passes up to 16M elements; 1e-5 is about
/// `100·ε`.
pub struct SumTrial {
    sum: Sum,
    xs: Vec<f32>,
    x: Buffer<f32>,
    out: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares a sum of `n` elements.
pub fn trial(rt: &Runtime, n: usize, seed: u64) -> Result<SumTrial> {
    let xs = verify::random_f32(seed, n, -1.0, 1.0);
    Ok(SumTrial {
        sum: Sum::new()?,
        x: rt.buffer(&xs),
        out: rt.buffer(&[f32::NAN]),
        xs,
        got: Vec::new(),
    })
}

impl Trial for SumTrial {
    fn shape(&self) -> String {
        self.xs.len().to_string()
    }
    fn work(&self) -> Work {
        Work::per(self.xs.len(), 1.0, 4.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.x, &self.xs)?;
        rt.write(&self.out, &[f32::NAN])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.sum.run(rt, target, &self.x, &self.out)?;
        rt.read_to_vec(&self.out, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (want, magnitude) = reference(&self.xs);
        let tol = 1e-5 * magnitude + f32::MIN_POSITIVE as f64;
        let c = verify::compare(self.got.iter().map(|&v| v as f64), [want], |_| tol);
        let missing = 1 - c.compared.min(1);
        c.into_check(self.shape(), backend, missing, "1e-5 of Σ|x|")
    }
}

/// Sums `n` seeded random elements and checks it (see [`SumTrial`]).
pub fn check(rt: &Runtime, target: Target, n: usize, seed: u64) -> Result<Check> {
    verify::run_check(&mut trial(rt, n, seed)?, rt, target)
}

/// This module's entries in [`samples`](super::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "sum",
        about: "f32 reduction to one value, multi-pass on the GPU (memory-bound)",
        size_meaning: "elements",
        default_size: 1 << 24,
        tour_size: 1 << 20,
        prepare: |rt, n, seed| super::boxed(trial(rt, n, seed)),
    }]
}

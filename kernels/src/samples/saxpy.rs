//! The saxpy sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::saxpy`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};

use super::Sample;
use super::verify::{self, Check, Trial, Work};
use crate::saxpy::*;

/// saxpy on seeded random data: `a` in [-2, 2), x and y in [-1, 1).
///
/// Tolerance: each element within 2 ulp of `|a·x| + |y|` (one rounding of the
/// product and one of the sum, or one of a fused multiply-add).
pub struct SaxpyTrial {
    saxpy: Saxpy,
    a: f32,
    xs: Vec<f32>,
    ys: Vec<f32>,
    x: Buffer<f32>,
    y: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares saxpy over `n` elements.
pub fn trial(rt: &Runtime, n: usize, seed: u64) -> Result<SaxpyTrial> {
    let xs = verify::random_f32(seed + 1, n, -1.0, 1.0);
    let ys = verify::random_f32(seed + 2, n, -1.0, 1.0);
    Ok(SaxpyTrial {
        saxpy: Saxpy::new()?,
        a: verify::random_f32(seed, 1, -2.0, 2.0)[0],
        x: rt.buffer(&xs),
        y: rt.buffer(&ys),
        xs,
        ys,
        got: Vec::new(),
    })
}

impl Trial for SaxpyTrial {
    fn shape(&self) -> String {
        self.xs.len().to_string()
    }
    fn work(&self) -> Work {
        Work::per(self.xs.len(), 2.0, 12.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.x, &self.xs)?;
        rt.write(&self.y, &self.ys)
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.saxpy.run(rt, target, self.a, &self.x, &self.y)?;
        rt.read_to_vec(&self.y, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (a, xs, ys) = (self.a, &self.xs, &self.ys);
        let want = reference(a, xs, ys);
        let eps = f32::EPSILON as f64;
        let c = verify::compare(self.got.iter().map(|&v| v as f64), want, |i| {
            2.0 * eps * ((a as f64 * xs[i] as f64).abs() + (ys[i] as f64).abs())
        });
        c.into_check(
            self.shape(),
            backend,
            xs.len().abs_diff(self.got.len()),
            "2 ulp of |a·x|+|y| per element",
        )
    }
}

/// Runs saxpy on `n` seeded random elements and checks it (see [`SaxpyTrial`]).
pub fn check(rt: &Runtime, target: Target, n: usize, seed: u64) -> Result<Check> {
    verify::run_check(&mut trial(rt, n, seed)?, rt, target)
}

/// This module's entries in [`samples`](super::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "saxpy",
        about: "y = a·x + y over f32 arrays (memory-bound)",
        size_meaning: "elements",
        default_size: 1 << 24,
        tour_size: 1 << 24,
        prepare: |rt, n, seed| super::boxed(trial(rt, n, seed)),
    }]
}

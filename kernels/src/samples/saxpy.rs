//! The saxpy sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::saxpy`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::saxpy::*;

/// saxpy on seeded random data: `a` in [-2, 2), x and y in [-1, 1).
///
/// Tolerance: each element within 2 ulp of `|a·x| + |y|` (one rounding of the
/// product and one of the sum, or one of a fused multiply-add).
pub type SaxpyTrial = Sampled<SaxpyProblem>;

/// The inputs of a [`SaxpyTrial`]; y is its output too.
pub struct SaxpyProblem {
    saxpy: Saxpy,
    a: f32,
    x: Input<f32>,
    y: Input<f32>,
}

/// Prepares saxpy over `n` elements.
pub fn trial(rt: &Runtime, n: usize, seed: u64) -> Result<SaxpyTrial> {
    let y = Input::new(rt, verify::random_f32(seed + 2, n, -1.0, 1.0));
    let out = y.buf().clone();
    let problem = SaxpyProblem {
        saxpy: Saxpy::new()?,
        a: verify::random_f32(seed, 1, -2.0, 2.0)[0],
        x: Input::new(rt, verify::random_f32(seed + 1, n, -1.0, 1.0)),
        y,
    };
    Ok(Sampled::in_place(problem, &out))
}

impl Problem for SaxpyProblem {
    type Out = f32;
    const TOLERANCE: &'static str = "2 ulp of |a·x|+|y| per element";
    fn shape(&self) -> String {
        self.x.len().to_string()
    }
    fn work(&self, _: &[f32]) -> Work {
        Work::per(self.x.len(), 2.0, 12.0)
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.x.write(rt)?;
        self.y.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, y: &Buffer<f32>) -> Result<RunInfo> {
        self.saxpy.run(rt, target, self.a, self.x.buf(), y)
    }
    fn compare(&mut self, got: &[f32]) -> Compare {
        let (a, xs, ys) = (self.a, &self.x, &self.y);
        let eps = f32::EPSILON as f64;
        verify::compare(verify::f64s(got), reference(a, xs, ys), |i| {
            2.0 * eps * ((a as f64 * xs[i] as f64).abs() + (ys[i] as f64).abs())
        })
    }
}

//! The matmul sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::matmul`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::matmul::*;

/// A product of seeded random m×k and k×n matrices with values in [-1, 1);
/// C starts poisoned (NaN).
///
/// Tolerance: each element within `(k + 2)·ε·(|A|·|B|)ᵢⱼ`, the classic bound
/// for a k-term f32 dot product, whatever the order of summation.
pub type MatmulTrial = Sampled<MatmulProblem>;

/// The inputs of a [`MatmulTrial`].
pub struct MatmulProblem {
    matmul: Matmul,
    dims: (usize, usize, usize),
    a: Input<f32>,
    b: Input<f32>,
}

/// Prepares an m×k by k×n product.
pub fn trial(rt: &Runtime, (m, n, k): (usize, usize, usize), seed: u64) -> Result<MatmulTrial> {
    let problem = MatmulProblem {
        matmul: Matmul::new()?,
        dims: (m, n, k),
        a: Input::new(rt, verify::random_f32(seed, m * k, -1.0, 1.0)),
        b: Input::new(rt, verify::random_f32(seed + 1, k * n, -1.0, 1.0)),
    };
    Ok(Sampled::poisoned(rt, problem, m * n, f32::NAN))
}

impl Problem for MatmulProblem {
    type Out = f32;
    const TOLERANCE: &'static str = "(k+2)·ε·(|A|·|B|)ᵢⱼ per element";
    fn shape(&self) -> String {
        let (m, n, k) = self.dims;
        format!("{m}×{n}×{k}")
    }
    fn work(&self, _: &[f32]) -> Work {
        let (m, n, k) = self.dims;
        Work {
            flops: 2.0 * (m * n) as f64 * k as f64,
            bytes: 4.0 * (m * k + k * n + m * n) as f64,
        }
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.a.write(rt)?;
        self.b.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, c: &Buffer<f32>) -> Result<RunInfo> {
        let (m, n, k) = self.dims;
        let (a, b) = (self.a.buf(), self.b.buf());
        self.matmul.run(rt, target, a, b, c, m, n, k)
    }
    fn compare(&mut self, got: &[f32]) -> Compare {
        let (m, n, k) = self.dims;
        let (want, mag) = reference(&self.a, &self.b, m, n, k);
        let eps = f32::EPSILON as f64;
        verify::compare(verify::f64s(got), want, |i| {
            (k as f64 + 2.0) * eps * mag[i] + f32::MIN_POSITIVE as f64
        })
    }
}

//! The blur sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::blur`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::blur::*;

/// A Gaussian blur of a seeded random width×height image (values in
/// [0, 1)) with a (2r+1)×(2r+1) kernel of seeded σ; the output starts
/// poisoned (NaN).
///
/// Tolerance: each pixel within `(2r+2)·ε·Σ|w·x|` of the f64 reference:
/// the worst-case rounding of 2r+1 row sums of 2r+1 products each, then of
/// their sum (the order both implementations use), with room for the
/// products' roundings.
pub type BlurTrial = Sampled<BlurProblem>;

/// The inputs of a [`BlurTrial`].
pub struct BlurProblem {
    blur: Blur,
    width: usize,
    height: usize,
    image: Input<f32>,
    weights: Input<f32>,
}

/// Prepares a blur of a width×height image with a kernel of `radius`.
pub fn trial(
    rt: &Runtime,
    (width, height, radius): (usize, usize, usize),
    seed: u64,
) -> Result<BlurTrial> {
    let sigma = 0.5 + radius as f32 * verify::rng(seed).random_range(0.3f32..0.6);
    let problem = BlurProblem {
        blur: Blur::new()?,
        width,
        height,
        image: Input::new(rt, verify::random_f32(seed, width * height, 0.0, 1.0)),
        weights: Input::new(rt, gaussian_kernel(sigma, radius)?),
    };
    Ok(Sampled::poisoned(rt, problem, width * height, f32::NAN))
}

impl Problem for BlurProblem {
    type Out = f32;
    const TOLERANCE: &'static str = "(2r+2)·ε·Σ|w·x| per pixel";
    fn shape(&self) -> String {
        let side = self.weights.len().isqrt();
        format!("{}×{}, {side}×{side}", self.width, self.height)
    }
    fn work(&self, _: &[f32]) -> Work {
        let taps = self.weights.len() as f64;
        Work::per(self.image.len(), 2.0 * taps, 8.0)
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.image.write(rt)?;
        self.weights.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, dst: &Buffer<f32>) -> Result<RunInfo> {
        let (src, w) = (self.image.buf(), self.weights.buf());
        self.blur
            .run(rt, target, src, w, dst, self.width, self.height)
    }
    fn compare(&mut self, got: &[f32]) -> Compare {
        let (want, mag) = reference(&self.image, self.width, self.height, &self.weights);
        let r = self.weights.len().isqrt() / 2;
        let k = (2 * r + 2) as f64 * f32::EPSILON as f64;
        verify::compare(verify::f64s(got), want, |i| {
            k * mag[i] + f32::MIN_POSITIVE as f64
        })
    }
}

/// The sample's kernel radius: a 7×7 Gaussian.
pub(crate) const SAMPLE_RADIUS: usize = 3;

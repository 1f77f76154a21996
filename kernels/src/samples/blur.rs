//! The blur sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::blur`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::Sample;
use super::verify::{self, Check, Trial, Work};
use crate::blur::*;

/// A Gaussian blur of a seeded random width×height image (values in
/// [0, 1)) with a (2r+1)×(2r+1) kernel of seeded σ; the output starts
/// poisoned (NaN).
///
/// Tolerance: each pixel within `(2r+2)·ε·Σ|w·x|` of the f64 reference:
/// the worst-case rounding of 2r+1 row sums of 2r+1 products each, then of
/// their sum (the order both implementations use), with room for the
/// products' roundings.
pub struct BlurTrial {
    blur: Blur,
    width: usize,
    height: usize,
    image: Vec<f32>,
    weights: Vec<f32>,
    src: Buffer<f32>,
    w: Buffer<f32>,
    dst: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares a blur of a width×height image with a kernel of `radius`.
pub fn trial(
    rt: &Runtime,
    (width, height, radius): (usize, usize, usize),
    seed: u64,
) -> Result<BlurTrial> {
    let sigma = 0.5 + radius as f32 * verify::rng(seed).random_range(0.3f32..0.6);
    let weights = gaussian_kernel(sigma, radius)?;
    let image = verify::random_f32(seed, width * height, 0.0, 1.0);
    Ok(BlurTrial {
        blur: Blur::new()?,
        width,
        height,
        src: rt.buffer(&image),
        w: rt.buffer(&weights),
        dst: rt.zeros(width * height),
        image,
        weights,
        got: Vec::new(),
    })
}

impl Trial for BlurTrial {
    fn shape(&self) -> String {
        let side = self.weights.len().isqrt();
        format!("{}×{}, {side}×{side}", self.width, self.height)
    }
    fn work(&self) -> Work {
        Work::per(
            self.width * self.height,
            2.0 * self.weights.len() as f64,
            8.0,
        )
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.src, &self.image)?;
        rt.write(&self.w, &self.weights)?;
        rt.write(&self.dst, &vec![f32::NAN; self.dst.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.blur.run(
            rt,
            target,
            &self.src,
            &self.w,
            &self.dst,
            self.width,
            self.height,
        )?;
        rt.read_to_vec(&self.dst, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (want, mag) = reference(&self.image, self.width, self.height, &self.weights);
        let r = self.weights.len().isqrt() / 2;
        let k = (2 * r + 2) as f64 * f32::EPSILON as f64;
        let cmp = verify::compare(self.got.iter().map(|&v| v as f64), want, |i| {
            k * mag[i] + f32::MIN_POSITIVE as f64
        });
        cmp.into_check(
            self.shape(),
            backend,
            (self.width * self.height).abs_diff(self.got.len()),
            "(2r+2)·ε·Σ|w·x| per pixel",
        )
    }
}

/// Blurs a seeded random image and checks it (see [`BlurTrial`]).
pub fn check(
    rt: &Runtime,
    target: Target,
    dims: (usize, usize, usize),
    seed: u64,
) -> Result<Check> {
    verify::run_check(&mut trial(rt, dims, seed)?, rt, target)
}

/// The sample's kernel radius: a 7×7 Gaussian.
const SAMPLE_RADIUS: usize = 3;

/// This module's entries in [`samples`](super::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "blur",
        about: "Gaussian blur of an f32 image, 7×7 kernel, clamp-to-edge; 16×16 tiles plus halo in workgroup memory on the GPU (compute-bound)",
        size_meaning: "pixels, as a square image",
        default_size: 1 << 19,
        tour_size: 1 << 15,
        prepare: |rt, pixels, seed| {
            let (width, height) = super::square(pixels);
            super::boxed(trial(rt, (width, height, SAMPLE_RADIUS), seed))
        },
    }]
}

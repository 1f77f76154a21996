//! The matmul sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::matmul`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};

use super::Sample;
use super::verify::{self, Check, Trial, Work};
use crate::matmul::*;

/// A product of seeded random m×k and k×n matrices with values in [-1, 1);
/// C starts poisoned (NaN).
///
/// Tolerance: each element within `(k + 2)·ε·(|A|·|B|)ᵢⱼ`, the classic bound
/// for a k-term f32 dot product, whatever the order of summation.
pub struct MatmulTrial {
    matmul: Matmul,
    dims: (usize, usize, usize),
    av: Vec<f32>,
    bv: Vec<f32>,
    a: Buffer<f32>,
    b: Buffer<f32>,
    c: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares an m×k by k×n product.
pub fn trial(rt: &Runtime, (m, n, k): (usize, usize, usize), seed: u64) -> Result<MatmulTrial> {
    let av = verify::random_f32(seed, m * k, -1.0, 1.0);
    let bv = verify::random_f32(seed + 1, k * n, -1.0, 1.0);
    Ok(MatmulTrial {
        matmul: Matmul::new()?,
        dims: (m, n, k),
        a: rt.buffer(&av),
        b: rt.buffer(&bv),
        c: rt.zeros(m * n),
        av,
        bv,
        got: Vec::new(),
    })
}

impl Trial for MatmulTrial {
    fn shape(&self) -> String {
        let (m, n, k) = self.dims;
        format!("{m}×{n}×{k}")
    }
    fn work(&self) -> Work {
        let (m, n, k) = self.dims;
        Work {
            flops: 2.0 * (m * n) as f64 * k as f64,
            bytes: 4.0 * (m * k + k * n + m * n) as f64,
        }
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.a, &self.av)?;
        rt.write(&self.b, &self.bv)?;
        rt.write(&self.c, &vec![f32::NAN; self.c.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let (m, n, k) = self.dims;
        let info = self
            .matmul
            .run(rt, target, &self.a, &self.b, &self.c, m, n, k)?;
        rt.read_to_vec(&self.c, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (m, n, k) = self.dims;
        let (want, mag) = reference(&self.av, &self.bv, m, n, k);
        let eps = f32::EPSILON as f64;
        let cmp = verify::compare(self.got.iter().map(|&v| v as f64), want, |i| {
            (k as f64 + 2.0) * eps * mag[i] + f32::MIN_POSITIVE as f64
        });
        cmp.into_check(
            self.shape(),
            backend,
            (m * n).abs_diff(self.got.len()),
            "(k+2)·ε·(|A|·|B|)ᵢⱼ per element",
        )
    }
}

/// Multiplies seeded random matrices and checks it (see [`MatmulTrial`]).
pub fn check(
    rt: &Runtime,
    target: Target,
    dims: (usize, usize, usize),
    seed: u64,
) -> Result<Check> {
    verify::run_check(&mut trial(rt, dims, seed)?, rt, target)
}

/// This module's entries in [`samples`](super::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "matmul",
        about: "C = A·B, f32, any m×k by k×n; 64×64 tiles on the GPU, faer on the CPU (compute-bound)",
        size_meaning: "n, for an n×n×n product",
        default_size: 512,
        tour_size: 512,
        prepare: |rt, n, seed| super::boxed(trial(rt, (n, n, n), seed)),
    }]
}

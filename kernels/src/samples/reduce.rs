//! The reduce sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::reduce`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::Sample;
use super::verify::{self, Check, Trial, Work};
use crate::reduce::*;

/// Seeded random input that is never all NaN: multiples of 1/64 in
/// [-64, 64) (so the maximum repeats at large sizes, and ties are tested),
/// about 1 in 16 of them NaN, zeros of either sign.
pub(crate) fn input(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = verify::rng(seed);
    let mut xs: Vec<f32> = (0..n)
        .map(|_| {
            if rng.random_ratio(1, 16) {
                f32::NAN
            } else {
                let v = rng.random_range(-4096i32..4096) as f32 / 64.0;
                if v == 0.0 && rng.random::<bool>() {
                    -0.0
                } else {
                    v
                }
            }
        })
        .collect();
    if n > 0 && xs.iter().all(|v| v.is_nan()) {
        let i = rng.random_range(0..n);
        xs[i] = rng.random_range(-4096i32..4096) as f32 / 64.0;
    }
    xs
}

/// The min or max of seeded random input (see `input`: multiples of 1/64 in
/// [-64, 64), about 1 in 16 NaN, never all NaN); the result starts poisoned
/// (NaN).
///
/// Tolerance: none; the result must equal the reference's exactly (-0 and
/// +0 count as equal).
pub struct ReduceTrial {
    reduce: Reduce,
    xs: Vec<f32>,
    x: Buffer<f32>,
    out: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares the min or max of `n` elements.
pub fn trial(rt: &Runtime, op: ReduceOp, n: usize, seed: u64) -> Result<ReduceTrial> {
    let xs = input(seed, n);
    Ok(ReduceTrial {
        reduce: Reduce::new(op)?,
        x: rt.buffer(&xs),
        out: rt.buffer(&[f32::NAN]),
        xs,
        got: Vec::new(),
    })
}

impl Trial for ReduceTrial {
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
        let info = self.reduce.run(rt, target, &self.x, &self.out)?;
        rt.read_to_vec(&self.out, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let want = reference(self.reduce.op(), &self.xs).map_or(f64::NAN, f64::from);
        let c = verify::compare(self.got.iter().map(|&v| v as f64), [want], |_| 0.0);
        let missing = 1 - c.compared.min(1);
        c.into_check(self.shape(), backend, missing, "exact")
    }
}

/// Runs min or max on `n` seeded random elements and checks it (see
/// [`ReduceTrial`]).
pub fn check(rt: &Runtime, target: Target, op: ReduceOp, n: usize, seed: u64) -> Result<Check> {
    verify::run_check(&mut trial(rt, op, n, seed)?, rt, target)
}

/// The argmax of seeded random input (as for [`ReduceTrial`]: many ties for
/// the maximum at large sizes); the result starts poisoned (0xDEADBEEF).
///
/// Tolerance: none; the index must equal the reference's exactly (the
/// first maximum).
pub struct ArgmaxTrial {
    argmax: Argmax,
    xs: Vec<f32>,
    x: Buffer<f32>,
    out: Buffer<u32>,
    got: Vec<u32>,
}

/// Prepares the argmax of `n` elements.
pub fn argmax_trial(rt: &Runtime, n: usize, seed: u64) -> Result<ArgmaxTrial> {
    let xs = input(seed, n);
    Ok(ArgmaxTrial {
        argmax: Argmax::new()?,
        x: rt.buffer(&xs),
        out: rt.buffer(&[0xDEAD_BEEF]),
        xs,
        got: Vec::new(),
    })
}

impl Trial for ArgmaxTrial {
    fn shape(&self) -> String {
        self.xs.len().to_string()
    }
    fn work(&self) -> Work {
        Work::per(self.xs.len(), 1.0, 4.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.x, &self.xs)?;
        rt.write(&self.out, &[0xDEAD_BEEF])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.argmax.run(rt, target, &self.x, &self.out)?;
        rt.read_to_vec(&self.out, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let want = argmax_reference(&self.xs).map_or(f64::NAN, |i| i as f64);
        let c = verify::compare(self.got.iter().map(|&v| v as f64), [want], |_| 0.0);
        let missing = 1 - c.compared.min(1);
        c.into_check(self.shape(), backend, missing, "exact (the first maximum)")
    }
}

/// Runs argmax on `n` seeded random elements and checks it (see
/// [`ArgmaxTrial`]).
pub fn check_argmax(rt: &Runtime, target: Target, n: usize, seed: u64) -> Result<Check> {
    verify::run_check(&mut argmax_trial(rt, n, seed)?, rt, target)
}

/// This module's entries in [`samples`](super::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![
        Sample {
            name: "min",
            about: "smallest f32, NaNs ignored, multi-pass on the GPU (memory-bound)",
            size_meaning: "elements",
            default_size: 1 << 23,
            tour_size: 1 << 20,
            prepare: |rt, n, seed| super::boxed(trial(rt, ReduceOp::Min, n, seed)),
        },
        Sample {
            name: "max",
            about: "largest f32, NaNs ignored, multi-pass on the GPU (memory-bound)",
            size_meaning: "elements",
            default_size: 1 << 23,
            tour_size: 1 << 20,
            prepare: |rt, n, seed| super::boxed(trial(rt, ReduceOp::Max, n, seed)),
        },
        Sample {
            name: "argmax",
            about: "index of the first largest f32, NaNs ignored, multi-pass on the GPU (memory-bound)",
            size_meaning: "elements",
            default_size: 1 << 23,
            tour_size: 1 << 19,
            prepare: |rt, n, seed| super::boxed(argmax_trial(rt, n, seed)),
        },
    ]
}

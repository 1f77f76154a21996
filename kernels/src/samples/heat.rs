//! The heat sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::heat`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::Sample;
use super::verify::{self, Check, Trial, Work};
use crate::heat::*;

/// Diffusion of a seeded random width×height grid (values in [0, 1), the
/// boundary's included) over `steps` steps at a seeded α in [0.1, 0.25].
///
/// Tolerance: each cell within `4·s·ε·max|u₀|` of the f64 reference after
/// s steps (at least one): one step's roundings come to at most about
/// `4ε·max|u|`, a step with α ≤ 0.25 never magnifies earlier errors (its
/// weights are non-negative and sum to 1), and `max|u|` never grows.
pub struct HeatTrial {
    heat: Heat,
    width: usize,
    height: usize,
    alpha: f32,
    steps: usize,
    initial: Vec<f32>,
    grid: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares `steps` steps on a width×height grid.
pub fn trial(
    rt: &Runtime,
    (width, height, steps): (usize, usize, usize),
    seed: u64,
) -> Result<HeatTrial> {
    let initial = verify::random_f32(seed, width * height, 0.0, 1.0);
    Ok(HeatTrial {
        heat: Heat::new()?,
        width,
        height,
        alpha: verify::rng(seed).random_range(0.1f32..=MAX_ALPHA),
        steps,
        grid: rt.buffer(&initial),
        initial,
        got: Vec::new(),
    })
}

impl Trial for HeatTrial {
    fn shape(&self) -> String {
        format!("{}×{}, {} steps", self.width, self.height, self.steps)
    }
    fn work(&self) -> Work {
        Work::per(self.width * self.height * self.steps, 7.0, 8.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.grid, &self.initial)
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.heat.run(
            rt,
            target,
            &self.grid,
            self.width,
            self.height,
            self.alpha,
            self.steps,
        )?;
        rt.read_to_vec(&self.grid, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let want = reference(
            &self.initial,
            self.width,
            self.height,
            self.alpha,
            self.steps,
        );
        let max = self
            .initial
            .iter()
            .fold(0.0f64, |m, &v| m.max((v as f64).abs()));
        let tol =
            4.0 * self.steps.max(1) as f64 * f32::EPSILON as f64 * max + f32::MIN_POSITIVE as f64;
        let cmp = verify::compare(self.got.iter().map(|&v| v as f64), want, |_| tol);
        cmp.into_check(
            self.shape(),
            backend,
            (self.width * self.height).abs_diff(self.got.len()),
            "4·s·ε·max|u₀| per cell after s steps",
        )
    }
}

/// Runs diffusion on a seeded random grid and checks it (see [`HeatTrial`]).
pub fn check(
    rt: &Runtime,
    target: Target,
    dims: (usize, usize, usize),
    seed: u64,
) -> Result<Check> {
    verify::run_check(&mut trial(rt, dims, seed)?, rt, target)
}

/// Steps the sample runs.
const SAMPLE_STEPS: usize = 50;

/// This module's entries in [`samples`](super::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![Sample {
        name: "heat",
        about: "2-D heat diffusion, 50 Jacobi steps of the 5-point stencil, double-buffered on the device (memory-bound)",
        size_meaning: "cells, as a square grid",
        default_size: 1 << 18,
        tour_size: 1 << 16,
        prepare: |rt, cells, seed| {
            let (width, height) = super::square(cells);
            super::boxed(trial(rt, (width, height, SAMPLE_STEPS), seed))
        },
    }]
}

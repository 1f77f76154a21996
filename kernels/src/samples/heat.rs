//! The heat sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::heat`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::heat::*;

/// Diffusion of a seeded random width×height grid (values in [0, 1), the
/// boundary's included) over `steps` steps at a seeded α in [0.1, 0.25].
///
/// Tolerance: each cell within `4·s·ε·max|u₀|` of the f64 reference after
/// s steps (at least one): one step's roundings come to at most about
/// `4ε·max|u|`, a step with α ≤ 0.25 never magnifies earlier errors (its
/// weights are non-negative and sum to 1), and `max|u|` never grows.
pub type HeatTrial = Sampled<HeatProblem>;

/// The initial grid of a [`HeatTrial`], which the steps overwrite.
pub struct HeatProblem {
    heat: Heat,
    width: usize,
    height: usize,
    alpha: f32,
    steps: usize,
    grid: Input<f32>,
}

/// Prepares `steps` steps on a width×height grid.
pub fn trial(
    rt: &Runtime,
    (width, height, steps): (usize, usize, usize),
    seed: u64,
) -> Result<HeatTrial> {
    let grid = Input::new(rt, verify::random_f32(seed, width * height, 0.0, 1.0));
    let out = grid.buf().clone();
    let problem = HeatProblem {
        heat: Heat::new()?,
        width,
        height,
        alpha: verify::rng(seed).random_range(0.1f32..=MAX_ALPHA),
        steps,
        grid,
    };
    Ok(Sampled::in_place(problem, &out))
}

impl Problem for HeatProblem {
    type Out = f32;
    const TOLERANCE: &'static str = "4·s·ε·max|u₀| per cell after s steps";
    fn shape(&self) -> String {
        format!("{}×{}, {} steps", self.width, self.height, self.steps)
    }
    fn work(&self, _: &[f32]) -> Work {
        Work::per(self.grid.len() * self.steps, 7.0, 8.0)
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.grid.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, grid: &Buffer<f32>) -> Result<RunInfo> {
        let (w, h) = (self.width, self.height);
        self.heat
            .run(rt, target, grid, w, h, self.alpha, self.steps)
    }
    fn compare(&mut self, got: &[f32]) -> Compare {
        let u0 = &self.grid;
        let want = reference(u0, self.width, self.height, self.alpha, self.steps);
        let max = u0.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
        let tol =
            4.0 * self.steps.max(1) as f64 * f32::EPSILON as f64 * max + f32::MIN_POSITIVE as f64;
        verify::compare(verify::f64s(got), want, |_| tol)
    }
}

/// Steps the sample runs.
pub(crate) const SAMPLE_STEPS: usize = 50;

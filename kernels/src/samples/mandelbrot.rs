//! The mandelbrot sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::mandelbrot`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Check, Compare, Problem, Sampled, Work};
use crate::mandelbrot::*;

/// A seeded random window around the set at width×height, at most 256
/// iterations; the output starts poisoned (0xDEADBEEF).
///
/// Tolerance: on the CPU every count equals the reference's. A GPU compiler
/// may fuse or reassociate the multiply-adds, and near the set's boundary the
/// iteration is chaotic: there the count of an *ill-conditioned* pixel (one
/// whose reference count changes when c moves by 2 ulps, or when the
/// multiply-adds are fused) may differ. Beyond those, at most 1 pixel in
/// 10,000 (and at least 2) may differ. No count may exceed `max_iter` and
/// every pixel must be written.
pub type MandelbrotTrial = Sampled<MandelbrotProblem>;

/// The window of a [`MandelbrotTrial`].
pub struct MandelbrotProblem {
    mandelbrot: Mandelbrot,
    width: usize,
    height: usize,
    view: View,
    max_iter: u32,
    want: Vec<u32>,
}

/// Prepares a width×height render of a seeded random view.
pub fn trial(rt: &Runtime, (width, height): (usize, usize), seed: u64) -> Result<MandelbrotTrial> {
    let mut rng = verify::rng(seed);
    let span = rng.random_range(0.05f32..3.0);
    let view = View {
        x0: rng.random_range(-2.2f32..0.2) - span / 2.0 + 0.5,
        y0: rng.random_range(-1.0f32..0.6) - span / 2.0 + 0.2,
        dx: span / width.max(1) as f32,
        dy: span / width.max(1) as f32,
    };
    trial_of(rt, (width, height), view, 256)
}

/// Prepares a width×height render of `view` with `max_iter` iterations at
/// most, checked like [`trial`]'s.
pub fn trial_of(
    rt: &Runtime,
    (width, height): (usize, usize),
    view: View,
    max_iter: u32,
) -> Result<MandelbrotTrial> {
    let problem = MandelbrotProblem {
        mandelbrot: Mandelbrot::new()?,
        width,
        height,
        view,
        max_iter,
        want: Vec::new(),
    };
    Ok(Sampled::poisoned(rt, problem, width * height, 0xDEAD_BEEF))
}

impl Problem for MandelbrotProblem {
    type Out = u32;
    const TOLERANCE: &'static str =
        "exact on the CPU; on a GPU exact except at ill-conditioned pixels, and ≤ 1 in 10,000 more";
    fn shape(&self) -> String {
        format!("{}×{}", self.width, self.height)
    }
    fn work(&self, got: &[u32]) -> Work {
        // Up to 7 flops per iteration, counted from the last run's counts
        // (every pixel at the cap before any run).
        let pixels = self.width * self.height;
        let iterations: f64 = if got.len() == pixels {
            got.iter().map(|&c| c.min(self.max_iter) as f64).sum()
        } else {
            pixels as f64 * self.max_iter as f64
        };
        Work {
            flops: 7.0 * iterations,
            bytes: 4.0 * pixels as f64,
        }
    }
    fn reset(&self, _: &Runtime) -> Result<()> {
        Ok(())
    }
    fn run(&mut self, rt: &Runtime, target: Target, counts: &Buffer<u32>) -> Result<RunInfo> {
        let (w, h) = (self.width, self.height);
        self.mandelbrot
            .run(rt, target, counts, w, h, self.view, self.max_iter)
    }
    fn compare(&mut self, got: &[u32]) -> Compare {
        self.want = reference(self.width, self.height, self.view, self.max_iter);
        verify::exact(got, &self.want)
    }
    /// Excuses the GPU's mismatches at ill-conditioned pixels, where legal
    /// rounding differences change the count anyway; a poisoned (unwritten)
    /// or impossible count is never excused.
    fn judge(&mut self, mut check: Check, got: &[u32]) -> Check {
        let (width, height, view, max_iter) = (self.width, self.height, self.view, self.max_iter);
        let n = width * height;
        let params = MandelbrotParams {
            width: width as u32,
            first: 0,
            max_iter,
            n: n as u32,
            x0: view.x0,
            y0: view.y0,
            dx: view.dx,
            dy: view.dy,
        };
        let backend = check.backend;
        let (mut unexcused, mut excused) = (n.abs_diff(got.len()), 0);
        for (i, (&g, &w)) in got.iter().zip(&self.want).enumerate() {
            if g != w {
                if backend != Backend::Cpu && g <= max_iter && ill_conditioned(&params, i, w) {
                    excused += 1;
                } else {
                    unexcused += 1;
                }
            }
        }
        check.mismatches = unexcused;
        check.excused = excused;
        if backend != Backend::Cpu {
            check.allowed_mismatches = (n / 10_000).max(2);
        }
        check
    }
}

//! The sample problems: each kernel's seeded inputs, its run, and the check
//! of its result against the kernel's serial reference, under a stated
//! tolerance. The command line, the tour, the benchmarks and the tests use
//! them; the kernels themselves know nothing of them.
//!
//! One file per kernel; [`verify`](self) holds what they share: [`Check`],
//! [`Trial`], [`Work`] and [`run_check`].

use pel_runtime::{Result, Runtime, Target};

pub(crate) mod verify;

pub mod black_scholes;
pub mod blur;
pub mod heat;
pub mod histogram;
pub mod kmeans;
pub mod kmer;
pub mod layernorm;
pub mod mandelbrot;
pub mod matmul;
pub mod monte_carlo;
pub mod nbody;
pub mod reduce;
pub mod saxpy;
pub mod scan;
pub mod softmax;
pub mod sort;
pub mod spmv;
pub mod sum;
pub mod transpose;

pub use verify::{Check, Trial, Work, run_check};

/// A sample kernel as the command line and the tour see it: a name, a size
/// knob, and a verified run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Its name, as `pel run NAME` takes it.
    pub name: &'static str,
    /// One line on what it computes.
    pub about: &'static str,
    /// What `--size` means for it.
    pub size_meaning: &'static str,
    /// The size `pel run` uses by default.
    pub default_size: usize,
    /// The size the tour uses.
    pub tour_size: usize,
    prepare: fn(&Runtime, usize, u64) -> Result<Box<dyn Trial>>,
}

impl Sample {
    /// Seeded random inputs at `size`, ready to run (and re-run).
    pub fn trial(&self, rt: &Runtime, size: usize, seed: u64) -> Result<Box<dyn Trial>> {
        (self.prepare)(rt, size, seed)
    }

    /// The same sample with its inputs prepared by `prepare` (from the
    /// runtime, the size and a seed), for a harness that wants particular
    /// inputs: the routing benchmark renders mandelbrot's classic view.
    pub fn prepared_by(
        self,
        prepare: fn(&Runtime, usize, u64) -> Result<Box<dyn Trial>>,
    ) -> Sample {
        Sample { prepare, ..self }
    }

    /// Runs it at `size` on seeded random input and checks the result.
    pub fn check(&self, rt: &Runtime, target: Target, size: usize, seed: u64) -> Result<Check> {
        run_check(self.trial(rt, size, seed)?.as_mut(), rt, target)
    }
}

pub(crate) fn boxed<T: Trial + 'static>(t: Result<T>) -> Result<Box<dyn Trial>> {
    Ok(Box::new(t?))
}

/// Every sample kernel, in the order `pel list` prints them.
pub fn samples() -> Vec<Sample> {
    let mut all = Vec::new();
    // The four classics first; then by domain: linear algebra, machine
    // learning, images and signals, physics, finance, sorting, genomics.
    for group in [
        saxpy::samples,
        sum::samples,
        matmul::samples,
        mandelbrot::samples,
        reduce::samples,
        scan::samples,
        transpose::samples,
        spmv::samples,
        softmax::samples,
        layernorm::samples,
        kmeans::samples,
        blur::samples,
        histogram::samples,
        heat::samples,
        nbody::samples,
        black_scholes::samples,
        monte_carlo::samples,
        sort::samples,
        kmer::samples,
    ] {
        all.extend(group());
    }
    all
}

/// The width and height of a square image of about `pixels` pixels (at
/// least `pixels`).
pub fn square(pixels: usize) -> (usize, usize) {
    let width = (pixels as f64).sqrt().round().max(1.0) as usize;
    (width, pixels.div_ceil(width))
}

/// The sample kernel called `name`.
pub fn sample(name: &str) -> Option<Sample> {
    samples().into_iter().find(|s| s.name == name)
}

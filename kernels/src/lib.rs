//! # pel-kernels
//!
//! pel's sample kernels. Each has a WGSL shader (in the repository's
//! `shaders/`), a rayon implementation written to be fast, a serial
//! reference, and a `check` that runs it on seeded random input and compares
//! with the reference under a stated tolerance.
//!
//! [`samples`] lists them all for the command line and the tour.

#![deny(missing_docs, unreachable_pub)]

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
mod simd_math;
pub mod softmax;
pub mod sort;
pub mod spmv;
pub mod sum;
pub mod transpose;
mod verify;

pub use black_scholes::BlackScholes;
pub use blur::Blur;
pub use heat::Heat;
pub use histogram::Histogram;
pub use kmeans::KMeans;
pub use kmer::KmerCounter;
pub use layernorm::LayerNorm;
pub use mandelbrot::Mandelbrot;
pub use matmul::Matmul;
pub use monte_carlo::MonteCarlo;
pub use nbody::Nbody;
pub use reduce::{Argmax, Reduce, ReduceOp};
pub use saxpy::Saxpy;
pub use scan::{Scan, ScanKind};
pub use softmax::Softmax;
pub use sort::Sort;
pub use spmv::{CsrMatrix, Spmv};
pub use sum::Sum;
pub use transpose::Transpose;
pub use verify::{Check, Trial, Work, run_check};

use pel_runtime::{Error, Result, RunInfo, Runtime, Target};

pub(crate) fn invalid(kernel: &str, arg: &str, message: String) -> Error {
    Error::InvalidInput {
        kernel: kernel.to_owned(),
        arg: arg.to_owned(),
        message,
    }
}

/// The times of a multi-pass operation so far: [`add`](Self::add) each
/// pass's [`RunInfo`] and get it back with the times of all passes up to it,
/// so the last pass's answer is the whole operation's.
#[derive(Default)]
pub(crate) struct PassTimes {
    elapsed: std::time::Duration,
    exec: std::time::Duration,
}

impl PassTimes {
    pub(crate) fn add(&mut self, info: RunInfo) -> RunInfo {
        self.elapsed += info.elapsed;
        self.exec += info.exec;
        RunInfo {
            elapsed: self.elapsed,
            exec: self.exec,
            ..info
        }
    }
}

/// `len` as the u32 a shader indexes with, or an error naming the limit.
pub(crate) fn u32_len(kernel: &str, arg: &str, len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| {
        invalid(
            kernel,
            arg,
            format!("{len} is more than the {} a shader can index", u32::MAX),
        )
    })
}

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

fn boxed<T: Trial + 'static>(t: Result<T>) -> Result<Box<dyn Trial>> {
    Ok(Box::new(t?))
}

/// Every sample kernel, in the order `pel list` prints them.
pub fn samples() -> Vec<Sample> {
    let mut all = first_samples();
    // By domain: linear algebra, machine learning, images and signals,
    // physics, finance, sorting, genomics.
    for group in [
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

/// The first four samples, defined here.
fn first_samples() -> Vec<Sample> {
    vec![
        Sample {
            name: "saxpy",
            about: "y = a·x + y over f32 arrays (memory-bound)",
            size_meaning: "elements",
            default_size: 1 << 24,
            tour_size: 1 << 24,
            prepare: |rt, n, seed| boxed(saxpy::trial(rt, n, seed)),
        },
        Sample {
            name: "sum",
            about: "f32 reduction to one value, multi-pass on the GPU (memory-bound)",
            size_meaning: "elements",
            default_size: 1 << 24,
            tour_size: 1 << 20,
            prepare: |rt, n, seed| boxed(sum::trial(rt, n, seed)),
        },
        Sample {
            name: "matmul",
            about: "C = A·B, f32, any m×k by k×n; 64×64 tiles on the GPU, faer on the CPU (compute-bound)",
            size_meaning: "n, for an n×n×n product",
            default_size: 512,
            tour_size: 512,
            prepare: |rt, n, seed| boxed(matmul::trial(rt, (n, n, n), seed)),
        },
        Sample {
            name: "mandelbrot",
            about: "escape-time iteration counts, u32 per pixel, at most 256 iterations (compute-bound)",
            size_meaning: "pixels, as a square image",
            default_size: 1 << 20,
            tour_size: 1 << 20,
            prepare: |rt, pixels, seed| boxed(mandelbrot::trial(rt, square(pixels), seed)),
        },
    ]
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

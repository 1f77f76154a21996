//! # pel-kernels
//!
//! pel's sample kernels. Each has a WGSL shader (in the repository's
//! `shaders/`), a rayon implementation written to be fast, a serial
//! reference, and a `check` that runs it on seeded random input and compares
//! with the reference under a stated tolerance.
//!
//! [`samples`] lists them all for the command line and the tour.

#![deny(missing_docs, unreachable_pub)]

pub mod mandelbrot;
pub mod matmul;
pub mod saxpy;
pub mod sum;
mod verify;

pub use mandelbrot::Mandelbrot;
pub use matmul::Matmul;
pub use saxpy::Saxpy;
pub use sum::Sum;
pub use verify::Check;

use pel_runtime::{Error, Result, Runtime, Target};

pub(crate) fn invalid(kernel: &str, arg: &str, message: String) -> Error {
    Error::InvalidInput {
        kernel: kernel.to_owned(),
        arg: arg.to_owned(),
        message,
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
pub trait Sample: Send + Sync {
    /// Its name, as `pel run NAME` takes it.
    fn name(&self) -> &'static str;
    /// One line on what it computes.
    fn about(&self) -> &'static str;
    /// What `--size` means for it.
    fn size_meaning(&self) -> &'static str;
    /// The size `pel run` uses by default.
    fn default_size(&self) -> usize;
    /// The size the tour uses.
    fn tour_size(&self) -> usize;
    /// Runs it at `size` on seeded random input and checks the result.
    fn check(&self, rt: &Runtime, target: Target, size: usize, seed: u64) -> Result<Check>;
}

struct SaxpySample;
struct SumSample;
struct MatmulSample;
struct MandelbrotSample;

impl Sample for SaxpySample {
    fn name(&self) -> &'static str {
        "saxpy"
    }
    fn about(&self) -> &'static str {
        "y = a·x + y over f32 arrays (memory-bound)"
    }
    fn size_meaning(&self) -> &'static str {
        "elements"
    }
    fn default_size(&self) -> usize {
        1 << 24
    }
    fn tour_size(&self) -> usize {
        1 << 24
    }
    fn check(&self, rt: &Runtime, target: Target, size: usize, seed: u64) -> Result<Check> {
        saxpy::check(rt, target, size, seed)
    }
}

impl Sample for SumSample {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn about(&self) -> &'static str {
        "f32 reduction to one value, multi-pass on the GPU (memory-bound)"
    }
    fn size_meaning(&self) -> &'static str {
        "elements"
    }
    fn default_size(&self) -> usize {
        1 << 24
    }
    fn tour_size(&self) -> usize {
        1 << 24
    }
    fn check(&self, rt: &Runtime, target: Target, size: usize, seed: u64) -> Result<Check> {
        sum::check(rt, target, size, seed)
    }
}

impl Sample for MatmulSample {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn about(&self) -> &'static str {
        "C = A·B, f32, any m×k by k×n, 64×64 tiles on the GPU, faer on the CPU (compute-bound)"
    }
    fn size_meaning(&self) -> &'static str {
        "n for an n×n×n product"
    }
    fn default_size(&self) -> usize {
        512
    }
    fn tour_size(&self) -> usize {
        512
    }
    fn check(&self, rt: &Runtime, target: Target, size: usize, seed: u64) -> Result<Check> {
        matmul::check(rt, target, (size, size, size), seed)
    }
}

impl Sample for MandelbrotSample {
    fn name(&self) -> &'static str {
        "mandelbrot"
    }
    fn about(&self) -> &'static str {
        "escape-time iteration counts, u32 per pixel, 256 iterations at most (compute-bound)"
    }
    fn size_meaning(&self) -> &'static str {
        "pixels, as a square image"
    }
    fn default_size(&self) -> usize {
        1 << 20
    }
    fn tour_size(&self) -> usize {
        1 << 20
    }
    fn check(&self, rt: &Runtime, target: Target, size: usize, seed: u64) -> Result<Check> {
        let width = (size as f64).sqrt().round().max(1.0) as usize;
        let height = size.div_ceil(width);
        mandelbrot::check(rt, target, (width, height), seed)
    }
}

/// Every sample kernel, in the order `pel list` prints them.
pub fn samples() -> Vec<Box<dyn Sample>> {
    vec![
        Box::new(SaxpySample),
        Box::new(SumSample),
        Box::new(MatmulSample),
        Box::new(MandelbrotSample),
    ]
}

/// The sample kernel called `name`.
pub fn sample(name: &str) -> Option<Box<dyn Sample>> {
    samples().into_iter().find(|s| s.name() == name)
}

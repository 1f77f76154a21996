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

pub use verify::{Check, Compare, Input, Problem, Sampled, Trial, Work, check_with, run_check};

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

/// A row of the table in [`samples`]: name, what it computes, what its
/// size means, (default size, tour size), and its trial at a size.
fn entry(
    name: &'static str,
    about: &'static str,
    size_meaning: &'static str,
    (default_size, tour_size): (usize, usize),
    prepare: fn(&Runtime, usize, u64) -> Result<Box<dyn Trial>>,
) -> Sample {
    Sample {
        name,
        about,
        size_meaning,
        default_size,
        tour_size,
        prepare,
    }
}

/// Every sample kernel, in the order `pel list` prints them.
pub fn samples() -> Vec<Sample> {
    use crate::ReduceOp::{Max, Min};
    // The four classics first; then by domain: linear algebra, machine
    // learning, images and signals, physics, finance, sorting, genomics.
    vec![
        entry(
            "saxpy",
            "y = a·x + y over f32 arrays (memory-bound)",
            "elements",
            (1 << 24, 1 << 24),
            |rt, n, seed| boxed(saxpy::trial(rt, n, seed)),
        ),
        entry(
            "sum",
            "f32 reduction to one value, multi-pass on the GPU (memory-bound)",
            "elements",
            (1 << 24, 1 << 20),
            |rt, n, seed| boxed(sum::trial(rt, n, seed)),
        ),
        entry(
            "matmul",
            "C = A·B, f32, any m×k by k×n; 64×64 tiles on the GPU, faer on the CPU (compute-bound)",
            "n, for an n×n×n product",
            (512, 512),
            |rt, n, seed| boxed(matmul::trial(rt, (n, n, n), seed)),
        ),
        entry(
            "mandelbrot",
            "escape-time iteration counts, u32 per pixel, at most 256 iterations (compute-bound)",
            "pixels, as a square image",
            (1 << 20, 1 << 20),
            |rt, pixels, seed| boxed(mandelbrot::trial(rt, square(pixels), seed)),
        ),
        entry(
            "min",
            "smallest f32, NaNs ignored, multi-pass on the GPU (memory-bound)",
            "elements",
            (1 << 23, 1 << 20),
            |rt, n, seed| boxed(reduce::trial(rt, Min, n, seed)),
        ),
        entry(
            "max",
            "largest f32, NaNs ignored, multi-pass on the GPU (memory-bound)",
            "elements",
            (1 << 23, 1 << 20),
            |rt, n, seed| boxed(reduce::trial(rt, Max, n, seed)),
        ),
        entry(
            "argmax",
            "index of the first largest f32, NaNs ignored, multi-pass on the GPU (memory-bound)",
            "elements",
            (1 << 23, 1 << 19),
            |rt, n, seed| boxed(reduce::argmax_trial(rt, n, seed)),
        ),
        entry(
            "scan_u32",
            "prefix sums of u32 (wrapping, exact), inclusive and exclusive by turns; reduce-then-scan in blocks of 256 (memory-bound)",
            "elements",
            (1 << 23, 1 << 19),
            |rt, n, seed| boxed(scan::trial_u32(rt, n, seed)),
        ),
        entry(
            "scan_f32",
            "prefix sums of f32, inclusive and exclusive by turns; reduce-then-scan in blocks of 256 (memory-bound)",
            "elements",
            (1 << 23, 1 << 19),
            |rt, n, seed| boxed(scan::trial_f32(rt, n, seed)),
        ),
        entry(
            "transpose",
            "B = Aᵀ, f32, any m×n; 16×16 tiles through workgroup memory on the GPU (memory-bound)",
            "elements, as a near-square m×n matrix (m = √size)",
            (1 << 20, 1 << 17),
            |rt, elements, seed| boxed(transpose::trial(rt, transpose::shape_for(elements), seed)),
        ),
        entry(
            "spmv",
            "y = A·x, f32 CSR, varying non-zeros per row; 8 invocations per row on the GPU (memory-bound)",
            "non-zeros, in a square matrix with 8 per row on average",
            (1 << 21, 1 << 17),
            |rt, nnz, seed| {
                let rows = nnz.div_ceil(spmv::SAMPLE_ROW_NNZ);
                boxed(spmv::trial(rt, (rows, rows, nnz), seed))
            },
        ),
        entry(
            "softmax",
            "row-wise softmax, f32, stable at any magnitude; up to a workgroup per row on the GPU (memory-bound)",
            "rows of 1,024 columns",
            (4096, 512),
            |rt, rows, seed| boxed(softmax::trial(rt, (rows, softmax::SAMPLE_COLS), seed)),
        ),
        entry(
            "layernorm",
            "row-wise layer normalisation with γ and β, f32, two-pass and shifted so offsets cost no precision (memory-bound)",
            "rows of 1,024 columns",
            (4096, 512),
            |rt, rows, seed| boxed(layernorm::trial(rt, (rows, layernorm::SAMPLE_COLS), seed)),
        ),
        entry(
            "kmeans",
            "one k-means iteration, 16 clusters of 4-D f32 points: nearest centroid, then the means without f32 atomics (compute-bound)",
            "points (4-D, 16 clusters)",
            (1 << 17, 1 << 14),
            |rt, n, seed| boxed(kmeans::trial(rt, (n, 4, 16), seed)),
        ),
        entry(
            "blur",
            "Gaussian blur of an f32 image, 7×7 kernel, clamp-to-edge; 16×16 tiles plus halo in workgroup memory on the GPU (compute-bound)",
            "pixels, as a square image",
            (1 << 19, 1 << 15),
            |rt, pixels, seed| {
                let (width, height) = square(pixels);
                boxed(blur::trial(rt, (width, height, blur::SAMPLE_RADIUS), seed))
            },
        ),
        entry(
            "histogram",
            "counts of u32 values in 256 equal-width bins; per-workgroup histograms with atomics in workgroup memory on the GPU (memory-bound)",
            "values",
            (1 << 24, 1 << 21),
            |rt, n, seed| {
                let dims = (n, histogram::SAMPLE_BINS, histogram::SAMPLE_MAX);
                boxed(histogram::trial(rt, dims, seed))
            },
        ),
        entry(
            "heat",
            "2-D heat diffusion, 50 Jacobi steps of the 5-point stencil, double-buffered on the device (memory-bound)",
            "cells, as a square grid",
            (1 << 18, 1 << 16),
            |rt, cells, seed| {
                let (width, height) = square(cells);
                boxed(heat::trial(rt, (width, height, heat::SAMPLE_STEPS), seed))
            },
        ),
        entry(
            "nbody",
            "one all-pairs gravity step (symplectic Euler); bodies staged 256 at a time in workgroup memory on the GPU (compute-bound)",
            "bodies",
            (4096, 2048),
            |rt, n, seed| boxed(nbody::trial(rt, n, seed)),
        ),
        entry(
            "black_scholes",
            "European call and put prices, f32, shared rate and volatility (compute-bound)",
            "options",
            (1 << 22, 1 << 20),
            |rt, n, seed| boxed(black_scholes::trial(rt, n, seed)),
        ),
        entry(
            "monte_carlo",
            "European option by Monte Carlo, Philox4x32-10 + Box–Muller, same stream on every backend (compute-bound)",
            "paths",
            (1 << 23, 1 << 20),
            |rt, n, seed| boxed(monte_carlo::trial(rt, n, seed)),
        ),
        entry(
            "radix_sort",
            "stable radix sort of u32 keys: 8 passes of 4-bit digits or 4 of 8-bit ones on a GPU (the model chooses), a byte partition then in-cache passes on the CPU (memory-bound)",
            "keys",
            (1 << 20, 1 << 14),
            |rt, n, seed| boxed(sort::trial(rt, n, seed)),
        ),
        entry(
            "radix_sort_pairs",
            "radix_sort with a u32 value per key; values follow their keys, equal keys keep input order (memory-bound)",
            "pairs",
            (1 << 20, 1 << 14),
            |rt, n, seed| boxed(sort::trial_pairs(rt, n, seed)),
        ),
        entry(
            "kmer",
            "counts of all 4^8 8-mers of a 2-bit packed DNA sequence, u32 atomics (latency-bound)",
            "bases",
            (1 << 24, 1 << 22),
            |rt, n, seed| boxed(kmer::trial(rt, (n, kmer::SAMPLE_K), seed)),
        ),
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

//! # pel-kernels
//!
//! pel's sample kernels. Each has a WGSL shader (in the repository's
//! `shaders/`), a rayon implementation written to be fast, and a serial
//! reference. Each module exposes the kernel alone: its params, its type
//! with `new`, `run`, `submit` and `kernel`, and its `reference`.
//!
//! The [`samples`](mod@samples) module runs each on seeded random input and
//! compares with the reference under a stated tolerance; [`samples()`]
//! lists them all for the command line and the tour.

#![deny(missing_docs, unreachable_pub)]

pub mod black_scholes;
pub mod blur;
pub mod heat;
pub mod heat_block;
pub mod histogram;
pub mod kmeans;
pub mod kmer;
mod launch;
pub mod layernorm;
pub mod mandelbrot;
pub mod matmul;
pub mod monte_carlo;
pub mod nbody;
mod par;
pub mod reduce;
pub mod samples;
pub mod saxpy;
pub mod scan;
mod simd_math;
pub mod softmax;
pub mod sort;
pub mod spmv;
pub mod sum;
pub mod taskbench;
pub mod transpose;
mod uniform;

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
pub use samples::{Sample, sample, samples, square};
pub use saxpy::Saxpy;
pub use scan::{Scan, ScanKind};
pub use softmax::Softmax;
pub use sort::Sort;
pub use spmv::{CsrMatrix, Spmv};
pub use sum::Sum;
pub use taskbench::TaskBench;
pub use transpose::Transpose;

/// Every sample shader as pel builds it: the name of its file in the
/// repository's `shaders/` and its whole WGSL source, that file with the
/// shared pieces of `shaders/lib/` and the params structs declared in Rust
/// appended. A shader file alone does not validate; its source here does.
pub const SHADERS: [(&str, &str); 19] = [
    ("black_scholes", black_scholes::WGSL),
    ("blur", blur::WGSL),
    ("heat", heat::WGSL),
    ("histogram", histogram::WGSL),
    ("kmeans", kmeans::WGSL),
    ("kmer", kmer::WGSL),
    ("layernorm", layernorm::WGSL),
    ("mandelbrot", mandelbrot::WGSL),
    ("matmul", matmul::WGSL),
    ("monte_carlo", monte_carlo::WGSL),
    ("nbody", nbody::WGSL),
    ("reduce", reduce::WGSL),
    ("saxpy", saxpy::WGSL),
    ("scan", scan::WGSL),
    ("softmax", softmax::WGSL),
    ("sort", sort::WGSL),
    ("spmv", spmv::WGSL),
    ("sum", sum::WGSL),
    ("transpose", transpose::WGSL),
];

/// The whole WGSL source of the sample shader called `name` (see
/// [`SHADERS`]).
pub fn shader(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

#[deprecated(note = "moved to pel_kernels::samples::Check")]
/// Moved to [`samples::Check`].
pub type Check = samples::Check;
#[deprecated(note = "moved to pel_kernels::samples::Work")]
/// Moved to [`samples::Work`].
pub type Work = samples::Work;
/// Moved to [`samples::Trial`] (a trait cannot be aliased; this re-export
/// stays until every caller names the new path).
pub use samples::Trial;
/// Moved to [`samples::run_check`].
#[deprecated(note = "moved to pel_kernels::samples::run_check")]
pub fn run_check(trial: &mut dyn Trial, rt: &Runtime, target: Target) -> Result<samples::Check> {
    samples::run_check(trial, rt, target)
}

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

/// `Ok` when `ok`, else the [`invalid`] error with `message()`.
pub(crate) fn ensure(
    ok: bool,
    kernel: &str,
    arg: &str,
    message: impl FnOnce() -> String,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(invalid(kernel, arg, message()))
    }
}

/// Checks each `(arg, len)` in `others` against `n`, the length `whole`
/// describes ("x has 5 elements"), in order; `unit` follows a mismatched
/// length in the message.
pub(crate) fn lengths_match(
    kernel: &str,
    n: usize,
    whole: impl Fn() -> String,
    unit: &str,
    others: &[(&str, usize)],
) -> Result<()> {
    for &(arg, len) in others {
        ensure(len == n, kernel, arg, || {
            format!("{} but {arg} has {len}{unit}; they must match", whole())
        })?;
    }
    Ok(())
}

/// Checks that `arg` (of `len` elements) holds a rows×cols `what` (a matrix,
/// an image, a grid).
pub(crate) fn expect_2d(
    kernel: &str,
    arg: &str,
    len: usize,
    (rows, cols): (usize, usize),
    what: &str,
) -> Result<()> {
    ensure(rows.checked_mul(cols) == Some(len), kernel, arg, || {
        format!(
            "a {rows}×{cols} {what} needs {} elements, but {arg} has {len}",
            rows as u128 * cols as u128,
        )
    })
}

/// Checks that `arg` has exactly one element.
pub(crate) fn expect_one(kernel: &str, arg: &str, len: usize) -> Result<()> {
    ensure(len == 1, kernel, arg, || {
        format!("{arg} has {len} elements; it must have exactly 1")
    })
}

/// The width, height, tiles across and tiles in all of a width×height grid
/// of `len` elements cut in tiles of `tile` (width, height), each checked
/// to fit a shader's u32 (an error names `kernel` and `arg` for the grid's
/// length and tile count, and "width" and "height" for those).
pub(crate) fn tile_grid(
    (kernel, arg): (&str, &str),
    len: usize,
    (width, height): (usize, usize),
    (tile_w, tile_h): (usize, usize),
) -> Result<[u32; 4]> {
    u32_len(kernel, arg, len)?;
    let tiles_x = width.div_ceil(tile_w);
    // At most one tile per element, so this fits in u32 when the grid does.
    let tiles = tiles_x * height.div_ceil(tile_h);
    Ok([
        u32_len(kernel, "width", width)?,
        u32_len(kernel, "height", height)?,
        u32_len(kernel, "width", tiles_x)?,
        u32_len(kernel, arg, tiles)?,
    ])
}

//! saxpy: `y = a·x + y`, the BLAS level-1 classic.
//!
//! Per element: 2 floating-point operations, 12 bytes moved (read x and y,
//! write y). Memory-bound on every processor.

use crate::launch::{builder, one_kernel};
use crate::par::par_zip;
use crate::uniform::wgsl_struct;
use crate::{ensure, u32_len};
use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result};

wgsl_struct! {
    saxpy_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct SaxpyParams {
        /// The scale `a`.
        pub a: f32,
        /// Elements.
        pub n: u32,
    }
}

/// The WGSL source.
pub const WGSL: &str = concat!(include_str!("../../shaders/saxpy.wgsl"), saxpy_params!());

one_kernel! {
    /// The saxpy kernel.
    Saxpy = build();
    /// `y = a·x + y` at `target`.
    run,
    /// Submits `y = a·x + y` at `target` and returns its task at once.
    submit(a: f32, x: &Buffer<f32>, y: &Buffer<f32>) => [x, y], Self::params(a, x, y);
}

/// The CPU side: `y += a·x` in chunks of 16 Ki elements, large enough to
/// amortise rayon's task cost, small enough to balance across cores.
fn build() -> Result<Kernel> {
    builder::<SaxpyParams, (Read<f32>, ReadWrite<f32>)>("saxpy", WGSL, |(x, y), p| {
        let a = p.a;
        par_zip(y, x, 1 << 14, |y, x| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y += a * x;
            }
        });
    })
    // Two flops and 12 bytes (x read, y read and written) an element.
    .work(|_, lens| (2.0 * lens[1] as f64, 12.0 * lens[1] as f64))
    .build()
}

impl Saxpy {
    fn params(a: f32, x: &Buffer<f32>, y: &Buffer<f32>) -> Result<SaxpyParams> {
        ensure(x.len() == y.len(), "saxpy", "y", || {
            format!(
                "x has {} elements but y has {}; they must match",
                x.len(),
                y.len()
            )
        })?;
        let n = u32_len("saxpy", "x", x.len())?;
        Ok(SaxpyParams { a, n })
    }
}

/// The serial reference, in f64.
pub fn reference<'a>(a: f32, x: &'a [f32], y: &'a [f32]) -> impl Iterator<Item = f64> + 'a {
    x.iter()
        .zip(y)
        .map(move |(&x, &y)| a as f64 * x as f64 + y as f64)
}

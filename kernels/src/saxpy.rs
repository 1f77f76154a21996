//! saxpy: `y = a·x + y`, the BLAS level-1 classic.
//!
//! Per element: 2 floating-point operations, 12 bytes moved (read x and y,
//! write y). Memory-bound on every processor.

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result};
use rayon::prelude::*;

use crate::launch::{Launch, run_and_submit};
use crate::{invalid, u32_len};

/// The WGSL source.
pub const WGSL: &str = include_str!("../../shaders/saxpy.wgsl");

/// The shader's uniform block.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SaxpyParams {
    /// The scale `a`.
    pub a: f32,
    /// Elements.
    pub n: u32,
}

/// The saxpy kernel.
#[derive(Debug, Clone)]
pub struct Saxpy {
    kernel: Kernel,
}

impl Saxpy {
    /// Builds the kernel.
    pub fn new() -> Result<Self> {
        let kernel = Kernel::builder("saxpy", WGSL)
            .params::<SaxpyParams>()
            .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, p| {
                let (x, y) = args.split();
                let a = p.a;
                // Chunks of 16 Ki elements: large enough to amortise rayon's
                // task cost, small enough to balance across cores.
                y.par_chunks_mut(1 << 14)
                    .zip(x.par_chunks(1 << 14))
                    .for_each(|(y, x)| {
                        for (y, &x) in y.iter_mut().zip(x) {
                            *y += a * x;
                        }
                    });
            })
            .build()?;
        Ok(Saxpy { kernel })
    }

    /// The underlying kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    run_and_submit! {
        /// `y = a·x + y` at `target`.
        run,
        /// Submits `y = a·x + y` at `target` and returns its task at once.
        submit = launch(a: f32, x: &Buffer<f32>, y: &Buffer<f32>);
    }

    fn launch<L: Launch>(
        &self,
        l: &mut L,
        a: f32,
        x: &Buffer<f32>,
        y: &Buffer<f32>,
    ) -> Result<L::Out> {
        l.launch(&self.kernel, &[x, y], &Self::params(a, x, y)?)
    }

    fn params(a: f32, x: &Buffer<f32>, y: &Buffer<f32>) -> Result<SaxpyParams> {
        if x.len() != y.len() {
            return Err(invalid(
                "saxpy",
                "y",
                format!(
                    "x has {} elements but y has {}; they must match",
                    x.len(),
                    y.len()
                ),
            ));
        }
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

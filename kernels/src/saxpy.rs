//! saxpy: `y = a·x + y`, the BLAS level-1 classic.
//!
//! Per element: 2 floating-point operations, 12 bytes moved (read x and y,
//! write y). Memory-bound on every processor.

use pel_runtime::{
    Backend, Buffer, Kernel, Read, ReadWrite, Result, RunInfo, Runtime, Target, Task,
};
use rayon::prelude::*;

use crate::verify::{self, Check, Trial, Work};
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

    /// `y = a·x + y` at `target`.
    pub fn run(
        &self,
        rt: &Runtime,
        target: Target,
        a: f32,
        x: &Buffer<f32>,
        y: &Buffer<f32>,
    ) -> Result<RunInfo> {
        let p = Self::params(a, x, y)?;
        rt.execute(target, &self.kernel, &[x, y], &p)
    }

    /// Submits `y = a·x + y` at `target` and returns its task at once.
    pub fn submit(
        &self,
        rt: &Runtime,
        target: Target,
        a: f32,
        x: &Buffer<f32>,
        y: &Buffer<f32>,
    ) -> Result<Task> {
        let p = Self::params(a, x, y)?;
        rt.submit_to(target, &self.kernel, &[x, y], &p)
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

/// saxpy on seeded random data: `a` in [-2, 2), x and y in [-1, 1).
///
/// Tolerance: each element within 2 ulp of `|a·x| + |y|` (one rounding of the
/// product and one of the sum, or one of a fused multiply-add).
pub struct SaxpyTrial {
    saxpy: Saxpy,
    a: f32,
    xs: Vec<f32>,
    ys: Vec<f32>,
    x: Buffer<f32>,
    y: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares saxpy over `n` elements.
pub fn trial(rt: &Runtime, n: usize, seed: u64) -> Result<SaxpyTrial> {
    let xs = verify::random_f32(seed + 1, n, -1.0, 1.0);
    let ys = verify::random_f32(seed + 2, n, -1.0, 1.0);
    Ok(SaxpyTrial {
        saxpy: Saxpy::new()?,
        a: verify::random_f32(seed, 1, -2.0, 2.0)[0],
        x: rt.buffer(&xs),
        y: rt.buffer(&ys),
        xs,
        ys,
        got: Vec::new(),
    })
}

impl Trial for SaxpyTrial {
    fn shape(&self) -> String {
        self.xs.len().to_string()
    }
    fn work(&self) -> Work {
        Work::per(self.xs.len(), 2.0, 12.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.x, &self.xs)?;
        rt.write(&self.y, &self.ys)
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.saxpy.run(rt, target, self.a, &self.x, &self.y)?;
        rt.read_to_vec(&self.y, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (a, xs, ys) = (self.a, &self.xs, &self.ys);
        let want = reference(a, xs, ys);
        let eps = f32::EPSILON as f64;
        let c = verify::compare(self.got.iter().map(|&v| v as f64), want, |i| {
            2.0 * eps * ((a as f64 * xs[i] as f64).abs() + (ys[i] as f64).abs())
        });
        c.into_check(
            self.shape(),
            backend,
            xs.len().abs_diff(self.got.len()),
            "2 ulp of |a·x|+|y| per element",
        )
    }
}

/// Runs saxpy on `n` seeded random elements and checks it (see [`SaxpyTrial`]).
pub fn check(rt: &Runtime, target: Target, n: usize, seed: u64) -> Result<Check> {
    verify::run_check(&mut trial(rt, n, seed)?, rt, target)
}

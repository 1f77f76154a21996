//! sum: the f32 reduction of an array to one value.
//!
//! Per element: 1 floating-point operation, 4 bytes read. Each pass reduces
//! 256 consecutive elements to one partial sum (a tree in workgroup memory on
//! the GPU, eight interleaved accumulators on the CPU); passes repeat on the
//! partial sums until one value is left, all on the device that holds them.

use std::time::{Duration, Instant};

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result, RunInfo, Runtime, Target};
use rayon::prelude::*;

use crate::verify::{self, Check};
use crate::{invalid, u32_len};

/// The WGSL source.
pub const WGSL: &str = include_str!("../../shaders/sum.wgsl");

/// Elements one partial sum covers (the shader's workgroup size).
pub const CHUNK: usize = 256;

/// The shader's uniform block.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SumParams {
    /// Elements in the input of this pass.
    pub n: u32,
    /// Partial sums this pass writes: `max(1, ceil(n / 256))`.
    pub groups: u32,
}

/// The sum kernel (one pass) and the multi-pass driver.
#[derive(Debug, Clone)]
pub struct Sum {
    kernel: Kernel,
}

/// Sum of one chunk with eight interleaved accumulators: vectorisable, and
/// its rounding error grows with chunk/8 rather than chunk.
fn chunk_sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut it = xs.chunks_exact(8);
    for c in &mut it {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let tail: f32 = it.remainder().iter().sum();
    let a = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    ((a[0] + a[2]) + (a[1] + a[3])) + tail
}

impl Sum {
    /// Builds the kernel.
    pub fn new() -> Result<Self> {
        let kernel = Kernel::builder("sum", WGSL)
            .params::<SumParams>()
            .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, p| {
                let (x, partial) = args.split();
                let n = p.n as usize;
                partial[..p.groups as usize]
                    .par_iter_mut()
                    .enumerate()
                    .with_min_len(64)
                    .for_each(|(g, out)| {
                        let lo = (g * CHUNK).min(n);
                        let hi = (lo + CHUNK).min(n);
                        *out = chunk_sum(&x[lo..hi]);
                    });
            })
            .invocations(|p, _| p.groups as u64 * CHUNK as u64)
            .build()?;
        Ok(Sum { kernel })
    }

    /// The underlying one-pass kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Writes the sum of `x` into `out` (one element). Passes stay on the
    /// device holding the partial sums unless `target` forces one.
    pub fn run(
        &self,
        rt: &Runtime,
        target: Target,
        x: &Buffer<f32>,
        out: &Buffer<f32>,
    ) -> Result<RunInfo> {
        if out.len() != 1 {
            return Err(invalid(
                "sum",
                "out",
                format!("out has {} elements; it must have exactly 1", out.len()),
            ));
        }
        let mut n = u32_len("sum", "x", x.len())? as usize;
        let mut elapsed = Duration::ZERO;
        let mut current = x.clone();
        loop {
            let groups = n.div_ceil(CHUNK).max(1);
            let next = if groups == 1 {
                out.clone()
            } else {
                rt.zeros(groups)
            };
            let params = SumParams {
                n: n as u32,
                groups: groups as u32,
            };
            let info = rt.execute(target, &self.kernel, &[&current, &next], &params)?;
            elapsed += info.elapsed;
            if groups == 1 {
                return Ok(RunInfo {
                    backend: info.backend,
                    elapsed,
                });
            }
            current = next;
            n = groups;
        }
    }
}

/// The serial reference in f64, and the sum of magnitudes (for the tolerance).
pub fn reference(x: &[f32]) -> (f64, f64) {
    x.iter().fold((0.0, 0.0), |(s, m), &v| {
        (s + v as f64, m + (v as f64).abs())
    })
}

/// Sums `n` seeded random elements; `out` starts poisoned with NaN.
///
/// Tolerance: within `1e-5 · Σ|x|` (tree and chunked f32 summation errors
/// grow with the depth of the tree, about `log2(n)·ε·Σ|x|`).
pub fn check(rt: &Runtime, target: Target, n: usize, seed: u64) -> Result<Check> {
    let sum = Sum::new()?;
    let xs = verify::random_f32(seed, n, -1.0, 1.0);
    let (want, magnitude) = reference(&xs);

    let x = rt.buffer(&xs);
    let out = rt.buffer(&[f32::NAN]);
    let start = Instant::now();
    let info = sum.run(rt, target, &x, &out)?;
    let got = rt.read(&out)?;
    let elapsed = start.elapsed();

    let tol = 1e-5 * magnitude + f32::MIN_POSITIVE as f64;
    let c = verify::compare(got.iter().map(|&v| v as f64), [want], |_| tol);
    Ok(Check {
        shape: n.to_string(),
        backend: info.backend,
        elapsed,
        compared: c.compared,
        mismatches: c.mismatches,
        excused: 0,
        allowed_mismatches: 0,
        worst: c.worst,
        first_bad: c.first_bad,
        tolerance: "1e-5 of Σ|x|",
    })
}

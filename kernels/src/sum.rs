//! sum: the f32 reduction of an array to one value.
//!
//! Per element: 1 floating-point operation, 4 bytes read. Each pass reduces
//! blocks of 4,096 consecutive elements to one partial sum each, so 16M
//! elements take two passes. On the GPU each of a workgroup's 256 threads
//! adds 16 elements, then a tree in workgroup memory adds the threads' sums;
//! on the CPU eight interleaved accumulators add each run of 256. Passes
//! repeat on the partial sums until one value is left, all on the device
//! that holds them.

use pel_runtime::{
    Backend, Buffer, BufferArg, Kernel, Read, ReadWrite, Result, RunInfo, Runtime, Target, Task,
};
use rayon::prelude::*;

use crate::PassTimes;
use crate::verify::{self, Check, Trial, Work};
use crate::{invalid, u32_len};

/// The WGSL source.
pub const WGSL: &str = include_str!("../../shaders/sum.wgsl");

/// Threads per workgroup in the shader.
const WG: usize = 256;
/// Elements one partial sum covers: 16 per thread of a workgroup.
pub const CHUNK: usize = WG * 16;

/// The shader's uniform block.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SumParams {
    /// Elements in the input of this pass.
    pub n: u32,
    /// Partial sums this pass writes: `max(1, ceil(n / 4096))`.
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
                    .with_min_len(16)
                    .for_each(|(g, out)| {
                        let lo = (g * CHUNK).min(n);
                        let hi = (lo + CHUNK).min(n);
                        *out = x[lo..hi].chunks(WG).map(chunk_sum).sum();
                    });
            })
            .invocations(|p, _| p.groups as u64 * WG as u64)
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
        let mut times = PassTimes::default();
        self.passes(rt, x, out, |args, params| {
            Ok(times.add(rt.execute(target, &self.kernel, args, params)?))
        })
    }

    /// Submits the passes of the sum of `x` into `out` (one element) and
    /// returns the last one's task without waiting. Each pass reads the
    /// previous pass's partial sums, so the runtime orders them; each is
    /// placed on its own when `target` is automatic.
    pub fn submit(
        &self,
        rt: &Runtime,
        target: Target,
        x: &Buffer<f32>,
        out: &Buffer<f32>,
    ) -> Result<Task> {
        self.passes(rt, x, out, |args, params| {
            rt.submit_to(target, &self.kernel, args, params)
        })
    }

    /// Calls `launch` for each pass, in order, with its arguments (input,
    /// partial sums) and params; returns what the last pass's launch gave.
    fn passes<T>(
        &self,
        rt: &Runtime,
        x: &Buffer<f32>,
        out: &Buffer<f32>,
        mut launch: impl FnMut(&[&dyn BufferArg], &SumParams) -> Result<T>,
    ) -> Result<T> {
        if out.len() != 1 {
            return Err(invalid(
                "sum",
                "out",
                format!("out has {} elements; it must have exactly 1", out.len()),
            ));
        }
        let mut n = u32_len("sum", "x", x.len())? as usize;
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
            let last = launch(&[&current, &next], &params)?;
            if groups == 1 {
                return Ok(last);
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

/// A sum of seeded random values in [-1, 1); the result starts poisoned (NaN).
///
/// Tolerance: within `1e-5 · Σ|x|`. The f32 error grows with the depth of
/// the additions each element goes through: per pass at most 16 + 8 on the
/// GPU and 32 + 16 on the CPU, two passes up to 16M elements; 1e-5 is about
/// `100·ε`.
pub struct SumTrial {
    sum: Sum,
    xs: Vec<f32>,
    x: Buffer<f32>,
    out: Buffer<f32>,
    got: Vec<f32>,
}

/// Prepares a sum of `n` elements.
pub fn trial(rt: &Runtime, n: usize, seed: u64) -> Result<SumTrial> {
    let xs = verify::random_f32(seed, n, -1.0, 1.0);
    Ok(SumTrial {
        sum: Sum::new()?,
        x: rt.buffer(&xs),
        out: rt.buffer(&[f32::NAN]),
        xs,
        got: Vec::new(),
    })
}

impl Trial for SumTrial {
    fn shape(&self) -> String {
        self.xs.len().to_string()
    }
    fn work(&self) -> Work {
        Work::per(self.xs.len(), 1.0, 4.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.x, &self.xs)?;
        rt.write(&self.out, &[f32::NAN])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.sum.run(rt, target, &self.x, &self.out)?;
        rt.read_to_vec(&self.out, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (want, magnitude) = reference(&self.xs);
        let tol = 1e-5 * magnitude + f32::MIN_POSITIVE as f64;
        let c = verify::compare(self.got.iter().map(|&v| v as f64), [want], |_| tol);
        let missing = 1 - c.compared.min(1);
        c.into_check(self.shape(), backend, missing, "1e-5 of Σ|x|")
    }
}

/// Sums `n` seeded random elements and checks it (see [`SumTrial`]).
pub fn check(rt: &Runtime, target: Target, n: usize, seed: u64) -> Result<Check> {
    verify::run_check(&mut trial(rt, n, seed)?, rt, target)
}

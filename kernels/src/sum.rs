//! sum: the f32 reduction of an array to one value.
//!
//! Per element: 1 floating-point operation, 4 bytes read. Each pass reduces
//! blocks of 4,096 consecutive elements to one partial sum each, so 16M
//! elements take two passes. On the GPU each of a workgroup's 256 threads
//! adds 16 elements, then a tree in workgroup memory adds the threads' sums;
//! on the CPU eight interleaved accumulators add each run of 256. Passes
//! repeat on the partial sums until one value is left, all on the device
//! that holds them.

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result, Variant};
use rayon::prelude::*;

use crate::launch::{Launch, builder, reduce_to_one, run_and_submit};
use crate::par::{for_each_block, lanes_sum};
use crate::uniform::wgsl_struct;
use crate::{expect_one, u32_len};

/// Threads per workgroup in the shader.
const WG: usize = 256;
/// Elements one partial sum covers: 16 per thread of a workgroup.
pub const CHUNK: usize = WG * 16;

wgsl_struct! {
    sum_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct SumParams {
        /// Elements in the input of this pass.
        pub n: u32,
        /// Partial sums this pass writes: `max(1, ceil(n / 4096))`.
        pub groups: u32,
    }
}

/// The WGSL source.
pub const WGSL: &str = concat!(
    include_str!("../../shaders/sum.wgsl"),
    include_str!("../../shaders/lib/workgroup_sum.wgsl"),
    sum_params!(),
);

/// Invocations a workgroup of the variant light on barriers has ("light",
/// entry `light` of [`WGSL`]): the same blocks, each invocation adding 64
/// elements, meeting at one barrier, after which one invocation adds the
/// 64 sums. The kernel's own shader (a tree of nine barriers over 256)
/// suits wide hardware workgroups; the model chooses per device.
const LIGHT_WG: u64 = 64;

/// The sum kernel (one pass) and the multi-pass driver.
#[derive(Debug, Clone)]
pub struct Sum {
    kernel: Kernel,
}

impl Sum {
    /// Builds the kernel.
    pub fn new() -> Result<Self> {
        // Each run of 256 in eight interleaved accumulators: vectorisable,
        // and its rounding error grows with 256/8 rather than 256.
        let chunk_sum = |xs: &[f32]| lanes_sum(xs, |v| v);
        let kernel = builder::<SumParams, (Read<f32>, ReadWrite<f32>)>(
            "sum",
            WGSL,
            move |(x, partial), p| {
                let outs = partial[..p.groups as usize].par_iter_mut();
                for_each_block(outs, p.n as usize, CHUNK, 16, |out, r| {
                    *out = x[r].chunks(WG).map(chunk_sum).sum();
                });
            },
        )
        .invocations(|p, _| p.groups as u64 * WG as u64)
        // One add and 4 bytes an element read.
        .work(|p, _| (p.n as f64, 4.0 * p.n as f64))
        .variant(
            Variant::wgsl("light", WGSL)
                .entry("light")
                .invocations(|p: &SumParams, _| p.groups as u64 * LIGHT_WG),
        )
        .build()?;
        Ok(Sum { kernel })
    }

    /// The underlying one-pass kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    run_and_submit! {
        /// Writes the sum of `x` into `out` (one element). Passes stay on the
        /// device holding the partial sums unless `target` forces one.
        run,
        /// Submits the passes of the sum of `x` into `out` (one element) and
        /// returns the last one's task without waiting. Each pass reads the
        /// previous pass's partial sums, so the runtime orders them; each is
        /// placed on its own when `target` is automatic.
        submit = passes(x: &Buffer<f32>, out: &Buffer<f32>);
    }

    /// Launches each pass, in order, with its arguments (input, partial
    /// sums) and params; returns what the last pass's launch gave.
    fn passes<L: Launch>(&self, l: &mut L, x: &Buffer<f32>, out: &Buffer<f32>) -> Result<L::Out> {
        expect_one("sum", "out", out.len())?;
        let n = u32_len("sum", "x", x.len())? as usize;
        reduce_to_one(l, &self.kernel, x, n, CHUNK, out, |n, groups| SumParams {
            n,
            groups,
        })
    }
}

/// The serial reference in f64, and the sum of magnitudes (for the tolerance).
pub fn reference(x: &[f32]) -> (f64, f64) {
    x.iter().fold((0.0, 0.0), |(s, m), &v| {
        (s + v as f64, m + (v as f64).abs())
    })
}

//! reduce: the min, the max and the argmax of an f32 array, NaNs ignored.
//!
//! Per element: 1 floating-point operation (a comparison), 4 bytes read.
//! Memory-bound. Each pass reduces 256 consecutive elements to one partial
//! result (4 elements per invocation, then a tree in workgroup memory on the
//! GPU; eight interleaved lanes on the CPU); passes repeat on the partials
//! until one is left, all on the device that holds them.
//!
//! NaNs are ignored, as by [`f32::min`] and [`f32::max`]. An input with no
//! number at all (empty, or all NaN) has no min, max or argmax, and is
//! refused with [`Error::InvalidInput`](pel_runtime::Error::InvalidInput):
//! the empty input before anything runs, the all-NaN one once the reduction
//! has found no number (so [`Reduce::run`] and [`Argmax::run`] read their
//! 4-byte result back to the host to look). argmax is the index of the
//! *first* maximum: on a tie the lowest index wins, on every backend. The
//! results are exact: a min, a max or a position involves no rounding.

use pel_runtime::{
    Buffer, Kernel, KernelBuilder, Read, ReadWrite, Result, RunInfo, Runtime, Target, Variant,
};
use rayon::prelude::*;

use crate::launch::{Execute, Launch, builder, reduce_to_one};
use crate::par::for_each_block;
use crate::uniform::wgsl_struct;
use crate::{expect_one, invalid, u32_len};

/// Elements one partial result covers (64 invocations, 4 elements each).
pub const CHUNK: usize = 256;

/// The index of an argmax partial whose candidates are all NaN: none.
const NONE: u32 = u32::MAX;

wgsl_struct! {
    reduce_params => Params;
    /// The shaders' uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct ReduceParams {
        /// Elements (or partial results) in the input of this pass.
        pub n: u32,
        /// Partial results this pass writes: `ceil(n / 256)`.
        pub groups: u32,
    }
}

/// The WGSL source of min, max (entry points `min_pass` and `max_pass`) and
/// argmax (`first` and `merge`), and of their variants light on barriers
/// (`min_light`, `max_light`, `first_light` and `merge_light`).
pub const WGSL: &str = concat!(include_str!("../../shaders/reduce.wgsl"), reduce_params!());

/// Which extremum [`Reduce`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// The smallest number.
    Min,
    /// The largest number.
    Max,
}

impl ReduceOp {
    /// Its name, as the kernel and `pel run` call it.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Min => "min",
            ReduceOp::Max => "max",
        }
    }

    /// The min or max of one chunk, NaNs ignored (NaN only if all are).
    fn of_chunk(self, xs: &[f32]) -> f32 {
        // Each arm is its own copy of the loop, with the operation inlined.
        match self {
            ReduceOp::Min => chunk_pick(xs, f32::min),
            ReduceOp::Max => chunk_pick(xs, f32::max),
        }
    }
}

/// The min or max of one chunk, NaNs ignored (NaN only if all are): eight
/// interleaved lanes, which the compiler turns into vector min/max.
#[inline]
fn chunk_pick(xs: &[f32], pick: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    let mut lanes = [f32::NAN; 8];
    let mut it = xs.chunks_exact(8);
    for c in &mut it {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = pick(*l, v);
        }
    }
    let tail = it.remainder().iter().fold(f32::NAN, |a, &v| pick(a, v));
    lanes.iter().fold(tail, |a, &v| pick(a, v))
}

/// The first maximum of one chunk whose first element has index `base`:
/// (value, index), or (NaN, NONE) when the chunk is all NaN. The max comes
/// first (vectorised), then the first position holding it (`==`, so -0 and
/// +0 tie, as in the shader).
fn chunk_argmax(xs: &[f32], base: usize) -> (f32, u32) {
    let max = chunk_pick(xs, f32::max);
    match xs.iter().position(|&v| v == max) {
        Some(i) => (max, (base + i) as u32),
        None => (f32::NAN, NONE),
    }
}

/// Whether candidate `(b, j)` beats `(a, i)`: the shader's rule.
#[inline]
fn beats(b: f32, j: u32, a: f32, i: u32) -> bool {
    !b.is_nan() && (a.is_nan() || b > a || (b == a && j < i))
}

/// The best of a chunk of (value, index) candidates.
fn chunk_merge(vals: &[f32], idx: &[u32]) -> (f32, u32) {
    let best = vals
        .iter()
        .zip(idx)
        .fold((f32::NAN, NONE), |(a, i), (&b, &j)| {
            if beats(b, j, a, i) { (b, j) } else { (a, i) }
        });
    if best.0.is_nan() {
        (f32::NAN, NONE)
    } else {
        best
    }
}

/// The partial results of one pass over `n` inputs: `ceil(n / 256)`, or the
/// error that an operation over nothing has no result.
fn groups(kernel: &str, n: usize) -> Result<usize> {
    if n == 0 {
        return Err(invalid(
            kernel,
            "x",
            format!(
                "x is empty; the {kernel} of no numbers is undefined (pass at least one element that is not NaN)"
            ),
        ));
    }
    Ok(n.div_ceil(CHUNK))
}

fn all_nan(kernel: &str, n: usize) -> pel_runtime::Error {
    invalid(
        kernel,
        "x",
        format!(
            "all {n} elements of x are NaN; {kernel} ignores NaNs, so it needs at least one number"
        ),
    )
}

/// A pass's launch size (64 invocations per partial result) and cost (its
/// input's elements), and its variant light on barriers (labelled "light":
/// the shader's entry point `light`, the same launch), which the model may
/// choose where barriers are dear.
fn pass_size(b: KernelBuilder<ReduceParams>, light: &str) -> KernelBuilder<ReduceParams> {
    b.variant(Variant::wgsl("light", WGSL).entry(light))
        .invocations(|p, _| p.groups as u64 * 64)
        .cost(|p, _| p.n as u64)
        // A compare and 4 bytes read an element (8 for (value, index)).
        .work(|p, _| (p.n as f64, 8.0 * p.n as f64))
}

/// The first `groups` (value, index) partials, in parallel.
fn pairs<'a>(
    val: &'a mut [f32],
    idx: &'a mut [u32],
    groups: usize,
) -> impl IndexedParallelIterator<Item = (&'a mut f32, &'a mut u32)> {
    val[..groups].par_iter_mut().zip(&mut idx[..groups])
}

/// The min or max kernel (one pass) and the multi-pass driver.
#[derive(Debug, Clone)]
pub struct Reduce {
    op: ReduceOp,
    kernel: Kernel,
}

impl Reduce {
    /// Builds the kernel for `op`.
    pub fn new(op: ReduceOp) -> Result<Self> {
        let (entry, light) = match op {
            ReduceOp::Min => ("min_pass", "min_light"),
            ReduceOp::Max => ("max_pass", "max_light"),
        };
        type Args = (Read<f32>, ReadWrite<f32>);
        let kernel = builder::<ReduceParams, Args>(op.name(), WGSL, move |(x, partial), p| {
            let n = (p.n as usize).min(x.len());
            // 64 chunks (16 Ki elements) per task at the least.
            let outs = partial[..p.groups as usize].par_iter_mut();
            for_each_block(outs, n, CHUNK, 64, |out, r| *out = op.of_chunk(&x[r]));
        })
        .entry(entry);
        let kernel = pass_size(kernel, light).build()?;
        Ok(Reduce { op, kernel })
    }

    /// Which extremum it finds.
    pub fn op(&self) -> ReduceOp {
        self.op
    }

    /// The underlying one-pass kernel.
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Writes the min (or max) of the numbers in `x` into `out` (one
    /// element), NaNs ignored. Every pass runs at `target`; with
    /// [`Target::Auto`] each is placed on its own, and the partials stay on
    /// the device that computed them unless the placement moves them.
    ///
    /// An empty or all-NaN `x` is an
    /// [`Error::InvalidInput`](pel_runtime::Error::InvalidInput); to tell
    /// the second, the result (4 bytes) is read back to the host, where it
    /// then stays valid.
    pub fn run(
        &self,
        rt: &Runtime,
        target: Target,
        x: &Buffer<f32>,
        out: &Buffer<f32>,
    ) -> Result<RunInfo> {
        let name = self.op.name();
        expect_one(name, "out", out.len())?;
        let n = u32_len(name, "x", x.len())? as usize;
        groups(name, n)?;
        let mut l = Execute::new(rt, target);
        let last = reduce_to_one(&mut l, &self.kernel, x, n, CHUNK, out, |n, groups| {
            ReduceParams { n, groups }
        })?;
        if rt.read(out)?[0].is_nan() {
            return Err(all_nan(name, x.len()));
        }
        Ok(last)
    }
}

/// The argmax kernels (first pass over the input, merge passes over
/// (value, index) partials) and the multi-pass driver.
#[derive(Debug, Clone)]
pub struct Argmax {
    first: Kernel,
    merge: Kernel,
}

impl Argmax {
    /// Builds the kernels.
    pub fn new() -> Result<Self> {
        type First = (Read<f32>, ReadWrite<f32>, ReadWrite<u32>);
        let first = builder::<ReduceParams, First>("argmax", WGSL, |(x, val, idx), p| {
            let n = (p.n as usize).min(x.len());
            let outs = pairs(val, idx, p.groups as usize);
            for_each_block(outs, n, CHUNK, 64, |(v, i), r| {
                (*v, *i) = chunk_argmax(&x[r.clone()], r.start);
            });
        })
        .entry("first");
        type Merge = (Read<f32>, Read<u32>, ReadWrite<f32>, ReadWrite<u32>);
        let merge = builder::<ReduceParams, Merge>(
            "argmax_merge",
            WGSL,
            |(vals, idx, best_val, best_idx), p| {
                let n = (p.n as usize).min(vals.len()).min(idx.len());
                let outs = pairs(best_val, best_idx, p.groups as usize);
                for_each_block(outs, n, CHUNK, 64, |(v, i), r| {
                    (*v, *i) = chunk_merge(&vals[r.clone()], &idx[r]);
                });
            },
        )
        .entry("merge");
        let (first, merge) = (
            pass_size(first, "first_light").build()?,
            pass_size(merge, "merge_light").build()?,
        );
        Ok(Argmax { first, merge })
    }

    /// The kernel of the first pass, over the input.
    pub fn kernel(&self) -> &Kernel {
        &self.first
    }

    /// The kernel of the later passes, over (value, index) partials.
    pub fn merge_kernel(&self) -> &Kernel {
        &self.merge
    }

    /// Writes the index of the first maximum of `x` into `out` (one
    /// element), NaNs ignored. Every pass runs at `target` (see
    /// [`Reduce::run`]); an empty or all-NaN `x` is an
    /// [`Error::InvalidInput`](pel_runtime::Error::InvalidInput), told as
    /// for [`Reduce::run`] by reading the 4-byte result back.
    pub fn run(
        &self,
        rt: &Runtime,
        target: Target,
        x: &Buffer<f32>,
        out: &Buffer<u32>,
    ) -> Result<RunInfo> {
        expect_one("argmax", "out", out.len())?;
        let mut n = u32_len("argmax", "x", x.len())? as usize;
        let mut l = Execute::new(rt, target);
        let mut current: Option<(Buffer<f32>, Buffer<u32>)> = None;
        let last = loop {
            let groups = groups("argmax", n)?;
            let (next_val, next_idx) = if groups == 1 {
                (rt.zeros(1), out.clone())
            } else {
                (rt.zeros(groups), rt.zeros(groups))
            };
            let params = ReduceParams {
                n: n as u32,
                groups: groups as u32,
            };
            let info = match &current {
                None => l.launch(&self.first, &[x, &next_val, &next_idx], &params)?,
                Some((vals, idx)) => {
                    l.launch(&self.merge, &[vals, idx, &next_val, &next_idx], &params)?
                }
            };
            if groups == 1 {
                break info;
            }
            current = Some((next_val, next_idx));
            n = groups;
        };
        if rt.read(out)?[0] == NONE {
            return Err(all_nan("argmax", x.len()));
        }
        Ok(last)
    }
}

/// The serial reference: the min or max of the numbers in `x`, NaNs
/// ignored; `None` when there is none.
pub fn reference(op: ReduceOp, x: &[f32]) -> Option<f32> {
    let mut best: Option<f32> = None;
    for &v in x.iter().filter(|v| !v.is_nan()) {
        best = Some(match (best, op) {
            (None, _) => v,
            (Some(b), ReduceOp::Min) => {
                if v < b {
                    v
                } else {
                    b
                }
            }
            (Some(b), ReduceOp::Max) => {
                if v > b {
                    v
                } else {
                    b
                }
            }
        });
    }
    best
}

/// The serial reference of argmax: the index of the first maximum of the
/// numbers in `x` (a later equal value, -0 against +0 included, never
/// replaces it), NaNs ignored; `None` when there is no number.
pub fn argmax_reference(x: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in x.iter().enumerate() {
        if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

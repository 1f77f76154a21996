//! scan: inclusive and exclusive prefix sums of u32 (wrapping addition,
//! exact) and f32 arrays.
//!
//! Per element: 1 addition (a floating-point operation for f32, a wrapping
//! integer one for u32) and 8 bytes moved at the least (read x, write y).
//! The passes here read x twice and write y once: 12 bytes per element, plus
//! 1/256 of that for the block totals.
//!
//! Reduce-then-scan in blocks of 256 elements, the same passes on the GPU
//! and on the CPU: `reduce` sums each block into a total; the totals are
//! scanned (exclusively) by the same two kernels, recursively, until one
//! block is left (16M elements: three levels); `scan` then scans each block
//! and adds its block's offset. Scanning the block and adding its offset in
//! one last pass writes y once: 12 bytes per element, where scanning blocks
//! first and adding offsets after (scan-then-propagate) moves 16.
//!
//! On the GPU a workgroup of 64 invocations scans its block in workgroup
//! memory (4 elements per invocation in registers, a Hillis–Steele scan of
//! the 64 invocation totals, coalesced loads and stores through workgroup
//! memory); on the CPU rayon takes runs of blocks, summing each block with
//! vectorised accumulators and scanning it serially. With a forced target
//! every pass runs there, so the data stays on that device; automatic
//! placement places each pass on its own, transfers counted. The output
//! must be a different buffer from the input (the runtime refuses aliased
//! arguments).

use pel_runtime::{Buffer, Element, Kernel, Read, ReadWrite, Result};
use rayon::prelude::*;

use crate::launch::{Launch, builder, run_and_submit};
use crate::par::{for_each_block, lanes_sum};
use crate::uniform::wgsl_struct;
use crate::{ensure, u32_len};

/// Elements one workgroup (and one block total) covers.
pub const BLOCK: usize = 256;

wgsl_struct! {
    scan_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct ScanParams {
        /// Elements at this level.
        pub n: u32,
        /// Blocks of 256 at this level: `max(1, ceil(n / 256))`.
        pub blocks: u32,
        /// 1 for an inclusive scan, 0 for an exclusive one.
        pub inclusive: u32,
    }
}

/// The WGSL source, for u32 elements (the f32 kernels replace its
/// `alias T = u32;` line).
pub const WGSL: &str = concat!(
    include_str!("../../shaders/scan.wgsl"),
    include_str!("../../shaders/lib/workgroup_sum.wgsl"),
    include_str!("../../shaders/lib/workgroup_scan.wgsl"),
    scan_params!(),
);

/// Which prefix sum: with or without the element itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanKind {
    /// `y[i] = x[0] + … + x[i-1]` (`y[0] = 0`).
    Exclusive,
    /// `y[i] = x[0] + … + x[i]`.
    Inclusive,
}

impl ScanKind {
    /// The other kind.
    pub fn other(self) -> ScanKind {
        match self {
            ScanKind::Exclusive => ScanKind::Inclusive,
            ScanKind::Inclusive => ScanKind::Exclusive,
        }
    }

    /// `"exclusive"` or `"inclusive"`.
    pub fn name(self) -> &'static str {
        match self {
            ScanKind::Exclusive => "exclusive",
            ScanKind::Inclusive => "inclusive",
        }
    }
}

/// The prefix-scan kernels (reduce and scan, for u32 and f32) and the
/// multi-pass driver.
///
/// # Examples
///
/// ```
/// use pel_kernels::scan::{Scan, ScanKind};
/// use pel_runtime::{Backend, Runtime, Target};
///
/// let rt = Runtime::builder().gpu(false).persist_model(false).build()?;
/// let x = rt.buffer(&[3u32, 1, 4, 1, 5]);
/// let y = rt.zeros::<u32>(5);
/// Scan::new()?.scan_u32(&rt, Target::On(Backend::Cpu), &x, &y, ScanKind::Exclusive)?;
/// assert_eq!(rt.read(&y)?, vec![0, 3, 4, 8, 9]);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Scan {
    u32: Kernels,
    f32: Kernels,
}

/// One level of the scan: its input, its output, and which scan it is.
struct Level<T: Element> {
    x: Buffer<T>,
    y: Buffer<T>,
    n: u32,
    kind: ScanKind,
}

fn blocks(n: u32) -> u32 {
    n.div_ceil(BLOCK as u32).max(1)
}

impl Scan {
    /// Builds the kernels.
    pub fn new() -> Result<Self> {
        Ok(Scan {
            u32: Kernels::build::<u32>()?,
            f32: Kernels::build::<f32>()?,
        })
    }

    /// The four kernels: u32 reduce, u32 scan, f32 reduce, f32 scan.
    pub fn kernels(&self) -> [&Kernel; 4] {
        [
            &self.u32.reduce,
            &self.u32.scan,
            &self.f32.reduce,
            &self.f32.scan,
        ]
    }

    run_and_submit! {
        /// Writes the prefix sums of `input` (wrapping) into `output`, a buffer
        /// of the same length; the passes run at `target`.
        scan_u32,
        /// Submits the passes of [`scan_u32`](Self::scan_u32) and returns the
        /// last one's task at once.
        submit_u32 = launch(input: &Buffer<u32>, output: &Buffer<u32>, kind: ScanKind);

        /// Writes the prefix sums of `input` into `output`, a buffer of the same
        /// length; the passes run at `target`.
        scan_f32,
        /// Submits the passes of [`scan_f32`](Self::scan_f32) and returns the
        /// last one's task at once.
        submit_f32 = launch(input: &Buffer<f32>, output: &Buffer<f32>, kind: ScanKind);
    }

    /// Launches the passes of a scan of `input` into `output` through
    /// `launch` (also for operations built on the scan, such as the radix
    /// sort).
    pub(crate) fn launch<T: ScanElem, L: Launch>(
        &self,
        launch: &mut L,
        input: &Buffer<T>,
        output: &Buffer<T>,
        kind: ScanKind,
    ) -> Result<L::Out> {
        Self::passes(T::kernels(self), input, output, kind, launch)
    }

    /// Launches the passes of a scan of `x` into `y`: a reduce per level
    /// down to one block, then a scan per level back up, each adding the
    /// offsets the level above computed. Returns the last launch's result.
    fn passes<T: ScanElem, L: Launch>(
        kernels: &Kernels,
        x: &Buffer<T>,
        y: &Buffer<T>,
        kind: ScanKind,
        launch: &mut L,
    ) -> Result<L::Out> {
        let name = kernels.scan.name();
        ensure(x.len() == y.len(), name, "output", || {
            format!(
                "the input has {} elements but the output has {}; they must match",
                x.len(),
                y.len()
            )
        })?;
        let n = u32_len(name, "input", x.len())?;
        // Levels above the caller's: each scans the block totals of the one
        // below, exclusively, into that level's block offsets.
        let mut upper: Vec<Level<T>> = Vec::new();
        let (mut below, mut len) = (x.clone(), n);
        while blocks(len) > 1 {
            let count = blocks(len);
            let totals = launch.rt().zeros::<T>(count as usize);
            let params = ScanParams {
                n: len,
                blocks: count,
                inclusive: 0,
            };
            launch.launch(&kernels.reduce, &[&below, &totals], &params)?;
            upper.push(Level {
                x: totals.clone(),
                y: launch.rt().zeros::<T>(count as usize),
                n: count,
                kind: ScanKind::Exclusive,
            });
            (below, len) = (totals, count);
        }
        let scan_level = |launch: &mut L, level: &Level<T>, offsets: &Buffer<T>| {
            let params = ScanParams {
                n: level.n,
                blocks: blocks(level.n),
                inclusive: (level.kind == ScanKind::Inclusive) as u32,
            };
            launch.launch(&kernels.scan, &[&level.x, offsets, &level.y], &params)
        };
        // The top level is one block: its offset is zero.
        let mut offsets = launch.rt().zeros::<T>(1);
        for level in upper.iter().rev() {
            scan_level(launch, level, &offsets)?;
            offsets = level.y.clone();
        }
        let first = Level {
            x: x.clone(),
            y: y.clone(),
            n,
            kind,
        };
        scan_level(launch, &first, &offsets)
    }
}

/// An element type the scan kernels add: u32 wraps, f32 rounds.
pub(crate) trait ScanElem: Element + Default {
    /// The WGSL type name, and the suffix of the kernels' names.
    const NAME: &'static str;
    fn add(self, other: Self) -> Self;
    /// The sum of one block, in whatever order vectorises.
    fn block_sum(xs: &[Self]) -> Self;
    /// The scan's kernels of this type.
    fn kernels(scan: &Scan) -> &Kernels;
}

impl ScanElem for u32 {
    const NAME: &'static str = "u32";
    #[inline]
    fn add(self, other: u32) -> u32 {
        self.wrapping_add(other)
    }
    fn block_sum(xs: &[u32]) -> u32 {
        xs.iter().fold(0, |a, &v| a.wrapping_add(v))
    }
    fn kernels(scan: &Scan) -> &Kernels {
        &scan.u32
    }
}

impl ScanElem for f32 {
    const NAME: &'static str = "f32";
    #[inline]
    fn add(self, other: f32) -> f32 {
        self + other
    }
    /// Eight interleaved accumulators: vectorisable, and the rounding error
    /// grows with len/8 rather than len.
    fn block_sum(xs: &[f32]) -> f32 {
        lanes_sum(xs, |v| v)
    }
    fn kernels(scan: &Scan) -> &Kernels {
        &scan.f32
    }
}

/// The two kernels of one element type.
#[derive(Debug, Clone)]
pub(crate) struct Kernels {
    reduce: Kernel,
    scan: Kernel,
}

impl Kernels {
    fn build<T: ScanElem>() -> Result<Kernels> {
        let wgsl = WGSL.replacen("alias T = u32;", &format!("alias T = {};", T::NAME), 1);
        let reduce_name = format!("scan_reduce_{}", T::NAME);
        let reduce = builder::<ScanParams, (Read<T>, ReadWrite<T>)>(
            reduce_name,
            wgsl.clone(),
            |(x, totals), p| {
                let n = (p.n as usize).min(x.len());
                let blocks = (p.blocks as usize).min(totals.len());
                let outs = totals[..blocks].par_iter_mut();
                for_each_block(outs, n, BLOCK, 64, |total, r| *total = T::block_sum(&x[r]));
            },
        )
        .entry("reduce")
        .workgroups(|p, _| p.blocks as u64)
        .cost(|p, _| p.n as u64)
        .build()?;
        type ScanArgs<T> = (Read<T>, Read<T>, ReadWrite<T>);
        let scan = builder::<ScanParams, ScanArgs<T>>(
            format!("scan_{}", T::NAME),
            wgsl,
            |(x, offsets, y), p| {
                let n = (p.n as usize).min(x.len()).min(y.len());
                let inclusive = p.inclusive != 0;
                y[..n]
                    .par_chunks_mut(BLOCK)
                    .zip(x[..n].par_chunks(BLOCK))
                    .enumerate()
                    .with_min_len(64)
                    .for_each(|(b, (y, x))| {
                        let offset = offsets.get(b).copied().unwrap_or_default();
                        // The block is scanned from zero and the offset added
                        // last, as on the GPU: one rounding of the offset.
                        let mut run = T::default();
                        if inclusive {
                            for (y, &v) in y.iter_mut().zip(x) {
                                run = run.add(v);
                                *y = offset.add(run);
                            }
                        } else {
                            for (y, &v) in y.iter_mut().zip(x) {
                                *y = offset.add(run);
                                run = run.add(v);
                            }
                        }
                    });
            },
        )
        .entry("scan")
        .workgroups(|p, _| p.blocks as u64)
        .cost(|p, _| p.n as u64)
        .build()?;
        Ok(Kernels { reduce, scan })
    }
}

/// The serial reference: wrapping prefix sums.
pub fn reference_u32(x: &[u32], kind: ScanKind) -> Vec<u32> {
    let mut run = 0u32;
    x.iter()
        .map(|&v| {
            let before = run;
            run = run.wrapping_add(v);
            match kind {
                ScanKind::Exclusive => before,
                ScanKind::Inclusive => run,
            }
        })
        .collect()
}

/// The serial reference in f64: the prefix sums, and the prefix sums of
/// magnitudes `Σ|x_j|` over the same elements (for the tolerance).
pub fn reference_f32(x: &[f32], kind: ScanKind) -> (Vec<f64>, Vec<f64>) {
    let (mut run, mut mag) = (0.0f64, 0.0f64);
    x.iter()
        .map(|&v| {
            let before = (run, mag);
            run += v as f64;
            mag += (v as f64).abs();
            match kind {
                ScanKind::Exclusive => before,
                ScanKind::Inclusive => (run, mag),
            }
        })
        .unzip()
}

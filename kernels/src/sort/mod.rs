//! sort: stable radix sort of u32 keys, ascending, alone or with u32
//! values that follow their keys (equal keys keep their input order).
//!
//! Per key: no floating-point operations, and 8 bytes moved at the least
//! (each key read and written once; 16 for pairs): the figure for GB/s.
//! What each device's algorithm moves through memory:
//! - GPU: 8 passes of 4-bit digits, each reading the keys twice and writing
//!   them once: 12 bytes per key per pass, 96 in all (pairs: 160), plus
//!   about 3/4 of a byte per key per pass for the tile histograms and their
//!   scan; or 4 passes of 8-bit digits: 48 bytes (pairs 80), plus about 3
//!   bytes per key per pass for the histograms (256 counts a tile).
//! - CPU: one count of every byte of every key (4 bytes), one partition by
//!   the highest varying byte (8; pairs 16), then buckets sorted in cache
//!   and written back (8; pairs 16): about 20 bytes per key (pairs 36).
//!
//! The GPU has two plans: 8 passes of 4-bit digits, or 4 passes of 8-bit
//! ones ([`Digits`]), each tile then ranked twice per pass (by each half of
//! its digit) against 16 times the histogram. Which is faster depends on
//! the device (llvmpipe: 4-bit on Vulkan, 8-bit on GL, by 1.2–2×), so
//! [`Sort::radix_sort`] on a GPU runs the one the model chooses there
//! ([`Runtime::choose_plan`]), after timing each as a whole.
//!
//! The GPU's pass, three kernels: `sort_histogram` counts each tile's keys
//! (1,024 of them) per digit, digit-major; the scan kernels ([`Scan`]) turn
//! the counts into each (digit, tile)'s first output slot; then
//! `sort_scatter_keys` (or `_pairs`) ranks each tile's keys by digit in
//! workgroup memory (per-invocation digit counts and their scan, a stable
//! local sort) and writes the tile out in that order, so neighbouring
//! invocations write neighbouring slots. Passes alternate between the keys'
//! buffer and a temporary, all on the GPU; after 8 the keys are back.
//!
//! The CPU's sort, one kernel (`radix_sort`, `radix_sort_pairs`): bytes on
//! which all keys agree are skipped; a parallel stable partition by the
//! highest varying byte (per-chunk counts, each chunk scattering into its
//! own disjoint ranges of the output, cut with `split_at_mut`: no `unsafe`)
//! leaves 256 buckets of about n/256 keys, and each bucket is LSD-sorted on
//! the lower bytes by one thread, in cache, the buckets in parallel (a
//! bucket too large for that gets parallel passes). Its shader does the same
//! sort in one workgroup: correct on a GPU, as a kernel must be, not fast.
//!
//! Every pass kernel also runs on the CPU (correctly; the whole-sort kernel
//! is faster there), so automatic placement may put any of them anywhere.

use pel_runtime::{
    Backend, Buffer, Kernel, KernelBuilder, Plans, Read, ReadWrite, Result, RunInfo, Runtime,
    Target,
};

use crate::launch::{Execute, Launch, builder, run_and_submit};
use crate::scan::{Scan, ScanKind};
use crate::uniform::wgsl_struct;
use crate::{ensure, u32_len};

mod cpu;

#[cfg(test)]
pub(crate) use cpu::SERIAL_BELOW;
pub(crate) use cpu::whole_cpu;
use cpu::{histogram_cpu, scatter_cpu};

/// Keys one GPU workgroup ranks (and one histogram column counts).
pub const TILE: usize = 1024;

/// Bits per digit.
pub const DIGIT_BITS: u32 = 4;

/// Passes over the keys: one per digit.
pub const PASSES: u32 = 32 / DIGIT_BITS;

/// Digit values.
const RADIX: usize = 1 << DIGIT_BITS;

/// Bits per digit of the wide passes.
pub const WIDE_DIGIT_BITS: u32 = 8;

/// Digit values of the wide passes.
const WIDE_RADIX: usize = 1 << WIDE_DIGIT_BITS;

/// How many bits a GPU pass sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digits {
    /// 4-bit digits: 8 passes, each tile ranked once in workgroup memory.
    Four,
    /// 8-bit digits: 4 passes, each tile ranked twice (by each half of its
    /// digit), with 16 times the histogram to scan.
    Eight,
}

impl Digits {
    /// Every width, in the order of the sort's [`Plans`].
    pub const ALL: [Digits; 2] = [Digits::Four, Digits::Eight];

    /// Bits per digit.
    pub fn bits(self) -> u32 {
        match self {
            Digits::Four => DIGIT_BITS,
            Digits::Eight => WIDE_DIGIT_BITS,
        }
    }

    /// Passes over 32-bit keys.
    pub fn passes(self) -> u32 {
        32 / self.bits()
    }

    /// Its label, as a plan of the sort is named.
    pub fn label(self) -> &'static str {
        match self {
            Digits::Four => "digits4",
            Digits::Eight => "digits8",
        }
    }
}

wgsl_struct! {
    sort_params => Params;
    /// The shaders' uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct SortParams {
        /// Keys.
        pub n: u32,
        /// The digit's lowest bit: 0, 4, …, 28.
        pub shift: u32,
        /// Tiles of 1,024 keys: `max(1, ceil(n / 1024))`.
        pub tiles: u32,
    }
}

wgsl_struct! {
    whole_sort_params => WholeParams;
    /// The whole-sort kernels' uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct WholeSortParams {
        /// Keys.
        pub n: u32,
    }
}

/// The WGSL source: the multi-pass kernels (`histogram`, `scatter_keys`,
/// `scatter_pairs`) and the whole-sort kernels (`sort_keys`, `sort_pairs`:
/// one workgroup, correct on any device, fast on none; pel runs them on the
/// CPU).
pub const WGSL: &str = concat!(
    include_str!("../../../shaders/sort.wgsl"),
    include_str!("../../../shaders/lib/workgroup_scan.wgsl"),
    sort_params!(),
    whole_sort_params!(),
);

/// The radix-sort kernels (the GPU's passes, the CPU's whole sort) and the
/// driver that runs one or the other where the sort is placed.
///
/// # Examples
///
/// ```
/// use pel_kernels::sort::Sort;
/// use pel_runtime::{Backend, Runtime, Target};
///
/// let rt = Runtime::builder().gpu(false).persist_model(false).build()?;
/// let keys = rt.buffer(&[30u32, 10, 20, 10]);
/// let values = rt.buffer(&[0u32, 1, 2, 3]);
/// Sort::new()?.radix_sort_pairs(&rt, Target::On(Backend::Cpu), &keys, &values)?;
/// assert_eq!(rt.read(&keys)?, vec![10, 10, 20, 30]);
/// assert_eq!(rt.read(&values)?, vec![1, 3, 2, 0]);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sort {
    histogram: Kernel,
    scatter_keys: Kernel,
    scatter_pairs: Kernel,
    /// The wide passes' histogram, keys scatter and pairs scatter.
    wide: [Kernel; 3],
    whole_keys: Kernel,
    whole_pairs: Kernel,
    scan: Scan,
    /// The GPU's plans (one per digit width, in [`Digits::ALL`]'s order)
    /// for keys, then for pairs.
    plans: [Plans; 2],
}

fn tiles(n: u32) -> u32 {
    n.div_ceil(TILE as u32).max(1)
}

/// One sort's buffers: the caller's, and the temporaries every path needs
/// (created lazily: a path that does not touch one never allocates it).
struct Plan<'a> {
    keys: &'a Buffer<u32>,
    values: Option<&'a Buffer<u32>>,
    n: u32,
    tiles: u32,
    tmp: Buffer<u32>,
    tmp_vals: Option<Buffer<u32>>,
    hist: Buffer<u32>,
    offsets: Buffer<u32>,
    hist_wide: Buffer<u32>,
    offsets_wide: Buffer<u32>,
}

impl<'a> Plan<'a> {
    fn new(rt: &Runtime, keys: &'a Buffer<u32>, values: Option<&'a Buffer<u32>>) -> Result<Self> {
        let name = if values.is_some() {
            "radix_sort_pairs"
        } else {
            "radix_sort"
        };
        if let Some(v) = values {
            ensure(v.len() == keys.len(), name, "values", || {
                format!(
                    "there are {} keys but {} values; they must match",
                    keys.len(),
                    v.len()
                )
            })?;
        }
        let n = u32_len(name, "keys", keys.len())?;
        let tiles = tiles(n);
        Ok(Plan {
            keys,
            values,
            n,
            tiles,
            tmp: rt.zeros(n as usize),
            tmp_vals: values.map(|_| rt.zeros(n as usize)),
            hist: rt.zeros(RADIX * tiles as usize),
            offsets: rt.zeros(RADIX * tiles as usize),
            hist_wide: rt.zeros(WIDE_RADIX * tiles as usize),
            offsets_wide: rt.zeros(WIDE_RADIX * tiles as usize),
        })
    }

    fn params(&self, pass: u32, digits: Digits) -> SortParams {
        SortParams {
            n: self.n,
            shift: pass * digits.bits(),
            tiles: self.tiles,
        }
    }
}

/// The GPU plans of `name`: one per digit width, each known by the
/// shaders' source (a change to them is a new plan, measured afresh).
fn plans(name: &str) -> Result<Plans> {
    let plans = Digits::ALL.map(|d| (d.label(), WGSL));
    Plans::new(name, &plans)
}

impl Sort {
    /// Builds the kernels (and the scan's).
    pub fn new() -> Result<Self> {
        // Each pass kernel launches a workgroup per tile; each whole-sort
        // kernel, one.
        let pass = |b: KernelBuilder<SortParams>, entry: &str| {
            b.entry(entry)
                .workgroups(|p, _| p.tiles as u64)
                .cost(|p, _| p.n as u64)
                .build()
        };
        let whole = |b: KernelBuilder<WholeSortParams>, entry: &str| {
            b.entry(entry)
                .workgroups(|_, _| 1)
                .cost(|p, _| p.n as u64)
                .build()
        };
        // The pass kernels of digits of R values, named with `suffix`.
        fn pass_kernels<const R: usize>(suffix: &str) -> [KernelBuilder<SortParams>; 3] {
            type Hist = (Read<u32>, ReadWrite<u32>);
            type Keys = (Read<u32>, Read<u32>, ReadWrite<u32>);
            type Pairs = (
                Read<u32>,
                Read<u32>,
                Read<u32>,
                ReadWrite<u32>,
                ReadWrite<u32>,
            );
            [
                builder::<SortParams, Hist>(
                    format!("sort_histogram{suffix}"),
                    WGSL,
                    |(src, hist), p| histogram_cpu::<R>(src, hist, p),
                ),
                builder::<SortParams, Keys>(
                    format!("sort_scatter_keys{suffix}"),
                    WGSL,
                    |(src, offsets, dst), p| scatter_cpu::<R>(p, offsets, src, dst, None),
                ),
                builder::<SortParams, Pairs>(
                    format!("sort_scatter_pairs{suffix}"),
                    WGSL,
                    |(src, src_vals, offsets, dst, dst_vals), p| {
                        scatter_cpu::<R>(p, offsets, src, dst, Some((src_vals, dst_vals)))
                    },
                ),
            ]
        }
        let [histogram, scatter_keys, scatter_pairs] = pass_kernels::<RADIX>("");
        let [wide_histogram, wide_keys, wide_pairs] = pass_kernels::<WIDE_RADIX>("_wide");
        type WholeKeys = (ReadWrite<u32>, ReadWrite<u32>);
        let whole_keys =
            builder::<WholeSortParams, WholeKeys>("radix_sort", WGSL, |(keys, tmp), p| {
                let n = (p.n as usize).min(keys.len()).min(tmp.len());
                whole_cpu::<false>(&mut keys[..n], &mut [], &mut tmp[..n], &mut []);
            });
        type WholePairs = (
            ReadWrite<u32>,
            ReadWrite<u32>,
            ReadWrite<u32>,
            ReadWrite<u32>,
        );
        let whole_pairs = builder::<WholeSortParams, WholePairs>(
            "radix_sort_pairs",
            WGSL,
            |(keys, tmp, vals, tmp_vals), p| {
                let n = [keys.len(), tmp.len(), vals.len(), tmp_vals.len()]
                    .into_iter()
                    .fold(p.n as usize, usize::min);
                whole_cpu::<true>(
                    &mut keys[..n],
                    &mut vals[..n],
                    &mut tmp[..n],
                    &mut tmp_vals[..n],
                );
            },
        );
        let (histogram, scatter_keys, scatter_pairs) = (
            pass(histogram, "histogram")?,
            pass(scatter_keys, "scatter_keys")?,
            pass(scatter_pairs, "scatter_pairs")?,
        );
        let wide = [
            pass(wide_histogram, "histogram_wide")?,
            pass(wide_keys, "scatter_keys_wide")?,
            pass(wide_pairs, "scatter_pairs_wide")?,
        ];
        let whole_keys = whole(whole_keys, "sort_keys")?;
        let whole_pairs = whole(whole_pairs, "sort_pairs")?;
        Ok(Sort {
            histogram,
            scatter_keys,
            scatter_pairs,
            wide,
            whole_keys,
            whole_pairs,
            scan: Scan::new()?,
            plans: [plans("radix_sort")?, plans("radix_sort_pairs")?],
        })
    }

    /// The GPU algorithm's pass kernels (histogram, keys-only scatter, pairs
    /// scatter), then the whole-sort kernels the CPU runs (keys, pairs).
    pub fn kernels(&self) -> [&Kernel; 5] {
        [
            &self.histogram,
            &self.scatter_keys,
            &self.scatter_pairs,
            &self.whole_keys,
            &self.whole_pairs,
        ]
    }

    /// The scan whose u32 kernels turn the histograms into offsets.
    pub fn scan(&self) -> &Scan {
        &self.scan
    }

    run_and_submit! {
        /// Sorts `keys` in place, ascending.
        ///
        /// On a GPU: the passes of the multi-pass kernels, all on that GPU, of
        /// the digit width the model chooses there. On the CPU: the
        /// whole-sort kernel, once. Automatic placement places the first
        /// pass's histogram, then sorts on the device that got it.
        radix_sort,
        /// Submits [`radix_sort`](Self::radix_sort) and returns its last task
        /// at once. With automatic placement each pass of the multi-pass
        /// kernels is placed on its own when it runs. Submitted passes are
        /// of 4-bit digits (a plan is chosen only where it can be timed).
        submit_radix_sort = sort_keys(keys: &Buffer<u32>);

        /// Sorts `keys` in place, ascending and stably, and permutes `values`
        /// (the same length, a different buffer) the same way. Placement as
        /// for [`radix_sort`](Self::radix_sort).
        radix_sort_pairs,
        /// Submits [`radix_sort_pairs`](Self::radix_sort_pairs) and returns its
        /// last task at once; placement as for
        /// [`submit_radix_sort`](Self::submit_radix_sort).
        submit_radix_sort_pairs = sort_pairs(keys: &Buffer<u32>, values: &Buffer<u32>);
    }

    /// Sorts `keys` (and `values`, if given) with the multi-pass kernels at
    /// `target`, whatever the device: the GPU's algorithm, which
    /// [`radix_sort`](Self::radix_sort) uses on GPUs. On the CPU it is
    /// correct but slower than the whole-sort kernel.
    pub fn radix_sort_passes(
        &self,
        rt: &Runtime,
        target: Target,
        keys: &Buffer<u32>,
        values: Option<&Buffer<u32>>,
    ) -> Result<RunInfo> {
        self.radix_sort_passes_with(rt, target, keys, values, Digits::Four)
    }

    /// [`radix_sort_passes`](Self::radix_sort_passes) with digits of the
    /// width given.
    pub fn radix_sort_passes_with(
        &self,
        rt: &Runtime,
        target: Target,
        keys: &Buffer<u32>,
        values: Option<&Buffer<u32>>,
        digits: Digits,
    ) -> Result<RunInfo> {
        let plan = Plan::new(rt, keys, values)?;
        self.passes(&plan, &mut Execute::new(rt, target), false, digits)
    }

    /// The wide passes' kernels (8-bit digits): histogram, keys-only
    /// scatter, pairs scatter.
    pub fn wide_kernels(&self) -> [&Kernel; 3] {
        [&self.wide[0], &self.wide[1], &self.wide[2]]
    }

    fn sort_keys<L: Launch>(&self, l: &mut L, keys: &Buffer<u32>) -> Result<L::Out> {
        self.sort(l, &Plan::new(l.rt(), keys, None)?)
    }

    fn sort_pairs<L: Launch>(
        &self,
        l: &mut L,
        keys: &Buffer<u32>,
        values: &Buffer<u32>,
    ) -> Result<L::Out> {
        self.sort(l, &Plan::new(l.rt(), keys, Some(values))?)
    }

    fn sort<L: Launch>(&self, l: &mut L, plan: &Plan<'_>) -> Result<L::Out> {
        match l.target() {
            Target::On(Backend::Cpu) => self.whole(plan, l),
            Target::Auto => {
                // The first histogram shows where the runtime would sort
                // (data, queues, the model); the rest follows it there.
                let first = l.launch(
                    &self.histogram,
                    &[plan.keys, &plan.hist],
                    &plan.params(0, Digits::Four),
                )?;
                match l.follow(&first) {
                    Some(Backend::Cpu) => self.whole(plan, l),
                    Some(gpu) => self.planned(plan, l, gpu, true),
                    None => self.passes(plan, l, true, Digits::Four),
                }
            }
            Target::On(gpu) if l.runs_now() => self.planned(plan, l, gpu, false),
            _ => self.passes(plan, l, false, Digits::Four),
        }
    }

    /// The passes on `gpu` of the digit width the model expects to sort
    /// fastest there, after timing each width's whole sort (see
    /// [`Runtime::choose_plan`]); `first_counted`: as for the passes, but a
    /// measured run counts again, to time the whole plan.
    fn planned<L: Launch>(
        &self,
        plan: &Plan<'_>,
        l: &mut L,
        gpu: Backend,
        first_counted: bool,
    ) -> Result<L::Out> {
        let rt = l.rt().clone();
        let plans = &self.plans[usize::from(plan.values.is_some())];
        let run = rt.choose_plan(plans, gpu, u64::from(plan.n))?;
        let digits = Digits::ALL[run.index()];
        let counted = first_counted && !run.measured();
        let out = self.passes(plan, l, counted, digits)?;
        run.finish(&rt)?;
        Ok(out)
    }

    /// The whole sort as one kernel (the CPU's way).
    fn whole<L: Launch>(&self, plan: &Plan<'_>, launch: &mut L) -> Result<L::Out> {
        let params = WholeSortParams { n: plan.n };
        match (plan.values, &plan.tmp_vals) {
            (Some(v), Some(tv)) => {
                launch.launch(&self.whole_pairs, &[plan.keys, &plan.tmp, v, tv], &params)
            }
            _ => launch.launch(&self.whole_keys, &[plan.keys, &plan.tmp], &params),
        }
    }

    /// Launches the passes of `digits` (histogram, scan, scatter each),
    /// alternating between the caller's buffers and the temporaries, the
    /// first histogram unless `first_counted` (a 4-bit one only); returns
    /// what the last launch gave.
    fn passes<L: Launch>(
        &self,
        plan: &Plan<'_>,
        launch: &mut L,
        first_counted: bool,
        digits: Digits,
    ) -> Result<L::Out> {
        let ([histogram, scatter_keys, scatter_pairs], hist, offsets) = match digits {
            Digits::Four => (
                [&self.histogram, &self.scatter_keys, &self.scatter_pairs],
                &plan.hist,
                &plan.offsets,
            ),
            Digits::Eight => (
                [&self.wide[0], &self.wide[1], &self.wide[2]],
                &plan.hist_wide,
                &plan.offsets_wide,
            ),
        };
        let counted = first_counted && digits == Digits::Four;
        let pass = |launch: &mut L, pass: u32| -> Result<L::Out> {
            let params = plan.params(pass, digits);
            // Even passes read the caller's buffers, odd ones the temporaries
            // (an even number of passes ends where the keys started).
            let swap = |a, b| {
                if pass.is_multiple_of(2) {
                    (a, b)
                } else {
                    (b, a)
                }
            };
            let (from, to) = swap(plan.keys, &plan.tmp);
            if pass > 0 || !counted {
                launch.launch(histogram, &[from, hist], &params)?;
            }
            self.scan
                .launch(launch, hist, offsets, ScanKind::Exclusive)?;
            match (plan.values, &plan.tmp_vals) {
                (Some(v), Some(tv)) => {
                    let (vfrom, vto) = swap(v, tv);
                    launch.launch(scatter_pairs, &[from, vfrom, offsets, to, vto], &params)
                }
                _ => launch.launch(scatter_keys, &[from, offsets, to], &params),
            }
        };
        let mut out = pass(launch, 0)?;
        for p in 1..digits.passes() {
            out = pass(launch, p)?;
        }
        Ok(out)
    }
}

/// The serial reference: the keys sorted ascending.
pub fn reference(keys: &[u32]) -> Vec<u32> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    sorted
}

/// The serial reference for pairs: a stable sort by key.
pub fn reference_pairs(keys: &[u32], values: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut pairs: Vec<(u32, u32)> = keys.iter().copied().zip(values.iter().copied()).collect();
    pairs.sort_by_key(|&(k, _)| k);
    pairs.into_iter().unzip()
}

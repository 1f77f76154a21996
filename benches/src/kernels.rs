//! `pel bench kernels`: every sample kernel over a range of sizes on every
//! backend and with automatic placement, next to the program a user would
//! otherwise write where there is one, in the same run; achieved GFLOP/s
//! and GB/s, and the fraction of the machine's roofline.
//!
//! The roofline comes from two measurements per backend ([`roofline`]): a
//! STREAM-style triad (`a = b + s·c`, 12 bytes per element) for memory
//! bandwidth, and a square GEMM for arithmetic peak (faer on the CPU, pel's
//! own tiled matmul on a GPU, on resident data). A point's roofline time is
//! `max(flops / peak, bytes / bandwidth)` on the backend automatic placement
//! chose; its fraction is that time over the measured one. Measured times
//! run from host-resident inputs to the result on the host (as a user calls
//! pel), so on a discrete GPU the fraction also shows what transfers cost.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

use pel::kernels::Matmul;
use pel::kernels::samples::{Sample, samples};
use pel::{Backend, Kernel, Read, ReadWrite, Result, Runtime, Target};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

use pel::calibrate::calibrate_trial;
use pel::csv::Row;

use crate::peers::{faer_gemm, random_f32, rayon_saxpy, rayon_sum};
use crate::{Medians, interleaved_for, median};

/// One backend's peaks.
#[derive(Debug, Clone, Serialize)]
pub struct Peak {
    /// Triad bandwidth, GB/s.
    pub bandwidth_gbs: f64,
    /// GEMM rate, GFLOP/s.
    pub gflops: f64,
    /// Elements of each triad array.
    pub triad_elements: usize,
    /// n of the n×n×n GEMM.
    pub gemm_n: usize,
}

impl Peak {
    /// The least time `flops` and `bytes` can take at these peaks.
    pub fn bound_s(&self, flops: f64, bytes: f64) -> f64 {
        (flops / (self.gflops * 1e9)).max(bytes / (self.bandwidth_gbs * 1e9))
    }
}

const TRIAD_WGSL: &str = r#"
struct Params { s: f32, n: u32 }
@group(0) @binding(0) var<storage, read> b: array<f32>;
@group(0) @binding(1) var<storage, read> c: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 256u;
    if i < p.n { a[i] = b[i] + p.s * c[i]; }
}
"#;

/// Arithmetic throughput without memory traffic or barriers: four
/// independent chains of 128 fused multiply-adds per invocation (1,024
/// flops), seeded from the index so nothing folds away.
const FMA_WGSL: &str = r#"
@group(0) @binding(0) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.x + id.y * groups.x * 256u;
    if i >= arrayLength(&out) { return; }
    let x = f32(i) * 1e-9;
    var a = x; var b = x + 0.25; var c = x + 0.5; var d = x + 0.75;
    for (var k = 0u; k < 128u; k++) {
        a = fma(a, 0.999, x); b = fma(b, 0.999, x);
        c = fma(c, 0.999, x); d = fma(d, 0.999, x);
    }
    out[i] = a + b + c + d;
}
"#;

/// Flops per invocation of [`FMA_WGSL`].
const FMA_FLOPS: f64 = 4.0 * 128.0 * 2.0;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TriadParams {
    s: f32,
    n: u32,
}

fn triad_cpu(b: &[f32], c: &[f32], a: &mut [f32], s: f32) {
    a.par_chunks_mut(1 << 14)
        .zip(b.par_chunks(1 << 14).zip(c.par_chunks(1 << 14)))
        .for_each(|(a, (b, c))| {
            for ((a, &b), &c) in a.iter_mut().zip(b).zip(c) {
                *a = b + s * c;
            }
        });
}

/// Measures every backend's peaks: the triad and the GEMM, medians of
/// `reps` runs after a warm-up. `quick`: smaller problems. CPU figures are
/// wall times; a GPU's are its execution times on resident data (timestamp
/// queries where the adapter has them). A GPU's arithmetic peak is the
/// better of pel's matmul and a kernel of independent fused multiply-adds,
/// since a software or small GPU may run the matmul's barriers slowly.
pub fn roofline(rt: &Runtime, quick: bool, reps: usize) -> Result<BTreeMap<String, Peak>> {
    let reps = reps.max(3);
    let (elems, cpu_n, gpu_n) = if quick {
        (1 << 21, 256, 128)
    } else {
        (1 << 24, 1024, 512)
    };
    let mut peaks = BTreeMap::new();
    let (b, c) = (random_f32(31, elems), random_f32(32, elems));

    // CPU: a rayon triad and faer's GEMM.
    let mut a = vec![0.0f32; elems];
    let triad_s = timed(reps, || triad_cpu(&b, &c, &mut a, 0.5));
    let (ga, gb) = (random_f32(33, cpu_n * cpu_n), random_f32(34, cpu_n * cpu_n));
    let mut gc = vec![0.0f32; cpu_n * cpu_n];
    let gemm_s = timed(reps, || faer_gemm(&ga, &gb, &mut gc, cpu_n));
    peaks.insert(
        Backend::Cpu.to_string(),
        Peak {
            bandwidth_gbs: 12.0 * elems as f64 / triad_s / 1e9,
            gflops: 2.0 * (cpu_n as f64).powi(3) / gemm_s / 1e9,
            triad_elements: elems,
            gemm_n: cpu_n,
        },
    );

    // Each GPU: the same triad as a kernel, and pel's matmul.
    let gpus: Vec<Backend> = rt.gpu_backends();
    if gpus.is_empty() {
        return Ok(peaks);
    }
    let triad = Kernel::builder("triad", TRIAD_WGSL)
        .params::<TriadParams>()
        .cpu::<(Read<f32>, Read<f32>, ReadWrite<f32>)>(|args, p| {
            let (b, c, a) = args.split();
            triad_cpu(b, c, a, p.s);
        })
        .build()?;
    let fma = Kernel::builder("fma_peak", FMA_WGSL)
        .cpu::<(ReadWrite<f32>,)>(|args, _: &()| {
            let (out,) = args.split();
            out.fill(0.0);
        })
        .build()?;
    let fma_items = elems / 4;
    let fb = rt.zeros::<f32>(fma_items);
    let matmul = Matmul::new()?;
    let (bb, cb, ab) = (rt.buffer(&b), rt.buffer(&c), rt.zeros::<f32>(elems));
    let params = TriadParams {
        s: 0.5,
        n: elems as u32,
    };
    let (mb, nb) = (
        rt.buffer(&random_f32(35, gpu_n * gpu_n)),
        rt.buffer(&random_f32(36, gpu_n * gpu_n)),
    );
    let ob = rt.zeros::<f32>(gpu_n * gpu_n);
    for g in gpus {
        // Each run timed to the end of its GPU work (`sync`): a queued
        // launch returns before it runs.
        let exec = |f: &mut dyn FnMut() -> Result<pel::RunInfo>| -> Result<f64> {
            f()?; // the upload and the pipeline's compilation
            rt.sync()?;
            let mut v = Vec::with_capacity(reps);
            for _ in 0..reps {
                let start = Instant::now();
                f()?;
                rt.sync()?;
                v.push(start.elapsed().as_secs_f64());
            }
            Ok(median(v).max(1e-9))
        };
        let triad_s = exec(&mut || rt.run_on(g, &triad, &[&bb, &cb, &ab], &params))?;
        let gemm_s =
            exec(&mut || matmul.run(rt, Target::On(g), &mb, &nb, &ob, gpu_n, gpu_n, gpu_n))?;
        let fma_s = exec(&mut || rt.run_on(g, &fma, &[&fb], &()))?;
        peaks.insert(
            g.to_string(),
            Peak {
                bandwidth_gbs: 12.0 * elems as f64 / triad_s / 1e9,
                gflops: (2.0 * (gpu_n as f64).powi(3) / gemm_s)
                    .max(FMA_FLOPS * fma_items as f64 / fma_s)
                    / 1e9,
                triad_elements: elems,
                gemm_n: gpu_n,
            },
        );
    }
    Ok(peaks)
}

/// Median wall time of `reps` calls of `f` after one untimed call.
fn timed(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f();
        v.push(start.elapsed().as_secs_f64());
    }
    median(v).max(1e-9)
}

/// Sizes for the kernels suite: each sample's tour size and smaller ones by
/// factors of 4 (sizes below 1 dropped); `quick` keeps only the two
/// smallest of four, at a sixteenth of the tour size and below.
pub fn kernels_sweep(quick: bool) -> Vec<(Sample, Vec<usize>)> {
    samples()
        .into_iter()
        .map(|s| {
            let steps: &[u32] = if quick { &[3, 2] } else { &[3, 2, 1, 0] };
            let mut sizes: Vec<usize> = steps
                .iter()
                .map(|&k| (s.tour_size >> (2 * k)).max(1))
                .collect();
            sizes.dedup();
            (s, sizes)
        })
        .collect()
}

/// One point of the kernels suite.
#[derive(Debug, Clone, Serialize)]
pub struct KernelPoint {
    /// Sample kernel.
    pub kernel: String,
    /// Its size (as `pel run --size` takes it).
    pub size: usize,
    /// The problem's shape.
    pub shape: String,
    /// Floating-point operations of one run.
    pub flops: f64,
    /// Bytes one run moves, at the least.
    pub bytes: f64,
    /// Its medians on every backend and with automatic placement.
    #[serde(flatten)]
    pub medians: Medians,
    /// GFLOP/s achieved with automatic placement.
    pub gflops: f64,
    /// GB/s achieved with automatic placement.
    pub gbs: f64,
    /// The roofline time on the chosen backend over the automatic time.
    pub roofline_fraction: Option<f64>,
    /// The program a user would otherwise write, if there is one.
    pub peer: Option<String>,
    /// Its median seconds.
    pub peer_s: Option<f64>,
    /// Automatic placement's time over the peer's (below 1: pel is faster).
    pub auto_vs_peer: Option<f64>,
}

/// The kernels suite's report.
#[derive(Debug, Clone, Serialize)]
pub struct KernelsReport {
    /// The devices, one line each.
    pub devices: Vec<String>,
    /// Every backend's peaks.
    pub roofline: BTreeMap<String, Peak>,
    /// Least timed rounds per point.
    pub reps: usize,
    /// Every point.
    pub points: Vec<KernelPoint>,
    /// Each implementation of the kernels with variants, timed alone on
    /// each GPU, and which one placement chose there.
    pub variants: Vec<crate::variants::VariantPoint>,
}

impl KernelsReport {
    /// Every median as CSV rows: each backend, `auto`, and `peer: NAME`.
    pub fn csv_rows(&self) -> Vec<Row> {
        let rows = self.points.iter().flat_map(|p| {
            let peer = p.peer.iter().zip(p.peer_s);
            let peer = peer.map(|(n, s)| (format!("peer: {n}"), s));
            let modes = p.medians.modes().chain(peer);
            Row::per_mode("kernels", &p.kernel, p.size, &p.shape, modes)
        });
        rows.collect()
    }
}

/// A peer program's input, made fresh (untimed) before each run by
/// [`Peer::input`], with a buffer (already touched) to hand its result
/// over in.
pub struct PeerInput(PeerData);

enum PeerData {
    Saxpy(Vec<f32>, Vec<f32>, Vec<f32>),
    Sum(Vec<f32>),
    Gemm(Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, usize),
    Sort(Vec<u32>, Vec<u32>),
    SortPairs(Vec<(u32, u32)>, Vec<(u32, u32)>),
}

/// The program a user would otherwise write for a sample kernel, on seeded
/// random input of the same size.
pub struct Peer {
    /// What it is: "faer", "rayon loop", "par_sort_unstable"...
    pub name: &'static str,
    make: Box<dyn Fn() -> PeerData>,
}

impl Peer {
    /// The peer of sample `kernel` at `size` (as `pel run --size` takes
    /// it), if it has one: saxpy and sum (rayon loops), matmul (faer),
    /// radix_sort (`par_sort_unstable`) and radix_sort_pairs (the stable
    /// `par_sort_by_key`).
    pub fn of(kernel: &str, size: usize, seed: u64) -> Option<Peer> {
        let keys = move || -> Vec<u32> {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..size).map(|_| rng.random()).collect()
        };
        let (name, make): (&'static str, Box<dyn Fn() -> PeerData>) = match kernel {
            "saxpy" => {
                let (x, y) = (random_f32(seed, size), random_f32(seed + 1, size));
                (
                    "rayon loop",
                    Box::new(move || PeerData::Saxpy(x.clone(), y.clone(), y.clone())),
                )
            }
            "sum" => {
                let x = random_f32(seed, size);
                ("rayon loop", Box::new(move || PeerData::Sum(x.clone())))
            }
            "matmul" => {
                let (a, b) = (
                    random_f32(seed, size * size),
                    random_f32(seed + 1, size * size),
                );
                (
                    "faer",
                    Box::new(move || {
                        PeerData::Gemm(
                            a.clone(),
                            b.clone(),
                            vec![0.0; size * size],
                            vec![0.0; size * size],
                            size,
                        )
                    }),
                )
            }
            "radix_sort" => {
                let k = keys();
                (
                    "par_sort_unstable",
                    Box::new(move || PeerData::Sort(k.clone(), k.clone())),
                )
            }
            "radix_sort_pairs" => {
                let pairs: Vec<(u32, u32)> = keys().into_iter().zip(0..).collect();
                (
                    "par_sort_by_key",
                    Box::new(move || PeerData::SortPairs(pairs.clone(), pairs.clone())),
                )
            }
            _ => return None,
        };
        Some(Peer { name, make })
    }

    /// A fresh copy of its input.
    pub fn input(&self) -> PeerInput {
        PeerInput((self.make)())
    }
}

impl PeerInput {
    /// Runs the peer and copies its result out, as pel's trials read
    /// theirs back to the host: both sides do the same task, host data in
    /// and a host result out. The copy goes into memory made and touched
    /// untimed, so the peer pays no page faults for it (pel's read
    /// allocates afresh each run: the comparison leans towards the peer).
    pub fn run(&mut self) {
        match &mut self.0 {
            PeerData::Saxpy(x, y, out) => {
                rayon_saxpy(0.5, x, y);
                out.copy_from_slice(y);
            }
            PeerData::Sum(x) => {
                std::hint::black_box(rayon_sum(x));
            }
            PeerData::Gemm(a, b, c, out, n) => {
                faer_gemm(a, b, c, *n);
                out.copy_from_slice(c);
            }
            PeerData::Sort(k, out) => {
                k.par_sort_unstable();
                out.copy_from_slice(k);
            }
            // Stable, as pel's pair sort is.
            PeerData::SortPairs(p, out) => {
                p.par_sort_by_key(|&(k, _)| k);
                out.copy_from_slice(p);
            }
        }
        std::hint::black_box(&self.0);
    }
}

/// One mode of a point: a pel target, or the peer program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Pel(Target),
    Peer,
}

/// What a mode's run is given.
enum Input {
    Pel,
    Peer(PeerInput),
}

/// The seed of a kernel's inputs: the same whatever else a run measures,
/// so runs of a few kernels compare with runs of all, and the same at every
/// size, so the sizes of one kernel compare with each other (mandelbrot's
/// view, for one, comes from it). The inputs themselves are made afresh
/// for each size.
fn point_seed(kernel: &str) -> u64 {
    // FNV-1a.
    kernel.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Measures every point of `sweep` on every backend, with automatic
/// placement (after calibrating it) and with the peer program where there
/// is one, in shuffled rounds: at least `reps` timed rounds per point, more
/// for fast points (until the fastest mode has run for `min_secs`, up to
/// 40 × `reps`); a GPU over 10× slower than the best after one round is not
/// timed again. Fresh seeded inputs per size. `step(done, total, what)` is
/// called after each point.
pub fn kernels(
    rt: &Runtime,
    sweep: &[(Sample, Vec<usize>)],
    roofline: BTreeMap<String, Peak>,
    reps: usize,
    min_secs: f64,
    step: &mut dyn FnMut(usize, usize, &str),
) -> Result<KernelsReport> {
    let total: usize = sweep.iter().map(|(_, s)| s.len()).sum();
    let reps = reps.max(1);
    let mut points = Vec::new();
    for (sample, sizes) in sweep {
        for &size in sizes {
            let seed = point_seed(sample.name);
            let trial = RefCell::new(sample.trial(rt, size, seed)?);
            calibrate_trial(rt, trial.borrow_mut().as_mut(), 40)?;
            let peer = Peer::of(sample.name, size, seed);
            let mut modes: Vec<Mode> = rt
                .backends()
                .into_iter()
                .map(|b| Mode::Pel(Target::On(b)))
                .chain([Mode::Pel(Target::Auto)])
                .collect();
            if peer.is_some() {
                modes.push(Mode::Peer);
            }
            let mut choices: BTreeMap<Backend, usize> = BTreeMap::new();
            let times = interleaved_for(
                &modes,
                reps,
                min_secs,
                seed,
                |m| -> Result<Input> {
                    Ok(match m {
                        Mode::Pel(_) => {
                            trial.borrow_mut().reset(rt)?;
                            Input::Pel
                        }
                        Mode::Peer => peer.as_ref().map_or(Input::Pel, |p| Input::Peer(p.input())),
                    })
                },
                |m, input| {
                    match (m, input) {
                        (Mode::Pel(t), _) => {
                            let info = trial.borrow_mut().run(rt, t)?;
                            if t == Target::Auto {
                                *choices.entry(info.backend).or_default() += 1;
                            }
                        }
                        (Mode::Peer, Input::Peer(p)) => p.run(),
                        (Mode::Peer, Input::Pel) => {}
                    }
                    Ok(())
                },
                |m| matches!(m, Mode::Pel(Target::On(Backend::Gpu(_)))),
            )?;
            let trial = trial.into_inner();
            let work = trial.work();
            let pel: BTreeMap<Target, f64> = times
                .iter()
                .filter_map(|(m, s)| match m {
                    Mode::Pel(t) => Some((*t, *s)),
                    Mode::Peer => None,
                })
                .collect();
            let medians = Medians::of(&pel, &choices);
            let auto_s = medians.auto_s.max(1e-12);
            let peer_s = times.get(&Mode::Peer).copied();
            points.push(KernelPoint {
                kernel: sample.name.to_owned(),
                size,
                shape: trial.shape(),
                flops: work.flops,
                bytes: work.bytes,
                gflops: work.flops / auto_s / 1e9,
                gbs: work.bytes / auto_s / 1e9,
                roofline_fraction: roofline
                    .get(&medians.choice)
                    .map(|p| p.bound_s(work.flops, work.bytes) / auto_s),
                medians,
                peer: peer.map(|p| p.name.to_owned()),
                peer_s,
                auto_vs_peer: peer_s.map(|p| auto_s / p.max(1e-12)),
            });
            step(
                points.len(),
                total,
                &format!("{} {}", sample.name, trial.shape()),
            );
        }
    }
    rt.save_model();
    Ok(KernelsReport {
        roofline,
        points,
        reps,
        devices: rt.devices().iter().map(|d| d.label()).collect(),
        variants: Vec::new(),
    })
}

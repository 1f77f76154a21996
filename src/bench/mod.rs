//! Measurement harnesses shared by the `pel` command line and by programs
//! that want the same figures: calibrating the performance model over the
//! sample kernels, and the routing benchmark (each point measured on every
//! backend and with automatic placement, in the same run).

use std::collections::BTreeMap;
use std::time::Instant;

use pel_kernels::{Sample, Trial, samples};
use pel_runtime::{Backend, Result, Runtime, Target};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

pub mod kernels;
pub mod peers;
pub mod plot;

/// Sizes that span each sample kernel's crossover, from sizes where a GPU's
/// fixed cost dominates to large ones. `quick` stops lower.
pub fn sweep(quick: bool) -> Vec<(Sample, Vec<usize>)> {
    let elements: Vec<usize> = if quick {
        vec![1 << 10, 1 << 14, 1 << 18, 1 << 20]
    } else {
        vec![1 << 10, 1 << 13, 1 << 16, 1 << 19, 1 << 22, 1 << 24]
    };
    let pixels: Vec<usize> = if quick {
        vec![1 << 10, 1 << 14, 1 << 18]
    } else {
        vec![1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20]
    };
    let square: Vec<usize> = if quick {
        vec![16, 64, 128]
    } else {
        vec![16, 32, 64, 128, 256, 512]
    };
    // The four kernels whose crossovers the routing benchmark follows.
    // mandelbrot renders the classic full view: every pixel inside the set
    // runs all its iterations, so the compute shows. The seeded random
    // windows are mostly cheap, and there the CPU wins at every size.
    samples()
        .into_iter()
        .filter(|s| matches!(s.name, "saxpy" | "sum" | "matmul" | "mandelbrot"))
        .map(|s| match s.name {
            "matmul" => (s, square.clone()),
            "mandelbrot" => (
                s.prepared_by(|rt, pixels, _seed| {
                    let (w, h) = pel_kernels::square(pixels);
                    let view = pel_kernels::mandelbrot::View::full(w, h);
                    Ok(Box::new(pel_kernels::mandelbrot::trial_of(
                        rt,
                        (w, h),
                        view,
                        256,
                    )?))
                }),
                pixels.clone(),
            ),
            _ => (s, elements.clone()),
        })
        .collect()
}

/// Sizes to calibrate every sample kernel at: the routing sweep for the
/// kernels it follows, and for the others their default size and smaller
/// ones by factors of 4 (`quick`: only the smaller ones).
pub fn calibration_sweep(quick: bool) -> Vec<(Sample, Vec<usize>)> {
    let mut sweep = self::sweep(quick);
    for s in samples() {
        if sweep.iter().any(|(t, _)| t.name == s.name) {
            continue;
        }
        let steps = if quick { 1..3 } else { 0..4 };
        let mut sizes: Vec<usize> = steps
            .rev()
            .map(|k| (s.default_size >> (2 * k)).max(1))
            .collect();
        sizes.dedup();
        sweep.push((s, sizes));
    }
    sweep
}

/// Runs `trial` with automatic placement until a whole run places nothing to
/// calibrate (at most `limit` runs). Returns the runs made.
pub fn calibrate_trial(rt: &Runtime, trial: &mut dyn Trial, limit: usize) -> Result<usize> {
    for run in 0..limit {
        let before = rt.stats().calibration_runs;
        trial.reset(rt)?;
        trial.run(rt, Target::Auto)?;
        if rt.stats().calibration_runs == before {
            return Ok(run + 1);
        }
    }
    Ok(limit)
}

/// Calibrates the model for every sample kernel over `sweep`, calling
/// `step(done, total, what)` after each point.
pub fn calibrate(
    rt: &Runtime,
    sweep: &[(Sample, Vec<usize>)],
    step: &mut dyn FnMut(usize, usize, &str),
) -> Result<()> {
    let total: usize = sweep.iter().map(|(_, s)| s.len()).sum();
    let mut done = 0;
    for (sample, sizes) in sweep {
        for &size in sizes {
            let mut trial = sample.trial(rt, size, 11)?;
            calibrate_trial(rt, trial.as_mut(), 40)?;
            done += 1;
            step(done, total, &format!("{} {}", sample.name, trial.shape()));
        }
    }
    rt.save_model();
    Ok(())
}

/// One point of the routing benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct RoutingPoint {
    /// Sample kernel.
    pub kernel: String,
    /// Its size (as `pel run --size` takes it).
    pub size: usize,
    /// Median seconds on the CPU.
    pub cpu_s: f64,
    /// Median seconds on the best GPU (`null` without one).
    pub gpu_s: Option<f64>,
    /// Median seconds with automatic placement.
    pub auto_s: f64,
    /// Where automatic placement ran the (last) kernel.
    pub choice: String,
    /// Median seconds on every backend.
    pub backends: BTreeMap<String, f64>,
}

/// The routing benchmark's report.
#[derive(Debug, Clone, Serialize)]
pub struct RoutingReport {
    /// Every point.
    pub points: Vec<RoutingPoint>,
    /// Σ auto_s / Σ min(cpu_s, gpu_s).
    pub regret_total: f64,
    /// max over points of auto_s / min(cpu_s, gpu_s).
    pub regret_max: f64,
    /// Exploration calls the dispatcher made during this invocation.
    pub calibration_runs: u64,
    /// Least timed repetitions per backend per point (fast points get up to
    /// forty times more); the median is kept.
    pub reps: usize,
    /// The devices, one line each.
    pub devices: Vec<String>,
}

/// The fastest time measured in any mode.
fn fastest<M>(times: &BTreeMap<M, Vec<f64>>) -> f64 {
    times
        .values()
        .flatten()
        .copied()
        .fold(f64::INFINITY, f64::min)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Measures every point of `sweep` on every backend and with automatic
/// placement, after calibrating it. Times run from host-resident inputs to
/// the result on the host.
pub fn routing(
    rt: &Runtime,
    sweep: &[(Sample, Vec<usize>)],
    reps: usize,
    step: &mut dyn FnMut(usize, usize, &str),
) -> Result<RoutingReport> {
    let start_runs = rt.stats().calibration_runs;
    let total: usize = sweep.iter().map(|(_, s)| s.len()).sum();
    let reps = reps.max(1);
    let mut points = Vec::new();
    for (sample, sizes) in sweep {
        for &size in sizes {
            let trial = std::cell::RefCell::new(sample.trial(rt, size, 23)?);
            calibrate_trial(rt, trial.borrow_mut().as_mut(), 40)?;
            let mut choices: BTreeMap<Backend, usize> = BTreeMap::new();
            let targets: Vec<Target> = rt
                .backends()
                .into_iter()
                .map(Target::On)
                .chain([Target::Auto])
                .collect();
            // Every timed run follows an untimed run of the same mode, so
            // the caches, rayon's sleeping workers and a GPU driver's threads
            // treat every mode alike. Fast points get about a second of
            // rounds: this machine's memory bandwidth wanders for tenths of
            // a second at a time, and a shorter window let it favour one
            // mode by 30%.
            let med = interleaved_for(
                &targets,
                reps,
                1.0,
                points.len() as u64,
                |t| -> Result<()> {
                    let mut trial = trial.borrow_mut();
                    trial.reset(rt)?;
                    trial.run(rt, t)?;
                    trial.reset(rt)
                },
                |t, _| {
                    let info = trial.borrow_mut().run(rt, t)?;
                    if t == Target::Auto {
                        *choices.entry(info.backend).or_default() += 1;
                    }
                    Ok(())
                },
                |t| matches!(t, Target::On(Backend::Gpu(_))),
            )?;
            let trial = trial.into_inner();
            let backends: BTreeMap<String, f64> = med
                .iter()
                .filter_map(|(t, s)| match t {
                    Target::On(b) => Some((b.to_string(), *s)),
                    Target::Auto | Target::Split { .. } => None,
                })
                .collect();
            let gpu_s = med
                .iter()
                .filter(|(t, _)| matches!(t, Target::On(Backend::Gpu(_))))
                .map(|(_, s)| *s)
                .reduce(f64::min);
            let choice = choices
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(b, _)| b.to_string())
                .unwrap_or_default();
            points.push(RoutingPoint {
                kernel: sample.name.to_owned(),
                size,
                cpu_s: med[&Target::On(Backend::Cpu)],
                gpu_s,
                auto_s: med[&Target::Auto],
                choice,
                backends,
            });
            step(
                points.len(),
                total,
                &format!("{} {}", sample.name, trial.shape()),
            );
        }
    }
    rt.save_model();
    let best = |p: &RoutingPoint| p.gpu_s.map_or(p.cpu_s, |g| g.min(p.cpu_s));
    let regret_total = points.iter().map(|p| p.auto_s).sum::<f64>()
        / points.iter().map(best).sum::<f64>().max(f64::MIN_POSITIVE);
    let regret_max = points
        .iter()
        .map(|p| p.auto_s / best(p).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max);
    Ok(RoutingReport {
        points,
        regret_total,
        regret_max,
        calibration_runs: rt.stats().calibration_runs - start_runs,
        reps,
        devices: rt.devices().iter().map(|d| d.label()).collect(),
    })
}

/// Where the demo graph's tasks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Placing {
    /// Every task placed by the runtime.
    Auto,
    /// Every task on this backend.
    All(Backend),
    /// The compute-bound tasks on this backend, the rest on the CPU.
    ComputeOn(Backend),
}

impl std::fmt::Display for Placing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placing::Auto => f.write_str("auto"),
            Placing::All(b) => write!(f, "all on {b}"),
            Placing::ComputeOn(b) => write!(f, "images on {b}, the rest on cpu"),
        }
    }
}

/// The demo graph's buffers: made before a run, so a timed run measures the
/// tasks alone (from host-resident inputs to every result on the host).
pub struct DemoGraph {
    frames: Vec<pel_runtime::Buffer<u32>>,
    streams: Vec<(pel_runtime::Buffer<f32>, pel_runtime::Buffer<f32>)>,
    chain: (
        pel_runtime::Buffer<f32>,
        pel_runtime::Buffer<f32>,
        pel_runtime::Buffer<f32>,
    ),
}

/// Image side, pixels (compute-bound part of the demo graph).
const DEMO_SIDE: usize = 512;
/// Elements of each vector (memory-bound part and chain).
const DEMO_N: usize = 1 << 21;

impl DemoGraph {
    /// Fresh inputs: four images to render, three independent saxpy
    /// streams, and a chain (saxpy, saxpy, then a multi-pass sum).
    pub fn new(rt: &Runtime, seed: u64) -> DemoGraph {
        use rand::Rng;
        let mut rng = StdRng::seed_from_u64(seed);
        let vector = |rng: &mut StdRng| -> Vec<f32> {
            (0..DEMO_N).map(|_| rng.random_range(-1.0..1.0)).collect()
        };
        DemoGraph {
            frames: (0..4).map(|_| rt.zeros(DEMO_SIDE * DEMO_SIDE)).collect(),
            streams: (0..3)
                .map(|_| (rt.buffer(&vector(&mut rng)), rt.buffer(&vector(&mut rng))))
                .collect(),
            chain: (
                rt.buffer(&vector(&mut rng)),
                rt.buffer(&vector(&mut rng)),
                rt.zeros(1),
            ),
        }
    }

    /// Submits every task (the runtime orders them by what they read and
    /// write), waits for all, and reads every result. Returns the tasks run.
    pub fn run(&self, rt: &Runtime, placing: Placing) -> Result<usize> {
        use pel_kernels::{Mandelbrot, Saxpy, Sum, mandelbrot::View};
        let (saxpy, sum, mandelbrot) = (Saxpy::new()?, Sum::new()?, Mandelbrot::new()?);
        let (compute, memory) = match placing {
            Placing::Auto => (Target::Auto, Target::Auto),
            Placing::All(b) => (Target::On(b), Target::On(b)),
            Placing::ComputeOn(b) => (Target::On(b), Target::On(Backend::Cpu)),
        };
        let mut tasks = Vec::new();
        let (x, y, total) = &self.chain;
        // The chain first: its later links wait for the earlier ones.
        tasks.push(saxpy.submit(rt, memory, 0.5, x, y)?);
        tasks.push(saxpy.submit(rt, memory, -0.25, y, x)?);
        tasks.push(sum.submit(rt, memory, x, total)?);
        for (i, counts) in self.frames.iter().enumerate() {
            let view = View {
                x0: -2.0 + 0.05 * i as f32,
                ..View::full(DEMO_SIDE, DEMO_SIDE)
            };
            let t = mandelbrot.submit(rt, compute, counts, DEMO_SIDE, DEMO_SIDE, view, 256)?;
            tasks.push(t);
        }
        for (i, (a, b)) in self.streams.iter().enumerate() {
            tasks.push(saxpy.submit(rt, memory, 1.0 + i as f32, a, b)?);
        }
        for t in &tasks {
            t.wait()?;
        }
        for f in &self.frames {
            rt.read(f)?;
        }
        for (_, b) in &self.streams {
            rt.read(b)?;
        }
        rt.read(total)?;
        Ok(tasks.len())
    }
}

/// The trace demo: the demo graph, submitted from one thread. `pel trace`
/// runs it with automatic placement; the trace test with the images forced
/// onto a GPU and the rest onto the CPU.
pub fn trace_demo(rt: &Runtime, placing: Placing) -> Result<()> {
    DemoGraph::new(rt, 5).run(rt, placing).map(|_| ())
}

/// The task-graph benchmark's report.
#[derive(Debug, Clone, Serialize)]
pub struct GraphReport {
    /// Demo graph: automatic placement's makespan over the best single
    /// device running it all (medians).
    pub makespan_ratio: f64,
    /// A splittable kernel with automatic placement (at its calibrated
    /// split) over the best single device (medians).
    pub coexec_ratio: f64,
    /// The share of the splittable kernel's items the model gives a GPU
    /// (0 or 1: unsplit on the CPU or the GPU).
    pub coexec_gpu_share: Option<f64>,
    /// Median seconds of the demo graph per placement.
    pub makespan_s: BTreeMap<String, f64>,
    /// Median seconds of the splittable kernel per placement.
    pub coexec_s: BTreeMap<String, f64>,
    /// Tasks in the demo graph.
    pub tasks: usize,
    /// Timed runs per placement.
    pub reps: usize,
    /// The devices, one line each.
    pub devices: Vec<String>,
}

/// Times `run` for every mode, shuffled each round, after one untimed run
/// of each. `prepare` makes each run's inputs, untimed (and they are
/// dropped untimed). A mode `slow` says may be dropped is not timed again
/// when its first run took over 10× the best. Returns the median per mode.
pub fn interleaved<M: Copy + Ord, T, E>(
    modes: &[M],
    reps: usize,
    seed: u64,
    prepare: impl FnMut(M) -> std::result::Result<T, E>,
    run: impl FnMut(M, &mut T) -> std::result::Result<(), E>,
    slow: impl Fn(M) -> bool,
) -> std::result::Result<BTreeMap<M, f64>, E> {
    interleaved_for(modes, reps, 0.0, seed, prepare, run, slow)
}

/// [`interleaved`], with more rounds for fast modes: after the first, as
/// many as make the fastest mode's timed runs add up to `min_secs`, up to
/// 40 × `reps`. This machine's speed wanders for tenths of a second at a
/// time; a window that short lets it favour one mode by chance.
pub fn interleaved_for<M: Copy + Ord, T, E>(
    modes: &[M],
    reps: usize,
    min_secs: f64,
    seed: u64,
    mut prepare: impl FnMut(M) -> std::result::Result<T, E>,
    mut run: impl FnMut(M, &mut T) -> std::result::Result<(), E>,
    slow: impl Fn(M) -> bool,
) -> std::result::Result<BTreeMap<M, f64>, E> {
    let mut times: BTreeMap<M, Vec<f64>> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut live: Vec<M> = modes.to_vec();
    for &m in modes {
        let mut input = prepare(m)?;
        run(m, &mut input)?;
    }
    let mut rounds = reps;
    let mut rep = 0;
    while rep < rounds {
        let mut order = live.clone();
        order.shuffle(&mut rng);
        for &m in &order {
            let mut input = prepare(m)?;
            let start = Instant::now();
            run(m, &mut input)?;
            times
                .entry(m)
                .or_default()
                .push(start.elapsed().as_secs_f64());
            drop(input);
        }
        if rep == 0 {
            let best = fastest(&times);
            live.retain(|&m| !(slow(m) && times[&m][0] > 10.0 * best));
            rounds = ((min_secs / best.max(1e-9)) as usize).clamp(reps, 40 * reps.max(1));
        }
        rep += 1;
    }
    Ok(times.into_iter().map(|(m, v)| (m, median(v))).collect())
}

/// `pel bench graph`: the demo graph submitted with automatic placement
/// against every single device running it all, and mandelbrot (splittable)
/// at its calibrated split against every single device. Both after
/// calibration; `reps` timed rounds.
pub fn graph(
    rt: &Runtime,
    reps: usize,
    step: &mut dyn FnMut(usize, usize, &str),
) -> Result<GraphReport> {
    use pel_kernels::{Mandelbrot, mandelbrot::View};
    let reps = reps.max(3);
    let total_steps = 4;
    // Calibrate: automatic runs until the model has every kernel's sizes.
    let calibration = DemoGraph::new(rt, 1);
    let mut tasks = 0;
    for _ in 0..40 {
        let before = rt.stats().calibration_runs;
        tasks = calibration.run(rt, Placing::Auto)?;
        if rt.stats().calibration_runs == before {
            break;
        }
    }
    step(1, total_steps, "demo graph calibrated");
    let mut modes = vec![Placing::Auto];
    modes.extend(rt.backends().into_iter().map(Placing::All));
    // Fresh host-resident inputs for every run.
    let makespan = interleaved(
        &modes,
        reps,
        11,
        |_| Ok(DemoGraph::new(rt, 2)),
        |m, g| g.run(rt, m).map(|_| ()),
        |m| matches!(m, Placing::All(Backend::Gpu(_))),
    )?;
    step(2, total_steps, "demo graph measured");

    // Co-execution: mandelbrot's classic view, which a GPU renders fastest
    // here; the split must learn that.
    let m = Mandelbrot::new()?;
    let (w, h) = (1024, 1024);
    let view = View::full(w, h);
    let counts = rt.zeros::<u32>(w * h);
    let params = Mandelbrot::params(&counts, w, h, view, 256)?;
    for _ in 0..60 {
        m.run(rt, Target::Auto, &counts, w, h, view, 256)?;
        if rt.split_share(m.kernel(), &[&counts], &params)?.is_some() {
            break;
        }
    }
    // A few more, so a kept split refines its share.
    for _ in 0..10 {
        m.run(rt, Target::Auto, &counts, w, h, view, 256)?;
    }
    let share = rt.split_share(m.kernel(), &[&counts], &params)?;
    step(3, total_steps, "split calibrated");
    let mut targets = vec![Target::Auto];
    targets.extend(rt.backends().into_iter().map(Target::On));
    let coexec = interleaved(
        &targets,
        reps * 3,
        12,
        |_| Ok(rt.zeros::<u32>(w * h)),
        |t, out| {
            m.run(rt, t, out, w, h, view, 256)?;
            rt.read(out).map(|_| ())
        },
        |t| matches!(t, Target::On(Backend::Gpu(_))),
    )?;
    step(4, total_steps, "co-execution measured");
    rt.save_model();

    let best_single = |times: &BTreeMap<String, f64>| {
        times
            .iter()
            .filter(|(k, _)| k.as_str() != "auto")
            .map(|(_, v)| *v)
            .fold(f64::INFINITY, f64::min)
    };
    let makespan_s: BTreeMap<String, f64> = makespan
        .into_iter()
        .map(|(m, v)| {
            let key = match m {
                Placing::Auto => "auto".to_owned(),
                Placing::All(b) | Placing::ComputeOn(b) => b.to_string(),
            };
            (key, v)
        })
        .collect();
    let coexec_s: BTreeMap<String, f64> = coexec
        .into_iter()
        .map(|(t, v)| {
            let key = match t {
                Target::On(b) => b.to_string(),
                _ => "auto".to_owned(),
            };
            (key, v)
        })
        .collect();
    Ok(GraphReport {
        makespan_ratio: makespan_s["auto"] / best_single(&makespan_s),
        coexec_ratio: coexec_s["auto"] / best_single(&coexec_s),
        coexec_gpu_share: share,
        makespan_s,
        coexec_s,
        tasks,
        reps,
        devices: rt.devices().iter().map(|d| d.label()).collect(),
    })
}

/// A CPU-lane event and a GPU-lane event that overlap in time (by their
/// start and end order), for a runtime with `gpus` GPUs (lanes 1..=gpus).
pub fn overlapping(
    events: &[pel_runtime::TraceEvent],
    gpus: usize,
) -> Option<(pel_runtime::TraceEvent, pel_runtime::TraceEvent)> {
    let on_gpu = |e: &&pel_runtime::TraceEvent| (1..=gpus as u32).contains(&e.tid);
    for a in events.iter().filter(|e| e.tid == 0) {
        for b in events.iter().filter(on_gpu) {
            if a.ts < b.ts + b.dur && b.ts < a.ts + a.dur {
                return Some((a.clone(), b.clone()));
            }
        }
    }
    None
}

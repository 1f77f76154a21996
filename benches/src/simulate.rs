//! `pel simulate`: workloads on a simulated machine (the demo graph, the
//! routing sweep, the Task Bench patterns), the simulator checked against
//! real runs on this machine (`validate`), and predicted speed-up curves
//! over more GPUs than a description has (`scale`).

use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use pel::demo::{DemoGraph, Placing};
use pel::kernels::samples::Trial;
use pel::kernels::taskbench::{Graph, Pattern, TaskBench};
use pel::{Error, Machine, Result, Runtime, SimReport, Target};
use serde::Serialize;

/// What `pel simulate` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The demo task graph (`pel trace`'s).
    Demo,
    /// The routing sweep: every kernel of `pel bench routing` at each of
    /// its sizes, once, with automatic placement.
    Routing,
    /// A Task Bench pattern.
    Pattern(Pattern),
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Workload::Demo => f.write_str("demo"),
            Workload::Routing => f.write_str("routing"),
            Workload::Pattern(p) => f.write_str(p.name()),
        }
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "demo" => Ok(Workload::Demo),
            "routing" => Ok(Workload::Routing),
            _ => s.parse::<Pattern>().map(Workload::Pattern).map_err(|_| {
                let patterns: Vec<&str> = Pattern::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "`{s}` is not a workload: demo, routing, or a Task Bench pattern ({})",
                    patterns.join(", ")
                )
            }),
        }
    }
}

/// A Task Bench workload's size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Size {
    /// Points per step.
    pub width: usize,
    /// Steps.
    pub steps: usize,
    /// Iterations per task.
    pub iterations: u32,
    /// Values per task.
    pub elems: usize,
}

impl Default for Size {
    /// 4 × 32 tasks of 64 values and 4^7 iterations (~1 ms a task on one
    /// core here).
    fn default() -> Self {
        Size {
            width: 4,
            steps: 32,
            iterations: 4u32.pow(7),
            elems: pel::kernels::taskbench::ELEMS,
        }
    }
}

/// A workload's inputs, made before a timed run.
pub enum Prepared {
    /// The demo graph's buffers.
    Demo(DemoGraph),
    /// The routing sweep's trials.
    Routing(Vec<Box<dyn Trial>>),
    /// A Task Bench graph, its kernels and iterations per task.
    Pattern(TaskBench, Graph, u32),
}

/// Makes `workload`'s inputs on `rt` (host buffers, kernels).
pub fn prepare(rt: &Runtime, workload: Workload, size: Size) -> Result<Prepared> {
    Ok(match workload {
        Workload::Demo => Prepared::Demo(DemoGraph::new(rt, 2)),
        Workload::Routing => {
            let mut trials = Vec::new();
            for (sample, sizes) in pel::calibrate::crossover_sweep(true) {
                for s in sizes {
                    trials.push(sample.trial(rt, s, 23)?);
                }
            }
            Prepared::Routing(trials)
        }
        Workload::Pattern(p) => Prepared::Pattern(
            TaskBench::new()?.elems(size.elems)?,
            Graph::new(p, size.width, size.steps),
            size.iterations,
        ),
    })
}

/// Runs a prepared workload once, from host inputs to every result read
/// back; returns the tasks (or calls) it made.
pub fn run(rt: &Runtime, prepared: &mut Prepared) -> Result<usize> {
    match prepared {
        Prepared::Demo(g) => g.run(rt, Placing::Auto),
        Prepared::Routing(trials) => {
            for t in trials.iter_mut() {
                t.run(rt, Target::Auto)?;
            }
            Ok(trials.len())
        }
        Prepared::Pattern(tb, graph, iterations) => {
            tb.run(rt, Target::Auto, graph, *iterations)?;
            Ok(graph.tasks())
        }
    }
}

/// Prepares and runs `workload` once.
pub fn run_once(rt: &Runtime, workload: Workload, size: Size) -> Result<usize> {
    run(rt, &mut prepare(rt, workload, size)?)
}

/// Runs `workload` until a whole run places nothing to calibrate (at most
/// `limit` runs), so the next is placed by the model.
pub fn calibrate(rt: &Runtime, workload: Workload, size: Size, limit: usize) -> Result<()> {
    for _ in 0..limit {
        let before = rt.stats().calibration_runs;
        run_once(rt, workload, size)?;
        if rt.stats().calibration_runs == before {
            break;
        }
    }
    Ok(())
}

/// One processor's part in a simulated run.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceUse {
    /// `cpu`, `gpu0`, ...
    pub device: String,
    /// Kernels placed there.
    pub kernels: u64,
    /// Busy, virtual seconds (the CPU's over its cores).
    pub busy_s: f64,
    /// Busy over the makespan.
    pub busy_fraction: f64,
}

/// Bytes moved over one link.
#[derive(Debug, Clone, Serialize)]
pub struct LinkUse {
    /// The link's name in the description.
    pub link: String,
    /// Bytes moved, both ways.
    pub bytes: u64,
}

/// `pel simulate --machine F WORKLOAD`'s report: the measured run, after
/// calibration runs.
#[derive(Debug, Clone, Serialize)]
pub struct SimRun {
    /// The machine's name.
    pub machine: String,
    /// The workload.
    pub workload: String,
    /// Tasks (or calls) in one run.
    pub tasks: usize,
    /// Predicted seconds from the first task to the last result read.
    pub makespan_s: f64,
    /// Each processor, the CPU first.
    pub devices: Vec<DeviceUse>,
    /// Each link.
    pub links: Vec<LinkUse>,
    /// Host seconds the simulated run took (calibration runs left out).
    pub host_s: f64,
}

impl SimRun {
    fn new(machine: &Machine, workload: Workload, tasks: usize, r: SimReport, host_s: f64) -> Self {
        SimRun {
            machine: machine.name.clone(),
            workload: workload.to_string(),
            tasks,
            makespan_s: r.makespan_s,
            devices: r
                .devices
                .iter()
                .map(|d| DeviceUse {
                    device: d.backend.to_string(),
                    kernels: d.kernels,
                    busy_s: d.busy_s,
                    busy_fraction: d.busy_fraction,
                })
                .collect(),
            links: r
                .link_bytes
                .into_iter()
                .map(|(link, bytes)| LinkUse { link, bytes })
                .collect(),
            host_s,
        }
    }
}

/// Simulates `workload` on `machine`: calibration runs first (on the
/// virtual clock too), then one run measured; with `trace`, that run's
/// trace (virtual timestamps) is written there.
pub fn simulate(
    machine: &Machine,
    workload: Workload,
    size: Size,
    trace: Option<&Path>,
) -> Result<SimRun> {
    let rt = Runtime::builder().simulate(machine.clone()).build()?;
    calibrate(&rt, workload, size, 30)?;
    rt.wait_all()?;
    let before = rt.simulation().expect("a simulated runtime");
    if trace.is_some() {
        rt.enable_trace();
    }
    let mut prepared = prepare(&rt, workload, size)?;
    let t = Instant::now();
    let tasks = run(&rt, &mut prepared)?;
    rt.wait_all()?;
    let host_s = t.elapsed().as_secs_f64();
    let report = rt.simulation().expect("a simulated runtime").since(&before);
    if let Some(path) = trace {
        rt.write_trace(path).map_err(|e| Error::Internal {
            what: format!("the trace {}", path.display()),
            message: e.to_string(),
        })?;
    }
    Ok(SimRun::new(machine, workload, tasks, report, host_s))
}

/// `machine` with `n` GPUs: its first `n`, or as many more as needed,
/// each a copy of one of its GPUs in turn on a copy of that GPU's link (so
/// a node's GPUs are repeated with their own links, not squeezed onto one).
pub fn with_gpus(machine: &Machine, n: usize) -> Result<Machine> {
    if machine.gpus.is_empty() && n > 0 {
        return Err(Error::Machine {
            file: machine.name.clone(),
            field: "gpus".to_owned(),
            message: "it has no GPU to repeat".to_owned(),
        });
    }
    let mut m = machine.clone();
    m.gpus.truncate(n);
    let base = machine.gpus.len();
    for g in base..n {
        let mut gpu = machine.gpus[g % base].clone();
        let link = machine
            .links
            .iter()
            .find(|l| l.name == gpu.link)
            .cloned()
            .expect("a checked description describes every GPU's link");
        let copy = g / base;
        gpu.name = format!("gpu{g}");
        gpu.link = format!("{}.{copy}", link.name);
        if !m.links.iter().any(|l| l.name == gpu.link) {
            m.links.push(pel::LinkSpec {
                name: gpu.link.clone(),
                ..link
            });
        }
        m.gpus.push(gpu);
    }
    m.name = format!("{} ({n} GPUs)", machine.name);
    m.check("scaled description")?;
    Ok(m)
}

/// One point of a scaling curve.
#[derive(Debug, Clone, Serialize)]
pub struct ScalePoint {
    /// The workload.
    pub workload: String,
    /// GPUs in the machine.
    pub gpus: usize,
    /// Predicted makespan.
    pub makespan_s: f64,
    /// Over the one-GPU makespan.
    pub speedup: f64,
}

/// The Task Bench size `scale` predicts stencil_1d at: 16 points wide, 32
/// steps, tasks of 64K values and 4^6 iterations (a GPU-sized task: 0.5
/// GFLOP).
pub const SCALE_STENCIL: Size = Size {
    width: 16,
    steps: 32,
    iterations: 4096,
    elems: 1 << 16,
};

/// Predicts the demo graph and stencil_1d on 1, 2, 4 and 8 GPUs of
/// `machine`.
pub fn scale(machine: &Machine) -> Result<Vec<ScalePoint>> {
    let mut points = Vec::new();
    for (workload, size) in [
        (Workload::Demo, Size::default()),
        (Workload::Pattern(Pattern::Stencil1d), SCALE_STENCIL),
    ] {
        let mut one = None;
        for n in [1, 2, 4, 8] {
            let run = simulate(&with_gpus(machine, n)?, workload, size, None)?;
            let base = *one.get_or_insert(run.makespan_s);
            points.push(ScalePoint {
                workload: workload.to_string(),
                gpus: n,
                makespan_s: run.makespan_s,
                speedup: base / run.makespan_s.max(f64::MIN_POSITIVE),
            });
        }
    }
    Ok(points)
}

/// Writes the speed-up curves of `points` as an SVG at `path`.
pub fn plot_scale(points: &[ScalePoint], title: &str, path: &Path) -> std::io::Result<()> {
    crate::plot::speedup_plot(points, title, path)
}

/// One (workload, configuration) pair of the validation.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// The workload.
    pub workload: String,
    /// The devices: `cpu`, `cpu+gpu0`, ..., `all`.
    pub config: String,
    /// Median seconds of the real runs.
    pub real_s: f64,
    /// The simulator's prediction on this configuration's description.
    pub simulated_s: f64,
    /// |simulated − real| / real.
    pub error: f64,
}

/// `pel simulate validate`'s report.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// Every pair.
    pub pairs: Vec<Pair>,
    /// The median of the errors.
    pub median_error: f64,
    /// The largest error.
    pub worst_error: f64,
    /// Real runs timed per pair, at least (the median is kept; short
    /// workloads run for about [`REAL_S`]).
    pub reps: usize,
}

/// Seconds of real runs each validation pair aims at (at least its
/// `reps` runs).
pub const REAL_S: f64 = 0.5;

/// The Task Bench patterns the validation runs.
pub const VALIDATE_PATTERNS: [Pattern; 4] = [
    Pattern::Stencil1d,
    Pattern::Nearest,
    Pattern::Fft,
    Pattern::Tree,
];

/// Runs the demo graph and [`VALIDATE_PATTERNS`] for real on every device
/// configuration of this machine (the CPU alone, the CPU with each GPU,
/// everything), each after calibrating it, then simulated on that
/// configuration's description (`Runtime::describe`, from the model the
/// real runs filled), and pairs the times. `model_dir` holds the models.
pub fn validate(
    model_dir: &Path,
    reps: usize,
    step: &mut dyn FnMut(usize, usize, &str),
) -> Result<Validation> {
    let gpus = Runtime::builder().persist_model(false).build()?.gpu_count();
    let mut configs: Vec<(String, Vec<usize>)> = vec![("cpu".to_owned(), Vec::new())];
    for g in 0..gpus {
        configs.push((format!("cpu+gpu{g}"), vec![g]));
    }
    if gpus > 1 {
        configs.push(("all".to_owned(), (0..gpus).collect()));
    }
    let mut workloads = vec![Workload::Demo];
    workloads.extend(VALIDATE_PATTERNS.map(Workload::Pattern));
    let size = Size::default();
    let total = configs.len() * workloads.len();
    let mut pairs = Vec::new();
    for (config, only) in &configs {
        let builder = Runtime::builder().model_file(model_dir.join(format!("model-{config}.json")));
        let rt = if only.is_empty() {
            builder.gpu(false)
        } else {
            builder.only_gpus(only.iter().copied())
        }
        .build()?;
        let mut real = Vec::new();
        for &w in &workloads {
            calibrate(&rt, w, size, 30)?;
            // At least `reps` runs and about half a second of them: a few
            // runs of a short graph sit inside one of this machine's noisy
            // spells.
            let mut times = Vec::with_capacity(reps);
            let began = Instant::now();
            while times.len() < reps.max(1)
                || (began.elapsed().as_secs_f64() < REAL_S && times.len() < 200)
            {
                let mut prepared = prepare(&rt, w, size)?;
                rt.wait_all()?;
                let t = Instant::now();
                run(&rt, &mut prepared)?;
                rt.wait_all()?;
                times.push(t.elapsed().as_secs_f64());
            }
            real.push((w, median(&mut times)));
        }
        rt.save_model();
        let machine = rt.describe();
        drop(rt);
        for (w, real_s) in real {
            let simulated_s = simulate(&machine, w, size, None)?.makespan_s;
            pairs.push(Pair {
                workload: w.to_string(),
                config: config.clone(),
                real_s,
                simulated_s,
                error: (simulated_s - real_s).abs() / real_s,
            });
            step(pairs.len(), total, &format!("{w} on {config}"));
        }
    }
    let mut errors: Vec<f64> = pairs.iter().map(|p| p.error).collect();
    let worst_error = errors.iter().copied().fold(0.0, f64::max);
    Ok(Validation {
        median_error: median(&mut errors),
        worst_error,
        pairs,
        reps,
    })
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => 0.5 * (xs[n / 2 - 1] + xs[n / 2]),
    }
}

/// The simulator's throughput: stencil_1d of `width` × `steps` tasks on
/// `machine`, not computed; simulated tasks per second of host time (the
/// best of three runs, after one that calibrates).
pub fn tasks_per_s(machine: &Machine, width: usize, steps: usize) -> Result<f64> {
    let rt = Runtime::builder().simulate(machine.clone()).build()?;
    let tb = TaskBench::new()?;
    let graph = Graph::new(Pattern::Stencil1d, width, steps);
    tb.execute(&rt, Target::Auto, &graph, 64)?;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t = Instant::now();
        tb.execute(&rt, Target::Auto, &graph, 64)?;
        best = best.max(graph.tasks() as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// The shipped description of a node of four H200s on NVLink
/// (`machines/h200x4-nvlink.json`).
pub fn h200_node() -> Machine {
    Machine::from_json(
        include_str!("../../machines/h200x4-nvlink.json"),
        "machines/h200x4-nvlink.json",
    )
    .expect("the shipped description is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_named_as_the_command_takes_them() {
        assert_eq!("demo".parse::<Workload>(), Ok(Workload::Demo));
        assert_eq!(
            "stencil_1d".parse::<Workload>(),
            Ok(Workload::Pattern(Pattern::Stencil1d))
        );
        let err = "stencil".parse::<Workload>().unwrap_err();
        assert!(
            err.contains("demo, routing") && err.contains("nearest"),
            "{err}"
        );
        for w in [
            Workload::Demo,
            Workload::Routing,
            Workload::Pattern(Pattern::Fft),
        ] {
            assert_eq!(w.to_string().parse::<Workload>(), Ok(w));
        }
    }

    #[test]
    fn more_gpus_than_described_are_copies_on_links_of_their_own() {
        let node = h200_node();
        let eight = with_gpus(&node, 8).unwrap();
        assert_eq!(eight.gpus.len(), 8);
        assert_eq!(eight.gpus[5].name, "gpu5");
        assert_eq!(eight.gpus[5].times, node.gpus[1].times);
        // gpu5 is gpu1's copy, on a copy of gpu1's link, shared with no one.
        assert_eq!(eight.gpus[5].link, format!("{}.1", node.gpus[1].link));
        assert_eq!(eight.sharing_link(5), vec![5]);
        assert_eq!(with_gpus(&node, 2).unwrap().gpus.len(), 2);
        let mut none = node.clone();
        none.gpus.clear();
        none.links.clear();
        assert!(matches!(with_gpus(&none, 1), Err(Error::Machine { .. })));
    }

    #[test]
    fn a_simulated_stencil_is_the_same_every_time_and_spreads_over_the_gpus() {
        let size = SCALE_STENCIL;
        let w = Workload::Pattern(Pattern::Stencil1d);
        let (a, b) = (
            simulate(&h200_node(), w, size, None).unwrap(),
            simulate(&h200_node(), w, size, None).unwrap(),
        );
        assert_eq!(a.makespan_s, b.makespan_s);
        assert_eq!(a.tasks, 16 * 32);
        // Tasks of 64K values: every GPU gets a share, the CPU almost none.
        for d in &a.devices[1..] {
            assert!(d.kernels >= 64, "{:?}", a.devices);
        }
        assert!(a.links.iter().any(|l| l.bytes > 0));
    }
}

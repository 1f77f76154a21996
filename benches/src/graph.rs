//! `pel bench graph`: the demo task graph and a splittable kernel, each with
//! automatic placement against the best single device.

use std::collections::BTreeMap;

use pel::csv::Row;
use pel::demo::{DemoGraph, Placing};
use pel::{Backend, Result, Runtime, Target};
use serde::Serialize;

use crate::interleaved;

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

impl GraphReport {
    /// Every median as CSV rows: the demo graph's and mandelbrot's, per
    /// placement.
    pub fn csv_rows(&self) -> Vec<Row> {
        let tasks = format!("{} tasks", self.tasks);
        let modes = |times: &BTreeMap<String, f64>| times.clone().into_iter();
        let graph = Row::per_mode(
            "graph",
            "demo graph",
            self.tasks,
            &tasks,
            modes(&self.makespan_s),
        );
        let split = Row::per_mode(
            "graph",
            "mandelbrot",
            1 << 20,
            "1024×1024",
            modes(&self.coexec_s),
        );
        graph.chain(split).collect()
    }
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
    use pel::kernels::{Mandelbrot, mandelbrot::View};
    let reps = reps.max(3);
    let total_steps = 4;
    // Calibrate: automatic runs until the model has every kernel's sizes.
    let tasks = DemoGraph::new(rt, 1).calibrate(rt, 40)?;
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

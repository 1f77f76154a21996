//! `pel bench taskbench`: Task Bench's minimum effective task granularity,
//! METG(50%) (Slaughter et al., SC'20), for pel's `submit` and for the
//! rayon program a user would write, measured in the same run.
//!
//! For each pattern, a `cores × STEPS` graph is timed at task sizes from 1
//! to 4^9 iterations, pel and rayon interleaved in shuffled rounds. At
//! each size, a system's efficiency is its FLOP/s over the best FLOP/s
//! either reached at any size (the machine's peak, as measured), and its
//! task granularity is its time × cores / tasks. METG(50%) is the smallest
//! granularity at 50% efficiency, interpolated between the two sizes
//! around it. pel's tasks are placed on the CPU, so both systems use the
//! same cores; the rayon program runs each step as one parallel loop.

use std::collections::BTreeMap;

use pel::kernels::taskbench::{self, CPU, Graph, Pattern, TaskBench};
use pel::{Error, Result, Runtime};
use serde::Serialize;

use crate::interleaved_for;

/// Steps of every timed graph.
pub const STEPS: usize = 64;

/// Seconds of graphs a side each point's rounds aim at (short graphs
/// swing with this machine's noise; more rounds steady their medians).
pub const ROUND_S: f64 = 0.3;

/// The simulated stencil_1d graph that times the simulator: points a step.
pub const SIM_WIDTH: usize = 64;
/// Its steps.
pub const SIM_STEPS: usize = 64;

/// The patterns whose METG is reported.
pub const PATTERNS: [Pattern; 2] = [Pattern::Stencil1d, Pattern::Nearest];

/// The two systems' figures at one point.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Pair {
    /// pel's `submit`.
    pub pel: Option<f64>,
    /// The rayon program.
    pub rayon: Option<f64>,
}

/// One task size of one pattern.
#[derive(Debug, Clone, Serialize)]
pub struct TaskbenchPoint {
    /// The pattern.
    pub pattern: String,
    /// Iterations per task.
    pub iterations: u32,
    /// Median seconds of the whole graph.
    pub seconds: Pair,
    /// Time × cores / tasks, microseconds.
    pub granularity_us: Pair,
    /// FLOP/s over the peak.
    pub efficiency: Pair,
}

/// The taskbench suite's report.
#[derive(Debug, Clone, Serialize)]
pub struct TaskbenchReport {
    /// METG(50%) per pattern, microseconds (`null`: 50% never reached).
    pub metg_us: BTreeMap<String, Pair>,
    /// Every measured point.
    pub points: Vec<TaskbenchPoint>,
    /// Points per step: the CPU's threads.
    pub width: usize,
    /// Steps per graph.
    pub steps: usize,
    /// Values per task.
    pub elems: usize,
    /// The best FLOP/s measured, per pattern.
    pub peak_flops: BTreeMap<String, f64>,
    /// Timed rounds per point.
    pub reps: usize,
    /// The simulator's throughput: stencil_1d tasks simulated per second
    /// of host time (kernels not computed), on [`simulated_machine`](Self::simulated_machine).
    pub simulated_tasks_per_s: f64,
    /// Tasks in that simulated graph.
    pub simulated_tasks: usize,
    /// The description it ran on.
    pub simulated_machine: String,
}

impl TaskbenchReport {
    /// Every median as CSV rows (mode `pel` or `rayon`, size the
    /// iterations).
    pub fn csv_rows(&self) -> Vec<pel::csv::Row> {
        self.points
            .iter()
            .flat_map(|p| {
                [("pel", p.seconds.pel), ("rayon", p.seconds.rayon)]
                    .into_iter()
                    .filter_map(move |(mode, s)| {
                        s.map(|seconds| pel::csv::Row {
                            suite: "taskbench",
                            kernel: p.pattern.clone(),
                            size: p.iterations as usize,
                            shape: String::new(),
                            mode: mode.to_owned(),
                            seconds,
                        })
                    })
            })
            .collect()
    }
}

impl Pair {
    fn of([pel, rayon]: [f64; 2]) -> Pair {
        Pair {
            pel: Some(pel),
            rayon: Some(rayon),
        }
    }
}

/// Two systems' METG curves: see [`curves`].
#[derive(Debug, Clone)]
pub struct Curves {
    /// The best FLOP/s either reached at any size.
    pub peak: f64,
    /// Each size, in the order given.
    pub points: Vec<CurvePoint>,
    /// Each system's METG(50%), microseconds.
    pub metg: [Option<f64>; 2],
}

/// One size of [`Curves`]: each system's figure, in the order given.
#[derive(Debug, Clone, Copy)]
pub struct CurvePoint {
    /// Iterations per task.
    pub iterations: u32,
    /// Median seconds of the graph.
    pub seconds: [f64; 2],
    /// Time × cores / tasks, microseconds.
    pub granularity_us: [f64; 2],
    /// FLOP/s over the peak.
    pub efficiency: [f64; 2],
}

/// Two systems' curves from `rows` of (iterations, one's seconds, the
/// other's seconds, the graph's FLOPs) for a graph of `tasks` tasks on
/// `cores` cores: each size's granularity and efficiency (against the
/// best FLOP/s either reached), and each one's METG(50%).
pub fn curves(rows: &[(u32, f64, f64, f64)], cores: usize, tasks: f64) -> Curves {
    let peak = rows
        .iter()
        .flat_map(|&(_, a, b, w)| [w / a, w / b])
        .fold(0.0, f64::max);
    let points: Vec<CurvePoint> = rows
        .iter()
        .map(|&(iterations, a, b, work)| {
            let gran = |s: f64| s * cores as f64 / tasks * 1e6;
            let eff = |s: f64| work / s / peak;
            CurvePoint {
                iterations,
                seconds: [a, b],
                granularity_us: [gran(a), gran(b)],
                efficiency: [eff(a), eff(b)],
            }
        })
        .collect();
    let metg = [0, 1].map(|i| {
        let curve: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.granularity_us[i], p.efficiency[i]))
            .collect();
        metg(&curve, 0.5)
    });
    Curves { peak, points, metg }
}

/// The smallest granularity at which `points` (granularity, efficiency)
/// reach `at`, interpolated (in log granularity) between the smallest
/// point that does and the next smaller one, which does not.
pub fn metg(points: &[(f64, f64)], at: f64) -> Option<f64> {
    let mut sorted: Vec<(f64, f64)> = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let i = sorted.iter().position(|&(_, e)| e >= at)?;
    let (g1, e1) = sorted[i];
    let Some(&(g0, e0)) = i.checked_sub(1).and_then(|j| sorted.get(j)) else {
        return Some(g1);
    };
    let f = ((at - e0) / (e1 - e0)).clamp(0.0, 1.0);
    Some((g0.ln() + f * (g1.ln() - g0.ln())).exp())
}

/// Runs the suite (`quick`: sizes up to 4^6, 16 steps).
pub fn taskbench(
    rt: &Runtime,
    quick: bool,
    reps: usize,
    step: &mut dyn FnMut(usize, usize, &str),
) -> Result<TaskbenchReport> {
    let width = rt.device(pel::Backend::Cpu)?.threads.max(1);
    let steps = if quick { 16 } else { STEPS };
    let top = if quick { 6 } else { 9 };
    let tb = TaskBench::new()?;
    let elems = tb.elems_per_task();
    let mut report = TaskbenchReport {
        metg_us: BTreeMap::new(),
        points: Vec::new(),
        width,
        steps,
        elems,
        peak_flops: BTreeMap::new(),
        reps,
        simulated_tasks_per_s: 0.0,
        simulated_tasks: SIM_WIDTH * SIM_STEPS,
        simulated_machine: String::new(),
    };
    let total = PATTERNS.len() * (top + 1);
    let mut done = 0;
    for (pi, pattern) in PATTERNS.into_iter().enumerate() {
        let graph = Graph::new(pattern, width, steps);
        // The two agree before either is timed.
        let got = tb.run(rt, CPU, &graph, 5)?;
        let want = taskbench::rayon(&graph, elems, 5)?;
        if got != want {
            return Err(Error::Internal {
                what: format!("taskbench {pattern}"),
                message: "pel's last step differs from the rayon program's".to_owned(),
            });
        }
        let deps: Vec<usize> = (0..steps)
            .flat_map(|t| graph.points(t).map(move |p| (t, p)))
            .map(|(t, p)| graph.deps(t, p).len())
            .collect();
        let mut rows = Vec::new();
        for k in 0..=top {
            let iterations = 4u32.pow(k as u32);
            let t = interleaved_for(
                &[0u8, 1],
                reps,
                ROUND_S,
                100 * pi as u64 + k as u64,
                |_| Ok::<(), Error>(()),
                |m, _| {
                    if m == 0 {
                        tb.execute(rt, CPU, &graph, iterations)
                    } else {
                        taskbench::rayon(&graph, elems, iterations).map(drop)
                    }
                },
                |_| false,
            )?;
            let work: f64 = deps
                .iter()
                .map(|&k| taskbench::flops(k, elems, iterations))
                .sum();
            rows.push((iterations, t[&0], t[&1], work));
            done += 1;
            step(done, total, pattern.name());
        }
        let c = curves(&rows, width, graph.tasks() as f64);
        for p in &c.points {
            report.points.push(TaskbenchPoint {
                pattern: pattern.name().to_owned(),
                iterations: p.iterations,
                seconds: Pair::of(p.seconds),
                granularity_us: Pair::of(p.granularity_us),
                efficiency: Pair::of(p.efficiency),
            });
        }
        report.metg_us.insert(
            pattern.name().to_owned(),
            Pair {
                pel: c.metg[0],
                rayon: c.metg[1],
            },
        );
        let peak = c.peak;
        report.peak_flops.insert(pattern.name().to_owned(), peak);
    }
    let node = crate::simulate::h200_node();
    report.simulated_tasks_per_s = crate::simulate::tasks_per_s(&node, SIM_WIDTH, SIM_STEPS)?;
    report.simulated_machine = node.name;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::{curves, metg};

    #[test]
    fn curves_put_both_systems_against_the_best_rate_either_reached() {
        // 100 FLOPs at each size; the second system is twice as fast at
        // the larger size, which sets the peak (100 / 0.5 = 200 FLOP/s).
        let c = curves(&[(1, 4.0, 4.0, 100.0), (4, 1.0, 0.5, 100.0)], 2, 4.0);
        assert_eq!(c.peak, 200.0);
        assert_eq!(c.points[1].efficiency, [0.5, 1.0]);
        assert_eq!(c.points[0].granularity_us, [2e6, 2e6]);
        assert_eq!(c.metg[0], Some(0.5e6));
        assert_eq!(c.metg[1], Some(0.25e6));
    }

    #[test]
    fn metg_interpolates_between_the_sizes_around_half() {
        // Efficiency 0.25 at 1 µs, 0.75 at 100 µs: half-way in log, 10 µs.
        let m = metg(&[(100.0, 0.75), (1.0, 0.25), (1e4, 0.99)], 0.5).unwrap();
        assert!((m - 10.0).abs() < 1e-9, "{m}");
        assert_eq!(metg(&[(5.0, 0.9), (50.0, 1.0)], 0.5), Some(5.0));
        assert_eq!(metg(&[(5.0, 0.1), (50.0, 0.4)], 0.5), None);
    }
}

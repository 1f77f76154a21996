//! `pel bench routing`: placement against the best single backend, point by
//! point, over sizes that span each kernel's crossover.

use std::collections::BTreeMap;

use pel::calibrate::calibrate_trial;
use pel::csv::Row;
use pel::kernels::samples::Sample;
use pel::{Backend, Result, Runtime, Target};
use serde::Serialize;

use crate::{Medians, interleaved_for};

/// One point of the routing benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct RoutingPoint {
    /// Sample kernel.
    pub kernel: String,
    /// Its size (as `pel run --size` takes it).
    pub size: usize,
    /// Its medians.
    #[serde(flatten)]
    pub medians: Medians,
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
    /// Seconds spent calibrating each point before it was timed (its
    /// automatic calls until placement settled): what a program pays on a
    /// cold model for these kernels, variants included.
    pub calibration_s: f64,
    /// Least timed repetitions per backend per point (fast points get up to
    /// forty times more); the median is kept.
    pub reps: usize,
    /// The devices, one line each.
    pub devices: Vec<String>,
}

impl RoutingReport {
    /// Every median as CSV rows: each backend and `auto`.
    pub fn csv_rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for p in &self.points {
            let shape = p.size.to_string();
            rows.extend(Row::per_mode(
                "routing",
                &p.kernel,
                p.size,
                &shape,
                p.medians.modes(),
            ));
        }
        rows
    }
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
    let mut calibration_s = 0.0;
    let total: usize = sweep.iter().map(|(_, s)| s.len()).sum();
    let reps = reps.max(1);
    let mut points = Vec::new();
    for (sample, sizes) in sweep {
        for &size in sizes {
            let trial = std::cell::RefCell::new(sample.trial(rt, size, 23)?);
            let calibrating = std::time::Instant::now();
            calibrate_trial(rt, trial.borrow_mut().as_mut(), 40)?;
            calibration_s += calibrating.elapsed().as_secs_f64();
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
            points.push(RoutingPoint {
                kernel: sample.name.to_owned(),
                size,
                medians: Medians::of(&med, &choices),
            });
            step(
                points.len(),
                total,
                &format!("{} {}", sample.name, trial.shape()),
            );
        }
    }
    rt.save_model();
    let best = |p: &RoutingPoint| p.medians.best_single_s().max(f64::MIN_POSITIVE);
    let regret_total = points.iter().map(|p| p.medians.auto_s).sum::<f64>()
        / points.iter().map(best).sum::<f64>().max(f64::MIN_POSITIVE);
    let regret_max = points
        .iter()
        .map(|p| p.medians.auto_s / best(p))
        .fold(0.0, f64::max);
    Ok(RoutingReport {
        points,
        regret_total,
        regret_max,
        calibration_runs: rt.stats().calibration_runs - start_runs,
        calibration_s,
        reps,
        devices: rt.devices().iter().map(|d| d.label()).collect(),
    })
}

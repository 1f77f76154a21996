//! pel's benchmark suites, each figure measured beside its peer in the same
//! run: `pel bench kernels` ([`kernels`]), `peers` ([`peers`]), `routing`
//! ([`routing`]), `graph` ([`graph`]) and `taskbench` ([`taskbench`]), with their reports, the shuffled
//! rounds they all time in ([`interleaved`]), and the plots ([`plot`]).
//! The criterion benches (`cargo bench --bench overhead`, `--bench
//! kernels`) live in this crate's `benches/`.
//!
//! Not published, as wgpu keeps its benchmarks: a program that depends on
//! pel compiles none of this.

#![deny(missing_docs, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::Instant;

use pel::{Backend, Target};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

#[cfg(feature = "cluster")]
pub mod cluster;
mod graph;
pub mod kernels;
pub mod peers;
pub mod plot;
mod routing;
pub mod simulate;
pub mod taskbench;
pub mod variants;

pub use graph::{GraphReport, graph};
pub use routing::{RoutingPoint, RoutingReport, routing};
pub use taskbench::{TaskbenchReport, taskbench};

/// One point's medians on every backend and with automatic placement, as
/// the kernels and routing suites report them (flattened into the point in
/// JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Medians {
    /// Median seconds on every backend that was timed.
    pub backends: BTreeMap<String, f64>,
    /// Median seconds on the CPU.
    pub cpu_s: f64,
    /// Median seconds on the fastest GPU (`null` without one).
    pub gpu_s: Option<f64>,
    /// Median seconds with automatic placement.
    pub auto_s: f64,
    /// Where automatic placement ran it, most often.
    pub choice: String,
}

impl Medians {
    /// From each target's median, and how often automatic placement chose
    /// each backend.
    fn of(medians: &BTreeMap<Target, f64>, choices: &BTreeMap<Backend, usize>) -> Medians {
        let on = |b: &Backend| medians.get(&Target::On(*b)).copied();
        let timed: Vec<(Backend, f64)> = medians
            .keys()
            .filter_map(|t| match t {
                Target::On(b) => on(b).map(|s| (*b, s)),
                Target::Auto | Target::Split { .. } => None,
            })
            .collect();
        Medians {
            backends: timed.iter().map(|(b, s)| (b.to_string(), *s)).collect(),
            cpu_s: on(&Backend::Cpu).unwrap_or(f64::NAN),
            gpu_s: timed
                .iter()
                .filter(|(b, _)| matches!(b, Backend::Gpu(_)))
                .map(|(_, s)| *s)
                .reduce(f64::min),
            auto_s: medians.get(&Target::Auto).copied().unwrap_or(f64::NAN),
            choice: choices
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(b, _)| b.to_string())
                .unwrap_or_default(),
        }
    }

    /// The best single backend's median: the lesser of `cpu_s` and `gpu_s`.
    pub fn best_single_s(&self) -> f64 {
        self.gpu_s.map_or(self.cpu_s, |g| g.min(self.cpu_s))
    }

    /// Each backend's median and automatic placement's (`auto`), as
    /// (mode, seconds).
    fn modes(&self) -> impl Iterator<Item = (String, f64)> + '_ {
        let backends = self.backends.iter().map(|(b, s)| (b.clone(), *s));
        backends.chain([("auto".to_owned(), self.auto_s)])
    }
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
    prepare: impl FnMut(M) -> std::result::Result<T, E>,
    run: impl FnMut(M, &mut T) -> std::result::Result<(), E>,
    slow: impl Fn(M) -> bool,
) -> std::result::Result<BTreeMap<M, f64>, E> {
    let times = interleaved_rounds(modes, reps, min_secs, seed, prepare, run, slow)?;
    Ok(times.into_iter().map(|(m, v)| (m, median(v))).collect())
}

/// [`interleaved_for`]'s every timed run: per mode, its seconds round by
/// round (round `i` of each mode ran in the same shuffled round, so a
/// ratio of two modes' `i`-th times compares runs made moments apart).
pub fn interleaved_rounds<M: Copy + Ord, T, E>(
    modes: &[M],
    reps: usize,
    min_secs: f64,
    seed: u64,
    mut prepare: impl FnMut(M) -> std::result::Result<T, E>,
    mut run: impl FnMut(M, &mut T) -> std::result::Result<(), E>,
    slow: impl Fn(M) -> bool,
) -> std::result::Result<BTreeMap<M, Vec<f64>>, E> {
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
    Ok(times)
}

/// The fastest time measured in any mode.
fn fastest<M>(times: &BTreeMap<M, Vec<f64>>) -> f64 {
    times
        .values()
        .flatten()
        .copied()
        .fold(f64::INFINITY, f64::min)
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

//! The tour (`pel` with no command): every sample kernel timed on every
//! backend, forced, and with automatic placement, each run checked against
//! the kernel's serial reference.
//!
//! Per kernel: one untimed, checked run forced onto each backend (warm-up:
//! pipelines compiled, and the model drops a first sample), then automatic
//! runs until the dispatcher explores no more, then `reps` rounds in which
//! every column runs once, in an order shuffled afresh each round. Forced
//! backends and automatic placement are timed side by side, so none gains
//! from running after the others (caches, clocks, a GPU driver's threads);
//! each cell is a median. Times run from host-resident inputs to the result
//! on the host, transfers included.
//!
//! Under injected faults ([`Runtime::faults`]) a forced call may fail as
//! asked (a panicking CPU kernel, a rejected pipeline): its cell reads
//! `failed` with the error beneath the row, and the automatic column shows
//! where the kernel went instead.

use std::fmt;
use std::io;
use std::time::Duration;

use pel_kernels::samples::{Check, Sample, Trial, run_check, samples};
use pel_runtime::{Backend, Result, Runtime, Stats, Target, secs};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::calibrate::calibrate_trial;

/// What the tour runs, and how often.
#[derive(Debug, Clone)]
pub struct TourOptions {
    /// The kernels, each at its tour size (default: every sample kernel).
    pub samples: Vec<Sample>,
    /// Timed rounds; each cell is the median of this many runs (default 3).
    pub reps: usize,
    /// Seed of the random inputs (default 7).
    pub seed: u64,
    /// Most automatic runs made to calibrate a kernel before automatic
    /// placement is timed (default 12).
    pub calibration_runs: usize,
}

impl Default for TourOptions {
    fn default() -> Self {
        TourOptions {
            samples: samples(),
            reps: 3,
            seed: 7,
            calibration_runs: 12,
        }
    }
}

/// One forced backend's cell of a row.
#[derive(Debug, Clone, PartialEq)]
pub struct TourCell {
    /// The backend the runs were forced onto.
    pub backend: Backend,
    /// The median time; `None` when a forced call failed (under faults).
    pub median: Option<Duration>,
    /// Whether a run ran elsewhere, after its device was lost or ran out
    /// of memory.
    pub elsewhere: bool,
}

/// One kernel's row.
#[derive(Debug, Clone, PartialEq)]
pub struct TourRow {
    /// The sample kernel.
    pub kernel: &'static str,
    /// Its size (as `pel run --size` takes it).
    pub size: usize,
    /// The problem's shape.
    pub shape: String,
    /// One cell per backend, in [`Runtime::backends`] order.
    pub cells: Vec<TourCell>,
    /// Automatic placement's median time.
    pub auto: Duration,
    /// Where automatic placement ran it last, and why: `gpu0 (modelled)`.
    pub choice: String,
    /// Each column's first run that disagreed with the reference:
    /// `cpu: MISMATCH (...)`, `auto on gpu0: MISMATCH (...)`.
    pub mismatches: Vec<String>,
    /// Forced calls that failed (only under injected faults).
    pub refused: Vec<String>,
}

impl TourRow {
    /// Whether every run's result agreed with the serial reference.
    pub fn verified(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// The tour's result: a row per kernel, and the runtime's counters after.
#[derive(Debug, Clone)]
pub struct TourReport {
    /// The devices, one line each.
    pub devices: Vec<String>,
    /// The forced columns, in order.
    pub backends: Vec<Backend>,
    /// One row per kernel.
    pub rows: Vec<TourRow>,
    /// Timed runs per cell.
    pub reps: usize,
    /// The runtime's counters at the end: bytes moved, recoveries...
    pub stats: Stats,
}

/// Runs the tour on `rt`, calling `on_row` with each row as soon as it is
/// measured (to print it while the next is measured).
///
/// # Examples
///
/// ```no_run
/// use pel::tour::{TourOptions, TourReport};
///
/// let rt = pel::Runtime::new()?;
/// let options = TourOptions {
///     samples: vec![pel::kernels::sample("saxpy").unwrap()],
///     ..TourOptions::default()
/// };
/// println!("{}", TourReport::header(&rt.backends()));
/// let report = pel::tour::run(&rt, &options, &mut |row| println!("{row}"))?;
/// assert!(report.verified());
/// report.write_csv(&mut std::io::stdout()).unwrap();
/// # Ok::<(), pel::Error>(())
/// ```
pub fn run(
    rt: &Runtime,
    options: &TourOptions,
    on_row: &mut dyn FnMut(&TourRow),
) -> Result<TourReport> {
    let backends = rt.backends();
    let reps = options.reps.max(1);
    let mut rows = Vec::new();
    for (i, sample) in options.samples.iter().enumerate() {
        let mut trial = sample.trial(rt, sample.tour_size, options.seed)?;
        let mut tour = KernelTour::new(rt, &backends);
        // Warm-up: one run forced onto each backend, untimed.
        for col in 0..backends.len() {
            tour.measure(trial.as_mut(), col)?;
        }
        calibrate_trial(rt, trial.as_mut(), options.calibration_runs)?;
        tour.columns.iter_mut().for_each(|c| c.times.clear());
        let mut rng = StdRng::seed_from_u64(options.seed ^ i as u64);
        for _ in 0..reps {
            let mut order: Vec<usize> = (0..tour.columns.len())
                .filter(|&c| tour.columns[c].failed.is_none())
                .collect();
            order.shuffle(&mut rng);
            for col in order {
                tour.measure(trial.as_mut(), col)?;
            }
        }
        let row = tour.row(sample, trial.shape(), reps);
        on_row(&row);
        rows.push(row);
    }
    Ok(TourReport {
        devices: rt.devices().iter().map(|d| d.label()).collect(),
        backends,
        rows,
        reps,
        stats: rt.stats(),
    })
}

/// Why a checked run went where it did, e.g. `modelled` or
/// `calibrating, split 40% gpu`.
pub fn placement(check: &Check) -> String {
    match check.placement {
        Some((reason, Some(share))) => format!("{reason}, split {:.0}% gpu", share * 100.0),
        Some((reason, None)) => reason.to_string(),
        None => String::new(),
    }
}

/// One kernel being toured: a column per backend, then automatic placement.
struct KernelTour<'a> {
    rt: &'a Runtime,
    backends: &'a [Backend],
    columns: Vec<Column>,
    /// Injected faults: a forced call that fails is the fault, not a bug.
    faults: bool,
}

/// What one column has measured so far.
#[derive(Default)]
struct Column {
    times: Vec<Duration>,
    elsewhere: bool,
    mismatch: Option<String>,
    failed: Option<String>,
    choice: String,
}

impl<'a> KernelTour<'a> {
    fn new(rt: &'a Runtime, backends: &'a [Backend]) -> Self {
        KernelTour {
            rt,
            backends,
            columns: (0..=backends.len()).map(|_| Column::default()).collect(),
            faults: rt.faults().any(),
        }
    }

    /// Runs, times and checks column `col` once (the last column is
    /// automatic placement).
    fn measure(&mut self, trial: &mut dyn Trial, col: usize) -> Result<()> {
        let forced = self.backends.get(col).copied();
        let target = forced.map_or(Target::Auto, Target::On);
        let column = &mut self.columns[col];
        let check = match (run_check(trial, self.rt, target), forced) {
            (Ok(check), _) => check,
            (Err(e), Some(b)) if self.faults => {
                column.failed = Some(format!("{b}: forced there, the call failed: {e}"));
                return Ok(());
            }
            (Err(e), _) => return Err(e),
        };
        if !check.verified() && column.mismatch.is_none() {
            column.mismatch = Some(match forced {
                Some(b) => format!("{b}: {check}"),
                None => format!("auto on {}: {check}", check.backend),
            });
        }
        match forced {
            Some(b) => column.elsewhere |= check.backend != b,
            None => column.choice = format!("{} ({})", check.backend, placement(&check)),
        }
        column.times.push(check.elapsed);
        Ok(())
    }

    fn row(self, sample: &Sample, shape: String, reps: usize) -> TourRow {
        let median = |c: &Column| {
            let mut times = c.times.clone();
            times.sort();
            times.get(times.len() / 2).copied()
        };
        let (auto, forced) = self.columns.split_last().expect("an automatic column");
        TourRow {
            kernel: sample.name,
            size: sample.tour_size,
            shape,
            cells: self
                .backends
                .iter()
                .zip(forced)
                .map(|(&backend, c)| TourCell {
                    backend,
                    median: median(c).filter(|_| c.failed.is_none() && c.times.len() == reps),
                    elsewhere: c.elsewhere,
                })
                .collect(),
            auto: median(auto).unwrap_or_default(),
            choice: auto.choice.clone(),
            mismatches: self
                .columns
                .iter()
                .filter_map(|c| c.mismatch.clone())
                .collect(),
            refused: forced.iter().filter_map(|c| c.failed.clone()).collect(),
        }
    }
}

/// Widths fixed in advance, since rows are printed as they are measured:
/// wide enough for every sample's shape and for a split's choice.
const SHAPE: usize = 28;
const CHOICE: usize = 32;

impl TourReport {
    /// The table's header and rule for these forced columns.
    pub fn header(backends: &[Backend]) -> String {
        let mut header = format!("| {:<16} | {:<SHAPE$} |", "kernel", "size");
        let mut rule = format!("|{:-<18}|{:-<w$}|", "", "", w = SHAPE + 2);
        for b in backends {
            header += &format!(" {:>10} |", b.to_string());
            rule += &format!("{:->12}|", "");
        }
        header += &format!(
            " {:>10} | {:<CHOICE$} | {:<8} |",
            "auto", "auto's choice", "verified"
        );
        rule += &format!("{:->12}|{:-<w$}|{:-<10}|", "", "", "", w = CHOICE + 2);
        format!("{header}\n{rule}")
    }

    /// Whether every run of every kernel agreed with its serial reference.
    pub fn verified(&self) -> bool {
        self.rows.iter().all(TourRow::verified)
    }

    /// Whether a forced run ran elsewhere (after a device was lost or ran
    /// out of memory).
    pub fn moved(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.cells.iter().any(|c| c.elsewhere))
    }

    /// What the table's marks mean, and what recovery did: the lines
    /// printed under the table.
    pub fn notes(&self) -> String {
        let mut notes = format!(
            "times: median of {}, from host-resident inputs to the result on the host, transfers included; the columns are timed in shuffled rounds.",
            self.reps
        );
        if self.moved() {
            notes +=
                "\n*: ran elsewhere at least once, after its device was lost or ran out of memory.";
        }
        let s = &self.stats;
        if s.devices_lost + s.recoveries + s.evictions > 0 {
            notes += &format!(
                "\nrecovery: {} device(s) lost, {} call(s) run again elsewhere, {} recorded call(s) replayed to rebuild lost data, {} GPU copies evicted; every result above was checked.",
                s.devices_lost, s.recoveries, s.replayed_tasks, s.evictions
            );
        }
        notes + &format!("\nruntime: {s}")
    }

    /// Every median as CSV rows (suite `tour`; a failed cell has none).
    pub fn csv_rows(&self) -> Vec<crate::csv::Row> {
        let rows = self.rows.iter().flat_map(|r| {
            let forced = r.cells.iter().filter_map(|c| Some((c.backend, c.median?)));
            let modes = forced
                .map(|(b, t)| (b.to_string(), t))
                .chain([("auto".to_owned(), r.auto)])
                .map(|(mode, t)| (mode, t.as_secs_f64()));
            crate::csv::Row::per_mode("tour", r.kernel, r.size, &r.shape, modes)
        });
        rows.collect()
    }

    /// Writes [`csv_rows`](Self::csv_rows) as CSV (see [`crate::csv`]).
    pub fn write_csv(&self, out: &mut dyn io::Write) -> io::Result<()> {
        crate::csv::write(out, &self.csv_rows())
    }
}

impl fmt::Display for TourRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "| {:<16} | {:<SHAPE$} |", self.kernel, self.shape)?;
        for c in &self.cells {
            let cell = match c.median {
                Some(t) => format!(
                    "{}{}",
                    secs(t.as_secs_f64()),
                    if c.elsewhere { "*" } else { "" }
                ),
                None => "failed".to_owned(),
            };
            write!(f, " {cell:>10} |")?;
        }
        write!(
            f,
            " {:>10} | {:<CHOICE$} | {:<8} |",
            secs(self.auto.as_secs_f64()),
            self.choice,
            if self.verified() { "yes" } else { "NO" }
        )?;
        for line in self.mismatches.iter().chain(&self.refused) {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// The whole table, then [`TourReport::notes`].
impl fmt::Display for TourReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", TourReport::header(&self.backends))?;
        for r in &self.rows {
            writeln!(f, "{r}")?;
        }
        write!(f, "\n{}", self.notes())
    }
}

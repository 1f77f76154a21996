//! Placement: which backend runs a call, and why.
//!
//! For every backend that can run the call, the expected finish is the
//! execution estimate from the measured [`profile`] + the time to move every
//! argument not valid there (from the [`TransferModel`] of each bus) + the
//! backend's queued work. Until every backend has enough samples near this
//! size the calls alternate between them (calibration), except that a
//! backend the model already shows to be hopeless is not explored further.
//! A (kernel, backend) pair that failed in a way a retry cannot fix is
//! excluded: automatic placement skips it, and says so in the decision.
//! This module owns the model and the decision; it moves no data.
//!
//! The [`Dispatcher`]'s state is its own: the call layer asks
//! [`Dispatcher::place`] (or [`Dispatcher::explain`], the same decision
//! unrecorded) with the [`Candidates`], and reports what happened through
//! methods (`record`, `observe_transfer`, `note_readback`, `enqueue`,
//! `finished`, `exclude`).
//!
//! - `decision.rs`: what a placement says ([`Decision`], [`Placement`]).
//! - `place.rs`: the policy: candidates in, a decision out; co-execution.
//! - `link.rs`: the bus model and what feeds it.
//! - `exclude.rs`: (kernel, backend) pairs set aside.
//! - `report.rs`: the model as rows for `pel model show`.
//! - `profile.rs`, `split.rs`, `persist/`: samples and curves, split
//!   shares, the model file.

mod decision;
mod exclude;
mod link;
mod memo;
pub(crate) mod persist;
mod place;
mod plan;
pub(crate) mod profile;
mod report;
pub(crate) mod split;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod variant_tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::hash::FxSet;
use std::path::{Path, PathBuf};

use crate::ids::Backend;
pub(crate) use decision::Placement;
pub use decision::{Decision, Estimate, Exclusion, Reason, secs};
pub(crate) use exclude::Excluded;
pub use link::{Link, TransferModel};
pub(crate) use memo::{MEMO_ARGS, MemoKey};
pub(crate) use place::{Candidate, Candidates};
/// Samples an entry of the model keeps: below this, a queued launch is
/// timed on the device for it.
pub(crate) use profile::KEEP as KEEP_SAMPLES;
pub use profile::{Curve, Summary};
use profile::{Profile, Sample, bucket};
pub use report::{ModelRow, SplitRow};
use split::SplitEntry;

/// Decisions kept for [`Runtime::decisions`](crate::Runtime::decisions).
const LOG: usize = 1024;

/// The dispatcher's state: the profile, the buses, the decision log and the
/// model file. Every field is private: the layers above ask and report
/// through methods, so the model's invariants (what is saved, what counts
/// as calibration) are kept here alone.
pub(crate) struct Dispatcher {
    /// Samples per (kernel, device, size bucket).
    profile: Profile,
    /// Per GPU: its bus, once measured.
    bus: Vec<Option<TransferModel>>,
    /// Per device (the CPU first): the key its entries are saved under.
    keys: Vec<String>,
    /// Kernel names by id, for the model file and `pel model show`.
    names: BTreeMap<u64, String>,
    /// Samples near a size before the model is trusted there.
    min_samples: usize,
    /// The backend every automatic call goes to (`PEL_BACKEND`, builder).
    forced: Option<Backend>,
    /// The model file, if any.
    path: Option<PathBuf>,
    /// Whether the model is saved to `path`.
    persist: bool,
    /// The latest decisions, oldest first (shared with the remembered
    /// decisions).
    log: VecDeque<Arc<Decision>>,
    /// Decisions remembered for calls that cost microseconds.
    memos: memo::Memos,
    /// Moved by every change that could change a remembered decision.
    epoch: u64,
    /// Print each recorded decision (`PEL_EXPLAIN`).
    print: bool,
    /// Recorded calls placed to calibrate (a backend or a split).
    calibration_runs: u64,
    /// Per kernel: (GPU runs, downloads of their outputs).
    readback: BTreeMap<u64, (u64, u64)>,
    /// (kernel, device) pairs that have run in this process: the first run
    /// of each compiles its pipeline and is not recorded.
    warm: FxSet<(u64, usize)>,
    /// Per device: calls running now, and the seconds they are expected to
    /// take: the queue a new call would wait behind.
    in_flight: Vec<(u32, f64)>,
    /// Per GPU: (upload, download) rates seen lately, bytes per second,
    /// oldest first.
    seen_rates: Vec<[VecDeque<f64>; 2]>,
    /// Co-execution shares per (kernel, size bucket, GPU).
    splits: BTreeMap<(u64, i32, usize), SplitEntry>,
    /// (kernel, device index) pairs automatic placement skips.
    excluded: BTreeMap<(u64, usize), Excluded>,
    /// (implementation, device index, size bucket) triples set aside:
    /// measured well behind another implementation on their device near
    /// that size, so not explored there again. Saved with the model: as
    /// the estimates around it move, a later process would otherwise find
    /// such an implementation close enough to measure again.
    set_aside: BTreeSet<(u64, usize, i32)>,
    /// Changed since the last save.
    dirty: bool,
    /// A failed save was reported (once is enough).
    warned: bool,
}

/// Index of a backend in the model: 0 is the CPU, g + 1 is GPU g.
pub(crate) fn device_index(b: Backend) -> usize {
    match b {
        Backend::Cpu => 0,
        Backend::Gpu(g) => g + 1,
    }
}

impl Dispatcher {
    /// A fresh model for the devices of `keys` (the CPU first); every
    /// automatic call goes to `forced` when one is given.
    pub(crate) fn new(keys: Vec<String>, min_samples: usize, forced: Option<Backend>) -> Self {
        let gpus = keys.len() - 1;
        Dispatcher {
            profile: Profile::default(),
            bus: vec![None; gpus],
            keys,
            names: BTreeMap::new(),
            min_samples: min_samples.max(1),
            forced,
            path: None,
            persist: false,
            log: VecDeque::new(),
            memos: Default::default(),
            epoch: 0,
            print: false,
            calibration_runs: 0,
            readback: BTreeMap::new(),
            warm: Default::default(),
            in_flight: vec![(0, 0.0); gpus + 1],
            seen_rates: vec![Default::default(); gpus],
            splits: BTreeMap::new(),
            excluded: BTreeMap::new(),
            set_aside: BTreeSet::new(),
            dirty: false,
            warned: false,
        }
    }

    /// Prints every recorded decision to stderr from now on (`PEL_EXPLAIN`).
    pub(crate) fn print_decisions(&mut self, on: bool) {
        self.print = on;
    }

    /// The device keys this model belongs to.
    pub(crate) fn keys(&self) -> &[String] {
        &self.keys
    }

    /// GPU `g`'s bus, where it has been measured.
    pub(crate) fn bus_of(&self, g: usize) -> Option<TransferModel> {
        self.bus.get(g).copied().flatten()
    }

    /// The backend every automatic call is forced to, if any. The call
    /// layer checks that such a device exists before asking for a place.
    pub(crate) fn forced(&self) -> Option<Backend> {
        self.forced
    }

    /// Recorded calls placed to calibrate, since the runtime started.
    pub(crate) fn calibration_runs(&self) -> u64 {
        self.calibration_runs
    }

    /// The model file, if any.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Loads the model file at `path` (a warning and a fresh model if it is
    /// damaged) and remembers it as where to save; `persist`: save there.
    pub(crate) fn attach(&mut self, path: PathBuf, persist: bool) {
        match persist::load(&path, &self.keys) {
            Ok(Some(loaded)) => {
                for w in &loaded.warnings {
                    eprintln!("pel: warning: {w}");
                }
                self.absorb(loaded);
            }
            Ok(None) => {}
            Err(e) => eprintln!("pel: warning: {e}; starting a fresh model"),
        }
        self.path = Some(path);
        self.persist = persist;
    }

    /// Takes a loaded model's measurements.
    pub(crate) fn absorb(&mut self, loaded: persist::Loaded) {
        self.touch();
        self.profile = loaded.profile;
        self.names = loaded.names;
        for (mine, theirs) in self.bus.iter_mut().zip(loaded.bus) {
            *mine = theirs;
        }
        self.readback = loaded.readback;
        self.splits = loaded.splits;
        self.excluded = loaded.excluded;
        self.set_aside = loaded.set_aside;
    }

    /// Writes the model if it changed since the last save.
    pub(crate) fn save(&mut self) {
        if !self.persist || !self.dirty {
            return;
        }
        let Some(path) = &self.path else { return };
        match persist::save(path, self) {
            Ok(()) => self.dirty = false,
            Err(e) => {
                if !self.warned {
                    eprintln!("pel: warning: the performance model was not saved: {e}");
                    self.warned = true;
                }
            }
        }
    }

    /// Forgets every measurement and exclusion (the buses stay).
    pub(crate) fn reset(&mut self) {
        self.touch();
        self.profile.clear();
        self.splits.clear();
        self.excluded.clear();
        self.set_aside.clear();
        self.dirty = true;
    }

    /// Files a decision in the log (and prints it under `PEL_EXPLAIN=1`).
    fn log_shared(&mut self, d: Arc<Decision>) {
        if self.print {
            eprintln!("pel: {d}");
        }
        if self.log.len() == LOG {
            self.log.pop_front();
        }
        self.log.push_back(d);
    }

    /// The decisions kept, oldest first.
    pub(crate) fn decisions(&self) -> Vec<Decision> {
        self.log.iter().map(|d| Decision::clone(d)).collect()
    }

    /// Seconds of work expected on `backend` from calls running now.
    fn queued(&self, backend: Backend) -> f64 {
        self.in_flight
            .get(device_index(backend))
            .map_or(0.0, |q| q.1)
    }

    /// Whether `backend` has more than one call placed on it and unfinished.
    pub(crate) fn busy(&self, backend: Backend) -> bool {
        self.in_flight
            .get(device_index(backend))
            .is_some_and(|q| q.0 > 1)
    }

    /// The device index and expected execution seconds of a call (0 unknown).
    fn expected(&mut self, kernel: u64, backend: Backend, size: u64) -> (usize, f64) {
        let d = device_index(backend);
        let secs = self.profile.estimate(kernel, d, size, self.min_samples);
        (d, secs.unwrap_or(0.0))
    }

    /// Charges `backend` with a call's expected execution until it ends.
    pub(crate) fn enqueue(&mut self, kernel: u64, backend: Backend, size: u64) {
        let (_, secs) = self.expected(kernel, backend, size);
        self.charge(backend, secs);
    }

    /// Charges `backend` with a call expected to take `secs` (as its
    /// placement said) until it ends.
    pub(crate) fn charge(&mut self, backend: Backend, secs: f64) {
        if let Some(q) = self.in_flight.get_mut(device_index(backend)) {
            q.0 += 1;
            q.1 += secs;
        }
    }

    /// Takes back a [`charge`](Self::charge) of `secs`: for a call that
    /// never ran, or (through [`finished`](Self::finished)) one that ended.
    pub(crate) fn uncharge(&mut self, backend: Backend, secs: f64) {
        if let Some(q) = self.in_flight.get_mut(device_index(backend)) {
            q.0 = q.0.saturating_sub(1);
            q.1 = if q.0 == 0 { 0.0 } else { (q.1 - secs).max(0.0) };
        }
    }

    /// A call placed on `backend` has ended: its charge comes off the queue.
    pub(crate) fn finished(&mut self, kernel: u64, backend: Backend, size: u64) {
        let d = device_index(backend);
        let Some(&(calls, _)) = self.in_flight.get(d) else {
            return;
        };
        // Estimates change while a call runs: an idle device owes nothing
        // (and the last call's estimate is not needed).
        let secs = if calls > 1 {
            self.expected(kernel, backend, size).1
        } else {
            0.0
        };
        self.uncharge(backend, secs);
    }

    /// How likely an output this kernel writes on a GPU is needed on the
    /// host afterwards: downloads over GPU runs, with a prior of one half.
    fn readback_probability(&self, kernel: u64) -> f64 {
        let (runs, downloads) = self.readback.get(&kernel).copied().unwrap_or((0, 0));
        ((downloads as f64 + 0.5) / (runs as f64 + 1.0)).min(1.0)
    }

    /// A GPU output of `kernel` was brought to the host.
    pub(crate) fn note_readback(&mut self, kernel: u64) {
        self.touch();
        self.readback.entry(kernel).or_default().1 += 1;
        self.dirty = true;
    }

    /// Records a measured execution.
    pub(crate) fn record(
        &mut self,
        kernel: u64,
        name: &str,
        backend: Backend,
        size: u64,
        secs: f64,
    ) {
        self.record_sample(kernel, name, backend, size, secs, true);
    }

    /// Records a sample; `drift`: whether it may count as drift. A queued
    /// call's estimated time (its device time and its GPU's launch
    /// latency) may not: it only approximates the waited calls' times the
    /// entry holds (on llvmpipe it can be half again as long, or shorter).
    pub(crate) fn record_sample(
        &mut self,
        kernel: u64,
        name: &str,
        backend: Backend,
        size: u64,
        secs: f64,
        drift: bool,
    ) {
        // What the model file would refuse to load is not kept either.
        if !profile::physical_secs(secs) || size > profile::MAX_SIZE {
            return;
        }
        let d = device_index(backend);
        if backend != Backend::Cpu {
            self.readback.entry(kernel).or_default().0 += 1;
        }
        if self.warm.insert((kernel, d)) {
            return;
        }
        self.names.entry(kernel).or_insert_with(|| name.to_owned());
        let mut predicted = if drift {
            self.profile.estimate(kernel, d, size, self.min_samples)
        } else {
            None
        };
        if predicted.is_some_and(|p| {
            profile::drifts(secs, p) && !self.could_matter(kernel, d, size, secs, p)
        }) {
            // Far off the prediction, but not near enough to another
            // device's estimate to change a choice: a sample like any other
            // (outliers are cut when the median is taken), not a reason to
            // calibrate again.
            predicted = None;
        }
        let before = self.profile.samples_near(kernel, d, bucket(size));
        let reopened = self
            .profile
            .record(kernel, d, Sample { size, secs }, predicted);
        self.dirty = true;
        // A GPU's estimate, calibration begun or ended, or drift can change
        // a choice at once; the CPU's own samples move its estimate a
        // little at every call, and its remembered decisions are made
        // afresh every few uses anyway.
        if d != 0 || reopened || before + 1 == self.min_samples {
            self.touch();
        }
        // Save when an entry finishes calibrating, so a crash later loses
        // little; otherwise on drop or on request.
        if before + 1 == self.min_samples {
            self.save();
        }
    }

    /// Whether a time `secs` on device `d`, where `predicted` was expected,
    /// comes near enough to what another device is expected to take (within
    /// a factor of two) to change a choice: slower towards the fastest
    /// other, or faster towards it.
    fn could_matter(
        &mut self,
        kernel: u64,
        d: usize,
        size: u64,
        secs: f64,
        predicted: f64,
    ) -> bool {
        let mut other = f64::INFINITY;
        for o in (0..self.keys.len()).filter(|&o| o != d) {
            if let Some(t) = self.profile.estimate(kernel, o, size, self.min_samples) {
                other = other.min(t);
            }
        }
        if secs > predicted {
            secs > 0.5 * other
        } else {
            secs < 2.0 * other
        }
    }

    /// Records a split run on GPU `gpu`: its wall time and each part's.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_split(
        &mut self,
        kernel: u64,
        size: u64,
        gpu: usize,
        share: f64,
        total_s: f64,
        cpu_s: f64,
        gpu_s: f64,
    ) {
        let e = self
            .splits
            .entry((kernel, bucket(size), gpu))
            .or_insert_with(|| SplitEntry::new(1.0 - share, share));
        e.record(share, total_s, cpu_s, gpu_s);
        self.dirty = true;
        self.touch();
    }
}

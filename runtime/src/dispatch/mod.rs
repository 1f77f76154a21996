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

pub(crate) mod persist;
pub(crate) mod profile;
pub(crate) mod split;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::buffer::Moves;
use crate::device::BusSamples;
use crate::error::Error;
use crate::ids::Backend;
pub use profile::{Curve, Summary};
use profile::{Profile, Sample, bucket};
use split::SplitEntry;

/// Decisions kept for [`Runtime::decisions`](crate::Runtime::decisions).
const LOG: usize = 1024;
/// A backend whose estimate is this many times the best one's is not
/// explored further.
const HOPELESS: f64 = 8.0;

/// Why a backend was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// Measuring: this backend had the fewest samples near this size.
    Calibrating,
    /// The model predicted the earliest finish here.
    Modelled,
    /// The call or `PEL_BACKEND` named the backend.
    Forced,
    /// No other backend can run the call.
    OnlyBackend,
    /// Its device was lost or out of memory: the call ran again here.
    Recovered,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Calibrating => "calibrating",
            Reason::Modelled => "modelled",
            Reason::Forced => "forced",
            Reason::OnlyBackend => "only backend",
            Reason::Recovered => "recovered",
        })
    }
}

/// One backend's side of a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The backend.
    pub backend: Backend,
    /// Expected execution time, seconds (`None`: never measured).
    pub exec_s: Option<f64>,
    /// Expected time to move the arguments there, seconds.
    pub transfer_s: f64,
    /// Work already queued there, seconds.
    pub queue_s: f64,
    /// Samples of this kernel near this size on this backend.
    pub samples: usize,
}

impl Estimate {
    /// Expected finish: queue + transfers + execution (`None` if unknown).
    pub fn finish_s(&self) -> Option<f64> {
        self.exec_s.map(|e| e + self.transfer_s + self.queue_s)
    }
}

/// A placement decision, with the estimates behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The kernel's name.
    pub kernel: String,
    /// The call's problem size (the kernel's cost measure).
    pub size: u64,
    /// Where it goes.
    pub chosen: Backend,
    /// Why.
    pub reason: Reason,
    /// Every backend that could run it.
    pub estimates: Vec<Estimate>,
    /// Co-execution: the share of the items `chosen` (a GPU) computes while
    /// the CPU computes the rest; `None` when the call runs unsplit.
    pub split: Option<f64>,
    /// Backends that could run the call but are excluded for this kernel,
    /// with why. Automatic placement skipped them, so they have no entry in
    /// `estimates`; a forced call is not filtered and goes where it is told.
    pub excluded: Vec<Exclusion>,
}

/// A backend set aside for one kernel because it failed in a way that
/// retrying there would not fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// The backend set aside.
    pub backend: Backend,
    /// What went wrong there.
    pub reason: String,
    /// Kept in the model file, so later processes skip it too; otherwise
    /// it lasts as long as this runtime.
    pub permanent: bool,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (size {}) → {}", self.kernel, self.size, self.chosen)?;
        if let Some(share) = self.split {
            write!(
                f,
                "+cpu split {:.0}%/{:.0}%",
                share * 100.0,
                (1.0 - share) * 100.0
            )?;
        }
        write!(f, " [{}]:", self.reason)?;
        for e in &self.estimates {
            match e.finish_s() {
                Some(t) => write!(
                    f,
                    " {}: {} (exec {} + transfer {} + queue {}, {} samples);",
                    e.backend,
                    secs(t),
                    secs(e.exec_s.unwrap_or(0.0)),
                    secs(e.transfer_s),
                    secs(e.queue_s),
                    e.samples
                )?,
                None => write!(f, " {}: unmeasured;", e.backend)?,
            }
        }
        for x in &self.excluded {
            let lasting = if x.permanent { ", permanently" } else { "" };
            write!(f, " {} excluded{lasting}: {};", x.backend, x.reason)?;
        }
        Ok(())
    }
}

/// `0.00123` → `1.23 ms`.
pub fn secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Cost of moving data one way over one bus: `latency + bytes / bandwidth`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Fixed cost of a transfer, seconds.
    pub latency_s: f64,
    /// Sustained bandwidth, bytes per second.
    pub bytes_per_s: f64,
}

impl Link {
    /// Seconds to move `bytes`.
    pub fn secs(&self, bytes: u64) -> f64 {
        if bytes == 0 {
            0.0
        } else {
            self.latency_s + bytes as f64 / self.bytes_per_s
        }
    }

    /// The link through two measured transfers of `small` and `large` bytes.
    pub(crate) fn from_two(small: (u64, f64), large: (u64, f64)) -> Link {
        let bw = bandwidth((large.0 - small.0) as f64 / (large.1 - small.1).max(1e-9));
        let latency = small.1 - small.0 as f64 / bw;
        Link {
            // Rounding leaves crumbs near zero; under the clock's resolution
            // there is no latency to speak of.
            latency_s: if latency >= profile::MIN_SECS {
                latency.min(MAX_LATENCY_S)
            } else {
                0.0
            },
            bytes_per_s: bw,
        }
    }

    /// What is wrong with a link read from a file, if anything: a latency
    /// or bandwidth no bus has (the measurements above never give one).
    pub(crate) fn flaw(&self) -> Option<String> {
        let l = self.latency_s;
        if !(l == 0.0 || (profile::MIN_SECS..=MAX_LATENCY_S).contains(&l)) {
            return Some(format!(
                "latency {l:e} s is outside 0 or 1 ns to {MAX_LATENCY_S} s"
            ));
        }
        let b = self.bytes_per_s;
        if !(MIN_BANDWIDTH..=MAX_BANDWIDTH).contains(&b) {
            return Some(format!(
                "bandwidth {b:e} B/s is outside {MIN_BANDWIDTH:e} to {MAX_BANDWIDTH:e} B/s"
            ));
        }
        None
    }
}

/// The slowest bus the model admits, bytes per second: slower readings are
/// taken as this (a bus that slow would be no use for compute anyway).
const MIN_BANDWIDTH: f64 = 1e6;
/// The fastest, bytes per second: beyond any memory system built. A
/// reading above it is a timing artefact (two transfers timed the same).
const MAX_BANDWIDTH: f64 = 1e14;
/// The longest fixed cost of a transfer the model admits, seconds.
const MAX_LATENCY_S: f64 = 10.0;

/// A measured bandwidth, within what the model admits.
fn bandwidth(bytes_per_s: f64) -> f64 {
    if bytes_per_s.is_nan() {
        MIN_BANDWIDTH
    } else {
        bytes_per_s.clamp(MIN_BANDWIDTH, MAX_BANDWIDTH)
    }
}

/// The bus between the host and one GPU, measured when the GPU is first seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransferModel {
    /// Host to GPU.
    pub h2d: Link,
    /// GPU to host.
    pub d2h: Link,
}

/// The dispatcher's state: the profile, the buses, the decision log and the
/// model file.
pub(crate) struct Dispatcher {
    pub(crate) profile: Profile,
    pub(crate) bus: Vec<Option<TransferModel>>,
    pub(crate) keys: Vec<String>,
    pub(crate) names: BTreeMap<u64, String>,
    pub(crate) min_samples: usize,
    pub(crate) forced: Option<Backend>,
    pub(crate) path: Option<PathBuf>,
    pub(crate) persist: bool,
    log: VecDeque<Decision>,
    pub(crate) calibration_runs: u64,
    /// Per kernel: (GPU runs, downloads of their outputs).
    pub(crate) readback: BTreeMap<u64, (u64, u64)>,
    /// (kernel, device) pairs that have run in this process: the first run
    /// of each compiles its pipeline and is not recorded.
    warm: std::collections::HashSet<(u64, usize)>,
    /// Per device: calls running now, and the seconds they are expected to
    /// take: the queue a new call would wait behind.
    in_flight: Vec<(u32, f64)>,
    /// Per GPU: (upload, download) rates seen lately, bytes per second,
    /// oldest first.
    seen_rates: Vec<[VecDeque<f64>; 2]>,
    /// Co-execution shares per (kernel, size bucket, GPU).
    pub(crate) splits: BTreeMap<(u64, i32, usize), SplitEntry>,
    /// (kernel, device index) pairs automatic placement skips.
    pub(crate) excluded: BTreeMap<(u64, usize), Excluded>,
    dirty: bool,
    warned: bool,
}

/// Why a (kernel, device) pair is excluded, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Excluded {
    pub(crate) reason: String,
    /// Saved with the model (else forgotten with the runtime).
    pub(crate) permanent: bool,
}

/// Transfer rates kept per GPU and direction for the bus model.
const SEEN_RATES: usize = 16;

/// Index of a backend in the model: 0 is the CPU, g + 1 is GPU g.
pub(crate) fn device_index(b: Backend) -> usize {
    match b {
        Backend::Cpu => 0,
        Backend::Gpu(g) => g + 1,
    }
}

impl Dispatcher {
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
            calibration_runs: 0,
            readback: BTreeMap::new(),
            warm: Default::default(),
            in_flight: vec![(0, 0.0); gpus + 1],
            seen_rates: vec![Default::default(); gpus],
            splits: BTreeMap::new(),
            excluded: BTreeMap::new(),
            dirty: false,
            warned: false,
        }
    }

    /// Loads the model file at `path` (a warning and a fresh model if it is
    /// damaged) and remembers it as where to save.
    /// The device keys this model belongs to.
    pub(crate) fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Whether GPU `g`'s bus has been measured.
    pub(crate) fn has_bus(&self, g: usize) -> bool {
        self.bus.get(g).is_some_and(Option::is_some)
    }

    /// GPU `g`'s bus, measured now: two sizes each way.
    pub(crate) fn measured_bus(&mut self, g: usize, m: &BusSamples) {
        self.bus[g] = Some(TransferModel {
            h2d: Link::from_two(m.up[0], m.up[1]),
            d2h: Link::from_two(m.down[0], m.down[1]),
        });
        self.reset_dirty(true);
    }

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
        self.profile = loaded.profile;
        self.names = loaded.names;
        for (mine, theirs) in self.bus.iter_mut().zip(loaded.bus) {
            *mine = theirs;
        }
        self.readback = loaded.readback;
        self.splits = loaded.splits;
        self.excluded = loaded.excluded;
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

    /// Marks the model as changed (or not) since the last save.
    pub(crate) fn reset_dirty(&mut self, dirty: bool) {
        self.dirty = dirty;
    }

    /// Forgets every measurement and exclusion (the buses stay).
    pub(crate) fn reset(&mut self) {
        self.profile.clear();
        self.splits.clear();
        self.excluded.clear();
        self.dirty = true;
    }

    /// Sets `backend` aside for `kernel`: automatic placement no longer
    /// picks it. A `permanent` exclusion is saved with the model, so later
    /// processes skip the pair too; a pair excluded twice keeps the latest
    /// reason and stays permanent once it was.
    pub(crate) fn exclude(
        &mut self,
        kernel: u64,
        backend: Backend,
        reason: String,
        permanent: bool,
    ) {
        let key = (kernel, device_index(backend));
        let permanent = permanent || self.excluded.get(&key).is_some_and(|x| x.permanent);
        self.excluded.insert(key, Excluded { reason, permanent });
        if permanent {
            self.dirty = true;
        }
    }

    /// Why `backend` is excluded for `kernel`, if it is.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn excluded(&self, kernel: u64, backend: Backend) -> Option<&str> {
        self.excluded
            .get(&(kernel, device_index(backend)))
            .map(|x| x.reason.as_str())
    }

    pub(crate) fn transfer_secs(&self, moves: &Moves) -> f64 {
        let link = |g: usize| self.bus.get(g).copied().flatten();
        let up: f64 = moves
            .up
            .iter()
            .map(|&(g, n)| link(g).map_or(0.0, |l| l.h2d.secs(n)))
            .sum();
        let down: f64 = moves
            .down
            .iter()
            .map(|&(g, n)| link(g).map_or(0.0, |l| l.d2h.secs(n)))
            .sum();
        // An empty sum of f64 is -0.0; no transfer is +0.
        (up + down).max(0.0)
    }

    /// Chooses among `candidates` (each with its transfer and queue times),
    /// skipping those excluded for this kernel unless the call is forced.
    /// `Err(NoBackend)` when every candidate is excluded.
    pub(crate) fn decide(
        &mut self,
        kernel: u64,
        name: &str,
        size: u64,
        candidates: &[(Backend, f64, f64)],
        forced: Option<Backend>,
    ) -> Result<Decision, Error> {
        let min = self.min_samples;
        let b = bucket(size);
        let forced = forced.or(self.forced);
        let excluded: Vec<Exclusion> = candidates
            .iter()
            .filter_map(|&(backend, _, _)| {
                let x = self.excluded.get(&(kernel, device_index(backend)))?;
                Some(Exclusion {
                    backend,
                    reason: x.reason.clone(),
                    permanent: x.permanent,
                })
            })
            .collect();
        let estimates: Vec<Estimate> = candidates
            .iter()
            // A forced call goes where it is told: the exclusion is shown,
            // not applied.
            .filter(|(backend, _, _)| {
                forced.is_some() || excluded.iter().all(|x| x.backend != *backend)
            })
            .map(|&(backend, transfer_s, queue_s)| {
                let d = device_index(backend);
                Estimate {
                    backend,
                    exec_s: self.profile.estimate(kernel, d, size, min),
                    transfer_s,
                    queue_s,
                    samples: self.profile.samples_near(kernel, d, b),
                }
            })
            .collect();
        if forced.is_none() && estimates.is_empty() {
            let reason = if excluded.is_empty() {
                "no backend was offered".to_owned()
            } else {
                excluded
                    .iter()
                    .map(|x| format!("{}: {}", x.backend, x.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(Error::NoBackend {
                kernel: name.to_owned(),
                reason,
            });
        }

        let (chosen, reason) = if let Some(f) = forced {
            (f, Reason::Forced)
        } else if estimates.len() == 1 {
            (estimates[0].backend, Reason::OnlyBackend)
        } else {
            let best_known = estimates
                .iter()
                .filter_map(Estimate::finish_s)
                .fold(f64::INFINITY, f64::min);
            let explore = estimates
                .iter()
                .filter(|e| e.samples < min)
                .filter(|e| {
                    // Hopeless: known to be far slower than the best, on
                    // evidence near this size or from a fitted curve.
                    let hopeless = e.finish_s().is_some_and(|t| t > HOPELESS * best_known)
                        && (e.samples >= 2
                            || self
                                .profile
                                .curve(kernel, device_index(e.backend), min)
                                .is_some());
                    !hopeless
                })
                .min_by_key(|e| e.samples);
            match explore {
                Some(e) => (e.backend, Reason::Calibrating),
                None => {
                    let best = estimates
                        .iter()
                        .filter(|e| e.finish_s().is_some())
                        .min_by(|a, b| a.finish_s().unwrap().total_cmp(&b.finish_s().unwrap()))
                        .unwrap_or(&estimates[0]);
                    (best.backend, Reason::Modelled)
                }
            }
        };
        if reason == Reason::Calibrating {
            self.calibration_runs += 1;
        }
        Ok(Decision {
            kernel: name.to_owned(),
            size,
            chosen,
            reason,
            estimates,
            split: None,
            excluded,
        })
    }

    /// Whether to split a call of a splittable kernel between the CPU and
    /// the GPU of `gpu` (both estimates calibrated), and at what share.
    /// Explores (calibrates) a promising split first; afterwards splits
    /// only where the measured split beats the faster device alone.
    pub(crate) fn split_choice(
        &mut self,
        kernel: u64,
        size: u64,
        cpu: &Estimate,
        gpu: &Estimate,
    ) -> Option<(f64, Reason)> {
        let min = self.min_samples;
        let Backend::Gpu(g) = gpu.backend else {
            return None;
        };
        if cpu.samples < min || gpu.samples < min {
            return None;
        }
        // The split itself starts when both devices are free; each alone
        // would finish at its own estimate, queue included.
        let (tc, tg) = (cpu.exec_s? + cpu.transfer_s, gpu.exec_s? + gpu.transfer_s);
        let wait = cpu.queue_s.max(gpu.queue_s);
        let best = cpu.finish_s()?.min(gpu.finish_s()?);
        let key = (kernel, bucket(size), g);
        match self.splits.get(&key) {
            Some(e) if e.times.len() >= min => {
                let share = e.share;
                (wait + e.median()? < split::KEEP_IF_BELOW * best)
                    .then_some((share, Reason::Modelled))
            }
            _ if !split::promising(tc, tg) => None,
            existing => {
                let share = match existing {
                    Some(e) => e.share,
                    None => {
                        let e = SplitEntry::new(tc, tg);
                        let share = e.share;
                        self.splits.insert(key, e);
                        share
                    }
                };
                self.calibration_runs += 1;
                Some((share, Reason::Calibrating))
            }
        }
    }

    /// The GPU a split of this kernel at this size has been measured with:
    /// of those whose split is calibrated, the one with the fastest median;
    /// else the one with the most split runs.
    pub(crate) fn split_gpu(&self, kernel: u64, size: u64) -> Option<usize> {
        let b = bucket(size);
        let measured = self
            .splits
            .range((kernel, b, 0)..=(kernel, b, usize::MAX))
            .map(|(&(_, _, g), e)| (g, e));
        let calibrated = measured
            .clone()
            .filter(|(_, e)| e.times.len() >= self.min_samples)
            .filter_map(|(g, e)| Some((g, e.median()?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(g, _)| g);
        calibrated.or_else(|| measured.max_by_key(|(_, e)| e.times.len()).map(|(g, _)| g))
    }

    /// Refines GPU `g`'s bandwidth one way (`up`: host to GPU) from a
    /// transfer of `bytes` that took `secs`. The bus is measured once, with
    /// 16 MiB on warm buffers; real transfers have other sizes, map fresh
    /// staging memory and touch fresh host pages, and here that put the
    /// measured figure 2× off in either direction. The bandwidth becomes the
    /// median of the last 16 rates seen (after the measured latency), once
    /// three are in; the latency stays.
    pub(crate) fn observe_transfer(&mut self, g: usize, up: bool, bytes: u64, secs: f64) {
        let (Some(Some(bus)), Some(seen)) = (self.bus.get_mut(g), self.seen_rates.get_mut(g))
        else {
            return;
        };
        let (link, seen) = if up {
            (&mut bus.h2d, &mut seen[0])
        } else {
            (&mut bus.d2h, &mut seen[1])
        };
        let moving = (secs - link.latency_s).max(0.5 * secs);
        seen.push_back(bytes as f64 / moving.max(1e-9));
        if seen.len() > SEEN_RATES {
            seen.pop_front();
        }
        if seen.len() >= 3 {
            let mut rates: Vec<f64> = seen.iter().copied().collect();
            rates.sort_by(f64::total_cmp);
            link.bytes_per_s = bandwidth(rates[rates.len() / 2]);
            self.dirty = true;
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
    }

    /// The share of the items a split call at `size` gives its GPU, as
    /// learned: `Some(1.0)` or `Some(0.0)` where running unsplit on the GPU
    /// or the CPU wins, `None` while unknown.
    pub(crate) fn split_share(
        &self,
        kernel: u64,
        size: u64,
        cpu: &Estimate,
        gpu: &Estimate,
    ) -> Option<f64> {
        let (tc, tg) = (cpu.exec_s? + cpu.transfer_s, gpu.exec_s? + gpu.transfer_s);
        let single = if tg < tc { 1.0 } else { 0.0 };
        let Backend::Gpu(g) = gpu.backend else {
            return Some(0.0);
        };
        match self.splits.get(&(kernel, bucket(size), g)) {
            Some(e) if e.times.len() >= self.min_samples => {
                Some(if e.median()? < split::KEEP_IF_BELOW * tc.min(tg) {
                    e.share
                } else {
                    single
                })
            }
            _ if !split::promising(tc, tg) => Some(single),
            _ => None,
        }
    }

    /// One row per split entry, for `pel model show`.
    pub(crate) fn split_rows(&self) -> Vec<SplitRow> {
        self.splits
            .iter()
            .map(|(&(k, b, gpu), e)| SplitRow {
                kernel: self
                    .names
                    .get(&k)
                    .cloned()
                    .unwrap_or_else(|| format!("{k:016x}")),
                bucket_from: profile::bucket_start(b),
                bucket_to: profile::bucket_start(b + 1) - 1,
                gpu,
                share: e.share,
                runs: e.times.len(),
                median_s: e.median(),
            })
            .collect()
    }

    /// Files a decision in the log (and prints it under `PEL_EXPLAIN=1`).
    pub(crate) fn log(&mut self, d: Decision, explain: bool) {
        if explain {
            eprintln!("pel: {d}");
        }
        if self.log.len() == LOG {
            self.log.pop_front();
        }
        self.log.push_back(d);
    }

    pub(crate) fn decisions(&self) -> Vec<Decision> {
        self.log.iter().cloned().collect()
    }

    /// Seconds of work expected on `backend` from calls running now.
    pub(crate) fn queued(&self, backend: Backend) -> f64 {
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
        let (d, secs) = self.expected(kernel, backend, size);
        if let Some(q) = self.in_flight.get_mut(d) {
            q.0 += 1;
            q.1 += secs;
        }
    }

    /// A call placed on `backend` has ended: its charge comes off the queue.
    pub(crate) fn finished(&mut self, kernel: u64, backend: Backend, size: u64) {
        let (d, secs) = self.expected(kernel, backend, size);
        if let Some(q) = self.in_flight.get_mut(d) {
            q.0 = q.0.saturating_sub(1);
            // Estimates change while a call runs: an idle device owes nothing.
            q.1 = if q.0 == 0 { 0.0 } else { (q.1 - secs).max(0.0) };
        }
    }

    /// How likely an output this kernel writes on a GPU is needed on the
    /// host afterwards: downloads over GPU runs, with a prior of one half.
    pub(crate) fn readback_probability(&self, kernel: u64) -> f64 {
        let (runs, downloads) = self.readback.get(&kernel).copied().unwrap_or((0, 0));
        ((downloads as f64 + 0.5) / (runs as f64 + 1.0)).min(1.0)
    }

    /// A GPU output of `kernel` was brought to the host.
    pub(crate) fn note_readback(&mut self, kernel: u64) {
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
        let mut predicted = self.profile.estimate(kernel, d, size, self.min_samples);
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
        self.profile
            .record(kernel, d, Sample { size, secs }, predicted);
        self.dirty = true;
        // Save when an entry finishes calibrating, so a crash later loses
        // little; otherwise on drop or on request.
        if before + 1 == self.min_samples {
            self.save();
        }
    }

    /// One row per profile entry, for `pel model show`.
    pub(crate) fn rows(&mut self) -> Vec<ModelRow> {
        let min = self.min_samples;
        let mut keys: Vec<_> = self.profile.iter().map(|(key, _)| key).collect();
        keys.sort_by_key(|&(k, d, b)| (self.names.get(&k).cloned().unwrap_or_default(), d, b));
        keys.into_iter()
            .filter_map(|(k, d, b)| {
                let s = self.profile.get((k, d, b))?.summary()?;
                Some(ModelRow {
                    kernel: self
                        .names
                        .get(&k)
                        .cloned()
                        .unwrap_or_else(|| format!("{k:016x}")),
                    device: self.keys[d].clone(),
                    bucket_from: profile::bucket_start(b),
                    bucket_to: profile::bucket_start(b + 1) - 1,
                    summary: s,
                    curve: self.profile.curve(k, d, min),
                })
            })
            .collect()
    }
}

/// What the model knows about splitting one kernel at one size bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitRow {
    /// Kernel name.
    pub kernel: String,
    /// Smallest size in the bucket.
    pub bucket_from: u64,
    /// Largest size in the bucket.
    pub bucket_to: u64,
    /// The GPU that takes its share.
    pub gpu: usize,
    /// The GPU's share of the items.
    pub share: f64,
    /// Split runs measured (the latest are kept).
    pub runs: usize,
    /// Their median wall time, seconds.
    pub median_s: Option<f64>,
}

/// One entry of the performance model, as `pel model show` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Kernel name.
    pub kernel: String,
    /// Device key.
    pub device: String,
    /// Smallest size in the bucket.
    pub bucket_from: u64,
    /// Largest size in the bucket.
    pub bucket_to: u64,
    /// The samples' statistics.
    pub summary: Summary,
    /// The curve fitted across this kernel's buckets on this device.
    pub curve: Option<Curve>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatcher() -> Dispatcher {
        Dispatcher::new(vec!["cpu".into(), "gpu-a".into()], 5, None)
    }

    const CPU: Backend = Backend::Cpu;
    const GPU: Backend = Backend::Gpu(0);

    fn both(transfer_gpu: f64) -> [(Backend, f64, f64); 2] {
        [(CPU, 0.0, 0.0), (GPU, transfer_gpu, 0.0)]
    }

    #[test]
    fn calibration_alternates_until_every_backend_has_its_samples() {
        let mut d = dispatcher();
        let mut order = Vec::new();
        for _ in 0..12 {
            let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
            order.push((dec.chosen, dec.reason));
            let t = if dec.chosen == CPU { 2e-3 } else { 1e-3 };
            d.record(1, "k", dec.chosen, 1000, t);
        }
        // Each backend: one warm-up call (not recorded) and five samples.
        let calibrating: Vec<Backend> = order
            .iter()
            .filter(|(_, r)| *r == Reason::Calibrating)
            .map(|(b, _)| *b)
            .collect();
        assert_eq!(calibrating.len(), 12);
        assert_eq!(calibrating.iter().filter(|b| **b == CPU).count(), 6);
        assert_eq!(
            &calibrating[..4],
            &[CPU, CPU, GPU, GPU],
            "warm-up, then alternate"
        );
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!((dec.chosen, dec.reason), (GPU, Reason::Modelled));
        assert_eq!(d.calibration_runs, 12);
    }

    fn calibrated(cpu: f64, gpu: f64) -> Dispatcher {
        let mut d = dispatcher();
        for _ in 0..6 {
            d.record(1, "k", CPU, 1000, cpu);
            d.record(1, "k", GPU, 1000, gpu);
        }
        d
    }

    #[test]
    fn data_on_the_gpu_keeps_a_follow_up_there() {
        // GPU compute 1 ms, CPU 3 ms; moving the data to the GPU costs 5 ms.
        let mut d = calibrated(3e-3, 1e-3);
        let far = d.decide(1, "k", 1000, &both(5e-3), None).unwrap();
        assert_eq!((far.chosen, far.reason), (CPU, Reason::Modelled), "{far}");
        // Already there: nothing to move, the GPU wins.
        let near = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!(near.chosen, GPU, "{near}");
        // Data resident on the GPU costs the CPU a download instead.
        let back = d
            .decide(1, "k", 1000, &[(CPU, 5e-3, 0.0), (GPU, 0.0, 0.0)], None)
            .unwrap();
        assert_eq!(back.chosen, GPU, "{back}");
    }

    #[test]
    fn a_single_spike_does_not_flip_the_decision() {
        let mut d = calibrated(3e-3, 1e-3);
        d.record(1, "k", GPU, 1000, 0.5);
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!((dec.chosen, dec.reason), (GPU, Reason::Modelled), "{dec}");
    }

    #[test]
    fn drift_sends_the_pair_back_to_calibration_and_then_elsewhere() {
        let mut d = calibrated(3e-3, 1e-3);
        for _ in 0..3 {
            d.record(1, "k", GPU, 1000, 20e-3); // the GPU got 20× slower
        }
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!(dec.reason, Reason::Calibrating, "{dec}");
        assert_eq!(dec.chosen, GPU);
        d.record(1, "k", GPU, 1000, 20e-3);
        d.record(1, "k", GPU, 1000, 20e-3);
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!((dec.chosen, dec.reason), (CPU, Reason::Modelled), "{dec}");
    }

    #[test]
    fn observed_transfers_refine_the_measured_bandwidths() {
        let mut d = dispatcher();
        let link = Link {
            latency_s: 1e-4,
            bytes_per_s: 2e9,
        };
        d.bus[0] = Some(TransferModel {
            h2d: link,
            d2h: link,
        });
        let mib4 = 4u64 << 20;
        // Two downloads are not enough to move it.
        d.observe_transfer(0, false, mib4, 4.3e-3);
        d.observe_transfer(0, false, mib4, 4.3e-3);
        assert_eq!(d.bus[0].unwrap().d2h.bytes_per_s, 2e9);
        // A third is, and a spike among many does not move the median.
        d.observe_transfer(0, false, mib4, 4.3e-3);
        d.observe_transfer(0, false, mib4, 0.5);
        let bw = d.bus[0].unwrap().d2h.bytes_per_s;
        let want = mib4 as f64 / 4.2e-3;
        assert!((bw - want).abs() < 1e-6 * want, "{bw} vs {want}");
        assert_eq!(d.bus[0].unwrap().d2h.latency_s, 1e-4);
        assert_eq!(d.bus[0].unwrap().h2d, link, "the other way is left alone");
        for _ in 0..3 {
            d.observe_transfer(0, true, mib4, 2.1e-3);
        }
        let up = d.bus[0].unwrap().h2d.bytes_per_s;
        assert!((up - mib4 as f64 / 2e-3).abs() < 1e-6 * up, "{up}");
        // A GPU without a bus model, or one that does not exist: nothing.
        d.observe_transfer(5, true, mib4, 1.0);
    }

    #[test]
    fn drift_that_cannot_change_the_choice_is_only_a_sample() {
        // The CPU takes 1 ms, a GPU 100 ms. Three CPU calls of 5 ms (a cold
        // cache, a busy machine) change nothing: no calibration again.
        let mut d = calibrated(1e-3, 100e-3);
        for _ in 0..3 {
            d.record(1, "k", CPU, 1000, 5e-3);
        }
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!((dec.chosen, dec.reason), (CPU, Reason::Modelled), "{dec}");
        // Three of 80 ms come near the GPU's 100 ms: calibrate again.
        for _ in 0..3 {
            d.record(1, "k", CPU, 1000, 80e-3);
        }
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!(dec.reason, Reason::Calibrating, "{dec}");
    }

    #[test]
    fn a_hopeless_backend_is_not_explored_further() {
        let mut d = dispatcher();
        for _ in 0..6 {
            d.record(1, "k", CPU, 1000, 1e-3);
        }
        d.record(1, "k", GPU, 1000, 1.0); // warm-up
        d.record(1, "k", GPU, 1000, 1.0);
        d.record(1, "k", GPU, 1000, 1.0);
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!((dec.chosen, dec.reason), (CPU, Reason::Modelled), "{dec}");
    }

    #[test]
    fn forced_and_only_backends() {
        let mut d = calibrated(3e-3, 1e-3);
        let dec = d.decide(1, "k", 1000, &both(0.0), Some(CPU)).unwrap();
        assert_eq!((dec.chosen, dec.reason), (CPU, Reason::Forced));
        let dec = d.decide(1, "k", 1000, &[(CPU, 0.0, 0.0)], None).unwrap();
        assert_eq!((dec.chosen, dec.reason), (CPU, Reason::OnlyBackend));
        d.forced = Some(CPU);
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!((dec.chosen, dec.reason), (CPU, Reason::Forced));
    }

    #[test]
    fn a_busy_device_counts_its_queue() {
        let mut d = calibrated(3e-3, 1e-3);
        // Four calls already running on the GPU (1 ms each; CPU takes 3 ms).
        for _ in 0..4 {
            d.enqueue(1, GPU, 1000);
        }
        assert!((d.queued(GPU) - 4e-3).abs() < 1e-9, "{}", d.queued(GPU));
        let busy = [(CPU, 0.0, d.queued(CPU)), (GPU, 0.0, d.queued(GPU))];
        let dec = d.decide(1, "k", 1000, &busy, None).unwrap();
        assert_eq!(dec.chosen, CPU, "the idle CPU finishes first: {dec}");
        for _ in 0..4 {
            d.finished(1, GPU, 1000);
        }
        assert_eq!(d.queued(GPU), 0.0, "an idle device owes nothing");
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!(dec.chosen, GPU);
    }

    #[test]
    fn an_excluded_backend_is_skipped_and_the_next_best_chosen() {
        let mut d = calibrated(3e-3, 1e-3);
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!(dec.chosen, GPU, "{dec}");
        d.exclude(1, GPU, "wrong results".into(), false);
        assert_eq!(d.excluded(1, GPU), Some("wrong results"));
        assert_eq!(d.excluded(1, CPU), None);
        assert_eq!(d.excluded(2, GPU), None, "another kernel is not affected");
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!(
            (dec.chosen, dec.reason),
            (CPU, Reason::OnlyBackend),
            "{dec}"
        );
        assert_eq!(
            dec.estimates.iter().map(|e| e.backend).collect::<Vec<_>>(),
            [CPU]
        );
        assert_eq!(
            dec.excluded,
            [Exclusion {
                backend: GPU,
                reason: "wrong results".into(),
                permanent: false
            }]
        );
        assert!(
            dec.to_string().contains("gpu0 excluded: wrong results"),
            "{dec}"
        );
        // Another kernel still goes to the GPU.
        let mut other = calibrated(3e-3, 1e-3);
        other.excluded = d.excluded.clone();
        for _ in 0..6 {
            other.record(2, "j", CPU, 1000, 3e-3);
            other.record(2, "j", GPU, 1000, 1e-3);
        }
        assert_eq!(
            other.decide(2, "j", 1000, &both(0.0), None).unwrap().chosen,
            GPU
        );
    }

    #[test]
    fn with_three_backends_the_next_best_is_modelled() {
        let mut d = Dispatcher::new(vec!["cpu".into(), "a".into(), "b".into()], 5, None);
        let gpu1 = Backend::Gpu(1);
        for _ in 0..6 {
            d.record(1, "k", CPU, 1000, 4e-3);
            d.record(1, "k", GPU, 1000, 1e-3);
            d.record(1, "k", gpu1, 1000, 2e-3);
        }
        let all = [(CPU, 0.0, 0.0), (GPU, 0.0, 0.0), (gpu1, 0.0, 0.0)];
        assert_eq!(d.decide(1, "k", 1000, &all, None).unwrap().chosen, GPU);
        d.exclude(1, GPU, "lost its results".into(), true);
        let dec = d.decide(1, "k", 1000, &all, None).unwrap();
        assert_eq!((dec.chosen, dec.reason), (gpu1, Reason::Modelled), "{dec}");
        assert!(
            dec.to_string()
                .contains("gpu0 excluded, permanently: lost its results"),
            "{dec}"
        );
    }

    #[test]
    fn a_forced_call_goes_to_an_excluded_backend() {
        let mut d = calibrated(3e-3, 1e-3);
        d.exclude(1, GPU, "wrong results".into(), false);
        let dec = d.decide(1, "k", 1000, &both(0.0), Some(GPU)).unwrap();
        assert_eq!((dec.chosen, dec.reason), (GPU, Reason::Forced), "{dec}");
        assert_eq!(dec.excluded.len(), 1, "shown, not applied: {dec}");
        d.forced = Some(GPU);
        let dec = d.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!((dec.chosen, dec.reason), (GPU, Reason::Forced), "{dec}");
        // Forced, even when every backend is excluded.
        d.exclude(1, CPU, "panicked".into(), false);
        assert!(d.decide(1, "k", 1000, &both(0.0), None).is_ok());
    }

    #[test]
    fn every_backend_excluded_is_an_error_naming_each() {
        let mut d = calibrated(3e-3, 1e-3);
        d.exclude(1, GPU, "wrong results".into(), false);
        d.exclude(1, CPU, "panicked".into(), true);
        let e = d.decide(1, "k", 1000, &both(0.0), None).unwrap_err();
        assert_eq!(
            e,
            Error::NoBackend {
                kernel: "k".into(),
                reason: "cpu: panicked; gpu0: wrong results".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "kernel `k`: no backend can run it: cpu: panicked; gpu0: wrong results"
        );
        // Only the CPU offered, and it is excluded: the same.
        assert!(matches!(
            d.decide(1, "k", 1000, &[(CPU, 0.0, 0.0)], None),
            Err(Error::NoBackend { .. })
        ));
        d.reset();
        assert_eq!(d.excluded(1, CPU), None, "a reset forgets exclusions");
        assert!(d.decide(1, "k", 1000, &both(0.0), None).is_ok());
    }

    #[test]
    fn permanent_exclusions_survive_the_model_file_and_others_do_not() {
        let mut d = calibrated(3e-3, 1e-3);
        d.exclude(1, GPU, "wrong results".into(), true);
        d.exclude(1, CPU, "panicked once".into(), false);
        d.exclude(0xabc, CPU, "line one\nline two".into(), true);
        let text = persist::to_json(&d).unwrap();
        let loaded = persist::parse(&text, &d.keys, "the test").unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let mut again = Dispatcher::new(d.keys.clone(), 5, None);
        again.absorb(loaded);
        assert_eq!(again.excluded(1, GPU), Some("wrong results"));
        assert_eq!(again.excluded(1, CPU), None, "not permanent: not saved");
        assert_eq!(again.excluded(0xabc, CPU), Some("line one line two"));
        let dec = again.decide(1, "k", 1000, &both(0.0), None).unwrap();
        assert_eq!(dec.chosen, CPU, "{dec}");
        assert!(dec.excluded[0].permanent);
        // On another machine (other device keys) nothing is excluded.
        let elsewhere = vec!["cpu".to_owned(), "gpu-b".to_owned()];
        let loaded = persist::parse(&text, &elsewhere, "the test").unwrap();
        assert!(loaded.excluded.iter().all(|((_, dev), _)| *dev == 0));
        // A reset writes a file without them.
        again.reset();
        let text = persist::to_json(&again).unwrap();
        let loaded = persist::parse(&text, &d.keys, "the test").unwrap();
        assert!(loaded.excluded.is_empty());
    }

    #[test]
    fn links_come_from_two_transfers() {
        let l = Link::from_two(
            (4096, 10e-6 + 4096.0 / 1e9),
            (1 << 24, 10e-6 + (1 << 24) as f64 / 1e9),
        );
        assert!((l.bytes_per_s - 1e9).abs() / 1e9 < 1e-6);
        assert!((l.latency_s - 10e-6).abs() < 1e-9);
        assert_eq!(l.secs(0), 0.0);
    }
}

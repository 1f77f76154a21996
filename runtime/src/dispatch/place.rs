//! The placement policy: one call's [`Candidates`] in, a [`Decision`] out.
//!
//! [`Dispatcher::place`] is the one way a call's backend is decided;
//! [`Dispatcher::explain`] is the same decision with nothing recorded. Both
//! run `Dispatcher::decide`, which reads the model and records nothing (it
//! takes `&mut self` only to cache fitted curves): what a recorded decision
//! changes (a calibration counted, a split's first share kept, the log) is
//! applied by `place` alone.

use std::sync::Arc;

use super::decision::{Decision, Estimate, Exclusion, Placement, Reason};
use super::memo::MemoKey;
use super::profile::bucket;
use super::split::{self, SplitEntry};
use super::{Dispatcher, device_index};
use crate::buffer::Moves;
use crate::error::{Error, Result};
use crate::ids::Backend;

/// A backend whose estimate is this many times the best one's is not
/// explored further.
const HOPELESS: f64 = 8.0;

/// A variant measured this many times slower than another on the same
/// device is not explored there further (CubeCL drops candidates past
/// 1.5×): exploring variants must not multiply calibration.
pub(crate) const VARIANT_HOPELESS: f64 = 1.5;

/// Samples (after a warm-up call) that settle a variant on a device, and
/// the choice among a forced backend's implementations: comparing shaders
/// on one device takes fewer than comparing devices, and every sample
/// still to take is a call a later program also pays for.
pub(crate) const VARIANT_SAMPLES: usize = 2;

/// A backend that can run a call (one of the kernel's implementations
/// there), and what it would have to receive first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    /// The backend.
    pub(crate) backend: Backend,
    /// The implementation: 0 for the kernel's own, `i` for variant `i - 1`.
    pub(crate) variant: u8,
    /// The implementation's id (the model keys its samples by it).
    pub(crate) kernel: u64,
    /// The variant's label (`None` for the kernel's own).
    pub(crate) label: Option<Arc<str>>,
    /// Every argument not valid there: uploads to it, and the downloads
    /// that bring a copy home on the way.
    pub(crate) moves: Moves,
}

/// What placement chooses among for one call. The call layer builds it: it
/// knows the devices (which can take the call at all) and the buffer table
/// (what each would have to move); the dispatcher adds what it knows.
pub(crate) struct Candidates<'a> {
    /// The kernel's id.
    pub(crate) kernel: u64,
    /// The kernel's name, for the decision and its errors.
    pub(crate) name: &'a str,
    /// The call's problem size (the kernel's cost measure).
    pub(crate) size: u64,
    /// The backend the call names, if it does; else the dispatcher's own
    /// forced backend, if any, applies.
    pub(crate) forced: Option<Backend>,
    /// Whether the call could run split between a GPU and the CPU.
    pub(crate) splittable: bool,
    /// Bytes the call writes. Left on a GPU, they come home as often as
    /// this kernel's outputs have been needed on the host before.
    pub(crate) written: u64,
    /// Every backend that can run the call, in backend order.
    pub(crate) backends: Vec<Candidate>,
    /// Why no backend can run the call, worded only when none can (`None`:
    /// "no backend was offered").
    pub(crate) why_none: Option<&'a dyn Fn() -> String>,
    /// Seconds the call would wait on each device (by device index), where
    /// the caller knows better than the dispatcher's own charges: a
    /// simulated machine's virtual clock.
    pub(crate) queue_s: Option<Vec<f64>>,
}

/// A split's first share, kept once a recorded call starts calibrating it:
/// (kernel, size bucket, GPU) and the entry.
type NewSplit = ((u64, i32, usize), SplitEntry);

impl Dispatcher {
    /// Decides where a call runs, and records it: a call placed to
    /// calibrate is counted, a split starts calibrating at its first
    /// share, and the decision goes to the log (and to stderr under
    /// `PEL_EXPLAIN`). `Err(NoBackend)` when nothing can run the call.
    ///
    /// With `memo`, a decision that may be remembered is, for the calls
    /// with that key (see [`memo`](super::memo)).
    pub(crate) fn place(&mut self, c: &Candidates<'_>, memo: Option<MemoKey>) -> Result<Placement> {
        let (decision, new_split) = self.decide(c)?;
        if decision.reason == Reason::Calibrating {
            self.calibration_runs += 1;
        }
        if let Some((key, entry)) = new_split {
            self.touch();
            self.splits.insert(key, entry);
        }
        let placement = Placement::of(&decision, variant_index(c, &decision));
        let decision = Arc::new(decision);
        if let Some(key) = memo {
            self.remember(key, placement, &decision);
        }
        self.log_shared(decision);
        Ok(placement)
    }

    /// What [`place`](Self::place) would decide for the same call, with the
    /// estimates behind it; nothing is recorded.
    pub(crate) fn explain(&mut self, c: &Candidates<'_>) -> Result<Decision> {
        self.decide(c).map(|(decision, _)| decision)
    }

    /// The decision, and the split entry a recorded one would start.
    fn decide(&mut self, c: &Candidates<'_>) -> Result<(Decision, Option<NewSplit>)> {
        let forced = c.forced.or(self.forced);
        if c.backends.is_empty() && forced.is_none() {
            return Err(Error::NoBackend {
                kernel: c.name.to_owned(),
                reason: c
                    .why_none
                    .map_or_else(|| "no backend was offered".to_owned(), |why| why()),
            });
        }
        let mut decision = self.choose(c, forced)?;
        let mut new_split = None;
        // A splittable call the model has calibrated on every device may
        // run partly on the best GPU and partly on the CPU.
        let variants = c.backends.iter().any(|cand| cand.variant != 0);
        if forced.is_none() && decision.reason == Reason::Modelled && c.splittable && !variants {
            let kept = self.split_gpu(c.kernel, c.size);
            if let (Some(cpu), Some(gpu)) = split::split_pair(&decision.estimates, kept) {
                let gpu_backend = gpu.backend;
                if let Some((share, reason, entry)) = self.split_choice(c.kernel, c.size, cpu, gpu)
                {
                    decision.chosen = gpu_backend;
                    decision.reason = reason;
                    decision.split = Some(share);
                    new_split = entry;
                }
            }
        }
        Ok((decision, new_split))
    }

    /// Seconds to bring the call's arguments to `cand`, and for a GPU the
    /// expected cost of bringing its outputs home afterwards.
    fn transfer_to(&self, c: &Candidates<'_>, cand: &Candidate) -> f64 {
        let moves = self.transfer_secs(&cand.moves);
        if let Backend::Gpu(g) = cand.backend {
            let p = self.readback_probability(c.kernel);
            if p > 0.0 && c.written > 0 {
                return moves + p * self.download_secs(g, c.written);
            }
        }
        moves
    }

    /// Chooses among the candidates, skipping those excluded for this
    /// kernel unless the call is forced. `Err(NoBackend)` when every
    /// candidate is excluded. A forced call still chooses among the
    /// kernel's variants on its backend, by the same rules.
    fn choose(&mut self, c: &Candidates<'_>, forced: Option<Backend>) -> Result<Decision> {
        let size = c.size;
        let min = self.min_samples;
        let b = bucket(size);
        let label = |cand: &Candidate| cand.label.as_ref().map(|l| l.to_string());
        let excluded: Vec<Exclusion> = c
            .backends
            .iter()
            .filter_map(|cand| {
                let x = self
                    .excluded
                    .get(&(cand.kernel, device_index(cand.backend)))?;
                Some(Exclusion {
                    backend: cand.backend,
                    variant: label(cand),
                    reason: x.reason.clone(),
                    permanent: x.permanent,
                })
            })
            .collect();
        let mut estimates = Vec::with_capacity(c.backends.len());
        // Each estimate's implementation id, in step with `estimates`.
        let mut ids = Vec::with_capacity(c.backends.len());
        for cand in &c.backends {
            // A forced call goes where it is told: the exclusion is shown,
            // not applied.
            let out = excluded.iter().any(|x| {
                x.backend == cand.backend && x.variant.as_deref() == cand.label.as_deref()
            });
            if forced.is_none() && out {
                continue;
            }
            let d = device_index(cand.backend);
            let queue_s = match &c.queue_s {
                Some(q) => q.get(d).copied().unwrap_or(0.0),
                None => self.queued(cand.backend),
            };
            let transfer_s = self.transfer_to(c, cand);
            estimates.push(Estimate {
                backend: cand.backend,
                variant: label(cand),
                exec_s: self.profile.estimate(cand.kernel, d, size, min),
                transfer_s,
                queue_s,
                samples: self.profile.samples_near(cand.kernel, d, b),
            });
            ids.push(cand.kernel);
        }
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
                kernel: c.name.to_owned(),
                reason,
            });
        }

        // What the choice is among: every estimate, or a forced call's
        // backend's (its variants).
        let pool: Vec<usize> = (0..estimates.len())
            .filter(|&i| forced.is_none_or(|f| estimates[i].backend == f))
            .collect();
        let (chosen, picked, reason) = match (forced, pool.len()) {
            (Some(f), 0) => (f, None, Reason::Forced),
            (Some(_), 1) => (estimates[pool[0]].backend, Some(pool[0]), Reason::Forced),
            (None, 1) => (
                estimates[pool[0]].backend,
                Some(pool[0]),
                Reason::OnlyBackend,
            ),
            _ => {
                let (i, why) = self.pick(&estimates, &ids, &pool, (min, b), forced.is_some());
                // A forced call measuring its backend's variants is
                // calibrating (run alone and timed, not queued); once they
                // are measured it is forced, as any other.
                let why = match (forced, why) {
                    (Some(_), Reason::Modelled) => Reason::Forced,
                    _ => why,
                };
                (estimates[i].backend, Some(i), why)
            }
        };
        let variant = picked.and_then(|i| estimates[i].variant.clone());
        Ok(Decision {
            kernel: c.name.to_owned(),
            size,
            chosen,
            variant,
            reason,
            estimates,
            split: None,
            excluded,
        })
    }

    /// The estimate to run among `pool` (indices into `estimates`, whose
    /// implementations' ids are `ids`), `min` being the samples that
    /// settle a device and `b` the call's size bucket: one still to
    /// explore, fewest samples first, unless it is hopeless or set aside;
    /// else the earliest finish. An implementation found well behind
    /// another on its device is set aside for this bucket, for good.
    pub(super) fn pick(
        &mut self,
        estimates: &[Estimate],
        ids: &[u64],
        pool: &[usize],
        (min, b): (usize, i32),
        forced: bool,
    ) -> (usize, Reason) {
        // Samples an estimate needs before it stops being explored.
        let needs = |e: &Estimate| {
            if forced || e.variant.is_some() {
                min.min(VARIANT_SAMPLES)
            } else {
                min
            }
        };
        let best_known = pool
            .iter()
            .filter_map(|&i| estimates[i].finish_s())
            .fold(f64::INFINITY, f64::min);
        // The best known finish of each backend's implementations.
        let best_on = |b: Backend, not: usize| {
            pool.iter()
                .filter(|&&j| j != not && estimates[j].backend == b)
                .filter_map(|&j| estimates[j].finish_s())
                .fold(f64::INFINITY, f64::min)
        };
        let key = |i: usize| (ids[i], device_index(estimates[i].backend), b);
        // Measured well behind another implementation on its own device:
        // one sample is evidence enough.
        let behind = |i: usize| {
            let e = &estimates[i];
            e.samples >= 1
                && e.finish_s()
                    .is_some_and(|t| t > VARIANT_HOPELESS * best_on(e.backend, i))
        };
        let mut behind_now = Vec::new();
        let explore = pool
            .iter()
            .copied()
            .filter(|&i| estimates[i].samples < needs(&estimates[i]))
            .filter(|&i| !self.set_aside.contains(&key(i)))
            .filter(|&i| {
                let e = &estimates[i];
                // Hopeless: known to be far slower than the best, on
                // evidence near this size or from a fitted curve.
                // (A variant's one sample will do: it seldom gathers
                // enough anywhere for a curve of its own.)
                let evidence = e.samples >= 2
                    || (e.samples >= 1 && e.variant.is_some())
                    || self
                        .profile
                        .curve(ids[i], device_index(e.backend), min)
                        .is_some();
                let hopeless = e.finish_s().is_some_and(|t| t > HOPELESS * best_known) && evidence;
                let behind = behind(i);
                if behind {
                    behind_now.push(i);
                }
                !hopeless && !behind
            })
            // Fewest samples first; among as few, the most promising.
            .min_by(|&a, &b| {
                let rank = |i: usize| {
                    let e = &estimates[i];
                    (e.samples, e.finish_s().unwrap_or(f64::INFINITY))
                };
                let (ra, rb) = (rank(a), rank(b));
                ra.0.cmp(&rb.0).then(ra.1.total_cmp(&rb.1))
            });
        for i in behind_now {
            self.dirty |= self.set_aside.insert(key(i));
        }
        // A forced call with one implementation left in contention on its
        // backend (the others set aside or well behind it), measured once,
        // has nothing to choose: it runs the best, as forced, however few
        // the samples.
        let settled = forced && {
            let mut contenders = pool
                .iter()
                .filter(|&&i| !behind(i) && !self.set_aside.contains(&key(i)));
            match (contenders.next(), contenders.next()) {
                (None, _) => true,
                (Some(&i), None) => estimates[i].samples >= 1,
                _ => false,
            }
        };
        let explore = explore.filter(|_| !settled);
        match explore {
            Some(i) => (i, Reason::Calibrating),
            None => {
                let best = pool
                    .iter()
                    .copied()
                    .filter(|&i| estimates[i].finish_s().is_some())
                    .min_by(|&a, &b| {
                        let t = |i: usize| estimates[i].finish_s().unwrap_or(f64::INFINITY);
                        t(a).total_cmp(&t(b))
                    })
                    .unwrap_or(pool[0]);
                (best, Reason::Modelled)
            }
        }
    }

    /// Whether to split a call of a splittable kernel between the CPU and
    /// the GPU of `gpu` (both estimates calibrated), and at what share.
    /// Explores (calibrates) a promising split first; afterwards splits
    /// only where the measured split beats the faster device alone. The
    /// entry a first exploration starts is returned, to be kept only if
    /// the call is recorded.
    fn split_choice(
        &self,
        kernel: u64,
        size: u64,
        cpu: &Estimate,
        gpu: &Estimate,
    ) -> Option<(f64, Reason, Option<NewSplit>)> {
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
                (wait + e.median()? < split::KEEP_IF_BELOW * best).then_some((
                    share,
                    Reason::Modelled,
                    None,
                ))
            }
            _ if !split::promising(tc, tg) => None,
            Some(e) => Some((e.share, Reason::Calibrating, None)),
            None => {
                let e = SplitEntry::new(tc, tg);
                Some((e.share, Reason::Calibrating, Some((key, e))))
            }
        }
    }

    /// The GPU a split of this kernel at this size has been measured with:
    /// of those whose split is calibrated, the one with the fastest median;
    /// else the one with the most split runs.
    fn split_gpu(&self, kernel: u64, size: u64) -> Option<usize> {
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

    /// The share of the items a split call at `size` gives its GPU, as
    /// learned, given the call's `estimates` (from
    /// [`explain`](Self::explain)): `Some(1.0)` or `Some(0.0)` where running
    /// unsplit on the GPU or the CPU wins, `None` while unknown.
    pub(crate) fn learned_share(
        &self,
        kernel: u64,
        size: u64,
        estimates: &[Estimate],
    ) -> Option<f64> {
        let kept = self.split_gpu(kernel, size);
        match split::split_pair(estimates, kept) {
            (Some(cpu), Some(gpu)) => self.split_share(kernel, size, cpu, gpu),
            (Some(_), None) => Some(0.0),
            _ => None,
        }
    }

    /// [`learned_share`](Self::learned_share) between the CPU and one GPU.
    fn split_share(&self, kernel: u64, size: u64, cpu: &Estimate, gpu: &Estimate) -> Option<f64> {
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
}

/// The implementation number of `d`'s chosen variant among `c`'s
/// candidates (0: the kernel's own).
pub(crate) fn variant_index(c: &Candidates<'_>, d: &Decision) -> u8 {
    c.backends
        .iter()
        .find(|cand| cand.backend == d.chosen && cand.label.as_deref() == d.variant.as_deref())
        .map_or(0, |cand| cand.variant)
}

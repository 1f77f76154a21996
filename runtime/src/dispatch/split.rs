//! Co-execution: how much of a splittable call a GPU gets while the CPU
//! does the rest, per (kernel, size bucket).
//!
//! The first share comes from the single-device estimates, so that both
//! parts should finish together: `t_cpu / (t_cpu + t_gpu)` to the GPU. Each
//! split run then measures both parts, and the share moves halfway towards
//! the one that would have balanced them (Qilin's adaptive mapping, refined
//! online). A split is explored only where it could pay in theory (neither
//! device more than nine times faster than the other), and kept only where
//! its measured median beats the best single device by 5%; elsewhere the
//! call runs unsplit, which is a share of 0 or 100%.

use serde::{Deserialize, Serialize};

use super::Estimate;
use crate::Backend;

/// Split runs kept per entry.
pub(crate) const KEEP: usize = 32;
/// Shares never go below this (or above one minus it) while splitting.
const MIN_SHARE: f64 = 0.01;

/// What is known about splitting one kernel at one size bucket with one
/// GPU (the model keeps one entry per GPU, so that GPUs which take turns at
/// being the fastest each keep what they learned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SplitEntry {
    /// The GPU's share of the items, in (0, 1).
    pub(crate) share: f64,
    /// Wall times of the latest split runs, seconds, oldest first.
    pub(crate) times: Vec<f64>,
}

impl SplitEntry {
    /// A first share from the devices' expected times for the whole call.
    pub(crate) fn new(cpu_s: f64, gpu_s: f64) -> Self {
        SplitEntry {
            share: clamp_share(cpu_s / (cpu_s + gpu_s)),
            times: Vec::new(),
        }
    }

    /// The median split run, if any.
    pub(crate) fn median(&self) -> Option<f64> {
        if self.times.is_empty() {
            return None;
        }
        let mut t = self.times.clone();
        t.sort_by(f64::total_cmp);
        Some(t[t.len() / 2])
    }

    /// Learns from one split run at `share`: its wall time, and how long
    /// each part took.
    pub(crate) fn record(&mut self, share: f64, total_s: f64, cpu_s: f64, gpu_s: f64) {
        if !super::profile::physical_secs(total_s) {
            return;
        }
        self.times.push(total_s);
        if self.times.len() > KEEP {
            self.times.remove(0);
        }
        if cpu_s > 0.0 && gpu_s > 0.0 && cpu_s.is_finite() && gpu_s.is_finite() {
            let cpu_rate = (1.0 - share) / cpu_s;
            let gpu_rate = share / gpu_s;
            let balanced = gpu_rate / (cpu_rate + gpu_rate);
            self.share = clamp_share(0.5 * self.share + 0.5 * balanced);
        }
    }

    /// What is wrong with an entry read from a file, if anything: a share
    /// pel never gives (it keeps shares within [0.01, 0.99]), more runs than
    /// it keeps, or a time no run can take.
    pub(crate) fn flaw(&self) -> Option<String> {
        if !(MIN_SHARE..=1.0 - MIN_SHARE).contains(&self.share) {
            return Some(format!(
                "share {} is outside {MIN_SHARE} to {}",
                self.share,
                1.0 - MIN_SHARE
            ));
        }
        if self.times.len() > KEEP {
            return Some(format!(
                "{} split runs, more than the {KEEP} kept",
                self.times.len()
            ));
        }
        let (i, t) = self
            .times
            .iter()
            .enumerate()
            .find(|(_, t)| !super::profile::physical_secs(**t))?;
        Some(format!(
            "split run {} of {} took {t:e} s, outside {}",
            i + 1,
            self.times.len(),
            super::profile::SECS_RANGE
        ))
    }
}

fn clamp_share(s: f64) -> f64 {
    if s.is_finite() {
        s.clamp(MIN_SHARE, 1.0 - MIN_SHARE)
    } else {
        0.5
    }
}

/// Whether splitting can pay at all: perfectly balanced parts would finish
/// in `t_c·t_g / (t_c + t_g)`; explore only if that is under 90% of the
/// faster device alone.
pub(crate) fn promising(cpu_s: f64, gpu_s: f64) -> bool {
    let ideal = cpu_s * gpu_s / (cpu_s + gpu_s);
    ideal < 0.9 * cpu_s.min(gpu_s)
}

/// A split is kept when its median beats the best single device by this.
pub(crate) const KEEP_IF_BELOW: f64 = 0.95;

/// How much slower than the fastest GPU a split's GPU may become before
/// the split moves (and calibrates again) on the fastest.
const KEEP_SPLIT_GPU_WITHIN: f64 = 2.0;

/// The CPU's estimate and that of the GPU a split would use: the one that
/// runs the call fastest (execution and transfers; queues change from call
/// to call, and a split's GPU should not).
/// The GPU the model already splits with (`kept`) stays while it takes at
/// most twice as long as the fastest, so that GPUs of about the same speed
/// do not take turns and restart the split's calibration each time: two
/// llvmpipe adapters here swapped places by 25% from one run to the next.
pub(crate) fn split_pair(
    estimates: &[Estimate],
    kept: Option<usize>,
) -> (Option<&Estimate>, Option<&Estimate>) {
    let alone = |e: &&Estimate| e.exec_s.map_or(f64::INFINITY, |x| x + e.transfer_s);
    let cpu = estimates.iter().find(|e| e.backend == Backend::Cpu);
    let fastest = estimates
        .iter()
        .filter(|e| e.backend != Backend::Cpu)
        .min_by(|a, b| alone(a).total_cmp(&alone(b)));
    let kept = kept.and_then(|g| estimates.iter().find(|e| e.backend == Backend::Gpu(g)));
    let gpu = match (kept, fastest) {
        (Some(k), Some(f)) if alone(&k) <= KEEP_SPLIT_GPU_WITHIN * alone(&f) => Some(k),
        _ => fastest,
    };
    (cpu, gpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_share_balances_the_estimates() {
        // The GPU is three times faster: it gets three quarters.
        let e = SplitEntry::new(3.0, 1.0);
        assert!((e.share - 0.75).abs() < 1e-12);
    }

    #[test]
    fn the_share_moves_towards_balanced_parts() {
        let mut e = SplitEntry::new(1.0, 1.0);
        // At half and half the GPU part took twice as long as the CPU part:
        // the balanced share is a third, and the share moves halfway there.
        e.record(0.5, 2.0, 1.0, 2.0);
        assert!((e.share - (0.5 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
        for _ in 0..40 {
            let s = e.share;
            // A CPU that does 2 items/s and a GPU that does 1: parts take
            // (1 - s)/2 and s/1 seconds.
            e.record(s, 1.0, (1.0 - s) / 2.0, s);
        }
        assert!((e.share - 1.0 / 3.0).abs() < 1e-6, "{}", e.share);
        assert_eq!(e.times.len(), KEEP);
    }

    #[test]
    fn splitting_is_explored_only_between_comparable_devices() {
        assert!(promising(1.0, 1.0));
        assert!(promising(1.0, 5.0));
        assert!(!promising(1.0, 20.0));
        assert!(!promising(20.0, 1.0));
    }

    fn gpu(g: usize, secs: f64) -> Estimate {
        Estimate {
            backend: Backend::Gpu(g),
            variant: None,
            exec_s: Some(secs),
            transfer_s: 0.0,
            queue_s: 0.0,
            samples: 5,
        }
    }

    #[test]
    fn a_split_keeps_its_gpu_until_another_is_twice_as_fast() {
        let cpu = Estimate {
            backend: Backend::Cpu,
            ..gpu(0, 1.0)
        };
        let both = |a: f64, b: f64| vec![cpu.clone(), gpu(0, a), gpu(1, b)];
        let chosen = |e: &[Estimate], kept| split_pair(e, kept).1.map(|e| e.backend);
        assert_eq!(chosen(&both(1.0, 0.8), None), Some(Backend::Gpu(1)));
        // gpu0 is 25% slower than gpu1 now, but the split was measured on it.
        assert_eq!(chosen(&both(1.0, 0.8), Some(0)), Some(Backend::Gpu(0)));
        assert_eq!(chosen(&both(1.0, 0.4), Some(0)), Some(Backend::Gpu(1)));
        assert_eq!(split_pair(&both(1.0, 0.8), None).0, Some(&cpu));
    }

    #[test]
    fn damaged_entries_are_refused() {
        let mut e = SplitEntry::new(1.0, 1.0);
        assert_eq!(e.flaw(), None);
        for share in [f64::NAN, 0.0, 1.0, -0.5, 1.5, 1e-300] {
            e.share = share;
            assert!(e.flaw().is_some(), "{share}");
        }
        e.share = 0.5;
        for t in [f64::INFINITY, 5e-324, 0.0, -1.0, 1e7] {
            e.times = vec![1e-3, t];
            assert!(e.flaw().unwrap().contains("split run 2 of 2"), "{t}");
        }
        e.times = vec![1e-3; KEEP + 1];
        assert!(e.flaw().is_some());
    }
}

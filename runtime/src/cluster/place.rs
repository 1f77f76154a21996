//! Where a task of a [`ClusterRuntime`](super::ClusterRuntime) runs when
//! balancing is on: the rank expected to finish it first, by a model every
//! rank computes alike from the same figures (so every rank makes the same
//! choice without a message):
//!
//! - each rank's queue, in seconds of the work placed on it so far;
//! - the task's time there: its declared work ([`Kernel::work`](crate::Kernel::work),
//!   else its arguments' bytes) at the rank's measured FLOP rate and
//!   memory bandwidth;
//! - the inputs that rank lacks, at the network's latency and bandwidth
//!   (measured at start, like the bus model, or set).
//!
//! The owner keeps a task unless another rank is expected to finish it at
//! least [`MARGIN`] sooner: moving it costs its inputs' messages, and its
//! results then live away from their owner.

use std::time::Instant;

/// A rank must be expected to finish a task this much sooner than its
/// owner to take it.
pub const MARGIN: f64 = 0.10;

/// The network between ranks: a message's fixed cost and its bytes' rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetLink {
    /// Seconds of a small message, one way.
    pub latency_s: f64,
    /// Bytes a second of a large one.
    pub bandwidth: f64,
}

impl NetLink {
    /// Seconds to move `bytes` in `messages` messages.
    pub fn cost(&self, messages: usize, bytes: f64) -> f64 {
        messages as f64 * self.latency_s + bytes / self.bandwidth.max(1.0)
    }
}

/// What a rank does a second, as measured on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankSpeed {
    /// Floating-point operations a second (its CPU, every thread).
    pub flops: f64,
    /// Bytes a second its memory copies.
    pub bandwidth: f64,
}

/// The common model: the same on every rank.
#[derive(Debug, Clone)]
pub(super) struct Balance {
    pub(super) link: NetLink,
    pub(super) speeds: Vec<RankSpeed>,
    /// Seconds of work placed on each rank so far.
    busy: Vec<f64>,
}

/// One candidate's inputs: the bytes and messages it lacks.
pub(super) struct Lacks {
    pub(super) messages: usize,
    pub(super) bytes: f64,
}

impl Balance {
    pub(super) fn new(link: NetLink, speeds: Vec<RankSpeed>) -> Balance {
        let busy = vec![0.0; speeds.len()];
        Balance { link, speeds, busy }
    }

    /// The rank to run a task of `work` (FLOPs, bytes) whose owner is
    /// `owner`, rank `r` lacking `lacks(r)` of its inputs; charges it.
    pub(super) fn choose(
        &mut self,
        owner: usize,
        (flops, bytes): (f64, f64),
        lacks: impl Fn(usize) -> Lacks,
    ) -> usize {
        let finish = |r: usize, busy: &[f64]| {
            let s = self.speeds[r];
            let run = (flops / s.flops.max(1.0)).max(bytes / s.bandwidth.max(1.0));
            let l = lacks(r);
            (busy[r] + self.link.cost(l.messages, l.bytes) + run, run)
        };
        let (own, own_run) = finish(owner, &self.busy);
        let mut best = (owner, own, own_run);
        for r in 0..self.busy.len() {
            let (f, run) = finish(r, &self.busy);
            if f < best.1 {
                best = (r, f, run);
            }
        }
        let (r, _, run) = if best.1 < own * (1.0 - MARGIN) {
            best
        } else {
            (owner, own, own_run)
        };
        self.busy[r] += run;
        r
    }
}

/// This process's CPU, measured in a few milliseconds: a multiply-add
/// loop on one thread (times the threads rayon would use) and a copy of
/// 8 MiB.
pub(super) fn measure_speed() -> RankSpeed {
    let n = 1 << 20;
    let mut acc = [1.0f32; 8];
    let start = Instant::now();
    for i in 0..n / 8 {
        for (j, a) in acc.iter_mut().enumerate() {
            *a = *a * 0.999_9 + (i + j) as f32 * 1e-9;
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    std::hint::black_box(acc);
    let flops = 2.0 * n as f64 / secs * rayon::current_num_threads() as f64;
    let src = vec![1u8; 8 << 20];
    let mut dst = vec![0u8; 8 << 20];
    dst.copy_from_slice(&src); // touch the pages first
    let start = Instant::now();
    dst.copy_from_slice(&src);
    std::hint::black_box(&dst);
    let bandwidth = 2.0 * src.len() as f64 / start.elapsed().as_secs_f64().max(1e-9);
    RankSpeed { flops, bandwidth }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two(link: NetLink) -> Balance {
        let s = RankSpeed {
            flops: 1e9,
            bandwidth: 1e9,
        };
        Balance::new(link, vec![s, s])
    }

    #[test]
    fn work_moves_off_a_busy_owner_when_the_link_pays_and_not_when_it_does_not() {
        // 1 ms tasks, all owned by rank 0, inputs of 1 MB on rank 0.
        let lacks = |r: usize| Lacks {
            messages: usize::from(r != 0),
            bytes: if r != 0 { 1e6 } else { 0.0 },
        };
        let fast = NetLink {
            latency_s: 1e-6,
            bandwidth: 1e10,
        };
        let mut b = two(fast);
        let ranks: Vec<usize> = (0..10).map(|_| b.choose(0, (1e6, 0.0), lacks)).collect();
        assert_eq!(ranks.iter().filter(|&&r| r == 1).count(), 5, "{ranks:?}");
        // A link that takes 1 s for the inputs: everything stays.
        let slow = NetLink {
            latency_s: 1e-6,
            bandwidth: 1e6,
        };
        let mut b = two(slow);
        assert!((0..10).all(|_| b.choose(0, (1e6, 0.0), lacks) == 0));
    }

    #[test]
    fn the_owner_keeps_a_task_within_the_margin() {
        let mut b = two(NetLink {
            latency_s: 0.0,
            bandwidth: 1e12,
        });
        // Rank 0 has 1 ms queued; a 10 ms task would finish at 11 ms on
        // rank 0 and 10 ms on rank 1: within 10%, it stays.
        b.busy[0] = 1e-3;
        let none = |_| Lacks {
            messages: 0,
            bytes: 0.0,
        };
        assert_eq!(b.choose(0, (1e7, 0.0), none), 0);
    }
}

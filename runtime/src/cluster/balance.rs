//! [`ClusterRuntime`]'s balancing: turning it on (measuring the network
//! and each rank's CPU, shared so every rank decides alike), and the choice
//! for a task given no rank. The model itself is in `place.rs`.

use super::dist_buffer::{DistRef, Meta};
use super::place::{Balance, Lacks, NetLink, RankSpeed, measure_speed};
use super::ranks::ClusterRuntime;
use crate::error::Result;
use crate::kernel::Kernel;

impl ClusterRuntime {
    /// With balancing on, the rank the common model picks for this task
    /// (its owner being `owner`); `None` with it off.
    pub(super) fn balanced(
        &self,
        owner: usize,
        kernel: &Kernel,
        args: &[DistRef<'_>],
        params: &[u8],
    ) -> Option<usize> {
        let mut guard = self.balance.lock().unwrap_or_else(|p| p.into_inner());
        let balance = guard.as_mut()?;
        let metas: Vec<&Meta> = args.iter().map(|a| a.inner.meta()).collect();
        let lens: Vec<usize> = metas.iter().map(|m| m.len).collect();
        let bytes: Vec<f64> = metas.iter().map(|m| (m.len * m.elem_size) as f64).collect();
        let work = kernel
            .work(params, &lens)
            .unwrap_or((0.0, bytes.iter().sum()));
        let valid: Vec<Vec<bool>> = metas.iter().map(|m| m.state().valid.clone()).collect();
        Some(balance.choose(owner, work, |r| {
            let lacking = (0..metas.len()).filter(|&i| !valid[i][r]);
            Lacks {
                messages: lacking.clone().count(),
                bytes: lacking.map(|i| bytes[i]).sum(),
            }
        }))
    }

    /// Turns balancing on (or off): from then on a task given no rank runs
    /// where the common model expects it to finish first (see
    /// [`NetLink`]'s module), not always on its owner. Turning it on
    /// measures the network (rank 0 and rank 1 ping-pong) and each rank's
    /// CPU, and shares the figures, so every rank computes the same
    /// choices. Every rank calls it.
    pub fn balance(&self, on: bool) -> Result<()> {
        self.drain(u64::MAX);
        if !on {
            *self.balance.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Ok(());
        }
        let link = self.measure_link()?;
        let mine = measure_speed();
        let flops = self.cluster.all_gather_u64(mine.flops.to_bits());
        let bandwidth = self.cluster.all_gather_u64(mine.bandwidth.to_bits());
        let speeds = flops
            .iter()
            .zip(&bandwidth)
            .map(|(&f, &b)| RankSpeed {
                flops: f64::from_bits(f),
                bandwidth: f64::from_bits(b),
            })
            .collect();
        *self.balance.lock().unwrap_or_else(|p| p.into_inner()) = Some(Balance::new(link, speeds));
        Ok(())
    }

    /// The network in the balancing model (`None` while balancing is off).
    pub fn link(&self) -> Option<NetLink> {
        let b = self.balance.lock().unwrap_or_else(|p| p.into_inner());
        b.as_ref().map(|b| b.link)
    }

    /// Replaces the network's figures in the balancing model (every rank
    /// the same: to plan for another network); nothing while it is off.
    pub fn set_link(&self, link: NetLink) {
        if let Some(b) = self
            .balance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            b.link = link;
        }
    }

    /// Rank 0 and rank 1 time round trips of 16 bytes (latency) and of
    /// 4 MiB (bandwidth); every rank gets rank 0's figures. On one rank:
    /// no network (free).
    fn measure_link(&self) -> Result<NetLink> {
        let tag = self.wire.own_tag();
        let (me, size) = (self.rank(), self.size());
        let mut figures = [0.0f64, f64::INFINITY];
        if size > 1 && me < 2 {
            let other = 1 - me;
            let trip = |bytes: usize, rounds: usize| -> f64 {
                let start = std::time::Instant::now();
                for _ in 0..rounds {
                    if me == 0 {
                        self.progress
                            .send(other, tag, vec![0u8; bytes].into_boxed_slice());
                        self.progress.recv(other, tag, bytes).wait();
                    } else {
                        self.progress.recv(other, tag, bytes).wait();
                        self.progress
                            .send(other, tag, vec![0u8; bytes].into_boxed_slice());
                    }
                }
                start.elapsed().as_secs_f64() / (2 * rounds) as f64
            };
            trip(16, 5);
            let latency = trip(16, 50);
            let big = 4 << 20;
            let one_way = trip(big, 4);
            figures = [latency, big as f64 / (one_way - latency).max(1e-9)];
        }
        let all: Vec<u64> = figures
            .iter()
            .flat_map(|f| self.cluster.all_gather_u64(f.to_bits()))
            .collect();
        Ok(NetLink {
            latency_s: f64::from_bits(all[0]),
            bandwidth: f64::from_bits(all[size]),
        })
    }
}

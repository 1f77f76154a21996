//! Counters of what the runtime did: bytes and transfers each way, kernel
//! launches per backend. Cheap enough to stay on in production.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::ids::human_bytes;

#[derive(Default)]
pub(crate) struct Counters {
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    downloads: AtomicU64,
    download_bytes: AtomicU64,
    cpu_runs: AtomicU64,
    gpu_runs: AtomicU64,
    prefetches: AtomicU64,
    recoveries: AtomicU64,
    replayed: AtomicU64,
    evictions: AtomicU64,
    devices_lost: AtomicU64,
}

impl Counters {
    pub(crate) fn upload(&self, bytes: u64) {
        self.uploads.fetch_add(1, Relaxed);
        self.upload_bytes.fetch_add(bytes, Relaxed);
    }
    pub(crate) fn download(&self, bytes: u64) {
        self.downloads.fetch_add(1, Relaxed);
        self.download_bytes.fetch_add(bytes, Relaxed);
    }
    /// A copy made valid on a GPU ahead of its task (an upload among them
    /// is counted as one too).
    pub(crate) fn prefetched(&self) {
        self.prefetches.fetch_add(1, Relaxed);
    }
    /// A call ran again elsewhere after its GPU was lost or full.
    pub(crate) fn recovered(&self) {
        self.recoveries.fetch_add(1, Relaxed);
    }
    /// A GPU copy was freed to make room.
    pub(crate) fn evicted(&self) {
        self.evictions.fetch_add(1, Relaxed);
    }
    /// A GPU was lost and `replayed` recorded calls rebuilt its data.
    pub(crate) fn lost_device(&self, replayed: u64) {
        self.devices_lost.fetch_add(1, Relaxed);
        self.replayed.fetch_add(replayed, Relaxed);
    }
    pub(crate) fn upload_bytes(&self) -> u64 {
        self.upload_bytes.load(Relaxed)
    }
    pub(crate) fn download_count(&self) -> u64 {
        self.downloads.load(Relaxed)
    }
    pub(crate) fn ran(&self, on_gpu: bool) {
        if on_gpu {
            self.gpu_runs.fetch_add(1, Relaxed);
        } else {
            self.cpu_runs.fetch_add(1, Relaxed);
        }
    }
    pub(crate) fn reset(&self) {
        for c in [
            &self.uploads,
            &self.upload_bytes,
            &self.downloads,
            &self.download_bytes,
            &self.cpu_runs,
            &self.gpu_runs,
            &self.prefetches,
            &self.recoveries,
            &self.replayed,
            &self.evictions,
            &self.devices_lost,
        ] {
            c.store(0, Relaxed);
        }
    }
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            uploads: self.uploads.load(Relaxed),
            upload_bytes: self.upload_bytes.load(Relaxed),
            downloads: self.downloads.load(Relaxed),
            download_bytes: self.download_bytes.load(Relaxed),
            cpu_runs: self.cpu_runs.load(Relaxed),
            gpu_runs: self.gpu_runs.load(Relaxed),
            prefetches: self.prefetches.load(Relaxed),
            recoveries: self.recoveries.load(Relaxed),
            replayed_tasks: self.replayed.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            devices_lost: self.devices_lost.load(Relaxed),
            ..Stats::default()
        }
    }
}

/// What the runtime has done since it started (or since
/// [`Runtime::reset_stats`](crate::Runtime::reset_stats)), and what it
/// holds now.
///
/// Every field counts events since the last reset except three:
/// `pool_free_bytes` and `live_buffers` are what is held now, and
/// `calibration_runs` counts since the runtime started (a reset of the
/// statistics is not a reset of the model).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Host-to-GPU transfers.
    pub uploads: u64,
    /// Bytes moved host to GPU.
    pub upload_bytes: u64,
    /// GPU-to-host transfers.
    pub downloads: u64,
    /// Bytes moved GPU to host.
    pub download_bytes: u64,
    /// Kernels run on the CPU.
    pub cpu_runs: u64,
    /// Kernels run on a GPU.
    pub gpu_runs: u64,
    /// GPU buffer requests served from the pool (all GPUs).
    pub pool_hits: u64,
    /// GPU buffer requests that allocated (all GPUs).
    pub pool_misses: u64,
    /// Bytes held by free pooled GPU buffers now (not reset).
    pub pool_free_bytes: u64,
    /// Buffers alive now (not reset).
    pub live_buffers: usize,
    /// Calls placed to calibrate the performance model since the runtime
    /// started (not reset).
    pub calibration_runs: u64,
    /// Arguments made valid on a GPU for a submitted task while that GPU
    /// was still busy with earlier work (uploads among them are counted in
    /// `uploads` too).
    pub prefetches: u64,
    /// Calls that ran again elsewhere because their GPU was lost or out of
    /// memory.
    pub recoveries: u64,
    /// Recorded GPU calls replayed on the CPU to rebuild data that lived
    /// only on a lost GPU.
    pub replayed_tasks: u64,
    /// GPU copies freed to make room (written back first when they were
    /// the only valid copy).
    pub evictions: u64,
    /// GPUs lost.
    pub devices_lost: u64,
    /// Per GPU, in the order of their backends (`gpu0` first): the times
    /// the host blocked until that GPU finished submitted work (for a
    /// kernel, a readback or an upload to settle).
    pub host_waits: Vec<u64>,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host→gpu: {} in {} transfer(s); gpu→host: {} in {} transfer(s); kernels: {} cpu, {} gpu; pool: {} hit(s), {} allocation(s), {} free; live buffers: {}; calibration runs: {}; prefetches: {}; recoveries: {}; replayed: {}; evictions: {}; devices lost: {}",
            human_bytes(self.upload_bytes),
            self.uploads,
            human_bytes(self.download_bytes),
            self.downloads,
            self.cpu_runs,
            self.gpu_runs,
            self.pool_hits,
            self.pool_misses,
            human_bytes(self.pool_free_bytes),
            self.live_buffers,
            self.calibration_runs,
            self.prefetches,
            self.recoveries,
            self.replayed_tasks,
            self.evictions,
            self.devices_lost
        )?;
        for (g, waits) in self.host_waits.iter().enumerate() {
            let sep = if g == 0 { "; host waits: " } else { ", " };
            write!(f, "{sep}gpu{g} {waits}")?;
        }
        Ok(())
    }
}

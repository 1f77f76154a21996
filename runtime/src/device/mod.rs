//! The processors pel runs on, behind one [`Device`] trait: the host CPU
//! (a rayon pool), any number of wgpu adapters, and simulated devices (host
//! memory, the kernel's CPU implementation, a virtual clock). This module
//! owns opening them and describing them; it does not decide where work
//! goes (`dispatch/`) or track data (`buffer/`).

pub(crate) mod cpu;
pub(crate) mod gpu;
pub(crate) mod limits;
pub(crate) mod sim;
pub(crate) mod timeline;

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ids::{Backend, human_bytes};
use crate::kernel::{Kernel, RawSlice};

/// A buffer's copy in a device's own memory.
#[derive(Clone, Debug)]
pub(crate) enum Memory {
    /// A wgpu buffer.
    Wgpu(wgpu::Buffer),
    /// Host bytes standing for a simulated device's memory.
    Sim(Arc<sim::SimMemory>),
}

impl Memory {
    /// Its size, bytes (at least what was asked; a pool may round up).
    pub(crate) fn size(&self) -> u64 {
        match self {
            Memory::Wgpu(b) => b.size(),
            Memory::Sim(m) => m.len() as u64,
        }
    }
}

/// Whether a device is lost, and why: set once (by the driver's callback,
/// an injected fault or a simulation), read before every operation (so a
/// flag is read first, and the lock taken only once it is set).
#[derive(Debug, Clone, Default)]
pub(crate) struct Liveness(Arc<LivenessState>);

#[derive(Debug, Default)]
pub(crate) struct LivenessState {
    lost: std::sync::atomic::AtomicBool,
    reason: std::sync::Mutex<Option<String>>,
}

impl Liveness {
    /// Marks the device lost, keeping the first reason given.
    pub(crate) fn lose(&self, reason: &str) {
        self.0
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert_with(|| reason.to_owned());
        self.0
            .lost
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// `Err(DeviceLost)` naming `device` once it is lost.
    pub(crate) fn check(&self, device: impl FnOnce() -> String) -> Result<()> {
        if !self.0.lost.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        match &*self
            .0
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            None => Ok(()),
            Some(reason) => Err(Error::DeviceLost {
                device: device(),
                reason: reason.clone(),
            }),
        }
    }
}

/// One launch of a kernel: its arguments, params and workgroups, whether
/// the caller wants the device's own time of it (`timed`: at once, for the
/// trace; `sample`: when it is queued, for the model), and what the model
/// expects it to take (seconds; `None`: unknown).
pub(crate) struct Launch<'a> {
    pub(crate) kernel: &'a Kernel,
    pub(crate) args: Args<'a>,
    pub(crate) params: &'a [u8],
    pub(crate) workgroups: u64,
    pub(crate) timed: bool,
    pub(crate) sample: bool,
    pub(crate) expect_s: Option<f64>,
}

/// A call's arguments as a device takes them: the host copies (the CPU),
/// or copies in the device's own memory with their bound sizes.
pub(crate) enum Args<'a> {
    Host(&'a [RawSlice]),
    Device(&'a [(Memory, u64)]),
}

/// One processor. The CPU works on the buffers' host copies; a GPU or a
/// simulated device has memory of its own, which the buffer table fills
/// and empties through `alloc`, `upload`, `download` and `release`.
pub(crate) trait Device: Send + Sync {
    /// Its description.
    fn info(&self) -> &DeviceInfo;

    /// `backend (name)`, for messages.
    fn label(&self) -> String {
        format!("{} ({})", self.info().backend, self.info().name)
    }

    /// `Err(DeviceLost)` once the device is lost.
    fn check_alive(&self) -> Result<()> {
        Ok(())
    }

    /// Declares the device lost: every later operation fails.
    fn lose(&self, _reason: &str) {}

    /// Whether this device can run `kernel` at all (the CPU and a
    /// simulated device need its CPU implementation).
    fn can_run(&self, _kernel: &Kernel) -> Result<()> {
        Ok(())
    }

    /// Whether this device can run `kernel` with arguments of `arg_bytes`
    /// bytes, `params_len` bytes of params and `workgroups` workgroups; a
    /// typed error naming the limit if not. Nothing is compiled or moved.
    fn check_call(
        &self,
        kernel: &Kernel,
        arg_bytes: &mut dyn Iterator<Item = u64>,
        params_len: usize,
        workgroups: u64,
    ) -> Result<()> {
        self.can_run(kernel)?;
        match self.limits() {
            Some(l) => limits::check_call(
                l,
                &|| self.label(),
                kernel,
                arg_bytes,
                params_len,
                workgroups,
            ),
            None => Ok(()),
        }
    }

    /// Runs the launch and returns the kernel's time as the device measured
    /// it, where it did (when `timed`, or always on a virtual clock).
    fn execute(&self, launch: Launch<'_>) -> Result<Option<Duration>>;

    /// Queues the launch behind this device's earlier work and returns its
    /// ticket without waiting for it, where the device queues launches;
    /// otherwise runs it now, as [`execute`](Self::execute), and returns
    /// `None`. The ticket comes back from [`finished`](Self::finished)
    /// once the launch's batch has finished.
    fn queue_launch(&self, launch: Launch<'_>) -> Result<Option<u64>> {
        self.execute(launch).map(|_| None)
    }

    /// The queued launches that have finished since the last call (or
    /// never will, their device lost): each ticket, with the kernel's
    /// device time where the device measured it. Never blocks.
    fn finished(&self) -> Vec<(u64, Option<Duration>)> {
        Vec::new()
    }

    /// What a launch that waits costs beyond its kernel's device time:
    /// submitting it and waiting for it. A queued launch's device time
    /// plus this is what the same call would have taken waited for, the
    /// measure the performance model keeps.
    fn launch_latency(&self) -> Duration {
        Duration::ZERO
    }

    /// Whether [`queue_launch`](Self::queue_launch) queues rather than
    /// runs now.
    fn queues(&self) -> bool {
        false
    }

    /// Whether nothing is queued or running on it that a transfer made now
    /// would wait for; never blocks. A transfer timed while it is not
    /// times the device's earlier work too, not the bus.
    fn quiet(&self) -> bool {
        true
    }

    /// The error of a launch given arguments of the other kind.
    fn wrong_args(&self) -> Error {
        Error::Internal {
            what: self.label(),
            message: "a launch's arguments were not where this device keeps them".to_owned(),
        }
    }

    /// Whether the times it reports are virtual (a simulated device): they,
    /// not the host's clock, are then a call's execution time.
    fn virtual_clock(&self) -> bool {
        false
    }

    /// Whether it runs the kernel's CPU implementation, on the calling
    /// thread (a simulated device): user code, which may call into pel.
    fn runs_cpu_code(&self) -> bool {
        false
    }

    /// Whether a pipeline for `kernel` was made here.
    fn has_pipeline(&self, _kernel: u64) -> bool {
        true
    }

    /// Its limits (`None`: the host's, which nothing checks).
    fn limits(&self) -> Option<&DeviceLimits> {
        self.info().limits.as_ref()
    }

    /// The memory budget, bytes, if one is set.
    fn budget(&self) -> Option<u64> {
        None
    }

    /// A copy of `bytes` bytes in its own memory.
    fn alloc(&self, _bytes: u64) -> Result<Memory> {
        Err(self.no_memory())
    }

    /// Gives a copy back (to a pool, where it keeps one).
    fn release(&self, _memory: Memory) {}

    /// Queues `bytes` into `memory` (see [`flush`](Self::flush)).
    fn upload(&self, _memory: &Memory, _bytes: &[u8]) -> Result<()> {
        Err(self.no_memory())
    }

    /// Zeroes the first `bytes` of `memory`.
    fn clear(&self, _memory: &Memory, _bytes: u64) -> Result<()> {
        Err(self.no_memory())
    }

    /// Copies `memory` into `out`, waiting for it.
    fn download(&self, _memory: &Memory, _out: &mut [u8]) -> Result<()> {
        Err(self.no_memory())
    }

    /// Submits what is queued and waits for it.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Submits what is queued without waiting; returns the launches it
    /// submitted.
    fn kick(&self) -> usize {
        0
    }

    /// Whether every operation takes a lock (wgpu's GL): then nothing is
    /// queued to it from a second thread while it runs.
    fn serialised(&self) -> bool {
        false
    }

    /// Frees the copies its pool keeps.
    fn trim(&self) {}

    /// Its wgpu device and queue, where it is a wgpu GPU (see
    /// [`Runtime::wgpu_device`](crate::Runtime::wgpu_device)).
    fn wgpu(&self) -> Option<(wgpu::Device, wgpu::Queue)> {
        None
    }

    /// Times the host has blocked until this device finished its work.
    fn host_waits(&self) -> u64 {
        0
    }

    /// Sets [`host_waits`](Self::host_waits) back to zero.
    fn reset_host_waits(&self) {}

    /// Pool statistics: (hits, misses, free bytes).
    fn pool_stats(&self) -> (u64, u64, u64) {
        (0, 0, 0)
    }

    /// Sets the pool's hit and miss counters back to zero.
    fn reset_pool_stats(&self) {}

    /// Its bus, timed at two sizes each way.
    fn measure_bus(&self) -> Result<BusSamples> {
        Err(self.no_memory())
    }

    /// The error of a memory operation on a device that has none.
    fn no_memory(&self) -> Error {
        Error::Internal {
            what: self.label(),
            message: "this device has no memory of its own: its arguments are the host copies"
                .to_owned(),
        }
    }
}

/// A bus timed at two transfer sizes each way: (bytes, seconds) host to
/// device, and device to host. The dispatcher fits its link model to them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BusSamples {
    pub(crate) up: [(u64, f64); 2],
    pub(crate) down: [(u64, f64); 2],
}

pub use crate::info::{DeviceInfo, DeviceKind, DeviceLimits};

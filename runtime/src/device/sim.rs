//! A simulated device: memory of its own (host bytes), results computed by
//! the kernel's CPU implementation, and times taken from a cost function
//! on a virtual clock. The buffer table, the dispatcher, the task graph,
//! lineage and recovery run on it for real, so the engine's own tests need
//! no adapter; and it can be lost, run out of memory or turn slow on
//! command.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ids::Backend;
use crate::kernel::{Kernel, RawSlice};

use super::{
    Args, BusSamples, Device, DeviceInfo, DeviceKind, DeviceLimits, Launch, Liveness, Memory,
};

/// What a simulated device is asked to do, for its cost function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimOp<'a> {
    /// Run a kernel: its name, the call's size (the kernel's cost
    /// measure, elements by default) and the bytes of its arguments.
    Kernel {
        /// The kernel's name.
        name: &'a str,
        /// The call's size, in the kernel's cost units.
        size: u64,
        /// The bytes of every argument together.
        bytes: u64,
    },
    /// Copy bytes from the host.
    Upload {
        /// How many.
        bytes: u64,
    },
    /// Copy bytes to the host.
    Download {
        /// How many.
        bytes: u64,
    },
}

type CostFn = dyn Fn(&SimOp<'_>) -> Duration + Send + Sync;

/// A kernel's modelled seconds on a processor of a machine description,
/// given the kernel, the call's params, its arguments' lengths (elements),
/// its size (the kernel's cost measure) and its arguments' bytes.
pub(crate) type KernelTimeFn =
    dyn Fn(&Kernel, &[u8], &[usize], u64, u64) -> Result<f64> + Send + Sync;

/// How a processor of a simulated machine times its kernels, and whether
/// it computes their results at all.
#[derive(Clone)]
pub(crate) struct Modelled {
    pub(crate) time: Arc<KernelTimeFn>,
    pub(crate) compute: bool,
}

impl Modelled {
    /// The call's modelled time.
    pub(crate) fn time(
        &self,
        kernel: &Kernel,
        params: &[u8],
        lens: &[usize],
        bytes: u64,
    ) -> Result<Duration> {
        let size = kernel.cost(params, lens);
        let secs = (self.time)(kernel, params, lens, size, bytes)?;
        Ok(Duration::from_secs_f64(secs.max(0.0)))
    }
}

/// A simulated accelerator, given to [`RuntimeBuilder::simulated`](crate::RuntimeBuilder::simulated)
/// (crate::RuntimeBuilder::simulated). It appears to the runtime as a GPU
/// (`gpu0`, `gpu1`, ... in the order given) that keeps its copies in host
/// memory, computes with the kernel's CPU implementation and reports the
/// time `cost` gives each operation, on a clock of its own.
///
/// A clone is a handle on the same device: keep one to lose it, fill its
/// memory or slow it down while a runtime uses it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pel_runtime::{Runtime, SimDevice, SimOp};
/// let fast = SimDevice::new("fast").cost(|op| match op {
///     SimOp::Kernel { size, .. } => Duration::from_nanos(*size),
///     SimOp::Upload { bytes } | SimOp::Download { bytes } => Duration::from_nanos(*bytes / 10),
/// });
/// let rt = Runtime::builder().simulated(vec![fast.clone()]).persist_model(false).build()?;
/// assert_eq!(rt.gpu_count(), 1);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct SimDevice {
    inner: Arc<SimState>,
}

struct SimState {
    name: String,
    cost: Mutex<Arc<CostFn>>,
    limits: DeviceLimits,
    /// The most bytes it may hold (`None`: no limit).
    memory: Mutex<Option<u64>>,
    used: AtomicU64,
    lost: Liveness,
    /// Every operation takes this many times its cost.
    slowdown_milli: AtomicU64,
    /// Virtual nanoseconds this device has been busy.
    clock_ns: AtomicU64,
    kernels: AtomicU64,
    /// The runtime has given it an index (`gpuN`).
    index: AtomicU64,
    placed: AtomicBool,
    /// A machine description's processor: kernel times from the
    /// description, copies timed by the runtime's timeline.
    modelled: Option<Modelled>,
    /// Its link's figures, for the bus the runtime measures at start.
    link: Option<super::timeline::Link>,
}

impl std::fmt::Debug for SimDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDevice")
            .field("name", &self.inner.name)
            .field("busy", &self.busy())
            .finish()
    }
}

impl SimDevice {
    /// A device that takes no time for anything and has no memory limit,
    /// with the limits of a typical discrete GPU.
    pub fn new(name: impl Into<String>) -> SimDevice {
        SimDevice {
            inner: Arc::new(SimState {
                name: name.into(),
                cost: Mutex::new(Arc::new(|_: &SimOp<'_>| Duration::ZERO)),
                limits: DeviceLimits {
                    max_storage_binding: 2 << 30,
                    max_buffer: 2 << 30,
                    max_workgroups_per_dim: 65_535,
                    max_invocations_per_workgroup: 1024,
                    max_workgroup_size: [1024, 1024, 64],
                    max_uniform_binding: 64 << 10,
                    max_workgroup_memory: 48 << 10,
                    max_storage_buffers: 16,
                },
                memory: Mutex::new(None),
                used: AtomicU64::new(0),
                lost: Liveness::default(),
                slowdown_milli: AtomicU64::new(1000),
                clock_ns: AtomicU64::new(0),
                kernels: AtomicU64::new(0),
                index: AtomicU64::new(0),
                placed: AtomicBool::new(false),
                modelled: None,
                link: None,
            }),
        }
    }

    /// A GPU of a machine description: its kernels timed by `modelled`,
    /// its bus by `link`, `memory` bytes.
    pub(crate) fn modelled(
        name: &str,
        memory: u64,
        modelled: Modelled,
        link: super::timeline::Link,
    ) -> SimDevice {
        let mut state = Arc::into_inner(SimDevice::new(name).inner).expect("just made");
        state.memory = Mutex::new(Some(memory));
        state.modelled = Some(modelled);
        state.link = Some(link);
        SimDevice {
            inner: Arc::new(state),
        }
    }

    /// The time each operation takes.
    pub fn cost(self, cost: impl Fn(&SimOp<'_>) -> Duration + Send + Sync + 'static) -> SimDevice {
        *self
            .inner
            .cost
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(cost);
        self
    }

    /// Its memory, bytes: an allocation past it is [`Error::OutOfMemory`].
    pub fn memory(self, bytes: u64) -> SimDevice {
        self.set_memory(Some(bytes));
        self
    }

    /// Changes its memory from now on (`None`: no limit); copies already
    /// held stay.
    pub fn set_memory(&self, bytes: Option<u64>) {
        *self
            .inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = bytes;
    }

    /// Loses the device: every later operation on it fails with
    /// [`Error::DeviceLost`], and what only it held is rebuilt elsewhere.
    pub fn lose(&self, reason: &str) {
        self.inner.lost.lose(reason);
    }

    /// Every operation from now on takes `factor` times its cost.
    pub fn set_slowdown(&self, factor: f64) {
        let milli = (factor.max(0.0) * 1000.0).round() as u64;
        self.inner.slowdown_milli.store(milli, Ordering::Relaxed);
    }

    /// Virtual time it has been busy so far.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.inner.clock_ns.load(Ordering::Relaxed))
    }

    /// Kernels it has run.
    pub fn kernels_run(&self) -> u64 {
        self.inner.kernels.load(Ordering::Relaxed)
    }

    /// Bytes of copies it holds now.
    pub fn memory_used(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// The device the runtime drives, as GPU `index`.
    pub(crate) fn open(&self, index: usize) -> Result<Box<dyn Device>> {
        if self.inner.placed.swap(true, Ordering::AcqRel)
            && self.inner.index.load(Ordering::Relaxed) != index as u64
        {
            return Err(Error::InvalidInput {
                kernel: "RuntimeBuilder::simulated".to_owned(),
                arg: self.inner.name.clone(),
                message: "this simulated device is already another runtime's GPU (clone handles share one device)".to_owned(),
            });
        }
        self.inner.index.store(index as u64, Ordering::Relaxed);
        let info = DeviceInfo {
            backend: Backend::Gpu(index),
            name: self.inner.name.clone(),
            driver: "simulated".to_owned(),
            api: "sim".to_owned(),
            kind: DeviceKind::Simulated,
            threads: 0,
            limits: Some(self.inner.limits),
            timestamps: true,
            batches: false,
        };
        Ok(Box::new(Sim {
            state: Arc::clone(&self.inner),
            info,
        }))
    }
}

/// A simulated device's copy of a buffer: its bytes, or none at all
/// (`hollow`) on a device that does not compute.
#[derive(Debug)]
pub(crate) struct SimMemory {
    bytes: Mutex<Vec<u8>>,
    size: usize,
}

impl SimMemory {
    pub(crate) fn len(&self) -> usize {
        self.size
    }
}

struct Sim {
    state: Arc<SimState>,
    info: DeviceInfo,
}

impl SimState {
    /// Whether kernels compute their results (and copies hold bytes).
    fn computes(&self) -> bool {
        self.modelled.as_ref().is_none_or(|m| m.compute)
    }
}

impl Sim {
    /// Charges `op` to the virtual clock; its time.
    /// The cost function now.
    fn cost(&self) -> Arc<CostFn> {
        Arc::clone(
            &self
                .state
                .cost
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn charge(&self, op: SimOp<'_>) -> Duration {
        if self.state.modelled.is_some() {
            // A described machine's copies are timed by its links.
            return Duration::ZERO;
        }
        let cost = self.cost();
        self.scaled(cost(&op))
    }

    /// `t` slowed as asked, charged to the device's clock.
    fn scaled(&self, t: Duration) -> Duration {
        let t = t.mul_f64(self.state.slowdown_milli.load(Ordering::Relaxed) as f64 / 1000.0);
        self.state
            .clock_ns
            .fetch_add(t.as_nanos() as u64, Ordering::Relaxed);
        t
    }

    fn memory<'m>(&self, memory: &'m Memory) -> &'m SimMemory {
        match memory {
            Memory::Sim(m) => m,
            Memory::Wgpu(_) => unreachable!(
                "a simulated device holds only its own copies: the table pairs each copy with the device that made it"
            ),
        }
    }
}

impl Device for Sim {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn check_alive(&self) -> Result<()> {
        self.state.lost.check(|| self.label())
    }

    fn lose(&self, reason: &str) {
        self.state.lost.lose(reason);
    }

    fn can_run(&self, kernel: &Kernel) -> Result<()> {
        if kernel.has_cpu() {
            return Ok(());
        }
        Err(Error::NoBackend {
            kernel: kernel.name().to_owned(),
            reason: format!(
                "{} computes with the kernel's CPU implementation, and it has none",
                self.label()
            ),
        })
    }

    fn execute(&self, l: Launch<'_>) -> Result<Option<Duration>> {
        self.check_alive()?;
        let Args::Device(bound) = l.args else {
            return Err(self.wrong_args());
        };
        let (kernel, params) = (l.kernel, l.params);
        let bytes: u64 = bound.iter().map(|(_, b)| *b).sum();
        if let Some(m) = self.state.modelled.as_ref().filter(|m| !m.compute) {
            let lens: Vec<usize> = bound
                .iter()
                .zip(&kernel.reflection().storage)
                .map(|((_, size), binding)| (*size / binding.elem.size() as u64) as usize)
                .collect();
            let t = m.time(kernel, params, &lens, bytes)?;
            self.state.kernels.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(self.scaled(t)));
        }
        // Each copy locked once, even if passed twice (two reads of one
        // buffer): the leases keep every copy to this call.
        let mut unique: Vec<&SimMemory> = Vec::with_capacity(bound.len());
        for (m, _) in bound {
            let m = self.memory(m);
            if !unique.iter().any(|u| std::ptr::eq(*u, m)) {
                unique.push(m);
            }
        }
        let mut guards: Vec<_> = unique
            .iter()
            .map(|m| m.bytes.lock().unwrap_or_else(PoisonError::into_inner))
            .collect();
        let raw: Vec<RawSlice> = bound
            .iter()
            .zip(&kernel.reflection().storage)
            .map(|((m, size), binding)| {
                let m = self.memory(m);
                let i = unique
                    .iter()
                    .position(|u| std::ptr::eq(*u, m))
                    .expect("listed above");
                RawSlice {
                    ptr: guards[i].as_mut_ptr(),
                    len: (*size / binding.elem.size() as u64) as usize,
                    bytes: *size as usize,
                }
            })
            .collect();
        let lens: Vec<usize> = raw.iter().map(|r| r.len).collect();
        let size = kernel.cost(params, &lens);
        // A GPU kernel fails before it writes anything, so the table keeps
        // a failed call's copies valid; a CPU implementation can fail
        // halfway through its outputs. Their bytes are kept to be put back.
        let written: Vec<(usize, Vec<u8>)> = raw
            .iter()
            .zip(&kernel.reflection().storage)
            .filter(|(_, binding)| binding.access.writes())
            .map(|(r, _)| {
                let i = (0..unique.len())
                    .find(|&i| guards[i].as_ptr() == r.ptr.cast_const())
                    .expect("listed above");
                (i, guards[i][..r.bytes].to_vec())
            })
            .collect();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            kernel.run_cpu(&raw, params)
        }));
        drop(raw);
        let outcome = match outcome {
            Ok(r) => r,
            Err(payload) => Err(Error::KernelPanicked {
                kernel: kernel.name().to_owned(),
                message: super::cpu::panic_message(payload.as_ref()),
            }),
        };
        if outcome.is_err() {
            for (i, bytes) in written {
                guards[i][..bytes.len()].copy_from_slice(&bytes);
            }
        }
        guards.clear();
        outcome?;
        self.state.kernels.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.state.modelled {
            return Ok(Some(self.scaled(m.time(kernel, params, &lens, bytes)?)));
        }
        Ok(Some(self.charge(SimOp::Kernel {
            name: kernel.name(),
            size,
            bytes,
        })))
    }

    fn virtual_clock(&self) -> bool {
        true
    }

    fn runs_cpu_code(&self) -> bool {
        true
    }

    fn budget(&self) -> Option<u64> {
        *self
            .state
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn alloc(&self, bytes: u64) -> Result<Memory> {
        self.check_alive()?;
        let used = self.state.used.load(Ordering::Relaxed);
        if let Some(limit) = self.budget() {
            if used + bytes > limit {
                return Err(Error::OutOfMemory {
                    device: self.label(),
                    doing: format!("allocating {}", crate::ids::human_bytes(bytes)),
                    message: format!(
                        "{} in use of the simulated device's {}",
                        crate::ids::human_bytes(used),
                        crate::ids::human_bytes(limit)
                    ),
                });
            }
        }
        self.state.used.fetch_add(bytes, Ordering::Relaxed);
        let held = if self.state.computes() {
            bytes as usize
        } else {
            0
        };
        Ok(Memory::Sim(Arc::new(SimMemory {
            bytes: Mutex::new(vec![0; held]),
            size: bytes as usize,
        })))
    }

    fn release(&self, memory: Memory) {
        let n = self.memory(&memory).len();
        self.state.used.fetch_sub(n as u64, Ordering::Relaxed);
    }

    fn upload(&self, memory: &Memory, bytes: &[u8]) -> Result<()> {
        self.check_alive()?;
        let mut held = self
            .memory(memory)
            .bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A hollow copy (a device that does not compute) keeps no bytes.
        if let Some(dst) = held.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        drop(held);
        self.charge(SimOp::Upload {
            bytes: bytes.len() as u64,
        });
        Ok(())
    }

    fn clear(&self, memory: &Memory, bytes: u64) -> Result<()> {
        self.check_alive()?;
        if let Some(dst) = self
            .memory(memory)
            .bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(..bytes as usize)
        {
            dst.fill(0);
        }
        Ok(())
    }

    fn download(&self, memory: &Memory, out: &mut [u8]) -> Result<()> {
        self.check_alive()?;
        let held = self
            .memory(memory)
            .bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(src) = held.get(..out.len()) {
            out.copy_from_slice(src);
        }
        drop(held);
        self.charge(SimOp::Download {
            bytes: out.len() as u64,
        });
        Ok(())
    }

    fn measure_bus(&self) -> Result<BusSamples> {
        if let Some(link) = self.state.link {
            let at = |bytes: u64| (bytes, link.transfer_s(bytes));
            let (small, large) = (4u64 << 10, 16u64 << 20);
            return Ok(BusSamples {
                up: [at(small), at(large)],
                down: [at(small), at(large)],
            });
        }
        let cost = self.cost();
        let at = |op: SimOp<'_>, bytes: u64| (bytes, cost(&op).as_secs_f64());
        let (small, large) = (4u64 << 10, 16u64 << 20);
        Ok(BusSamples {
            up: [
                at(SimOp::Upload { bytes: small }, small),
                at(SimOp::Upload { bytes: large }, large),
            ],
            down: [
                at(SimOp::Download { bytes: small }, small),
                at(SimOp::Download { bytes: large }, large),
            ],
        })
    }
}

//! The runtime: the one object a user holds. It owns the devices and the
//! buffer table, and runs a kernel call end to end: check the arguments,
//! lease them (shared to read, exclusive to write), choose a backend
//! (`dispatch/`), make every argument valid there (`buffer/`), execute
//! (`device/`) outside the table's lock, record what was written. Calls on
//! different buffers from different threads therefore run at once; calls on
//! the same buffer take turns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::Buffer;
use crate::buffer::{BufferArg, Handle, HostCopy, Table, Validity};
use crate::device::cpu::CpuDevice;
use crate::device::gpu::{self, GpuDevice};
use crate::device::{Backend, DeviceInfo};
use crate::dispatch::{self, Decision, Dispatcher, ModelRow, Moves, Reason, SplitRow};
use crate::error::{Error, Result};
use crate::frames::{self, Frame};
use crate::graph::{Job, Pending, Task, TaskInner, Workers};
use crate::inject::Inject;
use crate::kernel::{Element, Kernel, RawSlice};
use crate::stats::{Counters, Stats};
use crate::trace::{TraceEvent, Tracer};

static NEXT_RUNTIME: AtomicU64 = AtomicU64::new(1);

/// Where a call should run: chosen by pel, or forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Target {
    /// Let the runtime choose.
    #[default]
    Auto,
    /// Run on this backend.
    On(Backend),
    /// Split a splittable kernel's items (see
    /// [`KernelBuilder::splittable`](crate::KernelBuilder::splittable)):
    /// the first `permille`/1000 of them on GPU `gpu`, the rest on the CPU.
    Split {
        /// The GPU's index.
        gpu: usize,
        /// The GPU's share, in thousandths (1 to 999).
        permille: u16,
    },
}

impl From<Backend> for Target {
    fn from(b: Backend) -> Self {
        Target::On(b)
    }
}

/// A checked call: its buffers, params bytes, problem size and launch size.
struct Call<'a> {
    args: Vec<&'a Handle>,
    params: &'a [u8],
    size: u64,
    workgroups: u64,
}

/// What a prepared call runs: host slices, bound GPU buffers, or both.
enum Work {
    Cpu(Vec<RawSlice>),
    Gpu(usize, Vec<(wgpu::Buffer, u64)>),
    Split(SplitWork),
}

/// A call split between GPU `gpu` (items `0..cut`) and the CPU (the rest).
struct SplitWork {
    gpu: usize,
    items: u64,
    cut: u64,
    raw: Vec<RawSlice>,
    bound: Vec<(wgpu::Buffer, u64)>,
}

/// Where a call runs, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Placement {
    pub(crate) backend: Backend,
    pub(crate) reason: Reason,
    /// The GPU's share of a call split with the CPU.
    pub(crate) split: Option<f64>,
}

/// What one kernel call did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunInfo {
    /// Where it ran.
    pub backend: Backend,
    /// Why it ran there.
    pub reason: Reason,
    /// Wall time of the call, transfers of its inputs included.
    pub elapsed: Duration,
    /// Time of the execution alone (what the performance model records).
    pub exec: Duration,
    /// When the call was split: the share of its items that `backend` (a
    /// GPU) computed while the CPU computed the rest.
    pub split: Option<f64>,
}

/// The pel runtime: a rayon pool, every usable GPU, and the buffers.
///
/// Cheap to clone (clones share everything) and usable from many threads.
/// Dropping the last clone waits for the tasks submitted to it (see
/// [`submit`](Self::submit)) and then saves the performance model.
///
/// # Examples
///
/// ```
/// let rt = pel_runtime::Runtime::new()?;
/// let x = rt.buffer(&[1.0f32, 2.0, 3.0]);
/// assert_eq!(rt.read(&x)?, vec![1.0, 2.0, 3.0]);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
    /// Shared by the user's handles (absent in a worker's): when the last
    /// one drops, submitted work finishes first, so the runtime is torn
    /// down on the user's thread rather than on a worker's.
    user: Option<Arc<()>>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // On one of its own workers, or inside one of its kernels, the
        // submitted work cannot be waited for: it may be queued behind this
        // very thread. The runtime is then torn down when the last task
        // lets go of it.
        let id = self.shared.id;
        if self
            .user
            .as_ref()
            .is_some_and(|u| Arc::strong_count(u) == 1)
            && !frames::is_worker_of(id)
            && !frames::inside(id)
        {
            self.shared.pending.idle();
        }
    }
}

/// Handles of tasks that never ran (failed before placement), kept until
/// the table's lock is given back, since dropping a handle takes that lock.
#[derive(Default)]
struct Graveyard {
    handles: Vec<Arc<Handle>>,
    /// The tasks they came from: counted as pending for `wait_all` until
    /// their handles are gone.
    tasks: usize,
}

pub(crate) struct Shared {
    id: u64,
    cpu: CpuDevice,
    gpus: Vec<GpuDevice>,
    table: Mutex<Table>,
    /// Signalled whenever a call gives back its buffer leases.
    leases: Condvar,
    counters: Counters,
    dispatcher: Mutex<Dispatcher>,
    explain: bool,
    tracer: Tracer,
    /// Where the trace goes when the runtime drops (`PEL_TRACE`, builder).
    trace_file: Option<std::path::PathBuf>,
    /// One worker thread per device for submitted tasks.
    workers: Workers,
    /// Submitted tasks not finished yet.
    pub(crate) pending: Arc<Pending>,
    /// Faults to inject (`PEL_INJECT`, [`Runtime::set_faults`]).
    inject: std::sync::RwLock<Inject>,
    /// GPU kernels started, for `gpu-lost@N`.
    gpu_kernels: AtomicU64,
    /// Whether any fault is injected (read on every call, so no lock).
    faults_on: std::sync::atomic::AtomicBool,
    /// Buffer handles of tasks that finished without running, dropped as
    /// soon as the table's lock is free (a drop may free the buffer).
    graveyard: Mutex<Graveyard>,
    /// The graveyard has handles in it.
    buried: std::sync::atomic::AtomicBool,
    /// Kernels whose CPU implementation has run without failing.
    proven: std::sync::RwLock<std::collections::HashSet<u64>>,
}

thread_local! {
    /// GPUs the call this thread is recovering must not be placed on again.
    static AVOID: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.dispatcher
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .save();
        if let Some(path) = &self.trace_file {
            if let Err(e) = self.tracer.write(path) {
                eprintln!(
                    "pel: warning: the trace was not written to {}: {e}",
                    path.display()
                );
            }
        }
    }
}

impl Shared {
    pub(crate) fn release_buffer(&self, id: u64) {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id, &self.gpus);
    }
}

/// Options for [`Runtime`]; see [`Runtime::builder`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until .build()"]
pub struct RuntimeBuilder {
    gpu: Option<bool>,
    cpu_threads: Option<usize>,
    calibration_samples: Option<usize>,
    model_file: Option<std::path::PathBuf>,
    persist: Option<bool>,
    backend: Option<Option<Backend>>,
    trace: Option<std::path::PathBuf>,
    inject: Option<Inject>,
    gpu_budget: Option<Option<u64>>,
}

impl RuntimeBuilder {
    /// Whether to open GPUs at all (default: yes, unless `PEL_GPU=off`).
    pub fn gpu(mut self, enabled: bool) -> Self {
        self.gpu = Some(enabled);
        self
    }

    /// Threads in the CPU pool (default: `PEL_CPU_THREADS`, else one per core).
    pub fn cpu_threads(mut self, threads: usize) -> Self {
        self.cpu_threads = Some(threads.max(1));
        self
    }

    /// Samples each backend needs near a size before the model is trusted
    /// there (default: `PEL_CALIBRATION_SAMPLES`, else 5).
    pub fn calibration_samples(mut self, n: usize) -> Self {
        self.calibration_samples = Some(n.max(1));
        self
    }

    /// Loads the performance model from this file (and saves it there),
    /// instead of the per-machine file under `PEL_MODEL_DIR` or the cache
    /// directory: an application can ship its calibration.
    pub fn model_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.model_file = Some(path.into());
        self
    }

    /// Whether to load and save the performance model at all (default yes).
    pub fn persist_model(mut self, persist: bool) -> Self {
        self.persist = Some(persist);
        self
    }

    /// Forces every call with [`Target::Auto`] onto `backend` (`None`:
    /// choose). Default: `PEL_BACKEND=cpu|gpu|gpuN|auto`.
    pub fn force_backend(mut self, backend: Option<Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Records a trace of every kernel and transfer and writes it to `path`
    /// (Chrome trace-event JSON) when the runtime drops. Default:
    /// `PEL_TRACE=FILE`.
    pub fn trace(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.trace = Some(path.into());
        self
    }

    /// Faults to inject, for testing recovery (default: `PEL_INJECT`; see
    /// [`Inject`]).
    pub fn inject(mut self, faults: Inject) -> Self {
        self.inject = Some(faults);
        self
    }

    /// A memory budget per GPU, bytes (`None`: the device's own memory).
    /// Default: `PEL_GPU_MEMORY_BUDGET`, e.g. `64MiB`, `1GiB` or bytes.
    pub fn gpu_memory_budget(mut self, bytes: Option<u64>) -> Self {
        self.gpu_budget = Some(bytes);
        self
    }

    /// Starts the runtime. Finding no GPU is not an error: everything then
    /// runs on the CPU. A `PEL_INJECT` or `PEL_GPU_MEMORY_BUDGET` that pel
    /// cannot read is, and so is a fault injected on a GPU the runtime did
    /// not find.
    pub fn build(self) -> Result<Runtime> {
        let inject = match self.inject {
            Some(i) => i,
            None => Inject::from_env()?,
        };
        let budget = match self.gpu_budget {
            Some(b) => b,
            None => budget_from_env()?,
        };
        let gpu_enabled = self.gpu.unwrap_or_else(|| {
            !matches!(
                std::env::var("PEL_GPU").as_deref(),
                Ok("off" | "0" | "false" | "no")
            )
        });
        let threads = self.cpu_threads.or_else(|| {
            std::env::var("PEL_CPU_THREADS")
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|&n: &usize| n > 0)
        });
        let cpu = CpuDevice::new(threads);
        let gpus = if gpu_enabled {
            // Respects WGPU_BACKEND (e.g. `vulkan`, `gl`) and wgpu's other
            // environment variables.
            let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
            let backends = desc.backends;
            let instance = wgpu::Instance::new(desc);
            gpu::open_all(&instance, backends, budget, inject.gpu_oom)
        } else {
            Vec::new()
        };
        // A fault on a GPU this machine lacks would never fire: a test
        // relying on it would pass without testing anything.
        inject.check_devices(gpus.len())?;
        let n = gpus.len();

        let mut keys = vec![format!(
            "cpu {} ({} threads)",
            cpu.info().name,
            cpu.info().threads
        )];
        keys.extend(gpus.iter().map(|g| {
            let i = g.info();
            format!("{} {} [{}] ({})", i.api, i.name, i.driver, i.kind)
        }));
        let forced = match self.backend {
            Some(b) => b,
            None => parse_backend_env(),
        };
        let min_samples = self.calibration_samples.unwrap_or_else(|| {
            std::env::var("PEL_CALIBRATION_SAMPLES")
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|&n: &usize| n > 0)
                .unwrap_or(5)
        });
        let mut dispatcher = Dispatcher::new(keys, min_samples, forced);
        let persist = self.persist.unwrap_or(true);
        let path = self
            .model_file
            .or_else(|| dispatch::persist::default_path(&dispatcher.keys));
        if let Some(path) = path.filter(|_| persist) {
            dispatcher.attach(path, true);
        }
        // A bus never measured is measured now, once per machine.
        for (g, gpu) in gpus.iter().enumerate() {
            if dispatcher.bus[g].is_none() {
                match gpu.measure_bus() {
                    Ok(t) => {
                        dispatcher.bus[g] = Some(t);
                        dispatcher.reset_dirty(true);
                    }
                    Err(e) => eprintln!("pel: warning: could not measure the bus of gpu{g}: {e}"),
                }
            }
        }
        dispatcher.save();
        let trace_file = self.trace.or_else(|| {
            std::env::var_os("PEL_TRACE")
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from)
        });
        let mut lanes = vec!["cpu".to_owned()];
        lanes.extend(
            gpus.iter()
                .map(|g| format!("{}: {} ({})", g.info().backend, g.info().name, g.info().api)),
        );
        lanes.push("transfers".to_owned());
        let tracer = Tracer::new(lanes, trace_file.is_some());
        let faults_on = inject.any();
        let id = NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed);
        let cpu_threads = cpu.info().threads;
        Ok(Runtime {
            shared: Arc::new(Shared {
                id,
                cpu,
                gpus,
                table: Mutex::new(Table::new(n)),
                leases: Condvar::new(),
                counters: Counters::default(),
                dispatcher: Mutex::new(dispatcher),
                explain: std::env::var("PEL_EXPLAIN").is_ok_and(|v| v != "0" && !v.is_empty()),
                tracer,
                trace_file,
                workers: Workers::new(id, cpu_threads),
                pending: Arc::default(),
                inject: std::sync::RwLock::new(inject),
                gpu_kernels: AtomicU64::new(0),
                faults_on: std::sync::atomic::AtomicBool::new(faults_on),
                graveyard: Mutex::new(Graveyard::default()),
                buried: std::sync::atomic::AtomicBool::new(false),
                proven: Default::default(),
            }),
            user: Some(Arc::new(())),
        })
    }
}

impl Runtime {
    /// Starts a runtime with the defaults (see [`RuntimeBuilder`]).
    pub fn new() -> Result<Runtime> {
        Self::builder().build()
    }

    /// A worker's handle on the runtime.
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Runtime {
        Runtime { shared, user: None }
    }

    /// Options for a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// This runtime's identity (buffers remember it).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Every backend, the CPU first, then GPUs best first.
    pub fn backends(&self) -> Vec<Backend> {
        std::iter::once(Backend::Cpu)
            .chain(self.gpu_backends())
            .collect()
    }

    /// The GPU backends, in [`backends`](Self::backends) order (lost ones
    /// left out).
    pub fn gpu_backends(&self) -> Vec<Backend> {
        (0..self.shared.gpus.len())
            .filter(|&g| self.shared.gpus[g].check_alive().is_ok())
            .map(Backend::Gpu)
            .collect()
    }

    /// The faults this runtime injects (`PEL_INJECT`; none by default).
    pub fn faults(&self) -> Inject {
        self.faults_now().clone()
    }

    /// Changes the faults injected from now on: a test can let the model
    /// calibrate, then make a device slow, or lose a GPU after N more GPU
    /// kernels. `gpu-oom` applies only from the runtime's start (set it
    /// with [`RuntimeBuilder::inject`]). A fault on a GPU this runtime does
    /// not have is refused ([`Error::BadInjection`]) and nothing changes.
    pub fn set_faults(&self, faults: Inject) -> Result<()> {
        faults.check_devices(self.shared.gpus.len())?;
        self.shared.gpu_kernels.store(0, Ordering::Relaxed);
        self.shared.faults_on.store(faults.any(), Ordering::Relaxed);
        *self
            .shared
            .inject
            .write()
            .unwrap_or_else(PoisonError::into_inner) = faults;
        Ok(())
    }

    fn faults_now(&self) -> std::sync::RwLockReadGuard<'_, Inject> {
        self.shared
            .inject
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of GPUs opened.
    pub fn gpu_count(&self) -> usize {
        self.shared.gpus.len()
    }

    /// A description of every backend, in [`backends`](Self::backends) order.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        std::iter::once(self.shared.cpu.info().clone())
            .chain(self.shared.gpus.iter().map(|g| g.info().clone()))
            .collect()
    }

    /// The description of one backend.
    pub fn device(&self, backend: Backend) -> Result<DeviceInfo> {
        match backend {
            Backend::Cpu => Ok(self.shared.cpu.info().clone()),
            Backend::Gpu(i) => self
                .shared
                .gpus
                .get(i)
                .map(|g| g.info().clone())
                .ok_or_else(|| self.no_such(backend)),
        }
    }

    fn no_such(&self, backend: Backend) -> Error {
        Error::NoSuchBackend {
            backend,
            available: self
                .backends()
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.shared
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The table, once `reads` may be read and `writes` written: with
    /// `settle`, after the submitted tasks that come first (the producer of
    /// each, and the readers of what is written); with `lease`, holding the
    /// call's leases (shared on `reads`, exclusive on `writes`), otherwise
    /// once no running call conflicts. A wait this thread could only make
    /// for itself (its own kernel holds the lease) is refused.
    fn table_ready(
        &self,
        what: What<'_>,
        reads: &[u64],
        writes: &[u64],
        settle: bool,
        lease: bool,
    ) -> Result<MutexGuard<'_, Table>> {
        let mut table = self.table();
        loop {
            if settle {
                let first = table.unsettled(reads, writes);
                if !first.is_empty() {
                    drop(table);
                    for t in &first {
                        self.wait_task(t, &what.to_string())?;
                    }
                    table = self.table();
                    continue;
                }
            }
            let free = if lease {
                table.try_lease(reads, writes)
            } else {
                reads.iter().all(|id| table.readable(*id))
                    && writes.iter().all(|id| table.writable(*id))
            };
            if free {
                return Ok(table);
            }
            if let Some((frame, id)) = frames::conflict(self.shared.id, reads, writes) {
                return Err(own_argument(&what.to_string(), &frame, id));
            }
            table.waiters += 1;
            table = self
                .shared
                .leases
                .wait(table)
                .unwrap_or_else(PoisonError::into_inner);
            table.waiters -= 1;
        }
    }

    /// Waits for task `t` before `what` goes on. From inside a kernel or a
    /// task of this runtime, the wait first makes sure it is not waiting
    /// for itself, then runs the queued work it needs on this thread rather
    /// than block: the worker that would run it may be this one.
    pub(crate) fn wait_task(&self, t: &Arc<TaskInner>, what: &str) -> Result<()> {
        let id = self.shared.id;
        if !frames::inside(id) && !frames::is_worker_of(id) {
            t.wait_for(None);
            return Ok(());
        }
        let running = frames::tasks(id);
        while !t.is_finished() {
            let needed = t.unfinished_closure();
            for n in &needed {
                if running.contains(&n.id) {
                    return Err(Error::WouldDeadlock {
                        what: what.to_owned(),
                        message: format!(
                            "it waits for task #{} (`{}`), which cannot finish before the task running this wait (#{}) does",
                            t.id,
                            t.kernel.name(),
                            n.id
                        ),
                    });
                }
                if let Some((frame, buffer)) = frames::conflict(id, &n.reads, &n.writes) {
                    return Err(Error::WouldDeadlock {
                        what: what.to_owned(),
                        message: format!(
                            "it waits for task #{} (`{}`), which needs buffer #{buffer} that `{}`, running this wait, holds until it returns",
                            n.id,
                            n.kernel.name(),
                            frame.kernel
                        ),
                    });
                }
            }
            let mut helped = false;
            for n in &needed {
                if let Some(placement) = n.placement() {
                    if !n.is_claimed() && n.claim() {
                        self.run_job(Job {
                            task: Arc::clone(n),
                            placement,
                        });
                        self.shared.pending.left_worker();
                        helped = true;
                    }
                }
            }
            if !helped {
                // What it needs runs on other threads, or is not placed
                // yet: look again soon, in case it lands in a queue only
                // this thread would serve.
                t.wait_for(Some(Duration::from_millis(2)));
            }
        }
        Ok(())
    }

    fn new_buffer<T: Element>(&self, len: usize, data: Option<HostCopy>) -> Buffer<T> {
        crate::kernel::assert_element_layout::<T>();
        let bytes = len as u64 * std::mem::size_of::<T>() as u64;
        let id = self.table().insert(bytes, len, data);
        Buffer::from_handle(Arc::new(Handle {
            id,
            runtime: self.shared.id,
            len,
            elem: T::TYPE,
            elem_size: std::mem::size_of::<T>(),
            bytes,
            owner: Arc::downgrade(&self.shared),
        }))
    }

    /// A buffer holding a copy of `data`, valid on the host. Nothing moves to
    /// a GPU until a kernel there needs it.
    pub fn buffer<T: Element>(&self, data: &[T]) -> Buffer<T> {
        self.new_buffer(
            data.len(),
            Some(HostCopy::from_bytes(bytemuck::cast_slice(data))),
        )
    }

    /// A buffer of `len` zeros. No copy exists until a device needs one, and
    /// then it is zeroed there: a GPU output moves no bytes over the bus.
    pub fn zeros<T: Element>(&self, len: usize) -> Buffer<T> {
        self.new_buffer(len, None)
    }

    fn check_owner<T: Element>(&self, what: &str, buf: &Buffer<T>) -> Result<()> {
        let h = buf.handle();
        if h.runtime != self.shared.id {
            return Err(Error::ForeignBuffer {
                kernel: what.to_owned(),
                index: 0,
                owner: h.runtime,
                runtime: self.shared.id,
            });
        }
        Ok(())
    }

    /// The buffer's contents, brought to the host if the valid copy is on a
    /// GPU (the host copy then stays valid too). Each call allocates the
    /// `Vec` it returns; [`read_into`](Self::read_into) and
    /// [`read_to_vec`](Self::read_to_vec) reuse the caller's memory.
    pub fn read<T: Element>(&self, buf: &Buffer<T>) -> Result<Vec<T>> {
        self.host_contents("read", buf, |bytes| bytemuck::pod_collect_to_vec(bytes))
    }

    /// Copies the buffer's contents into `out`, which must have the buffer's
    /// length (else [`Error::InvalidInput`]): the same as
    /// [`read`](Self::read) without an allocation, so a loop that reads a
    /// large result every iteration pays no page faults for fresh memory.
    pub fn read_into<T: Element>(&self, buf: &Buffer<T>, out: &mut [T]) -> Result<()> {
        if out.len() != buf.len() {
            return Err(Error::InvalidInput {
                kernel: "read_into".to_owned(),
                arg: "out".to_owned(),
                message: format!(
                    "{} elements of room for a buffer of {}",
                    out.len(),
                    buf.len()
                ),
            });
        }
        self.host_contents("read_into", buf, |bytes| {
            bytemuck::cast_slice_mut::<T, u8>(out).copy_from_slice(bytes)
        })
    }

    /// Replaces `out`'s contents with the buffer's, reusing its capacity.
    pub fn read_to_vec<T: Element>(&self, buf: &Buffer<T>, out: &mut Vec<T>) -> Result<()> {
        out.resize(buf.len(), T::zeroed());
        self.read_into(buf, out)
    }

    /// Brings the buffer's valid copy to the host (waiting for its writer
    /// and failing with its failure) and hands its bytes to `take`.
    fn host_contents<T: Element, R>(
        &self,
        what: &str,
        buf: &Buffer<T>,
        take: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.check_owner(what, buf)?;
        let id = buf.handle().id;
        let mut table = self.table_ready(What::Op(what), &[id], &[], true, false)?;
        if let Some(e) = self.failed_writer(&table, id) {
            return Err(e);
        }
        let t = Instant::now();
        let before = self.shared.counters.download_count();
        let writer = self.ensure_host(&mut table, id)?;
        if self.shared.counters.download_count() != before {
            self.trace_transfer("to host", buf.size_bytes(), t);
        }
        let data = take(table.host_bytes(id));
        drop(table);
        if let Some(k) = writer {
            self.dispatcher().note_readback(k);
        }
        Ok(data)
    }

    /// Replaces the buffer's contents from the host; GPU copies become stale.
    pub fn write<T: Element>(&self, buf: &Buffer<T>, data: &[T]) -> Result<()> {
        self.check_owner("write", buf)?;
        if data.len() != buf.len() {
            return Err(Error::InvalidInput {
                kernel: "write".to_owned(),
                arg: "data".to_owned(),
                message: format!(
                    "{} elements given for a buffer of {}",
                    data.len(),
                    buf.len()
                ),
            });
        }
        let id = buf.handle().id;
        let mut table = self.table_ready(What::Op("write"), &[], &[id], true, false)?;
        table.write_host(id, bytemuck::cast_slice(data), &self.shared.gpus);
        self.unlock(table);
        Ok(())
    }

    /// Where the buffer's current contents live.
    pub fn validity<T: Element>(&self, buf: &Buffer<T>) -> Result<Validity> {
        self.check_owner("validity", buf)?;
        Ok(self
            .table()
            .validity(buf.handle().id)
            .expect("a live handle keeps its table entry"))
    }

    fn trace_transfer(&self, what: &str, bytes: u64, began: Instant) {
        if self.shared.tracer.on() {
            let name = format!("{what} ({})", crate::device::human_bytes(bytes));
            let lane = self.shared.tracer.transfer_lane();
            self.shared.tracer.span(name, lane, began);
        }
    }

    /// Starts recording a trace of every kernel and transfer.
    pub fn enable_trace(&self) {
        self.shared.tracer.enable();
    }

    /// The trace recorded so far (empty unless tracing is on).
    pub fn trace_events(&self) -> Vec<TraceEvent> {
        self.shared.tracer.events()
    }

    /// Writes the trace recorded so far to `path` as Chrome trace-event
    /// JSON (open it in ui.perfetto.dev): one lane per device, named, plus
    /// a lane for transfers.
    pub fn write_trace(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        self.shared.tracer.write(path.as_ref())
    }

    /// Counters of transfers and launches so far.
    pub fn stats(&self) -> Stats {
        let mut s = self.shared.counters.snapshot();
        for g in &self.shared.gpus {
            let (hits, misses, free) = g.pool_stats();
            s.pool_hits += hits;
            s.pool_misses += misses;
            s.pool_free_bytes += free;
        }
        s.live_buffers = self.table().live();
        s.calibration_runs = self.dispatcher().calibration_runs;
        s
    }

    /// Sets every counter of [`stats`](Self::stats) back to zero: transfers,
    /// launches, recoveries and each GPU's pool hits and misses. Three
    /// fields are not counts of events since a reset and keep their values:
    /// `pool_free_bytes` and `live_buffers` say what is held now, and
    /// `calibration_runs` belongs to the performance model, which counts
    /// them since the runtime started.
    pub fn reset_stats(&self) {
        self.shared.counters.reset();
        for g in &self.shared.gpus {
            g.reset_pool_stats();
        }
    }

    /// Runs `kernel` where the runtime thinks best.
    ///
    /// `args` are the storage buffers in the shader's binding order;
    /// `params` fills its uniform block (`&()` when it has none).
    pub fn run<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<RunInfo> {
        self.execute(Target::Auto, kernel, args, params)
    }

    /// Runs `kernel` on `backend`.
    pub fn run_on<P: bytemuck::Pod>(
        &self,
        backend: Backend,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<RunInfo> {
        self.execute(Target::On(backend), kernel, args, params)
    }

    /// Runs `kernel` at `target`: [`Target::Auto`] or a forced backend.
    ///
    /// The call first waits for submitted tasks it depends on (the producer
    /// of each buffer it uses, and the readers of each buffer it writes).
    pub fn execute<P: bytemuck::Pod>(
        &self,
        target: Target,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<RunInfo> {
        let call = self.call(kernel, args, params)?;
        self.run_call(kernel, &call, target, None)
    }

    /// Submits `kernel` for automatic placement and returns at once.
    ///
    /// The task runs after every task submitted before it that it depends
    /// on: what it reads waits for that buffer's last writer, and what it
    /// writes waits for the readers of the version it replaces. Which
    /// arguments are read and which written comes from the shader's
    /// bindings (`read` or `read_write`). Independent tasks run at once on
    /// different devices. Bad arguments are refused here, as by
    /// [`run`](Self::run); a failure while running is the task's outcome,
    /// and tasks that read what it should have written fail with
    /// [`Error::DependencyFailed`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use pel_runtime::{Kernel, Read, ReadWrite, Runtime};
    /// let rt = Runtime::builder().gpu(false).persist_model(false).build()?;
    /// let double = Kernel::builder("double", r#"
    ///     @group(0) @binding(0) var<storage, read> x: array<f32>;
    ///     @group(0) @binding(1) var<storage, read_write> y: array<f32>;
    ///     @compute @workgroup_size(64)
    ///     fn main(@builtin(global_invocation_id) id: vec3<u32>,
    ///             @builtin(num_workgroups) groups: vec3<u32>) {
    ///         let i = pel_index(id, groups); // right past 65,535 workgroups
    ///         if i < arrayLength(&y) { y[i] = 2.0 * x[i]; }
    ///     }"#)
    ///     .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _: &()| {
    ///         let (x, y) = args.split();
    ///         for (y, x) in y.iter_mut().zip(x) { *y = 2.0 * x; }
    ///     })
    ///     .build()?;
    /// let (a, b, c) = (rt.buffer(&[1.0f32, 2.0]), rt.zeros::<f32>(2), rt.zeros::<f32>(2));
    /// rt.submit(&double, &[&a, &b], &())?;     // b = 2a
    /// let last = rt.submit(&double, &[&b, &c], &())?; // waits for b: c = 4a
    /// last.wait()?;
    /// assert_eq!(rt.read(&c)?, vec![4.0, 8.0]);
    /// # Ok::<(), pel_runtime::Error>(())
    /// ```
    pub fn submit<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<Task> {
        self.submit_to(Target::Auto, kernel, args, params)
    }

    /// [`submit`](Self::submit) with a placement: automatic or forced.
    pub fn submit_to<P: bytemuck::Pod>(
        &self,
        target: Target,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<Task> {
        let call = self.call(kernel, args, params)?;
        match target {
            Target::On(b) => {
                self.device(b)?;
            }
            Target::Split { gpu, .. } => {
                self.device(Backend::Gpu(gpu))?;
            }
            Target::Auto => {}
        }
        let handles = args.iter().map(|a| Arc::clone(a.as_arg().handle)).collect();
        let task = Arc::new(TaskInner::new(
            kernel,
            handles,
            call.params,
            call.size,
            call.workgroups,
            target,
            access_sets(kernel, &call.args),
        ));
        let (read_ids, write_ids) = (&task.reads, &task.writes);

        let mut table = self.table();
        // Every argument is read (a written binding is read_write), so the
        // producer of each is a data dependency; the readers of what this
        // task overwrites only have to go first.
        let mut deps: Vec<(Arc<TaskInner>, bool)> = Vec::new();
        let mut depend =
            |t: &Arc<TaskInner>, data: bool| match deps.iter_mut().find(|(d, _)| Arc::ptr_eq(d, t))
            {
                Some(d) => d.1 |= data,
                None => deps.push((Arc::clone(t), data)),
            };
        for id in read_ids.iter().chain(write_ids) {
            if let Some(p) = table.producer(*id) {
                depend(p, true);
            }
        }
        for id in write_ids {
            for c in table.consumers(*id) {
                depend(c, false);
            }
        }
        for id in write_ids {
            table.set_producer(*id, Some(Arc::clone(&task)));
        }
        for id in read_ids {
            table.add_consumer(*id, Arc::clone(&task));
        }
        self.shared.pending.add();
        let (mut waiting, mut failed) = (0, None);
        let unfinished: Vec<Arc<TaskInner>> = deps
            .iter()
            .filter(|(d, _)| !d.is_finished())
            .map(|(d, _)| Arc::clone(d))
            .collect();
        task.set_deps(&unfinished);
        for (dep, data) in deps {
            let mut s = dep.state();
            match &s.outcome {
                None => {
                    s.dependents.push((Arc::clone(&task), data));
                    waiting += 1;
                }
                Some(Err(e)) if data && failed.is_none() => {
                    failed = Some(dep.failure_for(kernel.name(), e));
                }
                Some(_) => {}
            }
        }
        {
            let mut s = task.state();
            s.waiting_on = waiting;
            s.failed = failed;
            s.runtime = Some(Arc::clone(&self.shared));
        }
        if waiting == 0 {
            self.settle(&mut table, vec![Arc::clone(&task)]);
        }
        self.unlock(table);
        Ok(Task { inner: task })
    }

    /// Blocks until every submitted task has finished and has let go of its
    /// buffers (so a buffer the caller has dropped is freed by then).
    /// Returns the first failure among the tasks that finished since the
    /// last call, if any (each task's own outcome stays with its [`Task`]).
    ///
    /// From inside a kernel or a task of this runtime it is
    /// [`Error::WouldDeadlock`]: the work it would wait for includes the
    /// caller's own. Wait for the [`Task`]s needed instead.
    pub fn wait_all(&self) -> Result<()> {
        let id = self.shared.id;
        if frames::inside(id) || frames::is_worker_of(id) {
            return Err(Error::WouldDeadlock {
                what: "wait_all".to_owned(),
                message: "called from inside a kernel or a task, it would wait for the task or call running it; wait for the tasks it needs with Task::wait".to_owned(),
            });
        }
        self.shared.pending.wait()
    }

    /// Runs a submitted task that its device's worker has taken.
    pub(crate) fn run_job(&self, job: Job) {
        let task = &job.task;
        let handles = task.args();
        let call = Call {
            args: handles.iter().map(|a| &**a).collect(),
            params: &task.params,
            size: task.size,
            workgroups: task.workgroups,
        };
        // The outcome goes to the task (and its dependents) inside.
        let _ = self.run_call(
            &task.kernel,
            &call,
            task.target,
            Some((task, job.placement)),
        );
        // No lock is held here: the buffers may be freed now.
        drop(call);
        drop(handles);
        drop(task.take_args());
    }

    /// Tasks whose dependencies have all finished: each is placed and sent
    /// to its device's worker, or fails for a failed dependency (and so on
    /// down the graph).
    fn settle(&self, table: &mut Table, mut ready: Vec<Arc<TaskInner>>) {
        while let Some(t) = ready.pop() {
            let failed = t.state().failed.take();
            let outcome = match failed {
                Some(e) => Err(e),
                None => match self.place(table, &t) {
                    Ok(()) => continue,
                    Err(e) => Err(e),
                },
            };
            let outcome_for_count = outcome.clone();
            ready.extend(t.complete(outcome).unwrap_or_default());
            // Its buffers are let go once the table's lock is given back,
            // and only then does `wait_all` stop counting it.
            {
                let mut g = self
                    .shared
                    .graveyard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                g.handles.extend(t.take_args());
                g.tasks += 1;
            }
            self.shared.buried.store(true, Ordering::Release);
            self.shared.pending.finish(&outcome_for_count);
        }
    }

    /// Places a ready task, charges its device's queue, starts its uploads
    /// if that device is busy, and hands it to the device's worker.
    fn place(&self, table: &mut Table, t: &Arc<TaskInner>) -> Result<()> {
        let handles = t.args();
        let args: Vec<&Handle> = handles.iter().map(|a| &**a).collect();
        let d = self.decide(
            table,
            t.target,
            &t.kernel,
            &args,
            &t.params,
            t.size,
            t.workgroups,
            true,
        )?;
        let busy = {
            let mut disp = self.dispatcher();
            disp.enqueue(t.kernel.id(), d.chosen, t.size);
            disp.busy(d.chosen)
        };
        if let (Backend::Gpu(g), true) = (d.chosen, busy) {
            self.prefetch(table, &args, g);
        }
        // A split call runs its CPU part on the CPU's worker, which starts
        // the GPU part beside it.
        let worker = match d.split {
            Some(_) => 0,
            None => dispatch::device_index(d.chosen),
        };
        let placement = Placement {
            backend: d.chosen,
            reason: d.reason,
            split: d.split,
        };
        t.set_placement(placement);
        self.shared.workers.send(
            worker,
            Job {
                task: Arc::clone(t),
                placement,
            },
        );
        Ok(())
    }

    /// Uploads a placed task's arguments to GPU `g` while the device still
    /// runs earlier work, so the task finds them there. Buffers a running
    /// call writes are left alone; a GL device, which serialises every
    /// operation, is not prefetched to.
    fn prefetch(&self, table: &mut Table, args: &[&Handle], g: usize) {
        let gpu = &self.shared.gpus[g];
        if gpu.serialised() {
            return;
        }
        let t = Instant::now();
        let uploaded = self.shared.counters.upload_bytes();
        let mut queued = false;
        for h in args {
            if !table.readable(h.id) {
                continue;
            }
            if let Ok((_, true)) =
                table.ensure_gpu(h.id, g, &self.shared.gpus, &self.shared.counters)
            {
                queued = true;
                self.shared.counters.prefetched();
            }
        }
        if queued {
            gpu.kick();
            let bytes = self.shared.counters.upload_bytes() - uploaded;
            if bytes > 0 {
                self.trace_transfer(&format!("prefetch to gpu{g}"), bytes, t);
            }
        }
    }

    /// Gives the table back and wakes whoever waits for leases or tasks.
    fn unlock(&self, table: MutexGuard<'_, Table>) {
        // A wake-up is a system call: only when someone waits.
        let waiting = table.waiters > 0;
        drop(table);
        if self.shared.buried.swap(false, Ordering::Acquire) {
            let dead = std::mem::take(
                &mut *self
                    .shared
                    .graveyard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            drop(dead.handles);
            for _ in 0..dead.tasks {
                self.shared.pending.never_ran();
            }
        }
        if waiting {
            self.shared.leases.notify_all();
        }
    }

    /// The failure of a submitted task that produced one of these buffers,
    /// as the error of `what`, which needed them.
    fn failed_input(&self, table: &Table, what: &str, ids: &[u64]) -> Option<Error> {
        ids.iter().find_map(|id| {
            let p = table.producer(*id)?;
            match p.state().outcome.as_ref()? {
                Err(e) => Some(p.failure_for(what, e)),
                Ok(_) => None,
            }
        })
    }

    /// The failure of the submitted task that should have written buffer
    /// `id`, as the error of a host access to it.
    fn failed_writer(&self, table: &Table, id: u64) -> Option<Error> {
        let p = table.producer(id)?;
        match p.state().outcome.as_ref()? {
            Err(e) => Some(p.writer_failure(id, e)),
            Ok(_) => None,
        }
    }

    /// Runs a checked call: a synchronous one (`task` None), which first
    /// waits for the submitted tasks it depends on, or a placed task.
    ///
    /// A panic inside pel while the call runs (a broken invariant: the
    /// kernel's own panics are caught where it runs) gives the leases back
    /// and becomes [`Error::Internal`] for this call, never a hang.
    fn run_call(
        &self,
        kernel: &Kernel,
        call: &Call<'_>,
        target: Target,
        task: Option<(&Arc<TaskInner>, Placement)>,
    ) -> Result<RunInfo> {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_call_inner(kernel, call, target, task)
        }));
        outcome.unwrap_or_else(|payload| {
            let e = Error::Internal {
                what: format!("kernel `{}`", kernel.name()),
                message: crate::device::cpu::panic_message(payload.as_ref()),
            };
            if let Some((t, _)) = task {
                let mut table = self.table();
                if let Some(ready) = t.complete(Err(e.clone())) {
                    self.shared.pending.finish(&Err(e.clone()));
                    self.settle(&mut table, ready);
                }
                self.unlock(table);
            }
            Err(e)
        })
    }

    /// [`run_call`](Self::run_call)'s body.
    ///
    /// When the GPU it runs on is lost, or runs out of memory even after
    /// evicting other buffers, the call runs again elsewhere (reason
    /// [`Reason::Recovered`]): after a loss, buffers whose only valid copy
    /// was on that device are first rebuilt from their lineage.
    fn run_call_inner(
        &self,
        kernel: &Kernel,
        call: &Call<'_>,
        target: Target,
        task: Option<(&Arc<TaskInner>, Placement)>,
    ) -> Result<RunInfo> {
        let start = Instant::now();
        let (args, params, size) = (&call.args, call.params, call.size);
        // A task worked its buffers out when it was submitted.
        let sets;
        let (read_ids, write_ids): (&[u64], &[u64]) = match task {
            Some((t, _)) => (&t.reads, &t.writes),
            None => {
                sets = access_sets(kernel, args);
                (&sets.0, &sets.1)
            }
        };
        // Every argument's id, made only where needed (off the CPU's path).
        let all_ids = || -> Vec<u64> { args.iter().map(|h| h.id).collect() };

        // Lease every argument (a synchronous call also waits for the tasks
        // it depends on), then prepare under the table's lock: the decision,
        // and every argument made valid where the call will run. The guard,
        // made before the table is locked, gives the leases back if this
        // unwinds, after the table's lock is.
        let mut lease = LeaseGuard {
            shared: &self.shared,
            reads: read_ids,
            writes: write_ids,
            held: false,
        };
        let what = What::Kernel(kernel.name());
        let mut table = self.table_ready(what, read_ids, write_ids, task.is_none(), true)?;
        lease.held = true;
        // The unit tests stand in for a bug inside pel here.
        #[cfg(test)]
        if kernel.name() == tests::BROKEN_INVARIANT {
            panic!("a broken invariant, standing in for a bug in pel");
        }
        if task.is_none() {
            let all: Vec<u64> = read_ids.iter().chain(write_ids).copied().collect();
            if let Some(e) = self.failed_input(&table, kernel.name(), &all) {
                table.release_lease(read_ids, write_ids);
                lease.held = false;
                self.unlock(table);
                return Err(e);
            }
        }
        let mut placed = task.map(|(_, p)| p);
        // Only an automatic call runs again elsewhere when its backend
        // fails it for a reason of its own; a forced one returns the error.
        let auto = target == Target::Auto;
        let mut target = target;
        let mut recovered = false;
        let (result, decided, host_written) = loop {
            let placement = self.place_call(&mut table, target, placed, kernel, call);
            let planned = placement
                .as_ref()
                .ok()
                .map(|p| (p.backend, p.split.is_some()));
            let prepared = placement.and_then(|p| {
                let work = match self.make_work(&mut table, p, kernel, call) {
                    // A GPU out of memory frees other buffers' copies there
                    // (least recently used first) and tries once more.
                    Err(Error::OutOfMemory { .. })
                        if matches!(p.backend, Backend::Gpu(g) if self.evict_for(&mut table, g, &all_ids())) =>
                    {
                        self.make_work(&mut table, p, kernel, call)
                    }
                    other => other,
                };
                work.map(|w| (p, w))
            });
            let on_host = matches!(&prepared, Ok((_, Work::Cpu(_) | Work::Split(_))));
            // Until a kernel's CPU implementation has run once without
            // failing, an automatic call keeps aside what only the host
            // holds of what it writes, so a panic halfway costs no data:
            // the call runs again elsewhere from the same versions.
            let unproven = matches!(&prepared, Ok((_, Work::Cpu(_))))
                && auto
                && !self.shared.gpus.is_empty()
                && !self.proven_on_cpu(kernel.id());
            let kept: Vec<(u64, HostCopy)> = if unproven {
                write_ids
                    .iter()
                    .filter_map(|id| table.keep_for_retry(*id).map(|c| (*id, c)))
                    .collect()
            } else {
                Vec::new()
            };
            if on_host {
                // The host copies are written in place: pinned versions are
                // kept aside first.
                for id in write_ids {
                    table.protect_host(*id);
                }
            }
            drop(table);
            // The chosen device is busy for the expected execution until
            // the call ends: calls from other threads see it queued there.
            // (A task was charged when it was placed.)
            let decided = match (&prepared, task.is_some() && !recovered) {
                (_, true) => placed.map(|p| p.backend),
                (Ok((p, _)), false) => {
                    self.dispatcher().enqueue(kernel.id(), p.backend, size);
                    Some(p.backend)
                }
                (Err(_), false) => None,
            };
            let mut host_written = false;
            // User code runs on this thread (the CPU implementation): a call
            // into pel from it must see what this call holds.
            let frame = on_host.then(|| {
                frames::enter(
                    self.shared.id,
                    kernel.shared_name(),
                    read_ids,
                    write_ids,
                    task.map(|(t, _)| t.id),
                )
            });
            let result = prepared.and_then(|(placement, work)| {
                self.execute_work(kernel, call, placement, work, start, &mut host_written)
            });
            drop(frame);
            table = self.table();
            // A GPU lost while the call ran took its result with it, even if
            // the kernel itself completed: run again elsewhere.
            let result = match (result, planned) {
                (Ok(_), Some((Backend::Gpu(g), false)))
                    if table.gpu_lost(g) || self.shared.gpus[g].check_alive().is_err() =>
                {
                    Err(Error::DeviceLost {
                        device: self.shared.gpus[g].info().backend.to_string(),
                        reason: "lost while the call ran, with its result".to_owned(),
                    })
                }
                (r, _) => r,
            };
            // Recover from a lost or full GPU: run again elsewhere.
            let failed_gpu = match (&result, planned) {
                (
                    Err(Error::DeviceLost { .. } | Error::OutOfMemory { .. }),
                    Some((Backend::Gpu(g), _)),
                ) => Some(g),
                _ => None,
            };
            // Each GPU gets one chance per call.
            let fixable = failed_gpu.filter(|&g| {
                !AVOID.with_borrow(|a| a.contains(&g))
                    && !host_written
                    && (self.shared.gpus[g].check_alive().is_err() || self.within_budget(args, g))
            });
            // A failure tied to this kernel on this backend (a pipeline the
            // device rejects, a CPU implementation that panics) excludes the
            // pair from placement; an automatic call then runs again on the
            // next-best backend, from the versions this attempt read.
            let tied = match (&result, planned) {
                (Err(e @ Error::Gpu { .. }), Some((b @ Backend::Gpu(_), false)))
                | (Err(e @ Error::KernelPanicked { .. }), Some((b @ Backend::Cpu, false))) => {
                    Some((b, e.clone()))
                }
                _ => None,
            };
            if let Some((b, e)) = &tied {
                // A pipeline never made is rejected for good: the exclusion
                // is kept with the model. Other failures last this process.
                let permanent =
                    matches!(b, Backend::Gpu(g) if !self.shared.gpus[*g].has_pipeline(kernel.id()));
                self.dispatcher()
                    .exclude(kernel.id(), *b, e.to_string(), permanent);
            }
            let retry = tied.as_ref().is_some_and(|_| {
                auto && (!host_written
                    || write_ids
                        .iter()
                        .all(|id| kept.iter().any(|(k, _)| k == id) || table.valid_off_host(*id)))
            });
            if retry {
                if host_written {
                    let e = &tied.as_ref().expect("retry means tied").1;
                    for id in write_ids {
                        match kept.iter().position(|(k, _)| k == id) {
                            Some(i) => table.restore(*id, kept[i].1.clone()),
                            None => table.written_garbage(*id, e),
                        }
                    }
                }
                if let Some(b) = decided {
                    self.dispatcher().finished(kernel.id(), b, size);
                }
                self.shared.counters.recovered();
                recovered = true;
                placed = None;
                target = Target::Auto;
                continue;
            }
            if unproven && result.is_ok() {
                self.prove_on_cpu(kernel.id());
            }
            match fixable {
                Some(g) => {
                    if self.shared.gpus[g].check_alive().is_err() {
                        self.recover_gpu(&mut table, g);
                    }
                    if let Some(b) = decided {
                        self.dispatcher().finished(kernel.id(), b, size);
                    }
                    self.shared.counters.recovered();
                    recovered = true;
                    placed = None;
                    target = Target::Auto;
                    AVOID.with_borrow_mut(|a| a.push(g));
                }
                None => break (result, decided, host_written),
            }
        };
        if recovered {
            AVOID.with_borrow_mut(Vec::clear);
        }
        let result = result.map(|(mut info, parts)| {
            if recovered {
                info.reason = Reason::Recovered;
            }
            (info, parts)
        });

        match &result {
            Ok((info, _)) => {
                // A split call's halves meet in the host copy.
                let written_on = match info.split {
                    Some(_) => Backend::Cpu,
                    None => info.backend,
                };
                // A GPU write leaves a record for replay, made before the
                // versions move on.
                let long = if written_on != Backend::Cpu {
                    table.record_gpu_write(kernel, params, &all_ids(), write_ids)
                } else {
                    Vec::new()
                };
                for id in write_ids {
                    table.mark_written(*id, written_on, kernel.id(), &self.shared.gpus);
                }
                // A long lineage is cut short: the newest version comes to
                // the host, and what led to it is forgotten.
                for id in long {
                    if let Err(e) = table.ensure_host(id, &self.shared.gpus, &self.shared.counters)
                    {
                        eprintln!("pel: warning: buffer #{id} could not be checkpointed: {e}");
                    }
                }
                if task.is_none() {
                    for id in write_ids {
                        table.clear_finished_producer(*id);
                    }
                }
            }
            Err(e) => {
                // A CPU kernel (or a split call's CPU part) that failed may
                // have written part of its outputs: those host bytes are not
                // the buffer's any more.
                if host_written {
                    for id in write_ids {
                        table.written_garbage(*id, e);
                    }
                }
            }
        }
        table.release_lease(read_ids, write_ids);
        lease.held = false;
        {
            let mut d = self.dispatcher();
            if let Some(backend) = decided {
                d.finished(kernel.id(), backend, size);
            }
            match &result {
                Ok((info, None)) => d.record(
                    kernel.id(),
                    kernel.name(),
                    info.backend,
                    size,
                    info.exec.as_secs_f64(),
                ),
                Ok((info, Some((cpu_s, gpu_s)))) => d.record_split(
                    kernel.id(),
                    size,
                    dispatch::device_index(info.backend).saturating_sub(1),
                    info.split.unwrap_or(0.0),
                    info.exec.as_secs_f64(),
                    *cpu_s,
                    *gpu_s,
                ),
                Err(_) => {}
            }
        }
        let result = result.map(|(info, parts)| {
            if parts.is_some() {
                self.shared.counters.ran(false);
            }
            self.shared.counters.ran(info.backend != Backend::Cpu);
            info
        });
        if let Some((t, _)) = task {
            if let Some(ready) = t.complete(result.clone()) {
                self.shared.pending.finish(&result);
                self.settle(&mut table, ready);
            }
        }
        self.unlock(table);
        result
    }

    /// Runs a prepared call outside the table's lock (the leases keep its
    /// buffers to it), with the faults `PEL_INJECT` asks for.
    fn execute_work(
        &self,
        kernel: &Kernel,
        call: &Call<'_>,
        placement: Placement,
        work: Work,
        start: Instant,
        host_written: &mut bool,
    ) -> Result<(RunInfo, Option<(f64, f64)>)> {
        let params = call.params;
        let (panics, rejected, factor) = if self.shared.faults_on.load(Ordering::Relaxed) {
            let inject = self.faults_now();
            (
                inject.cpu_panic.iter().any(|k| k == kernel.name()),
                inject.gpu_reject.iter().any(|k| k == kernel.name()),
                inject.slowdown(placement.backend),
            )
        } else {
            (false, false, 1.0)
        };
        let t = Instant::now();
        let parts = match work {
            Work::Cpu(raw) => {
                *host_written = true;
                if panics {
                    let written: Vec<bool> = kernel
                        .reflection()
                        .storage
                        .iter()
                        .map(|b| b.access.writes())
                        .collect();
                    self.shared.cpu.execute_faulty(kernel, &raw, &written)?;
                }
                self.shared.cpu.execute(kernel, &raw, params)?;
                None
            }
            Work::Gpu(g, bound) => {
                if rejected {
                    return Err(Error::Gpu {
                        kernel: kernel.name().to_owned(),
                        device: self.shared.gpus[g].info().backend.to_string(),
                        message: format!(
                            "the pipeline was rejected (injected by PEL_INJECT=gpu-reject@{})",
                            kernel.name()
                        ),
                    });
                }
                self.inject_gpu_loss(g);
                let timed = self.shared.tracer.on();
                let gpu_time =
                    self.shared.gpus[g].dispatch(kernel, &bound, params, call.workgroups, timed)?;
                if let Some(d) = gpu_time {
                    self.shared
                        .tracer
                        .span_ending(kernel.name(), g as u32 + 1, Instant::now(), d);
                } else {
                    self.shared.tracer.span(kernel.name(), g as u32 + 1, t);
                }
                None
            }
            Work::Split(split) => {
                self.inject_gpu_loss(split.gpu);
                // A GPU already lost fails the call before the CPU part
                // writes anything, so it can run again elsewhere.
                self.shared.gpus[split.gpu].check_alive()?;
                *host_written = true;
                Some(self.run_split(kernel, call, split)?)
            }
        };
        if factor > 1.0 {
            std::thread::sleep(t.elapsed().mul_f64(factor - 1.0));
        }
        let exec = t.elapsed();
        if let (None, Backend::Cpu) = (&parts, placement.backend) {
            self.shared.tracer.span(kernel.name(), 0, t);
        }
        Ok((
            RunInfo {
                backend: placement.backend,
                reason: placement.reason,
                elapsed: start.elapsed(),
                exec,
                split: placement.split,
            },
            parts,
        ))
    }

    /// Whether the kernel's CPU implementation has run without failing.
    fn proven_on_cpu(&self, kernel: u64) -> bool {
        self.shared
            .proven
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&kernel)
    }

    fn prove_on_cpu(&self, kernel: u64) {
        self.shared
            .proven
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kernel);
    }

    /// `gpu-lost@N`: loses GPU `g` when it is about to run the (N+1)-th
    /// GPU kernel.
    fn inject_gpu_loss(&self, g: usize) {
        if !self.shared.faults_on.load(Ordering::Relaxed) {
            return;
        }
        let lose_after = self.faults_now().gpu_lost_after;
        if let Some(n) = lose_after {
            if self.shared.gpu_kernels.fetch_add(1, Ordering::Relaxed) == n {
                self.shared.gpus[g].lose(&format!("injected by PEL_INJECT=gpu-lost@{n}"));
            }
        }
    }

    /// Whether the call's arguments together fit GPU `g`'s memory budget
    /// (always, without one): a call that cannot fit is not retried.
    fn within_budget(&self, args: &[&Handle], g: usize) -> bool {
        self.over_budget(args, g).is_none()
    }

    /// (what the arguments need together, the budget) when they exceed GPU
    /// `g`'s memory budget.
    fn over_budget(&self, args: &[&Handle], g: usize) -> Option<(u64, u64)> {
        let budget = self.shared.gpus[g].budget()?;
        let need: u64 = args.iter().map(|h| h.bytes).sum();
        (need > budget).then_some((need, budget))
    }

    /// Frees GPU copies on `g`, least recently used first (each written
    /// back first where it is the only valid copy), keeping `keep`.
    /// Returns whether anything was freed.
    fn evict_for(&self, table: &mut Table, g: usize, keep: &[u64]) -> bool {
        let order = table.eviction_order(g, keep);
        let mut freed = 0;
        for id in order {
            match table.evict(id, g, &self.shared.gpus, &self.shared.counters) {
                Ok(bytes) if bytes > 0 => {
                    freed += bytes;
                    self.shared.counters.evicted();
                }
                Ok(_) => {}
                Err(e) => eprintln!("pel: warning: buffer #{id} could not be evicted: {e}"),
            }
        }
        self.shared.gpus[g].trim();
        freed > 0
    }

    /// [`Table::ensure_host`], recovering first from a GPU found lost on the
    /// way (the copy to bring home was there).
    fn ensure_host(&self, table: &mut Table, id: u64) -> Result<Option<u64>> {
        match table.ensure_host(id, &self.shared.gpus, &self.shared.counters) {
            Err(Error::DeviceLost { .. }) if self.recover_lost_gpus(table) => {
                table.ensure_host(id, &self.shared.gpus, &self.shared.counters)
            }
            other => other,
        }
    }

    /// Recovers from every GPU that is lost and not recovered from yet.
    /// Returns whether there was one.
    fn recover_lost_gpus(&self, table: &mut Table) -> bool {
        let mut any = false;
        for g in 0..self.shared.gpus.len() {
            if self.shared.gpus[g].check_alive().is_err() && !table.gpu_lost(g) {
                self.recover_gpu(table, g);
                any = true;
            }
        }
        any
    }

    /// GPU `g` is lost: forget its copies and rebuild, on the CPU, every
    /// buffer whose only valid copy was there.
    fn recover_gpu(&self, table: &mut Table, g: usize) {
        if table.gpu_lost(g) {
            return;
        }
        let device = self.shared.gpus[g].info().backend.to_string();
        let cpu = &self.shared.cpu;
        // A kernel with no CPU implementation replays on a GPU still alive.
        let replayed = table.lose_gpu(g, &device, &self.shared.gpus, &mut |k, raw, p| {
            if k.has_cpu() {
                cpu.execute(k, raw, p)
            } else {
                self.replay_on_gpu(k, raw, p)
            }
        });
        self.shared.counters.lost_device(replayed);
    }

    /// Replays a GPU-only kernel's record on the first GPU that is alive
    /// and can take it: `raw` are the scratch host copies of its arguments,
    /// into which its outputs come back.
    fn replay_on_gpu(&self, kernel: &Kernel, raw: &[RawSlice], params: &[u8]) -> Result<()> {
        let lens: Vec<usize> = raw.iter().map(|r| r.len).collect();
        let bytes: Vec<u64> = raw.iter().map(|r| r.bytes as u64).collect();
        let workgroups = kernel.workgroups(params, &lens);
        let mut refusals = Vec::new();
        for (g, gpu) in self.shared.gpus.iter().enumerate() {
            if gpu.check_alive().is_err() {
                continue;
            }
            match self.replay_on(g, kernel, raw, &bytes, params, workgroups) {
                Ok(()) => return Ok(()),
                Err(e) => refusals.push(e.to_string()),
            }
        }
        if refusals.is_empty() {
            refusals.push("no GPU is left to replay it on".to_owned());
        }
        Err(Error::NoBackend {
            kernel: kernel.name().to_owned(),
            reason: format!(
                "it has no CPU implementation (built without `.cpu(...)`): {}",
                refusals.join("; ")
            ),
        })
    }

    fn replay_on(
        &self,
        g: usize,
        kernel: &Kernel,
        raw: &[RawSlice],
        bytes: &[u64],
        params: &[u8],
        workgroups: u64,
    ) -> Result<()> {
        let gpu = &self.shared.gpus[g];
        gpu.check_call(kernel, bytes.iter().copied(), params.len(), workgroups)?;
        let mut bound = Vec::with_capacity(raw.len());
        for (r, &b) in raw.iter().zip(bytes) {
            let buf = gpu.alloc(b)?;
            // SAFETY: `r` is a scratch host copy that the replay made for
            // this record, `r.bytes` long, initialised, and used by nothing
            // else until the replay returns.
            let src = unsafe { std::slice::from_raw_parts(r.ptr, r.bytes) };
            gpu.upload(&buf, src)?;
            bound.push((buf, b));
        }
        gpu.flush()?;
        gpu.dispatch(kernel, &bound, params, workgroups, false)?;
        for ((r, (buf, _)), binding) in raw.iter().zip(&bound).zip(&kernel.reflection().storage) {
            if binding.access.writes() {
                // SAFETY: as above; nothing else reads or writes the scratch
                // copy while the download fills it.
                let dst = unsafe { std::slice::from_raw_parts_mut(r.ptr, r.bytes) };
                gpu.download(buf, dst)?;
            }
        }
        for (buf, _) in bound {
            gpu.release(buf);
        }
        Ok(())
    }

    /// Runs a split call: items `0..cut` on the GPU, in a thread of its own,
    /// while this thread runs `cut..items` on the CPU; then the GPU's part
    /// of every written buffer comes down into the host copy. Returns how
    /// long each part took, seconds (the GPU's with its download).
    fn run_split(&self, kernel: &Kernel, call: &Call<'_>, s: SplitWork) -> Result<(f64, f64)> {
        let lens: Vec<usize> = call.args.iter().map(|h| h.len).collect();
        let part = |a, b| {
            kernel
                .split_params(call.params, a, b)
                .expect("only splittable kernels are split")
        };
        let (gpu_params, cpu_params) = (part(0, s.cut), part(s.cut, s.items));
        let gpu_groups = kernel.workgroups(&gpu_params, &lens);
        let gpu = &self.shared.gpus[s.gpu];
        let gpu_lane = s.gpu as u32 + 1;
        // The bytes of each written buffer that the GPU's items cover.
        let written: Vec<(usize, usize)> = call
            .args
            .iter()
            .zip(&kernel.reflection().storage)
            .enumerate()
            .filter(|(_, (_, b))| b.access.writes())
            .map(|(i, (h, _))| (i, (h.bytes / s.items * s.cut) as usize))
            .collect();
        let (cpu, gpu_part) = std::thread::scope(|scope| {
            let gpu_part = scope.spawn(|| -> Result<(Vec<Vec<u8>>, f64)> {
                let t = Instant::now();
                let timed = self.shared.tracer.on();
                match gpu.dispatch(kernel, &s.bound, &gpu_params, gpu_groups, timed)? {
                    Some(d) => {
                        self.shared
                            .tracer
                            .span_ending(kernel.name(), gpu_lane, Instant::now(), d)
                    }
                    None => self.shared.tracer.span(kernel.name(), gpu_lane, t),
                }
                let mut parts = Vec::with_capacity(written.len());
                for &(i, bytes) in &written {
                    let mut out = vec![0u8; bytes];
                    gpu.download(&s.bound[i].0, &mut out)?;
                    self.shared.counters.download(bytes as u64);
                    parts.push(out);
                }
                Ok((parts, t.elapsed().as_secs_f64()))
            });
            let t = Instant::now();
            let cpu = self.shared.cpu.execute(kernel, &s.raw, &cpu_params);
            self.shared.tracer.span(kernel.name(), 0, t);
            let cpu = cpu.map(|()| t.elapsed().as_secs_f64());
            let gpu_part = gpu_part.join().unwrap_or_else(|_| {
                Err(Error::KernelPanicked {
                    kernel: kernel.name().to_owned(),
                    message: "the GPU part of a split call panicked".to_owned(),
                })
            });
            (cpu, gpu_part)
        });
        let (cpu_s, (parts, gpu_s)) = (cpu?, gpu_part?);
        for ((i, bytes), part) in written.iter().zip(parts) {
            debug_assert_eq!(part.len(), *bytes);
            debug_assert!(*bytes <= s.raw[*i].bytes);
            // SAFETY: `raw[i]` is the host copy of argument i, `raw[i].bytes`
            // long, and `bytes` (the GPU's share of it, `h.bytes / items *
            // cut` with `cut < items`) is within it; this call holds it
            // under an exclusive lease (aliased writes are refused), the CPU
            // part, which wrote only items `cut..`, has returned, and `part`
            // is a separate allocation. No safe code can break this: the
            // lengths come from the runtime's own handles.
            unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), s.raw[*i].ptr, *bytes) };
        }
        Ok((cpu_s, gpu_s))
    }

    /// Where the call runs: as placed, or decided now.
    fn place_call(
        &self,
        table: &mut Table,
        target: Target,
        placed: Option<Placement>,
        kernel: &Kernel,
        call: &Call<'_>,
    ) -> Result<Placement> {
        if let Some(p) = placed {
            return Ok(p);
        }
        let d = self.decide(
            table,
            target,
            kernel,
            &call.args,
            call.params,
            call.size,
            call.workgroups,
            true,
        )?;
        Ok(Placement {
            backend: d.chosen,
            reason: d.reason,
            split: d.split,
        })
    }

    /// Makes every argument valid where `placement` runs the call.
    fn make_work(
        &self,
        table: &mut Table,
        placement: Placement,
        kernel: &Kernel,
        call: &Call<'_>,
    ) -> Result<Work> {
        let args = &call.args;
        let split = match (placement.split, placement.backend) {
            (Some(share), Backend::Gpu(g)) => {
                split_items(kernel, args, call.params).map(|items| (g, share, items))
            }
            _ => None,
        };
        Ok(match (split, placement.backend) {
            (Some((g, share, items)), _) => {
                let raw = self.host_args(table, args)?;
                let bound = self.gpu_args(table, kernel, args, g, call.workgroups)?;
                let cut = ((items as f64 * share).round() as u64).clamp(1, items - 1);
                Work::Split(SplitWork {
                    gpu: g,
                    items,
                    cut,
                    raw,
                    bound,
                })
            }
            (None, Backend::Cpu) => Work::Cpu(self.host_args(table, args)?),
            (None, Backend::Gpu(g)) => {
                Work::Gpu(g, self.gpu_args(table, kernel, args, g, call.workgroups)?)
            }
        })
    }

    /// Makes every argument valid on the host; their host copies.
    fn host_args(&self, table: &mut Table, args: &[&Handle]) -> Result<Vec<RawSlice>> {
        let mut raw = Vec::with_capacity(args.len());
        for h in args {
            let t = Instant::now();
            let before = self.shared.counters.download_count();
            if let Some(k) = self.ensure_host(table, h.id)? {
                self.dispatcher().note_readback(k);
            }
            if self.shared.counters.download_count() != before {
                self.trace_transfer("to host", h.bytes, t);
            }
            raw.push(RawSlice {
                ptr: table.host_ptr(h.id),
                len: h.len,
                bytes: h.bytes as usize,
            });
        }
        Ok(raw)
    }

    /// Makes every argument valid on GPU `g` (and waits for the transfers,
    /// so the execution is timed alone); the bound buffers.
    fn gpu_args(
        &self,
        table: &mut Table,
        kernel: &Kernel,
        args: &[&Handle],
        g: usize,
        workgroups: u64,
    ) -> Result<Vec<(wgpu::Buffer, u64)>> {
        self.check_gpu_limits(kernel, args, g, workgroups)?;
        let mut bound = Vec::with_capacity(args.len());
        let mut queued = false;
        let t = Instant::now();
        let uploaded = self.shared.counters.upload_bytes();
        for h in args {
            let (buf, moved) =
                match table.ensure_gpu(h.id, g, &self.shared.gpus, &self.shared.counters) {
                    Err(Error::DeviceLost { .. }) if self.recover_lost_gpus(table) => {
                        table.ensure_gpu(h.id, g, &self.shared.gpus, &self.shared.counters)?
                    }
                    other => other?,
                };
            queued |= moved;
            bound.push((buf, h.bytes));
        }
        if queued {
            self.shared.gpus[g].flush()?;
            // Zero buffers were cleared there: only uploads are transfers.
            let bytes = self.shared.counters.upload_bytes() - uploaded;
            if bytes > 0 {
                self.trace_transfer(&format!("to gpu{g}"), bytes, t);
                self.shared.counters.timed(crate::stats::Timed {
                    gpu: g,
                    up: true,
                    bytes,
                    secs: t.elapsed().as_secs_f64(),
                });
            }
        }
        Ok(bound)
    }

    fn dispatcher(&self) -> MutexGuard<'_, Dispatcher> {
        self.shared
            .dispatcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether GPU `g` can run the call at all, and right: every argument
    /// within its binding limit, and the launch within its limits and one
    /// the shader can index (see `GpuDevice::check_call`).
    fn check_gpu_limits(
        &self,
        kernel: &Kernel,
        args: &[&Handle],
        g: usize,
        workgroups: u64,
    ) -> Result<()> {
        let gpu = &self.shared.gpus[g];
        gpu.check_alive()?;
        if let Some((need, budget)) = self.over_budget(args, g) {
            return Err(Error::OutOfMemory {
                device: format!("gpu{g} ({})", gpu.info().name),
                doing: format!(
                    "running `{}`, whose arguments need {} together",
                    kernel.name(),
                    crate::device::human_bytes(need)
                ),
                message: format!(
                    "over the memory budget of {} (PEL_GPU_MEMORY_BUDGET)",
                    crate::device::human_bytes(budget)
                ),
            });
        }
        let limits = gpu.limits();
        let limit = limits.max_storage_binding.min(limits.max_buffer);
        for (index, (h, binding)) in args.iter().zip(&kernel.reflection().storage).enumerate() {
            if h.bytes > limit {
                return Err(Error::BindingTooLarge {
                    kernel: kernel.name().to_owned(),
                    index,
                    name: binding.name.clone(),
                    size: h.bytes,
                    limit,
                    device: format!("gpu{g} ({})", gpu.info().name),
                });
            }
        }
        gpu.check_call(
            kernel,
            args.iter().map(|h| h.bytes),
            kernel.params_size(),
            workgroups,
        )
    }

    /// The placement decision for a call (`commit`: a real call, counted and
    /// logged; otherwise an explanation).
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        table: &Table,
        target: Target,
        kernel: &Kernel,
        args: &[&Handle],
        params: &[u8],
        size: u64,
        workgroups: u64,
        commit: bool,
    ) -> Result<Decision> {
        let forced = match target {
            Target::On(b) => {
                self.device(b)?;
                if b == Backend::Cpu && !kernel.has_cpu() {
                    return Err(Error::NoCpuImplementation {
                        kernel: kernel.name().to_owned(),
                    });
                }
                Some(b)
            }
            Target::Auto => None,
            Target::Split { gpu, permille } => {
                return self.forced_split(kernel, args, params, size, workgroups, gpu, permille);
            }
        };
        let mut d = self.dispatcher();
        for t in self.shared.counters.take_timed() {
            d.observe_transfer(t.gpu, t.up, t.bytes, t.secs);
        }
        let candidates: Vec<(Backend, f64, f64)> = std::iter::once(Backend::Cpu)
            .chain((0..self.shared.gpus.len()).map(Backend::Gpu))
            .filter(|&b| match b {
                Backend::Cpu => kernel.has_cpu(),
                Backend::Gpu(g) => {
                    !AVOID.with_borrow(|a| a.contains(&g))
                        && self.check_gpu_limits(kernel, args, g, workgroups).is_ok()
                }
            })
            .map(|b| {
                let mut moves = Moves::default();
                for h in args {
                    table.moves_to(h.id, b, &mut moves);
                }
                // Outputs left on a GPU come home as often as this kernel's
                // outputs have been needed on the host before.
                if let Backend::Gpu(g) = b {
                    let p = d.readback_probability(kernel.id());
                    let written: u64 = args
                        .iter()
                        .zip(&kernel.reflection().storage)
                        .filter(|(_, s)| s.access.writes())
                        .map(|(h, _)| h.bytes)
                        .sum();
                    if p > 0.0 && written > 0 {
                        let back = d.transfer_secs(&Moves {
                            up: Vec::new(),
                            down: vec![(g, written)],
                        });
                        return (b, d.transfer_secs(&moves) + p * back, d.queued(b));
                    }
                }
                (b, d.transfer_secs(&moves), d.queued(b))
            })
            .collect();
        if let (Some(f), None) = (d.forced, forced) {
            self.device(f)?;
        }
        if candidates.is_empty() && forced.or(d.forced).is_none() {
            // Why each GPU cannot take it, worded only now.
            let mut refusals =
                vec!["it has no CPU implementation (built without `.cpu(...)`)".to_owned()];
            for g in 0..self.shared.gpus.len() {
                refusals.push(if AVOID.with_borrow(|a| a.contains(&g)) {
                    format!("gpu{g} failed this call")
                } else if let Err(e) = self.check_gpu_limits(kernel, args, g, workgroups) {
                    e.to_string()
                } else {
                    continue;
                });
            }
            if self.shared.gpus.is_empty() {
                refusals.push("this runtime has no GPU".to_owned());
            }
            return Err(Error::NoBackend {
                kernel: kernel.name().to_owned(),
                reason: refusals.join("; "),
            });
        }
        let calibrations = d.calibration_runs;
        let mut decision = d.decide(kernel.id(), kernel.name(), size, &candidates, forced)?;
        // A splittable call the model has calibrated on every device may
        // run partly on the best GPU and partly on the CPU.
        if forced.is_none()
            && d.forced.is_none()
            && decision.reason == Reason::Modelled
            && split_items(kernel, args, params).is_some()
        {
            let kept = d.split_gpu(kernel.id(), size);
            let (cpu, gpu) = dispatch::split::split_pair(&decision.estimates, kept);
            if let (Some(c), Some(g)) = (cpu, gpu) {
                let (c, g) = (c.clone(), g.clone());
                if let Some((share, reason)) = d.split_choice(kernel.id(), size, &c, &g) {
                    decision.chosen = g.backend;
                    decision.reason = reason;
                    decision.split = Some(share);
                }
            }
        }
        if !commit {
            d.calibration_runs = calibrations;
            return Ok(decision);
        }
        // The log keeps the whole decision; the caller needs only its verdict.
        let verdict = Decision {
            kernel: String::new(),
            size,
            chosen: decision.chosen,
            reason: decision.reason,
            estimates: Vec::new(),
            split: decision.split,
            excluded: decision.excluded.clone(),
        };
        d.log(decision, self.shared.explain);
        Ok(verdict)
    }

    /// The decision for a [`Target::Split`], once the call is known to fit.
    #[allow(clippy::too_many_arguments)]
    fn forced_split(
        &self,
        kernel: &Kernel,
        args: &[&Handle],
        params: &[u8],
        size: u64,
        workgroups: u64,
        gpu: usize,
        permille: u16,
    ) -> Result<Decision> {
        let backend = Backend::Gpu(gpu);
        self.device(backend)?;
        self.check_gpu_limits(kernel, args, gpu, workgroups)?;
        let invalid = |message: String| Error::InvalidInput {
            kernel: kernel.name().to_owned(),
            arg: "target".to_owned(),
            message,
        };
        if !(1..=999).contains(&permille) {
            return Err(invalid(format!(
                "a split gives the GPU 1 to 999 thousandths of the items, not {permille}"
            )));
        }
        if split_items(kernel, args, params).is_none() {
            return Err(invalid(if kernel.is_splittable() {
                "this call cannot be split: it has fewer than 2 items, or a written buffer is not a whole number of elements per item".to_owned()
            } else {
                "the kernel was not declared splittable (KernelBuilder::splittable)".to_owned()
            }));
        }
        Ok(Decision {
            kernel: kernel.name().to_owned(),
            size,
            chosen: backend,
            reason: Reason::Forced,
            estimates: Vec::new(),
            split: Some(permille as f64 / 1000.0),
            excluded: Vec::new(),
        })
    }

    /// What [`run`](Self::run) would decide for this call, with the
    /// estimates per backend and the reason, without running anything.
    pub fn explain<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<Decision> {
        let call = self.call(kernel, args, params)?;
        let table = self.table();
        self.decide(
            &table,
            Target::Auto,
            kernel,
            &call.args,
            call.params,
            call.size,
            call.workgroups,
            false,
        )
    }

    /// Checks a call's params and arguments against the kernel and sizes it.
    fn call<'a, P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        args: &'a [&'a dyn BufferArg],
        params: &'a P,
    ) -> Result<Call<'a>> {
        kernel.check_params::<P>()?;
        let args: Vec<&Handle> = args.iter().map(|a| &**a.as_arg().handle).collect();
        self.check_args(kernel, &args)?;
        let params = bytemuck::bytes_of(params);
        debug_assert_eq!(params.len(), kernel.params_size());
        let lens: Vec<usize> = args.iter().map(|h| h.len).collect();
        Ok(Call {
            size: kernel.cost(params, &lens),
            workgroups: kernel.workgroups(params, &lens),
            args,
            params,
        })
    }

    /// The most recent placement decisions (up to 1,024), oldest first.
    pub fn decisions(&self) -> Vec<Decision> {
        self.dispatcher().decisions()
    }

    /// The performance model, one row per (kernel, device, size bucket).
    pub fn model_rows(&self) -> Vec<ModelRow> {
        self.dispatcher().rows()
    }

    /// The share of this call's items the model gives a GPU when the call is
    /// split with the CPU: `Some(1.0)` or `Some(0.0)` where one device alone
    /// wins (a call not split runs there), the calibrated share where the
    /// split wins, and `None` while not yet known or not splittable.
    pub fn split_share<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<Option<f64>> {
        let call = self.call(kernel, args, params)?;
        if split_items(kernel, &call.args, call.params).is_none() {
            return Ok(None);
        }
        let d = self.explain(kernel, args, params)?;
        let kept = self.dispatcher().split_gpu(kernel.id(), call.size);
        Ok(match dispatch::split::split_pair(&d.estimates, kept) {
            (Some(c), Some(g)) => self.dispatcher().split_share(kernel.id(), call.size, c, g),
            (Some(_), None) => Some(0.0),
            _ => None,
        })
    }

    /// What the model knows about splitting calls between a GPU and the CPU.
    pub fn split_rows(&self) -> Vec<SplitRow> {
        self.dispatcher().split_rows()
    }

    /// The file the performance model is loaded from and saved to, if any.
    pub fn model_path(&self) -> Option<std::path::PathBuf> {
        self.dispatcher().path.clone()
    }

    /// Writes the performance model now (it is also written when the last
    /// clone of the runtime drops, and whenever an entry finishes calibrating).
    pub fn save_model(&self) {
        self.dispatcher().save();
    }

    /// Forgets every measurement of every kernel (the bus model stays).
    pub fn reset_model(&self) {
        let mut d = self.dispatcher();
        d.reset();
        d.save();
    }

    fn check_args(&self, kernel: &Kernel, args: &[&Handle]) -> Result<()> {
        let storage = &kernel.reflection().storage;
        if args.len() != storage.len() {
            return Err(Error::ArgCount {
                kernel: kernel.name().to_owned(),
                what: "the call",
                expected: storage.len(),
                got: args.len(),
            });
        }
        for (index, (h, binding)) in args.iter().zip(storage).enumerate() {
            if h.runtime != self.shared.id {
                return Err(Error::ForeignBuffer {
                    kernel: kernel.name().to_owned(),
                    index,
                    owner: h.runtime,
                    runtime: self.shared.id,
                });
            }
            if h.elem != binding.elem {
                return Err(Error::ArgType {
                    kernel: kernel.name().to_owned(),
                    index,
                    name: binding.name.clone(),
                    what: "the call",
                    expected: binding.elem.to_string(),
                    got: h.elem.to_string(),
                });
            }
            // Unreachable from safe code (`Element`'s layout is checked when
            // compiled); kept because the CPU path's slices rely on it.
            if h.elem_size != binding.elem.size() as usize {
                return Err(Error::ArgType {
                    kernel: kernel.name().to_owned(),
                    index,
                    name: binding.name.clone(),
                    what: "the call",
                    expected: format!("{} ({} bytes)", binding.elem, binding.elem.size()),
                    got: format!("{} of {} bytes", h.elem, h.elem_size),
                });
            }
        }
        for i in 0..args.len() {
            for j in i + 1..args.len() {
                if args[i].id == args[j].id
                    && (storage[i].access.writes() || storage[j].access.writes())
                {
                    return Err(Error::AliasedArguments {
                        kernel: kernel.name().to_owned(),
                        first: i,
                        second: j,
                    });
                }
            }
        }
        Ok(())
    }
}

/// What waits for a buffer, for the error that says so (made only then).
#[derive(Clone, Copy)]
enum What<'a> {
    /// A kernel call, by the kernel's name.
    Kernel(&'a str),
    /// A host operation (`read`, `write`, ...).
    Op(&'a str),
}

impl std::fmt::Display for What<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            What::Kernel(k) => write!(f, "kernel `{k}`"),
            What::Op(op) => f.write_str(op),
        }
    }
}

/// Gives a call's leases back if it unwinds before it could.
struct LeaseGuard<'a> {
    shared: &'a Shared,
    reads: &'a [u64],
    writes: &'a [u64],
    held: bool,
}

impl Drop for LeaseGuard<'_> {
    fn drop(&mut self) {
        if self.held {
            self.shared
                .table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .release_lease(self.reads, self.writes);
            self.shared.leases.notify_all();
        }
    }
}

/// The error of `what`, which needs buffer `id` while the call in `frame`,
/// lower on this thread's stack, holds it.
fn own_argument(what: &str, frame: &Frame, id: u64) -> Error {
    let uses = if frame.writes.contains(&id) {
        "writes"
    } else {
        "reads"
    };
    Error::WouldDeadlock {
        what: format!("{what} (buffer #{id})"),
        message: format!(
            "called from inside kernel `{}`, which {uses} that buffer until it returns; a kernel cannot use its own arguments through the runtime: pass what it needs as arguments, or use the buffer after the call",
            frame.kernel
        ),
    }
}

/// The length of a splittable call's index range, when the call can be
/// split: at least two items, and every written buffer a whole number of
/// elements per item.
fn split_items(kernel: &Kernel, args: &[&Handle], params: &[u8]) -> Option<u64> {
    let lens: Vec<usize> = args.iter().map(|h| h.len).collect();
    let items = kernel.split_items(params, &lens)?;
    let whole = args
        .iter()
        .zip(&kernel.reflection().storage)
        .filter(|(_, b)| b.access.writes())
        .all(|(h, _)| (h.len as u64).is_multiple_of(items.max(1)) && h.bytes.is_multiple_of(4));
    (items >= 2 && whole).then_some(items)
}

/// The buffers a call only reads, and those it writes (from the shader's
/// access modes; a buffer passed twice counts once, as written if either is).
fn access_sets(kernel: &Kernel, args: &[&Handle]) -> (Vec<u64>, Vec<u64>) {
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for (h, b) in args.iter().zip(&kernel.reflection().storage) {
        if b.access.writes() {
            writes.push(h.id);
        }
    }
    for (h, b) in args.iter().zip(&kernel.reflection().storage) {
        if !b.access.writes() && !writes.contains(&h.id) && !reads.contains(&h.id) {
            reads.push(h.id);
        }
    }
    (reads, writes)
}

/// `PEL_GPU_MEMORY_BUDGET`: bytes, or a number with KiB, MiB, GiB (or KB,
/// MB, GB, powers of ten).
fn budget_from_env() -> Result<Option<u64>> {
    let Ok(v) = std::env::var("PEL_GPU_MEMORY_BUDGET") else {
        return Ok(None);
    };
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    parse_bytes(v).map(Some).ok_or_else(|| Error::InvalidInput {
        kernel: "PEL_GPU_MEMORY_BUDGET".to_owned(),
        arg: v.to_owned(),
        message: "expected bytes, or a number with KiB, MiB, GiB, KB, MB or GB, above 0".to_owned(),
    })
}

/// `64MiB`, `1.5GB`, `4096`: bytes.
fn parse_bytes(v: &str) -> Option<u64> {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return None,
    };
    let bytes = num * scale;
    (1.0..1e19).contains(&bytes).then_some(bytes as u64)
}

/// `PEL_BACKEND`: `cpu`, `gpu` (the first GPU), `gpuN`, or `auto`/unset.
fn parse_backend_env() -> Option<Backend> {
    let v = std::env::var("PEL_BACKEND").ok()?;
    match v.trim() {
        "" | "auto" => None,
        "cpu" => Some(Backend::Cpu),
        "gpu" => Some(Backend::Gpu(0)),
        other => match other.strip_prefix("gpu").and_then(|n| n.parse().ok()) {
            Some(i) => Some(Backend::Gpu(i)),
            None => {
                eprintln!(
                    "pel: warning: PEL_BACKEND={other} is not cpu, gpu, gpuN or auto; ignored"
                );
                None
            }
        },
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("id", &self.shared.id)
            .field("backends", &self.backends())
            .finish()
    }
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;

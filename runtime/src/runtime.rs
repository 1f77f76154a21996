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
use crate::dispatch::{self, Decision, Dispatcher, ModelRow, Moves, Reason};
use crate::error::{Error, Result};
use crate::graph::{Job, Pending, Task, TaskInner, Workers};
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

/// What a prepared call runs: host slices, or bound GPU buffers.
enum Work {
    Cpu(Vec<RawSlice>),
    Gpu(usize, Vec<(wgpu::Buffer, u64)>),
}

/// What one kernel call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunInfo {
    /// Where it ran.
    pub backend: Backend,
    /// Why it ran there.
    pub reason: Reason,
    /// Wall time of the call, transfers of its inputs included.
    pub elapsed: Duration,
    /// Time of the execution alone (what the performance model records).
    pub exec: Duration,
}

/// The pel runtime: a rayon pool, every usable GPU, and the buffers.
///
/// Cheap to clone (clones share everything) and usable from many threads.
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
    pending: Pending,
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

    /// Starts the runtime. Finding no GPU is not an error: everything then
    /// runs on the CPU.
    pub fn build(self) -> Result<Runtime> {
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
            gpu::open_all(&instance, backends)
        } else {
            Vec::new()
        };
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
        Ok(Runtime {
            shared: Arc::new(Shared {
                id: NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed),
                cpu,
                gpus,
                table: Mutex::new(Table::new(n)),
                leases: Condvar::new(),
                counters: Counters::default(),
                dispatcher: Mutex::new(dispatcher),
                explain: std::env::var("PEL_EXPLAIN").is_ok_and(|v| v != "0" && !v.is_empty()),
                tracer,
                trace_file,
                workers: Workers::default(),
                pending: Pending::default(),
            }),
        })
    }
}

impl Runtime {
    /// Starts a runtime with the defaults (see [`RuntimeBuilder`]).
    pub fn new() -> Result<Runtime> {
        Self::builder().build()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Runtime {
        Runtime { shared }
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
            .chain((0..self.shared.gpus.len()).map(Backend::Gpu))
            .collect()
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

    /// The table, once `ready` holds (waiting for running calls to give
    /// back their leases).
    fn table_when(&self, mut ready: impl FnMut(&mut Table) -> bool) -> MutexGuard<'_, Table> {
        let mut table = self.table();
        while !ready(&mut table) {
            table.waiters += 1;
            table = self
                .shared
                .leases
                .wait(table)
                .unwrap_or_else(PoisonError::into_inner);
            table.waiters -= 1;
        }
        table
    }

    fn new_buffer<T: Element>(&self, len: usize, data: Option<HostCopy>) -> Buffer<T> {
        let bytes = len as u64 * std::mem::size_of::<T>() as u64;
        let id = self.table().insert(bytes, data);
        Buffer::from_handle(Arc::new(Handle {
            id,
            runtime: self.shared.id,
            len,
            elem: T::TYPE,
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
    /// GPU (the host copy then stays valid too).
    pub fn read<T: Element>(&self, buf: &Buffer<T>) -> Result<Vec<T>> {
        self.check_owner("read", buf)?;
        let id = buf.handle().id;
        let mut table = self.table_when(|t| t.readable(id) && t.settled(&[id], &[]));
        if let Some(e) = self.failed_input(&table, "read", &[id]) {
            return Err(e);
        }
        let t = Instant::now();
        let before = self.shared.counters.download_count();
        let writer = table.ensure_host(id, &self.shared.gpus, &self.shared.counters)?;
        if self.shared.counters.download_count() != before {
            self.trace_transfer("to host", buf.size_bytes(), t);
        }
        let data = bytemuck::pod_collect_to_vec(table.host_bytes(id));
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
        self.table_when(|t| t.writable(id) && t.settled(&[], &[id]))
            .write_host(id, bytemuck::cast_slice(data));
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

    /// Sets the transfer and launch counters back to zero.
    pub fn reset_stats(&self) {
        self.shared.counters.reset();
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
    ///     fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    ///         if id.x < arrayLength(&y) { y[id.x] = 2.0 * x[id.x]; }
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
        if let Target::On(b) = target {
            self.device(b)?;
        }
        let handles = args.iter().map(|a| Arc::clone(a.as_arg().handle)).collect();
        let task = Arc::new(TaskInner::new(
            kernel,
            handles,
            call.params,
            call.size,
            call.workgroups,
            target,
        ));
        let (read_ids, write_ids) = access_sets(kernel, &call.args);

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
        for id in read_ids.iter().chain(&write_ids) {
            if let Some(p) = table.producer(*id) {
                depend(p, true);
            }
        }
        for id in &write_ids {
            for c in table.consumers(*id) {
                depend(c, false);
            }
        }
        for id in &write_ids {
            table.set_producer(*id, Some(Arc::clone(&task)));
        }
        for id in &read_ids {
            table.add_consumer(*id, Arc::clone(&task));
        }
        self.shared.pending.add();
        let (mut waiting, mut failed) = (0, None);
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

    /// Blocks until every submitted task has finished. Returns the first
    /// failure among the tasks that finished since the last call, if any
    /// (each task's own outcome stays with its [`Task`]).
    pub fn wait_all(&self) -> Result<()> {
        self.shared.pending.wait()
    }

    /// Runs a submitted task that its device's worker has taken.
    pub(crate) fn run_job(&self, job: Job) {
        let task = &job.task;
        let call = Call {
            args: task.args.iter().map(|a| &**a).collect(),
            params: &task.params,
            size: task.size,
            workgroups: task.workgroups,
        };
        // The outcome goes to the task (and its dependents) inside.
        let _ = self.run_call(
            &task.kernel,
            &call,
            task.target,
            Some((task, job.backend, job.reason)),
        );
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
            ready.extend(t.complete(outcome));
            self.shared.pending.finish(&outcome_for_count);
        }
    }

    /// Places a ready task, charges its device's queue, starts its uploads
    /// if that device is busy, and hands it to the device's worker.
    fn place(&self, table: &mut Table, t: &Arc<TaskInner>) -> Result<()> {
        let args: Vec<&Handle> = t.args.iter().map(|a| &**a).collect();
        let d = self.decide(
            table,
            t.target,
            &t.kernel,
            &args,
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
        self.shared.workers.send(
            dispatch::device_index(d.chosen),
            Job {
                task: Arc::clone(t),
                backend: d.chosen,
                reason: d.reason,
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
        let mut bytes = 0;
        for h in args {
            if !table.readable(h.id) {
                continue;
            }
            if let Ok((_, true)) =
                table.ensure_gpu(h.id, g, &self.shared.gpus, &self.shared.counters)
            {
                bytes += h.bytes;
                self.shared.counters.prefetched(h.bytes);
            }
        }
        if bytes > 0 {
            gpu.kick();
            self.trace_transfer(&format!("prefetch to gpu{g}"), bytes, t);
        }
    }

    /// Gives the table back and wakes whoever waits for leases or tasks.
    fn unlock(&self, table: MutexGuard<'_, Table>) {
        // A wake-up is a system call: only when someone waits.
        let waiting = table.waiters > 0;
        drop(table);
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

    /// Runs a checked call: a synchronous one (`task` None), which first
    /// waits for the submitted tasks it depends on, or a placed task.
    fn run_call(
        &self,
        kernel: &Kernel,
        call: &Call<'_>,
        target: Target,
        task: Option<(&Arc<TaskInner>, Backend, Reason)>,
    ) -> Result<RunInfo> {
        let start = Instant::now();
        let (args, params, size, workgroups) =
            (&call.args, call.params, call.size, call.workgroups);
        let (read_ids, write_ids) = access_sets(kernel, args);

        // Lease every argument (a synchronous call also waits for the tasks
        // it depends on), then prepare under the table's lock: the decision,
        // and every argument made valid where the call will run.
        let mut table = self.table_when(|t| {
            (task.is_some() || t.settled(&read_ids, &write_ids))
                && t.try_lease(&read_ids, &write_ids)
        });
        if task.is_none() {
            let all: Vec<u64> = read_ids.iter().chain(&write_ids).copied().collect();
            if let Some(e) = self.failed_input(&table, kernel.name(), &all) {
                table.release_lease(&read_ids, &write_ids);
                self.unlock(table);
                return Err(e);
            }
        }
        let placed = task.map(|(_, b, r)| (b, r));
        let prepared = self.prepare(&mut table, target, placed, kernel, args, size, workgroups);
        drop(table);
        // The chosen device is busy for the expected execution until the
        // call ends: calls from other threads see it queued there. (A task
        // was charged when it was placed.)
        let decided = match (&prepared, placed) {
            (_, Some((b, _))) => Some(b),
            (Ok((b, _, _)), None) => {
                self.dispatcher().enqueue(kernel.id(), *b, size);
                Some(*b)
            }
            (Err(_), None) => None,
        };

        // Run outside the lock, so calls on other buffers (on other devices)
        // proceed meanwhile; the leases keep these buffers to this call.
        let result = prepared.and_then(|(backend, reason, work)| {
            let t = Instant::now();
            match work {
                Work::Cpu(raw) => self.shared.cpu.execute(kernel, &raw, params)?,
                Work::Gpu(g, bound) => {
                    self.shared.gpus[g].dispatch(kernel, &bound, params, workgroups)?
                }
            }
            let exec = t.elapsed();
            let lane = dispatch::device_index(backend) as u32;
            self.shared.tracer.span(kernel.name(), lane, t);
            Ok(RunInfo {
                backend,
                reason,
                elapsed: start.elapsed(),
                exec,
            })
        });

        let mut table = self.table();
        if let Ok(info) = &result {
            for id in &write_ids {
                table.mark_written(*id, info.backend, kernel.id());
                if task.is_none() {
                    table.clear_finished_producer(*id);
                }
            }
        }
        table.release_lease(&read_ids, &write_ids);
        {
            let mut d = self.dispatcher();
            if let Some(backend) = decided {
                d.finished(kernel.id(), backend, size);
            }
            if let Ok(info) = &result {
                d.record(
                    kernel.id(),
                    kernel.name(),
                    info.backend,
                    size,
                    info.exec.as_secs_f64(),
                );
            }
        }
        if let Ok(info) = &result {
            self.shared.counters.ran(info.backend != Backend::Cpu);
        }
        if let Some((t, _, _)) = task {
            let ready = t.complete(result.clone());
            self.shared.pending.finish(&result);
            self.settle(&mut table, ready);
        }
        self.unlock(table);
        result
    }

    /// Chooses the backend and makes every argument valid there.
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &self,
        table: &mut Table,
        target: Target,
        placed: Option<(Backend, Reason)>,
        kernel: &Kernel,
        args: &[&Handle],
        size: u64,
        workgroups: u64,
    ) -> Result<(Backend, Reason, Work)> {
        let (backend, reason) = match placed {
            Some(p) => p,
            None => {
                let d = self.decide(table, target, kernel, args, size, workgroups, true)?;
                (d.chosen, d.reason)
            }
        };
        let work = match backend {
            Backend::Cpu => {
                let mut raw = Vec::with_capacity(args.len());
                for h in args {
                    let t = Instant::now();
                    let before = self.shared.counters.download_count();
                    if let Some(k) =
                        table.ensure_host(h.id, &self.shared.gpus, &self.shared.counters)?
                    {
                        self.dispatcher().note_readback(k);
                    }
                    if self.shared.counters.download_count() != before {
                        self.trace_transfer("to host", h.bytes, t);
                    }
                    raw.push(RawSlice {
                        ptr: table.host_ptr(h.id),
                        len: h.len,
                    });
                }
                Work::Cpu(raw)
            }
            Backend::Gpu(g) => {
                self.check_gpu_limits(kernel, args, g, workgroups)?;
                let mut bound = Vec::with_capacity(args.len());
                let mut queued = false;
                let t = Instant::now();
                let mut moved_bytes = 0;
                for h in args {
                    let (buf, moved) =
                        table.ensure_gpu(h.id, g, &self.shared.gpus, &self.shared.counters)?;
                    queued |= moved;
                    if moved {
                        moved_bytes += h.bytes;
                    }
                    bound.push((buf, h.bytes));
                }
                // Let the transfers finish first, so the execution is timed alone.
                if queued {
                    self.shared.gpus[g].flush()?;
                    self.trace_transfer(&format!("to gpu{g}"), moved_bytes, t);
                }
                Work::Gpu(g, bound)
            }
        };
        Ok((backend, reason, work))
    }

    fn dispatcher(&self) -> MutexGuard<'_, Dispatcher> {
        self.shared
            .dispatcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether GPU `g` can run the call at all: every argument within its
    /// binding limit and the launch within its dispatch limit.
    fn check_gpu_limits(
        &self,
        kernel: &Kernel,
        args: &[&Handle],
        g: usize,
        workgroups: u64,
    ) -> Result<()> {
        let gpu = &self.shared.gpus[g];
        gpu.check_alive()?;
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
        gpu.fold(kernel.name(), workgroups)?;
        Ok(())
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
        size: u64,
        workgroups: u64,
        commit: bool,
    ) -> Result<Decision> {
        let forced = match target {
            Target::On(b) => {
                self.device(b)?;
                Some(b)
            }
            Target::Auto => None,
        };
        let mut d = self.dispatcher();
        let candidates: Vec<(Backend, f64, f64)> = std::iter::once(Backend::Cpu)
            .chain((0..self.shared.gpus.len()).map(Backend::Gpu))
            .filter(|&b| match b {
                Backend::Cpu => true,
                Backend::Gpu(g) => self.check_gpu_limits(kernel, args, g, workgroups).is_ok(),
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
        let calibrations = d.calibration_runs;
        let decision = d.decide(kernel.id(), kernel.name(), size, &candidates, forced);
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
        };
        d.log(decision, self.shared.explain);
        Ok(verdict)
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

/// `PEL_BACKEND`: `cpu`, `gpu` (the first GPU), `gpuN`, or `auto`/unset.
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

//! The facade: the one object a user holds. It owns the scheduler (the
//! task graph over the engine) and forwards: a call is prepared here and
//! handed down; nothing below imports this module.
//!
//! Calls on different buffers from different threads run at once; calls on
//! the same buffer take turns (see `call/`).

mod builder;
mod plans;
mod simulate;

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use crate::buffer::{Buffer, BufferArg, Handle, HostCopy, Validity};
use crate::call::{Bound, Engine, Few, RunInfo, split_items};
use crate::device::DeviceInfo;
use crate::dispatch::{Decision, ModelRow, SplitRow};
use crate::error::{Error, Result};
use crate::frames;
use crate::graph::{Scheduler, Task};
use crate::ids::{Backend, Target};
use crate::inject::Inject;
use crate::kernel::{Element, Kernel};
use crate::stats::Stats;
use crate::trace::TraceEvent;

pub use builder::RuntimeBuilder;
pub use plans::{PlanRun, Plans};
pub use simulate::{SimReport, SimUse};

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
    shared: Arc<Scheduler>,
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
        let id = self.shared.engine.id;
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

impl Runtime {
    fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Starts a runtime with the defaults (see [`RuntimeBuilder`]).
    pub fn new() -> Result<Runtime> {
        Self::builder().build()
    }

    /// Options for a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// This runtime's identity (buffers remember it).
    pub fn id(&self) -> u64 {
        self.engine().id
    }

    /// Every backend, the CPU first, then GPUs best first.
    pub fn backends(&self) -> Vec<Backend> {
        self.engine().backends()
    }

    /// The GPU backends, in [`backends`](Self::backends) order (lost ones
    /// left out).
    pub fn gpu_backends(&self) -> Vec<Backend> {
        self.engine().gpu_backends()
    }

    /// The faults this runtime injects (`PEL_INJECT`; none by default).
    pub fn faults(&self) -> Inject {
        self.engine().faults_now().clone()
    }

    /// Changes the faults injected from now on: a test can let the model
    /// calibrate, then make a device slow, or lose a GPU after N more GPU
    /// kernels. `gpu-oom` applies only from the runtime's start (set it
    /// with [`RuntimeBuilder::inject`]). A fault on a GPU this runtime does
    /// not have is refused ([`Error::BadInjection`]) and nothing changes.
    pub fn set_faults(&self, faults: Inject) -> Result<()> {
        faults.check_devices(self.engine().gpus.len())?;
        self.engine().gpu_kernels.store(0, Ordering::Relaxed);
        self.engine()
            .faults_on
            .store(faults.any(), Ordering::Relaxed);
        *self
            .engine()
            .inject
            .write()
            .unwrap_or_else(PoisonError::into_inner) = faults;
        Ok(())
    }

    /// Number of GPUs opened.
    pub fn gpu_count(&self) -> usize {
        self.engine().gpus.len()
    }

    /// A description of every backend, in [`backends`](Self::backends) order.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        std::iter::once(self.engine().cpu.info().clone())
            .chain(self.engine().gpus.iter().map(|g| g.info().clone()))
            .collect()
    }

    /// A buffer holding a copy of `data`, valid on the host. Nothing moves to
    /// a GPU until a kernel there needs it.
    pub fn buffer<T: Element>(&self, data: &[T]) -> Buffer<T> {
        self.shared.new_buffer(
            data.len(),
            Some(HostCopy::from_bytes(bytemuck::cast_slice(data))),
        )
    }

    /// A buffer of `len` zeros. No copy exists until a device needs one, and
    /// then it is zeroed there: a GPU output moves no bytes over the bus.
    pub fn zeros<T: Element>(&self, len: usize) -> Buffer<T> {
        self.shared.new_buffer(len, None)
    }

    fn check_owner<T: Element>(&self, what: &str, buf: &Buffer<T>) -> Result<()> {
        let h = buf.handle();
        if h.runtime != self.engine().id {
            return Err(Error::ForeignBuffer {
                kernel: what.to_owned(),
                index: 0,
                owner: h.runtime,
                runtime: self.engine().id,
            });
        }
        Ok(())
    }

    /// The buffer's contents, brought to the host if the valid copy is on a
    /// GPU (the host copy then stays valid too). Each call allocates the
    /// `Vec` it returns; [`read_into`](Self::read_into) and
    /// [`read_to_vec`](Self::read_to_vec) reuse the caller's memory.
    pub fn read<T: Element>(&self, buf: &Buffer<T>) -> Result<Vec<T>> {
        self.check_owner("read", buf)?;
        self.shared.host_read("read", buf.handle().id, |bytes| {
            bytemuck::pod_collect_to_vec(bytes)
        })
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
        self.check_owner("read_into", buf)?;
        self.shared
            .host_read("read_into", buf.handle().id, |bytes| {
                bytemuck::cast_slice_mut::<T, u8>(out).copy_from_slice(bytes)
            })
    }

    /// Replaces `out`'s contents with the buffer's, reusing its capacity.
    pub fn read_to_vec<T: Element>(&self, buf: &Buffer<T>, out: &mut Vec<T>) -> Result<()> {
        out.resize(buf.len(), T::zeroed());
        self.read_into(buf, out)
    }

    /// Where the buffer's current contents live.
    pub fn validity<T: Element>(&self, buf: &Buffer<T>) -> Result<Validity> {
        self.check_owner("validity", buf)?;
        Ok(self
            .engine()
            .table()
            .validity(buf.handle().id)
            .expect("a live handle keeps its table entry"))
    }

    /// Starts recording a trace of every kernel and transfer.
    pub fn enable_trace(&self) {
        self.engine().tracer.enable();
    }

    /// The trace recorded so far (empty unless tracing is on).
    pub fn trace_events(&self) -> Vec<TraceEvent> {
        self.engine().tracer.events()
    }

    /// Writes the trace recorded so far to `path` as Chrome trace-event
    /// JSON (open it in ui.perfetto.dev): one lane per device, named, plus
    /// a lane for transfers.
    pub fn write_trace(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        self.engine().tracer.write(path.as_ref())
    }

    /// Counters of transfers and launches so far.
    pub fn stats(&self) -> Stats {
        let mut s = self.engine().counters.snapshot();
        for g in &self.engine().gpus {
            let (hits, misses, free) = g.pool_stats();
            s.pool_hits += hits;
            s.pool_misses += misses;
            s.pool_free_bytes += free;
            s.host_waits.push(g.host_waits());
        }
        s.live_buffers = self.engine().table().live();
        s.calibration_runs = self.engine().dispatcher().calibration_runs();
        s
    }

    /// Sets every counter of [`stats`](Self::stats) back to zero: transfers,
    /// launches, recoveries, each GPU's pool hits and misses and its host
    /// waits. Three
    /// fields are not counts of events since a reset and keep their values:
    /// `pool_free_bytes` and `live_buffers` say what is held now, and
    /// `calibration_runs` belongs to the performance model, which counts
    /// them since the runtime started.
    pub fn reset_stats(&self) {
        self.engine().counters.reset();
        for g in &self.engine().gpus {
            g.reset_pool_stats();
            g.reset_host_waits();
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
        let mut call = self.engine().call(kernel, args, params)?;
        call.target = target;
        self.shared.run_now(kernel, &call)
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// Checks `kernel` on `args` once and binds it to the CPU, for
    /// [`run_bound`](Self::run_bound); `None` for a kernel placement must
    /// choose an implementation of (CPU variants) or with no CPU code.
    pub(crate) fn bind(&self, kernel: &Kernel, args: &[&dyn BufferArg]) -> Result<Option<Bound>> {
        let handles: Few<&Handle> = args.iter().map(|a| &**a.as_arg().handle).collect();
        self.engine().bind(kernel, &handles)
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// Runs `bound` on its buffers `args` with `params` (the bytes of the
    /// type its kernel takes) on the CPU, skipping what its binding checked,
    /// and copies argument `out.0`'s bytes into `out.1` after; `None` where only an ordinary call ([`execute`](Self::execute)) may
    /// run it now (faults, a trace, a virtual clock, or submitted tasks).
    pub(crate) fn run_bound(
        &self,
        bound: &Bound,
        args: &[&dyn BufferArg],
        params: &[u8],
        out: Option<(usize, &mut [u8])>,
    ) -> Option<Result<()>> {
        let handles: Few<&Handle> = args.iter().map(|a| &**a.as_arg().handle).collect();
        self.shared.run_bound(bound, &handles, params, out)
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
        let call = self.engine().call(kernel, args, params)?;
        self.shared.submit(target, kernel, args, call)
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
        self.shared
            .host_write(buf.handle().id, bytemuck::cast_slice(data))
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
        self.shared.wait_all()
    }

    /// Starts the work each GPU has queued (see [`DeviceInfo::batches`])
    /// without waiting for it: its open batch is submitted now, rather
    /// than when the batch fills or something needs its results. Returns
    /// the launches it submitted. Like `glFlush`, where [`sync`](Self::sync)
    /// is `glFinish`: worth calling before the host turns to long work of
    /// its own, so that the GPUs are not idle meanwhile.
    pub fn flush(&self) -> usize {
        self.engine().start_gpus()
    }

    /// Waits until every submitted task has finished and each GPU has run
    /// everything queued on it (see [`DeviceInfo::batches`]): a point to
    /// stop a clock at. Reading a buffer needs no `sync`; a read waits for
    /// the work that writes what it reads. Fails as [`wait_all`](Self::wait_all)
    /// does, or with the error of a GPU that failed its queued work.
    pub fn sync(&self) -> Result<()> {
        self.wait_all()?;
        self.engine().sync_gpus()
    }

    /// GPU `backend`'s bus as the model has it: each direction's latency
    /// and bandwidth, measured when the runtime started and refined by
    /// downloads timed on a quiet device (`None`: the CPU, or a bus not
    /// measured).
    pub fn bus(&self, backend: Backend) -> Option<crate::TransferModel> {
        match backend {
            Backend::Gpu(g) => self.engine().dispatcher().bus_of(g),
            Backend::Cpu => None,
        }
    }

    /// This machine as a [`Machine`](crate::Machine) description, for the
    /// simulator: the CPU pool's cores, each GPU timed by its samples in
    /// this machine's model, and each GPU's bus as measured (its slower
    /// direction). The CPU's task overhead is measured now: chains of
    /// one-element CPU tasks, one chain a core (a few milliseconds). A GPU's memory is its budget where one is set, else the
    /// largest buffer it allows (a lower bound). Roofline peaks are not
    /// measured here: the CPU's times come from the model too.
    pub fn describe(&self) -> crate::Machine {
        use crate::machine::{CpuSpec, GpuSpec, LinkSpec, Machine, Times};
        let task_overhead_s = simulate::task_overhead(self).unwrap_or(0.0);
        let engine = self.engine();
        let d = engine.dispatcher();
        let keys = d.keys().to_vec();
        let file = d.path().map(|p| p.display().to_string());
        let model = |i: usize| Times::Model {
            file: file.clone(),
            device: keys.get(i).cloned().unwrap_or_default(),
        };
        let mut gpus = Vec::new();
        let mut links = Vec::new();
        for (g, gpu) in engine.gpus.iter().enumerate() {
            let info = gpu.info();
            let limits = info.limits.as_ref().map_or(0, |l| l.max_buffer);
            let link = format!("bus{g}");
            let (latency_s, bandwidth, source) = match d.bus_of(g) {
                Some(b) => (
                    b.h2d.latency_s.max(b.d2h.latency_s),
                    b.h2d.bytes_per_s.min(b.d2h.bytes_per_s),
                    "measured by pel when the runtime started: the slower direction".to_owned(),
                ),
                None => (
                    0.0,
                    1e12,
                    "not measured (a simulated device): 1 TB/s assumed".to_owned(),
                ),
            };
            links.push(LinkSpec {
                name: link.clone(),
                latency_s,
                bandwidth,
                source,
            });
            gpus.push(GpuSpec {
                name: format!("gpu{g}"),
                memory_bytes: gpu.budget().unwrap_or(limits).max(1),
                link,
                peer_link: None,
                shares_host_cores: info.kind == crate::DeviceKind::SoftwareGpu,
                times: model(g + 1),
                source: info.label(),
            });
        }
        let cpu = engine.cpu.info();
        Machine {
            name: "this machine".to_owned(),
            source: "`pel simulate describe`: pel's saved model and bus measurements".to_owned(),
            cpu: CpuSpec {
                cores: cpu.threads.max(1),
                memory_bytes: None,
                times: model(0),
                task_overhead_s,
                copy_bandwidth: simulate::copy_bandwidth(self),
                source: format!(
                    "{}; task overhead measured by chains of one-element CPU tasks, copy bandwidth by reads of an 8 MiB buffer",
                    cpu.label()
                ),
            },
            gpus,
            links,
        }
    }

    /// On a simulated machine ([`RuntimeBuilder::simulate`]): what the run
    /// has done so far on its virtual clock (`None` on a real machine).
    /// [`SimReport::since`] gives what happened between two reports.
    pub fn simulation(&self) -> Option<SimReport> {
        let t = self.engine().timeline.as_ref()?.totals();
        Some(SimReport::from_totals(t))
    }

    /// The description of one backend.
    pub fn device(&self, backend: Backend) -> Result<DeviceInfo> {
        self.engine().device(backend)
    }

    /// The wgpu device and queue behind GPU `backend`, for a program that
    /// runs wgpu work of its own beside pel's on the same device (`None`:
    /// the CPU, or a simulated device). Its submissions go on the same
    /// queue as pel's batches, but pel's launches still open are not
    /// before them: [`flush`](Self::flush) first where that matters. pel's
    /// buffers are not among what it can reach, so nothing it does
    /// touches them.
    pub fn wgpu_device(&self, backend: Backend) -> Result<Option<(wgpu::Device, wgpu::Queue)>> {
        self.engine().wgpu(backend)
    }

    /// What [`run`](Self::run) would decide for this call, with the
    /// estimates per backend and the reason, without running anything.
    pub fn explain<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        params: &P,
    ) -> Result<Decision> {
        let call = self.engine().call(kernel, args, params)?;
        let table = self.engine().table();
        self.engine().explain(&table, kernel, &call)
    }

    /// The most recent placement decisions (up to 1,024), oldest first.
    pub fn decisions(&self) -> Vec<Decision> {
        self.engine().dispatcher().decisions()
    }

    /// The performance model, one row per (kernel, device, size bucket).
    pub fn model_rows(&self) -> Vec<ModelRow> {
        self.engine().dispatcher().rows()
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
        let call = self.engine().call(kernel, args, params)?;
        if split_items(kernel, &call.args, call.params).is_none() {
            return Ok(None);
        }
        let d = self.explain(kernel, args, params)?;
        Ok(self
            .engine()
            .dispatcher()
            .learned_share(kernel.id(), call.size, &d.estimates))
    }

    /// What the model knows about splitting calls between a GPU and the CPU.
    pub fn split_rows(&self) -> Vec<SplitRow> {
        self.engine().dispatcher().split_rows()
    }

    /// The file the performance model is loaded from and saved to, if any.
    pub fn model_path(&self) -> Option<std::path::PathBuf> {
        self.engine()
            .dispatcher()
            .path()
            .map(std::path::Path::to_path_buf)
    }

    /// Writes the performance model now (it is also written when the last
    /// clone of the runtime drops, and whenever an entry finishes calibrating).
    pub fn save_model(&self) {
        self.engine().dispatcher().save();
    }

    /// Forgets every measurement of every kernel (the bus model stays).
    pub fn reset_model(&self) {
        let mut d = self.engine().dispatcher();
        d.reset();
        d.save();
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("id", &self.shared.engine.id)
            .field("backends", &self.backends())
            .finish()
    }
}

#[cfg(test)]
mod bound_tests;
#[cfg(test)]
mod plans_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

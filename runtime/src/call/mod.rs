//! One call's life, in order: prepare (the arguments against the
//! kernel's bindings, `prepare.rs`) → place (ask the dispatcher, with the
//! devices that can take it, `place.rs`) → stage (make every argument valid
//! there, `stage.rs`) → execute (on the device, outside the table's lock,
//! `execute.rs`, `split.rs`) → record (the write, the time, `record.rs`).
//! When a device fails the call, `recover.rs` rebuilds what it held and the
//! loop below places the call again.
//!
//! This layer owns the engine's state ([`Engine`]); it knows nothing of
//! submitted tasks: the graph waits for a call's predecessors before it
//! calls, and completes its task in the `done` hook.

pub(crate) mod bound;
mod execute;
mod host;
mod place;
mod prepare;
mod queued;
mod record;
mod recover;
mod split;
mod stage;

pub(crate) use bound::Bound;
#[cfg(test)]
pub(crate) use host::HOST_CALLS;
pub(crate) use queued::{Queued, QueuedCall};
pub(crate) use split::split_items;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::buffer::{Handle, HostCopy, Table};
use crate::device::DeviceInfo;
use crate::device::cpu::CpuDevice;
use crate::device::timeline::Timeline;
use crate::device::{Device, Memory};
pub(crate) use crate::dispatch::Placement;
use crate::dispatch::{Dispatcher, Reason};
use crate::error::{Error, Result};
use crate::frames::{self, Frame};
use crate::ids::{Backend, Target};
use crate::inject::Inject;
use crate::kernel::{Kernel, RawSlice};
use crate::stats::Counters;
use crate::trace::Tracer;

/// What `run_call` calls with the outcome, under the table's lock.
pub(crate) type Done<'a> = &'a mut dyn FnMut(&mut Table, &Result<RunInfo>);

/// A kernel by this name panics inside `run_call`, after its leases are
/// taken, as a broken invariant of pel's would (the unit tests' stand-in
/// for a bug inside pel).
#[cfg(test)]
pub(crate) const BROKEN_INVARIANT: &str = "pel-test-broken-invariant";

/// What runs calls: the devices, the buffer table, the dispatcher, and
/// what observes them. The graph above shares one.
pub(crate) struct Engine {
    pub(crate) id: u64,
    pub(crate) cpu: CpuDevice,
    pub(crate) gpus: Vec<Box<dyn Device>>,
    pub(crate) table: Mutex<Table>,
    /// Signalled whenever a call gives back its buffer leases.
    pub(crate) leases: Condvar,
    pub(crate) counters: Counters,
    pub(crate) dispatcher: Mutex<Dispatcher>,
    pub(crate) tracer: Arc<Tracer>,
    /// A simulated machine's virtual clock (`RuntimeBuilder::simulate`).
    pub(crate) timeline: Option<Arc<Timeline>>,
    /// Where the trace goes when the engine drops (`PEL_TRACE`, builder).
    pub(crate) trace_file: Option<std::path::PathBuf>,
    /// Faults to inject (`PEL_INJECT`, `Runtime::set_faults`).
    pub(crate) inject: RwLock<Inject>,
    /// GPU kernels started, for `gpu-lost@N`.
    pub(crate) gpu_kernels: AtomicU64,
    /// Whether any fault is injected (read on every call, so no lock).
    pub(crate) faults_on: AtomicBool,
    /// Kernels whose CPU implementation has run without failing.
    pub(crate) proven: RwLock<crate::hash::FxSet<u64>>,
    /// Calls queued on a GPU whose batches have not finished.
    pub(crate) queued: Mutex<Queued>,
    /// Whether `queued` holds any call, set and cleared under its lock:
    /// every call settles the queued ones, and a CPU-only program should
    /// not take a lock for it.
    pub(crate) queued_any: AtomicBool,
}

/// A split call's CPU and GPU seconds.
pub(crate) type Parts = Option<(f64, f64)>;

/// A launch queued on a GPU: (GPU, ticket).
pub(crate) type Ticket = Option<(usize, u64)>;

/// What the dispatcher counts of a call: the backend it charged the call
/// to (to discharge), and the ticket of a launch still queued on a GPU.
pub(crate) struct Charge {
    decided: Option<Backend>,
    ticket: Ticket,
}

impl Drop for Engine {
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

/// A short list kept on the stack: a call's arguments, its buffer ids, its
/// host slices (every call makes them; few kernels have more than eight).
pub(crate) type Few<T> = smallvec::SmallVec<[T; 8]>;

/// A checked call: its buffers, params bytes, problem size and launch size.
pub(crate) struct Call<'a> {
    pub(crate) args: Few<&'a Handle>,
    pub(crate) params: &'a [u8],
    pub(crate) size: u64,
    pub(crate) workgroups: u64,
    /// The buffers it only reads, and those it writes (see [`access_sets`]).
    pub(crate) reads: Few<u64>,
    pub(crate) writes: Few<u64>,
    /// The submitted task it runs, if any.
    pub(crate) task: Option<u64>,
    /// Where it should run.
    pub(crate) target: Target,
    /// Where it was placed already (a task, placed when it became ready).
    pub(crate) placed: Option<Placement>,
}

impl<'a> Call<'a> {
    /// The call as `variant` of its kernel runs it: at the variant's own
    /// launch size.
    pub(crate) fn for_variant(&self, variant: &Kernel) -> Call<'a> {
        let lens: Few<usize> = self.args.iter().map(|h| h.len).collect();
        Call {
            args: self.args.clone(),
            params: self.params,
            size: self.size,
            workgroups: variant.workgroups(self.params, &lens),
            reads: self.reads.clone(),
            writes: self.writes.clone(),
            task: self.task,
            target: self.target,
            placed: self.placed,
        }
    }

    /// Every argument's id, in order.
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.args.iter().map(|h| h.id).collect()
    }
}

/// What a prepared call runs: host slices, bound GPU buffers, or both.
enum Work {
    Cpu(Few<RawSlice>),
    Gpu(usize, Vec<(Memory, u64)>),
    Split(SplitWork),
}

/// A call split between GPU `gpu` (items `0..cut`) and the CPU (the rest).
struct SplitWork {
    gpu: usize,
    items: u64,
    cut: u64,
    raw: Few<RawSlice>,
    bound: Vec<(Memory, u64)>,
}

/// What one kernel call did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunInfo {
    /// Where it ran.
    pub backend: Backend,
    /// Why it ran there.
    pub reason: Reason,
    /// Wall time of the call, transfers of its inputs included. A call
    /// queued on a GPU (see [`DeviceInfo::batches`](crate::DeviceInfo::batches))
    /// returns once recorded: its time is the host's, not the kernel's.
    pub elapsed: Duration,
    /// Time of the execution alone (what the performance model records);
    /// for a call queued on a GPU, the time to record its launch (the
    /// model gets the device's time of it once its batch has finished).
    pub exec: Duration,
    /// When the call was split: the share of its items that `backend` (a
    /// GPU) computed while the CPU computed the rest.
    pub split: Option<f64>,
}

/// What waits for a buffer, for the error that says so (made only then).
#[derive(Clone, Copy)]
pub(crate) enum What<'a> {
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
    shared: &'a Engine,
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

impl Engine {
    /// Runs a prepared call: leases its buffers, places it (or takes the
    /// placement a task was given), stages its arguments, executes it and
    /// records what it wrote. `done` sees the outcome under the table's
    /// lock, before the leases wake anyone: the graph completes a task
    /// there.
    ///
    /// A panic inside pel while the call runs (a broken invariant: the
    /// kernel's own panics are caught where it runs) gives the leases back
    /// and becomes [`Error::Internal`] for this call, never a hang.
    pub(crate) fn run_call(
        &self,
        kernel: &Kernel,
        call: &Call<'_>,
        done: Done<'_>,
    ) -> Result<RunInfo> {
        let mut finished = false;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_call_inner(kernel, call, &mut |table, r| {
                finished = true;
                done(table, r)
            })
        }));
        outcome.unwrap_or_else(|payload| {
            let e = Error::Internal {
                what: format!("kernel `{}`", kernel.name()),
                message: crate::device::cpu::panic_message(payload.as_ref()),
            };
            if !finished {
                let mut table = self.table();
                done(&mut table, &Err(e.clone()));
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
    fn run_call_inner(&self, kernel: &Kernel, call: &Call<'_>, done: Done<'_>) -> Result<RunInfo> {
        let (target, placed) = (call.target, call.placed);
        let start = Instant::now();
        let (args, size) = (&call.args, call.size);
        let (read_ids, write_ids) = (&call.reads[..], &call.writes[..]);
        // Every argument's id, made only where needed (off the CPU's path).
        let all_ids = || -> Vec<u64> { args.iter().map(|h| h.id).collect() };

        // Lease every argument, then prepare under the table's lock: the
        // decision, and every argument made valid where the call will run. The guard,
        // made before the table is locked, gives the leases back if this
        // unwinds, after the table's lock is.
        let mut lease = LeaseGuard {
            shared: self,
            reads: read_ids,
            writes: write_ids,
            held: false,
        };
        let what = What::Kernel(kernel.name());
        let mut table = self.table_ready(what, read_ids, write_ids, true)?;
        lease.held = true;
        // The unit tests stand in for a bug inside pel here.
        #[cfg(test)]
        if kernel.name() == BROKEN_INVARIANT {
            panic!("a broken invariant, standing in for a bug in pel");
        }
        let mut placed = placed;
        // A call that runs on the CPU whatever happens takes the host path.
        if placed.is_none() && self.host_path_open(&table, kernel, call) {
            match self.place(&table, target, kernel, call, &[], true) {
                Ok(p)
                    if p.backend == Backend::Cpu
                        && p.split.is_none()
                        && self.host_variant_open(kernel, target, p.variant) =>
                {
                    let used = kernel.implementation(p.variant);
                    return self.run_on_host(table, lease, (kernel, used), call, p, start, done);
                }
                // Charged there: the loop runs it as placed.
                Ok(p) => placed = Some(p),
                // Placed again below, which reports it.
                Err(_) => {}
            }
        }
        // GPUs that failed this call: it is not placed on them again.
        let mut avoid: Vec<usize> = Vec::new();
        // Only an automatic call runs again elsewhere when its backend
        // fails it for a reason of its own; a forced one returns the error.
        let auto = target == Target::Auto;
        let mut target = target;
        let mut recovered = false;
        // The implementation that ran last (a variant of the kernel, or
        // the kernel itself): the model's sample and the lineage are its.
        let mut used: &Kernel;
        let (result, decided, host_written, ticket) = loop {
            let placement = self.place_call(&mut table, target, placed, kernel, call, &avoid);
            // A variant runs in the kernel's stead, at its own launch size.
            let variant = placement.as_ref().map_or(0, |p| p.variant);
            used = kernel.implementation(variant);
            let variant_call = (variant != 0).then(|| call.for_variant(used));
            let call = variant_call.as_ref().unwrap_or(call);
            let kernel = used;
            let planned = placement
                .as_ref()
                .ok()
                .map(|p| (p.backend, p.split.is_some()));
            // A call placed here was charged as it was placed (a task, when
            // the graph placed it).
            let charged = match (&placement, placed) {
                (Ok(p), None) => Some((p.backend, p.expect_s.unwrap_or(0.0))),
                _ => None,
            };
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
                && !self.gpus.is_empty()
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
            // A call that could not be made ready never runs: its charge
            // is taken back.
            let decided = match (&prepared, placed) {
                (_, Some(p)) => Some(p.backend),
                (Ok((p, _)), None) => Some(p.backend),
                (Err(_), None) => {
                    if let Some((b, secs)) = charged {
                        self.dispatcher().uncharge(b, secs);
                    }
                    None
                }
            };
            let mut host_written = false;
            // User code runs on this thread (the CPU implementation, on the
            // host or a simulated device): a call into pel from it must see
            // what this call holds.
            let user_code = on_host
                || matches!(&prepared, Ok((_, Work::Gpu(g, _))) if self.gpus[*g].runs_cpu_code());
            let frame = user_code.then(|| {
                frames::enter(
                    self.id,
                    kernel.shared_name(),
                    read_ids,
                    write_ids,
                    call.task,
                )
            });
            let result = prepared.and_then(|(placement, work)| {
                self.execute_work(kernel, call, placement, work, start, &mut host_written)
            });
            let ticket = match &result {
                Ok((_, _, Some(ticket))) => Some(*ticket),
                _ => None,
            };
            let result = result.map(|(info, parts, _)| (info, parts));
            drop(frame);
            table = self.table();
            // A GPU lost while the call ran took its result with it, even if
            // the kernel itself completed: run again elsewhere.
            let result = match (result, planned) {
                (Ok(_), Some((Backend::Gpu(g), false)))
                    if table.gpu_lost(g) || self.gpus[g].check_alive().is_err() =>
                {
                    Err(Error::DeviceLost {
                        device: self.gpus[g].info().backend.to_string(),
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
                !avoid.contains(&g)
                    && !host_written
                    && (self.gpus[g].check_alive().is_err() || self.within_budget(args, g))
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
                    matches!(b, Backend::Gpu(g) if !self.gpus[*g].has_pipeline(kernel.id()));
                self.dispatcher()
                    .exclude(kernel.id(), *b, e.to_string(), permanent);
            }
            let retry = tied.as_ref().is_some_and(|_| {
                auto && (!host_written
                    || write_ids
                        .iter()
                        .all(|id| kept.iter().any(|(k, _)| k == id) || table.valid_off_host(*id)))
            });
            let again = if retry {
                if host_written {
                    let e = &tied.as_ref().expect("retry means tied").1;
                    for id in write_ids {
                        match kept.iter().position(|(k, _)| k == id) {
                            Some(i) => table.restore(*id, kept[i].1.clone()),
                            None => table.written_garbage(*id, e),
                        }
                    }
                }
                true
            } else {
                if unproven && result.is_ok() {
                    self.prove_on_cpu(kernel.id());
                }
                if let Some(g) = fixable {
                    if self.gpus[g].check_alive().is_err() {
                        self.recover_gpu(&mut table, g);
                    }
                    avoid.push(g);
                }
                fixable.is_some()
            };
            if !again {
                break (result, decided, host_written, ticket);
            }
            // Run again elsewhere, placed afresh.
            if let Some(b) = decided {
                self.dispatcher().finished(kernel.id(), b, size);
            }
            self.counters.recovered();
            recovered = true;
            placed = None;
            target = Target::Auto;
        };
        let result = result.map(|(mut info, parts)| {
            if recovered {
                info.reason = Reason::Recovered;
            }
            (info, parts)
        });

        let charge = Charge { decided, ticket };
        let result = self.record(
            &mut table,
            (kernel, used),
            call,
            result,
            charge,
            host_written,
        );
        table.release_lease(read_ids, write_ids);
        lease.held = false;
        done(&mut table, &result);
        self.unlock(table);
        result
    }

    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The table, once `reads` may be read and `writes` written: with
    /// `lease`, holding the call's leases (shared on `reads`, exclusive on
    /// `writes`), otherwise once no running call conflicts. A wait this
    /// thread could only make for itself (its own kernel holds the lease)
    /// is refused. (Waiting for the submitted tasks that come first is the
    /// graph's, before it calls.)
    pub(crate) fn table_ready(
        &self,
        what: What<'_>,
        reads: &[u64],
        writes: &[u64],
        lease: bool,
    ) -> Result<MutexGuard<'_, Table>> {
        let mut table = self.table();
        loop {
            let free = if lease {
                table.try_lease(reads, writes)
            } else {
                reads.iter().all(|id| table.readable(*id))
                    && writes.iter().all(|id| table.writable(*id))
            };
            if free {
                return Ok(table);
            }
            if let Some((frame, id)) = frames::conflict(self.id, reads, writes) {
                return Err(own_argument(&what.to_string(), &frame, id));
            }
            table.waiters += 1;
            table = self
                .leases
                .wait(table)
                .unwrap_or_else(PoisonError::into_inner);
            table.waiters -= 1;
        }
    }

    /// Gives the table back and wakes whoever waits for leases.
    pub(crate) fn unlock(&self, table: MutexGuard<'_, Table>) {
        // A wake-up is a system call: only when someone waits.
        let waiting = table.waiters > 0;
        drop(table);
        if waiting {
            self.leases.notify_all();
        }
    }

    pub(crate) fn dispatcher(&self) -> MutexGuard<'_, Dispatcher> {
        self.dispatcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults_now(&self) -> std::sync::RwLockReadGuard<'_, Inject> {
        self.inject.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every backend, the CPU first, then the GPUs not lost.
    pub(crate) fn backends(&self) -> Vec<Backend> {
        std::iter::once(Backend::Cpu)
            .chain(self.gpu_backends())
            .collect()
    }

    /// The GPUs not lost.
    pub(crate) fn gpu_backends(&self) -> Vec<Backend> {
        (0..self.gpus.len())
            .filter(|&g| self.gpus[g].check_alive().is_ok())
            .map(Backend::Gpu)
            .collect()
    }

    /// The description of one backend.
    pub(crate) fn device(&self, backend: Backend) -> Result<DeviceInfo> {
        match backend {
            Backend::Cpu => Ok(self.cpu.info().clone()),
            Backend::Gpu(i) => self
                .gpus
                .get(i)
                .map(|g| g.info().clone())
                .ok_or_else(|| self.no_such(backend)),
        }
    }

    /// GPU `backend`'s wgpu device and queue (`None`: not a wgpu GPU).
    pub(crate) fn wgpu(&self, backend: Backend) -> Result<Option<(wgpu::Device, wgpu::Queue)>> {
        self.has_device(backend)?;
        Ok(match backend {
            Backend::Cpu => None,
            Backend::Gpu(i) => self.gpus[i].wgpu(),
        })
    }

    /// `Ok` if `backend` is one of this runtime's, without copying its
    /// description (a call that names its backend asks on every call).
    pub(crate) fn has_device(&self, backend: Backend) -> Result<()> {
        match backend {
            Backend::Gpu(i) if i >= self.gpus.len() => Err(self.no_such(backend)),
            _ => Ok(()),
        }
    }

    pub(crate) fn no_such(&self, backend: Backend) -> Error {
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

    /// Whether the kernel's CPU implementation has run without failing.
    pub(crate) fn proven_on_cpu(&self, kernel: u64) -> bool {
        self.proven
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&kernel)
    }

    pub(crate) fn prove_on_cpu(&self, kernel: u64) {
        self.proven
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kernel);
    }

    pub(crate) fn trace_transfer(&self, what: &str, bytes: u64, began: Instant) {
        if self.tracer.on() {
            let name = format!("{what} ({})", crate::ids::human_bytes(bytes));
            let lane = self.tracer.transfer_lane();
            self.tracer.span(name, lane, began);
            self.trace_waits();
        }
    }
}

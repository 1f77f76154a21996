//! The scheduler: the engine below, plus what submitted work needs: the
//! edges between tasks, the workers that run placed tasks, and the count
//! of tasks pending. A synchronous call or a host access goes through here
//! too, to wait for the submitted tasks that come before it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::buffer::{Buffer, BufferArg, Handle, HostCopy, Release, Table};
use crate::call::{Bound, Call, Engine, RunInfo};
use crate::dispatch;
use crate::error::{Error, Result};
use crate::frames;
use crate::ids::{Backend, Target};
use crate::kernel::{Element, Kernel};

use super::edges::Edges;
use super::workers::{Job, Pending, Workers};
use super::{Task, TaskInner};

/// Handles of tasks that never ran (failed before placement), kept until
/// the table's lock is given back, since dropping a handle takes that lock.
#[derive(Default)]
struct Graveyard {
    handles: Vec<Arc<Handle>>,
    /// The tasks they came from: counted as pending for `wait_all` until
    /// their handles are gone.
    tasks: usize,
}

/// The engine and the task graph on it; what a `Runtime` holds.
pub(crate) struct Scheduler {
    pub(crate) engine: Engine,
    /// Lock order: the table's lock may be held while this one is taken,
    /// never the other way round.
    edges: Mutex<Edges>,
    /// One worker thread per device for submitted tasks.
    workers: Workers,
    /// Submitted tasks not finished yet.
    pub(crate) pending: Arc<Pending>,
    /// Buffer handles of tasks that finished without running, dropped as
    /// soon as the table's lock is free (a drop may free the buffer).
    graveyard: Mutex<Graveyard>,
    /// The graveyard has handles in it.
    buried: AtomicBool,
    /// Edges may exist: set when a task is submitted, cleared when the
    /// last edge goes, both under the edges' lock. A call made while it is
    /// clear pays nothing for the graph.
    submitted: AtomicBool,
}

impl Release for Scheduler {
    fn release_buffer(&self, id: u64) {
        self.engine.table().remove(id, &self.engine.gpus);
        let edges = {
            let mut edges = self.edges();
            let removed = edges.remove(id);
            self.edges_changed(&edges);
            removed
        };
        drop(edges);
    }
}

impl Scheduler {
    pub(crate) fn new(engine: Engine) -> Self {
        let workers = Workers::new(engine.id, engine.cpu.info().threads);
        Scheduler {
            engine,
            edges: Mutex::default(),
            workers,
            pending: Arc::default(),
            graveyard: Mutex::default(),
            buried: AtomicBool::new(false),
            submitted: AtomicBool::new(false),
        }
    }

    fn edges(&self) -> MutexGuard<'_, Edges> {
        self.edges.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether calls still look at the graph (some buffer may have edges).
    #[cfg(test)]
    pub(crate) fn graph_in_use(&self) -> bool {
        self.submitted.load(Ordering::Acquire)
    }

    /// After edges were taken away (under their lock): with none left,
    /// calls skip the graph until the next submit.
    fn edges_changed(&self, edges: &Edges) {
        if edges.is_empty() {
            self.submitted.store(false, Ordering::Release);
        }
    }

    pub(crate) fn new_buffer<T: Element>(
        self: &Arc<Self>,
        len: usize,
        data: Option<HostCopy>,
    ) -> Buffer<T> {
        crate::kernel::assert_element_layout::<T>();
        let bytes = len as u64 * std::mem::size_of::<T>() as u64;
        let id = self.engine.table().insert(bytes, len, data);
        let owner: std::sync::Weak<Scheduler> = Arc::downgrade(self);
        Buffer::from_handle(Arc::new(Handle {
            id,
            runtime: self.engine.id,
            len,
            elem: T::TYPE,
            elem_size: std::mem::size_of::<T>(),
            bytes,
            owner,
        }))
    }

    /// Runs a prepared call now, once the submitted tasks it depends on
    /// have finished (failing with a failure among them).
    pub(crate) fn run_now(&self, kernel: &Kernel, call: &Call<'_>) -> Result<RunInfo> {
        // While no buffer has edges (no task submitted, or all of them
        // finished and their edges gone), a call pays nothing for the graph.
        let graph = self.submitted.load(Ordering::Acquire);
        if graph {
            let what = || format!("kernel `{}`", kernel.name());
            self.settle_before(&what, &call.reads, &call.writes)?;
            let all = call.reads.iter().chain(call.writes.iter());
            if let Some(e) = self.edges().failed_input(kernel.name(), all) {
                return Err(e);
            }
        }
        let timeline = self.engine.timeline.as_ref();
        self.engine.run_call(kernel, call, &mut |_, result| {
            // On a simulated machine the host waits for a call it made on
            // the CPU, as a real one does (a GPU's is queued, and returns).
            if let (Some(t), Ok(info)) = (timeline, result) {
                if info.backend == Backend::Cpu {
                    t.host_waits_until(t.last_end());
                }
            }
            // Read again: a task submitted while the call ran may have
            // finished before it, and its edge is this call's to clear.
            if result.is_ok() && self.submitted.load(Ordering::Acquire) {
                let mut edges = self.edges();
                for id in call.writes.iter() {
                    edges.prune(*id, true);
                }
                for id in call.reads.iter() {
                    edges.prune(*id, false);
                }
                self.edges_changed(&edges);
            }
        })
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    /// Runs a bound call ([`Engine::run_bound`]) while nothing submitted
    /// is pending and the engine allows it; `None` where the caller must
    /// make an ordinary call instead.
    pub(crate) fn run_bound(
        &self,
        bound: &Bound,
        args: &[&Handle],
        params: &[u8],
        out: Option<(usize, &mut [u8])>,
    ) -> Option<Result<()>> {
        if self.submitted.load(Ordering::Acquire) || !self.engine.quiet() {
            return None;
        }
        Some(self.engine.run_bound(bound, args, params, out))
    }

    /// The contents of buffer `id` on the host, once its writer has
    /// finished (failing with its failure), handed to `take`.
    pub(crate) fn host_read<R>(
        &self,
        what: &str,
        id: u64,
        take: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        // No edges, no writer to wait for (as for a call, `run_now`).
        if self.submitted.load(Ordering::Acquire) {
            self.settle_before(&|| what.to_owned(), &[id], &[])?;
            if let Some(e) = self.edges().failed_writer(id) {
                return Err(e);
            }
        }
        self.engine.host_read(what, id, take)
    }

    /// Replaces buffer `id`'s contents from the host, once the tasks that
    /// use it have finished.
    pub(crate) fn host_write(&self, id: u64, data: &[u8]) -> Result<()> {
        // No edges: no task to wait for, no producer to forget.
        if !self.submitted.load(Ordering::Acquire) {
            return self.engine.host_write(id, data);
        }
        self.settle_before(&|| "write".to_owned(), &[], &[id])?;
        self.engine.host_write(id, data)?;
        let mut edges = self.edges();
        edges.set_producer(id, None);
        self.edges_changed(&edges);
        Ok(())
    }

    /// Waits for the submitted tasks that must come before an access that
    /// reads `reads` and writes `writes`.
    fn settle_before(
        &self,
        what: &dyn Fn() -> String,
        reads: &[u64],
        writes: &[u64],
    ) -> Result<()> {
        loop {
            let first = self.edges().unsettled(reads, writes);
            if first.is_empty() {
                return Ok(());
            }
            let what = what();
            for t in &first {
                self.wait_task(t, &what)?;
            }
        }
    }

    /// Adds a prepared call to the graph as a task: it depends on the
    /// producer of every buffer it uses and on the readers of what it
    /// writes, and is placed as soon as they have finished.
    pub(crate) fn submit(
        self: &Arc<Self>,
        target: Target,
        kernel: &Kernel,
        args: &[&dyn BufferArg],
        call: Call<'_>,
    ) -> Result<Task> {
        match target {
            Target::On(b) => {
                self.engine.has_device(b)?;
            }
            Target::Split { gpu, .. } => {
                self.engine.has_device(Backend::Gpu(gpu))?;
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
            (call.reads.to_vec(), call.writes.to_vec()),
        ));
        let (read_ids, write_ids) = (&task.reads, &task.writes);

        let mut table = self.engine.table();
        let mut edges = self.edges();
        self.submitted.store(true, Ordering::Release);
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
            if let Some(p) = edges.producer(*id) {
                depend(p, true);
            }
        }
        for id in write_ids {
            for c in edges.consumers(*id) {
                depend(c, false);
            }
        }
        for id in write_ids {
            edges.set_producer(*id, Some(Arc::clone(&task)));
        }
        for id in read_ids {
            edges.add_consumer(*id, Arc::clone(&task));
        }
        drop(edges);
        self.pending.add();
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
            s.runtime = Some(Arc::clone(self));
        }
        // A ready task that its GPU queues is recorded here, on the
        // caller's thread: recording does not wait for the device, and a
        // hand-off to the GPU's worker would cost more than the recording.
        let mut inline = None;
        if waiting == 0 {
            self.settle(&mut table, vec![Arc::clone(&task)], Some(&mut inline));
        }
        self.engine.unlock(table);
        self.bury();
        if let Some(job) = inline {
            super::workers::run(job);
        }
        Ok(Task { inner: task })
    }

    /// Runs a submitted task that its device's worker has taken.
    pub(crate) fn run_job(&self, job: Job) {
        let task = &job.task;
        let handles = task.args();
        let mut call = task.call(&handles);
        call.placed = Some(job.placement);
        // The outcome goes to the task (and its dependents) under the
        // table's lock.
        let _ = self
            .engine
            .run_call(&task.kernel, &call, &mut |table, result| {
                if let Some(t) = &self.engine.timeline {
                    // Tasks run one at a time on a simulated machine: the
                    // last kernel to end is this task's.
                    *task
                        .virtual_end
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) =
                        Some((Arc::clone(t), t.last_end()));
                }
                if let Some(ready) = task.complete(result.clone()) {
                    self.pending.finish(result);
                    self.settle(table, ready, None);
                }
            });
        self.bury();
        // No lock is held here: the buffers may be freed now.
        drop(call);
        drop(handles);
        drop(task.take_args());
    }

    /// Tasks whose dependencies have all finished: each is placed and sent
    /// to its device's worker, or fails for a failed dependency (and so on
    /// down the graph). With `inline`, one task its GPU queues is left
    /// there for the caller to run once it has let go of the table.
    pub(crate) fn settle(
        &self,
        table: &mut Table,
        mut ready: Vec<Arc<TaskInner>>,
        mut inline: Option<&mut Option<Job>>,
    ) {
        while let Some(t) = ready.pop() {
            let failed = t.state().failed.take();
            let outcome = match failed {
                Some(e) => Err(e),
                None => match self.place_task(table, &t) {
                    Ok(job) => {
                        match inline.as_deref_mut() {
                            // On a simulated machine every task ready when
                            // submitted runs on the submitting thread: nothing
                            // waits for a device, and the run is the same
                            // every time.
                            Some(slot @ None)
                                if self.engine.queues(&job.placement)
                                    || self.engine.timeline.is_some() =>
                            {
                                *slot = Some(job);
                            }
                            _ => self.workers.send(job_worker(&job), job),
                        }
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            let outcome_for_count = outcome.clone();
            ready.extend(t.complete(outcome).unwrap_or_default());
            // Its buffers are let go once the table's lock is given back,
            // and only then does `wait_all` stop counting it.
            {
                let mut g = self
                    .graveyard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                g.handles.extend(t.take_args());
                g.tasks += 1;
            }
            self.buried.store(true, Ordering::Release);
            self.pending.finish(&outcome_for_count);
        }
    }

    /// Drops the handles of tasks that finished without running, now that
    /// no lock is held.
    fn bury(&self) {
        if self.buried.swap(false, Ordering::Acquire) {
            let dead = std::mem::take(
                &mut *self
                    .graveyard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            drop(dead.handles);
            for _ in 0..dead.tasks {
                self.pending.never_ran();
            }
        }
    }

    /// Places a ready task, charges its device's queue and starts its
    /// uploads if that device is busy: the job for its device's worker.
    fn place_task(&self, table: &mut Table, t: &Arc<TaskInner>) -> Result<Job> {
        let handles = t.args();
        let call = t.call(&handles);
        let placement = self
            .engine
            .place(table, t.target, &t.kernel, &call, &[], false)?;
        let busy = {
            let mut disp = self.engine.dispatcher();
            disp.enqueue(t.kernel.id(), placement.backend, t.size);
            disp.busy(placement.backend)
        };
        if let (Backend::Gpu(g), true) = (placement.backend, busy) {
            self.engine.prefetch(table, &call.args, g);
        }
        t.set_placement(placement);
        Ok(Job {
            task: Arc::clone(t),
            placement,
        })
    }

    /// Waits for task `t` before `what` goes on. From inside a kernel or a
    /// task of this runtime, the wait first makes sure it is not waiting
    /// for itself, then runs the queued work it needs on this thread rather
    /// than block: the worker that would run it may be this one.
    pub(crate) fn wait_task(&self, t: &Arc<TaskInner>, what: &str) -> Result<()> {
        let id = self.engine.id;
        if !frames::inside(id) && !frames::is_worker_of(id) {
            t.wait_for(None);
            return Ok(());
        }
        let running = frames::tasks(id);
        while !t.is_finished() {
            let needed = t.unfinished_closure();
            for n in &needed {
                let cycle = if running.contains(&n.id) {
                    Some(format!(
                        "it waits for task #{} (`{}`), which cannot finish before the task running this wait (#{}) does",
                        t.id,
                        t.kernel.name(),
                        n.id
                    ))
                } else {
                    frames::conflict(id, &n.reads, &n.writes).map(|(frame, buffer)| {
                        format!(
                            "it waits for task #{} (`{}`), which needs buffer #{buffer} that `{}`, running this wait, holds until it returns",
                            n.id,
                            n.kernel.name(),
                            frame.kernel
                        )
                    })
                };
                if let Some(message) = cycle {
                    return Err(Error::WouldDeadlock {
                        what: what.to_owned(),
                        message,
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
                        self.pending.left_worker();
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

    /// `Runtime::wait_all`: every submitted task finished and its buffers
    /// let go; the first failure since the last call.
    pub(crate) fn wait_all(&self) -> Result<()> {
        let id = self.engine.id;
        if frames::inside(id) || frames::is_worker_of(id) {
            return Err(Error::WouldDeadlock {
                what: "wait_all".to_owned(),
                message: "called from inside a kernel or a task, it would wait for the task or call running it; wait for the tasks it needs with Task::wait".to_owned(),
            });
        }
        let waited = self.pending.wait();
        if let Some(t) = &self.engine.timeline {
            t.wait_all();
        }
        waited
    }
}

/// The worker that runs `job`: its device's, but the CPU's for a split
/// call, which starts the GPU part beside its CPU part.
fn job_worker(job: &Job) -> usize {
    match job.placement.split {
        Some(_) => 0,
        None => dispatch::device_index(job.placement.backend),
    }
}

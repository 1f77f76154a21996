//! Submitted tasks and the order between them.
//!
//! [`Runtime::submit`](crate::Runtime::submit) turns a kernel call into a
//! task and returns at once. The order between tasks comes from the shader:
//! each argument's reflected access says whether the task reads or writes
//! that buffer, and the buffer table remembers, per buffer, the task that
//! produces its current version and the tasks that read it. A new task
//! waits for the producer of everything it uses (read after write; a written
//! storage binding is `read_write`, so it reads too) and, for what it
//! writes, for the readers of the version it replaces (write after read).
//!
//! A task whose dependencies have all finished is placed at once (the
//! dispatcher counts what each device already has queued) and sent to that
//! device's worker thread; its uploads may start while the device is still
//! busy (prefetch). A task whose data dependency failed does not run: it
//! fails with [`Error::DependencyFailed`], naming the cause. An ordering
//! dependency alone (a reader that failed) does not fail the writer after it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};

mod edges;
mod schedule;
mod workers;

pub(crate) use schedule::Scheduler;

use crate::buffer::Handle;
use crate::call::{Call, Few, Placement, RunInfo};
use crate::error::{Error, Result};
use crate::ids::Target;
use crate::kernel::Kernel;

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);

/// A submitted kernel call; see [`Runtime::submit`](crate::Runtime::submit).
///
/// Dropping the handle does not cancel the task: it runs all the same.
#[derive(Clone)]
pub struct Task {
    pub(crate) inner: Arc<TaskInner>,
}

impl Task {
    /// Blocks until the task has run (or failed) and returns what happened.
    ///
    /// Called from inside a kernel or a task of the same runtime, a wait
    /// runs the work it needs on this thread instead of blocking a worker,
    /// and a wait that could only wait for itself (the task needs a buffer
    /// the caller is using, or needs the caller's own task to finish) is
    /// [`Error::WouldDeadlock`].
    pub fn wait(&self) -> Result<RunInfo> {
        if let Some(shared) = self.inner.runtime() {
            shared.wait_task(&self.inner, "Task::wait")?;
        }
        self.inner.wait_for(None);
        let end = self
            .inner
            .virtual_end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((timeline, end)) = end {
            timeline.host_waits_until(end);
        }
        self.inner
            .state()
            .outcome
            .clone()
            .expect("a finished task has its outcome")
    }

    /// The outcome, if the task has finished.
    pub fn try_result(&self) -> Option<Result<RunInfo>> {
        self.inner.state().outcome.clone()
    }

    /// Whether the task has finished, successfully or not.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// The kernel's name.
    pub fn kernel(&self) -> &str {
        self.inner.kernel.name()
    }

    /// A number unique to this task within the process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.inner.id)
            .field("kernel", &self.inner.kernel.name())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// A task's call and its place in the graph.
pub(crate) struct TaskInner {
    pub(crate) id: u64,
    pub(crate) kernel: Kernel,
    /// Its buffers, until it has run: the table's records of producers and
    /// readers point at tasks, so a finished task lets its buffers go (or
    /// neither would ever be freed).
    args: Mutex<Vec<Arc<Handle>>>,
    pub(crate) params: Vec<u8>,
    pub(crate) size: u64,
    pub(crate) workgroups: u64,
    pub(crate) target: Target,
    /// The buffers it only reads, and those it writes.
    pub(crate) reads: Vec<u64>,
    pub(crate) writes: Vec<u64>,
    /// Where it was placed, once its dependencies have finished.
    placement: Mutex<Option<Placement>>,
    /// A thread has taken it to run: its device's worker, or a thread that
    /// waits for it and runs it itself rather than block.
    claimed: AtomicBool,
    /// The tasks it waited for at submission (weak: a finished task's
    /// predecessors may go).
    deps: Mutex<Vec<Weak<TaskInner>>>,
    finished: AtomicBool,
    /// On a simulated machine: the clock, and when the task ended on it,
    /// for a host that waits for it.
    pub(crate) virtual_end: Mutex<Option<(Arc<crate::device::timeline::Timeline>, f64)>>,
    state: Mutex<State>,
    done: Condvar,
}

/// What changes as the task goes (under the buffer table's lock, except
/// for waiters reading the outcome).
pub(crate) struct State {
    pub(crate) outcome: Option<Result<RunInfo>>,
    /// Dependencies not finished yet.
    pub(crate) waiting_on: usize,
    /// Tasks waiting on this one; `true` for a data dependency.
    pub(crate) dependents: Vec<(Arc<TaskInner>, bool)>,
    /// The failure of a data dependency: the task will not run.
    pub(crate) failed: Option<Error>,
    /// Keeps the runtime alive while the task is pending.
    pub(crate) runtime: Option<Arc<Scheduler>>,
}

impl TaskInner {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        kernel: &Kernel,
        args: Vec<Arc<Handle>>,
        params: &[u8],
        size: u64,
        workgroups: u64,
        target: Target,
        (reads, writes): (Vec<u64>, Vec<u64>),
    ) -> Self {
        TaskInner {
            id: NEXT_TASK.fetch_add(1, Ordering::Relaxed),
            kernel: kernel.clone(),
            args: Mutex::new(args),
            params: params.to_vec(),
            size,
            workgroups,
            target,
            reads,
            writes,
            placement: Mutex::new(None),
            claimed: AtomicBool::new(false),
            deps: Mutex::new(Vec::new()),
            finished: AtomicBool::new(false),
            virtual_end: Mutex::new(None),
            state: Mutex::new(State {
                outcome: None,
                waiting_on: 0,
                dependents: Vec::new(),
                failed: None,
                runtime: None,
            }),
            done: Condvar::new(),
        }
    }

    /// The task's call, over `handles` (its arguments, from `args`).
    pub(crate) fn call<'a>(&'a self, handles: &'a [Arc<Handle>]) -> Call<'a> {
        Call {
            args: handles.iter().map(|a| &**a).collect(),
            params: &self.params,
            size: self.size,
            workgroups: self.workgroups,
            reads: Few::from_slice(&self.reads),
            writes: Few::from_slice(&self.writes),
            task: Some(self.id),
            target: self.target,
            placed: None,
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Records where the task was placed (it is ready to run).
    pub(crate) fn set_placement(&self, p: Placement) {
        *self
            .placement
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(p);
    }

    /// Where it was placed, if it is ready to run.
    pub(crate) fn placement(&self) -> Option<Placement> {
        *self
            .placement
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the task to run it; false when another thread already has.
    pub(crate) fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    /// Whether a thread has taken it to run.
    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Remembers the tasks it waits for.
    pub(crate) fn set_deps(&self, deps: &[Arc<TaskInner>]) {
        *self.deps.lock().unwrap_or_else(PoisonError::into_inner) =
            deps.iter().map(Arc::downgrade).collect();
    }

    /// This task, if unfinished, and every unfinished task it waits for,
    /// directly or not: predecessors before the tasks that need them.
    pub(crate) fn unfinished_closure(self: &Arc<Self>) -> Vec<Arc<TaskInner>> {
        let mut order = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Iterative depth-first post-order: a long chain must not recurse.
        let mut stack: Vec<(Arc<TaskInner>, bool)> = vec![(Arc::clone(self), false)];
        while let Some((t, expanded)) = stack.pop() {
            if expanded {
                order.push(t);
                continue;
            }
            if t.is_finished() || !seen.insert(t.id) {
                continue;
            }
            let deps: Vec<Arc<TaskInner>> = t
                .deps
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter_map(Weak::upgrade)
                .collect();
            stack.push((t, true));
            stack.extend(deps.into_iter().map(|d| (d, false)));
        }
        order
    }

    /// Waits for the task to finish, or for `timeout` to pass.
    pub(crate) fn wait_for(&self, timeout: Option<std::time::Duration>) {
        let s = self.state();
        if s.outcome.is_some() {
            return;
        }
        match timeout {
            Some(t) => drop(self.done.wait_timeout(s, t)),
            None => {
                let _s = self
                    .done
                    .wait_while(s, |s| s.outcome.is_none())
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    /// The runtime it belongs to, while it is pending.
    pub(crate) fn runtime(&self) -> Option<Arc<Scheduler>> {
        self.state().runtime.clone()
    }

    /// The error a dependent reports when this task failed with `cause`:
    /// the failure that started the chain, named once.
    pub(crate) fn failure_for(&self, dependent: &str, cause: &Error) -> Error {
        let (dependency, cause) = cause.root_failure(self.kernel.name());
        Error::DependencyFailed {
            kernel: dependent.to_owned(),
            dependency,
            cause,
        }
    }

    /// The error of a read or write of buffer `id`, which this task failed
    /// to write with `cause`.
    pub(crate) fn writer_failure(&self, id: u64, cause: &Error) -> Error {
        Error::WriterFailed {
            buffer: id,
            writer: self.kernel.name().to_owned(),
            cause: Box::new(cause.clone()),
        }
    }

    /// Its buffers (empty once it has finished).
    pub(crate) fn args(&self) -> Vec<Arc<Handle>> {
        self.args
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Lets go of its buffers, handing them to the caller to drop where no
    /// lock is held (dropping the last handle frees the buffer, which takes
    /// the table's lock).
    pub(crate) fn take_args(&self) -> Vec<Arc<Handle>> {
        std::mem::take(&mut *self.args.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records the outcome and wakes waiters. Returns the dependents that
    /// have nothing left to wait for, or `None` when the task had finished
    /// already. Call with the buffer table locked.
    pub(crate) fn complete(&self, outcome: Result<RunInfo>) -> Option<Vec<Arc<TaskInner>>> {
        let (dependents, runtime) = {
            let mut s = self.state();
            if s.outcome.is_some() {
                return None;
            }
            s.outcome = Some(outcome.clone());
            self.finished.store(true, Ordering::Release);
            (std::mem::take(&mut s.dependents), s.runtime.take())
        };
        self.deps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.done.notify_all();
        let mut ready = Vec::new();
        for (t, data) in dependents {
            let mut s = t.state();
            s.waiting_on -= 1;
            if let (true, Err(e), None) = (data, &outcome, &s.failed) {
                s.failed = Some(self.failure_for(t.kernel.name(), e));
            }
            if s.waiting_on == 0 {
                drop(s);
                ready.push(t);
            }
        }
        // The runtime lives on in the caller, which holds the table's lock.
        drop(runtime);
        Some(ready)
    }
}

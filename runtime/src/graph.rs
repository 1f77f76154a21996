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
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};

use crate::buffer::Handle;
use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::runtime::{Placement, RunInfo, Shared, Target};

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
    pub fn wait(&self) -> Result<RunInfo> {
        let mut s = self.inner.state();
        while s.outcome.is_none() {
            s = self
                .inner
                .done
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
        s.outcome.clone().expect("checked above")
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
    finished: AtomicBool,
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
    pub(crate) runtime: Option<Arc<Shared>>,
}

impl TaskInner {
    pub(crate) fn new(
        kernel: &Kernel,
        args: Vec<Arc<Handle>>,
        params: &[u8],
        size: u64,
        workgroups: u64,
        target: Target,
    ) -> Self {
        TaskInner {
            id: NEXT_TASK.fetch_add(1, Ordering::Relaxed),
            kernel: kernel.clone(),
            args: Mutex::new(args),
            params: params.to_vec(),
            size,
            workgroups,
            target,
            finished: AtomicBool::new(false),
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

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// The error a dependent reports when this task failed with `cause`.
    pub(crate) fn failure_for(&self, dependent: &str, cause: &Error) -> Error {
        Error::DependencyFailed {
            kernel: dependent.to_owned(),
            dependency: self.kernel.name().to_owned(),
            cause: Box::new(cause.clone()),
        }
    }

    /// Records the outcome and wakes waiters. Returns the dependents that
    /// have nothing left to wait for. Call with the buffer table locked.
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

    pub(crate) fn complete(&self, outcome: Result<RunInfo>) -> Vec<Arc<TaskInner>> {
        let (dependents, runtime) = {
            let mut s = self.state();
            if s.outcome.is_some() {
                return Vec::new();
            }
            s.outcome = Some(outcome.clone());
            self.finished.store(true, Ordering::Release);
            (std::mem::take(&mut s.dependents), s.runtime.take())
        };
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
        ready
    }
}

/// A placed task on its way to a device's worker.
pub(crate) struct Job {
    pub(crate) task: Arc<TaskInner>,
    pub(crate) placement: Placement,
}

/// One worker thread per device, started on first use. Each runs its
/// device's tasks in the order they were placed there.
#[derive(Default)]
pub(crate) struct Workers {
    queues: Mutex<Vec<Option<mpsc::Sender<Job>>>>,
}

impl Workers {
    /// Sends `job` to the worker of device `index`, starting it if needed.
    pub(crate) fn send(&self, index: usize, job: Job) {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if queues.len() <= index {
            queues.resize_with(index + 1, || None);
        }
        let sender = queues[index].get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let name = if index == 0 {
                "pel-cpu".to_owned()
            } else {
                format!("pel-gpu{}", index - 1)
            };
            std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    // The channel closes when the runtime drops; a job keeps
                    // the runtime alive until it has run.
                    for job in rx {
                        let shared = job.task.state().runtime.clone();
                        if let Some(shared) = shared {
                            let pending = Arc::clone(&shared.pending);
                            crate::runtime::Runtime::from_shared(shared).run_job(job);
                            // This worker's hold on the runtime is gone.
                            pending.left_worker();
                        }
                    }
                })
                .expect("the OS can start a worker thread");
            tx
        });
        // The receiver lives as long as the sender's runtime: this cannot fail.
        let _ = sender.send(job);
    }
}

/// Tasks submitted and not yet finished, and the first failure since the
/// last [`Runtime::wait_all`](crate::Runtime::wait_all).
#[derive(Default)]
pub(crate) struct Pending {
    state: Mutex<PendingState>,
    idle: Condvar,
}

#[derive(Default)]
struct PendingState {
    /// Tasks submitted and not finished.
    tasks: usize,
    /// Tasks a worker has taken and not yet let go of.
    in_workers: usize,
    /// The first failure since the last `wait`.
    failure: Option<Error>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn add(&self) {
        let mut s = self.lock();
        s.tasks += 1;
        // Counted as in a worker from submission: whatever path the task
        // takes, `left_worker` or a failure before placement gives it back.
        s.in_workers += 1;
    }

    pub(crate) fn finish(&self, outcome: &Result<RunInfo>) {
        let mut s = self.lock();
        s.tasks -= 1;
        if let Err(e) = outcome {
            s.failure.get_or_insert_with(|| e.clone());
        }
        if s.tasks == 0 {
            self.idle.notify_all();
        }
    }

    /// A task that never reached a worker (failed before placement).
    pub(crate) fn never_ran(&self) {
        self.left_worker();
    }

    /// A worker has dropped its handle on the runtime after a task.
    pub(crate) fn left_worker(&self) {
        let mut s = self.lock();
        s.in_workers -= 1;
        if s.in_workers == 0 {
            self.idle.notify_all();
        }
    }

    /// Blocks until no task is pending and no worker holds the runtime.
    pub(crate) fn idle(&self) {
        let mut s = self.lock();
        while s.tasks > 0 || s.in_workers > 0 {
            s = self.idle.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Blocks until no task is pending and every worker has let go of the
    /// tasks it ran (and so of their buffers); returns the first failure
    /// since the last call.
    pub(crate) fn wait(&self) -> Result<()> {
        let mut s = self.lock();
        while s.tasks > 0 || s.in_workers > 0 {
            s = self.idle.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        match s.failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

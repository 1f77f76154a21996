//! The threads that run placed tasks: a pool for the CPU's queue and one
//! thread per GPU, started on demand; and the count of tasks pending, for
//! `wait_all` and the runtime's drop.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};

use crate::call::{Placement, RunInfo};
use crate::error::{Error, Result};

use super::TaskInner;

/// A placed task on its way to a device's worker.
pub(crate) struct Job {
    pub(crate) task: Arc<TaskInner>,
    pub(crate) placement: Placement,
}

/// The threads that run placed tasks. Each GPU has one worker, which runs
/// its tasks in the order they were placed there. The CPU has several,
/// started as work arrives (up to the CPU pool's size), sharing one queue:
/// a long CPU task does not hold up the CPU tasks placed after it while
/// cores sit idle. Tasks in a queue are all ready, so their order there
/// does not matter for their results.
pub(crate) struct Workers {
    runtime: u64,
    /// The most CPU workers to start.
    cpu_max: usize,
    cpu: Arc<CpuQueue>,
    gpus: Mutex<Vec<Option<mpsc::Sender<Job>>>>,
}

#[derive(Default)]
struct CpuQueue {
    state: Mutex<CpuState>,
    ready: Condvar,
}

#[derive(Default)]
struct CpuState {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
    closed: bool,
}

impl Workers {
    pub(crate) fn new(runtime: u64, cpu_threads: usize) -> Self {
        Workers {
            runtime,
            cpu_max: cpu_threads.max(2),
            cpu: Arc::default(),
            gpus: Mutex::default(),
        }
    }

    /// Sends `job` to a worker of device `index` (0: the CPU), starting one
    /// if needed.
    pub(crate) fn send(&self, index: usize, job: Job) {
        if index == 0 {
            return self.send_cpu(job);
        }
        let mut queues = self.gpus.lock().unwrap_or_else(PoisonError::into_inner);
        if queues.len() < index {
            queues.resize_with(index, || None);
        }
        let runtime = self.runtime;
        let sender = queues[index - 1].get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            spawn_worker(format!("pel-gpu{}", index - 1), move || {
                crate::frames::mark_worker(runtime);
                // The channel closes when the runtime drops; a job keeps
                // the runtime alive until it has run.
                for job in rx {
                    run(job);
                }
            });
            tx
        });
        // The receiver lives as long as the sender's runtime: this cannot fail.
        let _ = sender.send(job);
    }

    fn send_cpu(&self, job: Job) {
        let mut s = self
            .cpu
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.jobs.push_back(job);
        if s.idle == 0 && s.threads < self.cpu_max {
            s.threads += 1;
            let queue = Arc::clone(&self.cpu);
            let runtime = self.runtime;
            spawn_worker(format!("pel-cpu-worker-{}", s.threads), move || {
                crate::frames::mark_worker(runtime);
                while let Some(job) = queue.next() {
                    run(job);
                }
            });
        } else {
            self.cpu.ready.notify_one();
        }
    }
}

impl CpuQueue {
    /// The next job, waiting for one; `None` once the runtime has dropped.
    fn next(&self) -> Option<Job> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = s.jobs.pop_front() {
                return Some(job);
            }
            if s.closed {
                s.threads -= 1;
                return None;
            }
            s.idle += 1;
            s = self.ready.wait(s).unwrap_or_else(PoisonError::into_inner);
            s.idle -= 1;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // The GPU workers' channels close with their senders.
        self.cpu
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.cpu.ready.notify_all();
    }
}

fn spawn_worker(name: String, body: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name)
        .spawn(body)
        .expect("the OS can start a worker thread");
}

/// Runs a job on a worker (or on the thread that submitted it), unless a
/// thread waiting for the task has taken it already (that thread then
/// accounts for it).
pub(crate) fn run(job: Job) {
    let Some(shared) = job.task.runtime() else {
        return;
    };
    if !job.task.claim() {
        return;
    }
    let pending = Arc::clone(&shared.pending);
    shared.run_job(job);
    // This worker's hold on the runtime is gone.
    pending.left_worker();
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

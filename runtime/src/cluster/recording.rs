//! Recordings: a stretch of a program's tasks, submitted once and kept,
//! then submitted again as a whole ([`ClusterRuntime::replay`]), as a
//! time-stepping loop submits the same step again and again.
//!
//! Each rank keeps, with the tasks, its own part of how they ran: the
//! receives it posted, the sends it made and the tasks it ran, in the
//! order it did them, each message's version counted from the version its
//! buffer had when the recording started. That part holds for the
//! validity map the tasks found (which ranks held each buffer they touch):
//! a replay that finds the same map does the same again, without working
//! out any task's rank, transfers or checks, and leaves the map as the
//! tasks would. One that finds another map submits the tasks as usual and
//! keeps how they ran this time, for the next. Every rank keeps the same
//! map, so every rank takes the same way.
//!
//! Legion's traces and CUDA graphs do the same for their runtimes: the
//! analysis of a repeated stretch is done once.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use super::dist_buffer::{DistRef, Erased};
use super::progress::Recv;
use super::ranks::{ClusterRuntime, Few, Queued, RunFn};
use crate::buffer::BufferArg;
use crate::call::Bound;
use crate::error::{Error, Result};
use crate::hash::FxMap;
use crate::ids::Target;
use crate::kernel::Kernel;

/// Tasks recorded by [`ClusterRuntime::record`], to be submitted again by
/// [`ClusterRuntime::replay`]: the same kernels on the same buffers with
/// the same params, in the same order.
pub struct Recording {
    runtime: u64,
    tasks: Vec<Task>,
    plan: Mutex<Option<Plan>>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Recording {
    /// Tasks recorded.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether it records no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// A recorded task: what submitting it again takes.
struct Task {
    on: Option<usize>,
    target: Target,
    kernel: Kernel,
    args: Few<Arc<dyn Erased>>,
    params: Few<u8, 32>,
    run: RunFn,
}

/// A buffer the tasks touch: the ranks holding it before them and after,
/// and the writes they make.
struct Touched {
    buf: Arc<dyn Erased>,
    before: Vec<bool>,
    version: u64,
    after: Vec<bool>,
    writes: u64,
}

/// One thing this rank did; versions are counted from the buffer's
/// version when the tasks started, buffers are indices of [`Touched`].
enum Action {
    /// Posted the receive of a buffer's version (the next slot).
    Recv { buf: u32, from: u32, version: u64 },
    /// Sent its copy of a buffer's version.
    Send { buf: u32, to: u32, version: u64 },
    /// Ran a task, once its inputs had arrived (buffer, slot, version),
    /// and at once sent one of its arguments (argument, buffer, rank,
    /// version), if it did: the run copies it out under its own lease.
    Run {
        task: u32,
        waits: Few<(u32, u32, u64), 4>,
        bound: Option<Arc<Bound>>,
        then_send: Option<(u32, u32, u32, u64)>,
    },
}

/// This rank's part of how the tasks ran, for the map they found.
struct Plan {
    touched: Vec<Touched>,
    actions: Vec<Action>,
    slots: usize,
    runs: u64,
}

/// What a recording being made has seen so far.
pub(super) struct Capture {
    first_seq: u64,
    tasks: Vec<Task>,
    touched: Vec<Touched>,
    index: FxMap<u64, u32>,
    actions: Vec<Action>,
    slots: u32,
    runs: u64,
    /// An operation that moved data outside a task.
    outside: Option<&'static str>,
}

impl Capture {
    /// The index of `buf` among the touched buffers, noting its map now
    /// (before any recorded task changes it) at its first touch.
    fn touch(&mut self, buf: &Arc<dyn Erased>) -> u32 {
        let m = buf.meta();
        if let Some(&i) = self.index.get(&m.id) {
            return i;
        }
        let st = m.state();
        let i = self.touched.len() as u32;
        self.touched.push(Touched {
            buf: Arc::clone(buf),
            before: st.valid.clone(),
            version: st.version,
            after: Vec::new(),
            writes: 0,
        });
        self.index.insert(m.id, i);
        i
    }

    /// Buffer `id`'s index and `version` counted from its first; `None`
    /// (and the recording spoilt) for a buffer no recorded task touched:
    /// data moved outside a task.
    fn of(&mut self, id: u64, version: u64) -> Option<(u32, u64)> {
        match self.index.get(&id) {
            Some(&i) => Some((i, version - self.touched[i as usize].version)),
            None => {
                self.outside.get_or_insert("transfer");
                None
            }
        }
    }
}

impl ClusterRuntime {
    /// Whether a recording is being made.
    pub(super) fn capturing(&self) -> bool {
        self.capturing.load(Ordering::Relaxed)
    }

    fn capture(&self) -> MutexGuard<'_, Option<Capture>> {
        self.capture.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a task as it is submitted, before its transfers.
    pub(super) fn capture_task(
        &self,
        seq: u64,
        (on, target, kernel): (Option<usize>, Target, &Kernel),
        args: &[DistRef<'_>],
        params: &[u8],
        run: RunFn,
    ) {
        if let Some(c) = self.capture().as_mut() {
            debug_assert_eq!(seq, c.first_seq + c.tasks.len() as u64);
            for a in args {
                c.touch(a.arc);
            }
            c.tasks.push(Task {
                on,
                target,
                kernel: kernel.clone(),
                args: args.iter().map(|a| Arc::clone(a.arc)).collect(),
                params: Few::from_slice(params),
                run,
            });
        }
    }

    /// Notes a send of buffer `id`'s `version` to rank `to`.
    pub(super) fn capture_send(&self, id: u64, to: usize, version: u64) {
        if let Some(c) = self.capture().as_mut() {
            let Some((buf, version)) = c.of(id, version) else {
                return;
            };
            // Right after a run of a task that has it: sent by that run.
            if let Some(Action::Run {
                task,
                then_send: then @ None,
                ..
            }) = c.actions.last_mut()
            {
                let args = &c.tasks[*task as usize].args;
                if let Some(arg) = args.iter().position(|a| a.meta().id == id) {
                    *then = Some((arg as u32, buf, to as u32, version));
                    return;
                }
            }
            c.actions.push(Action::Send {
                buf,
                to: to as u32,
                version,
            });
        }
    }

    /// Notes a receive of buffer `id`'s `version` from rank `from`
    /// posted; its slot.
    pub(super) fn capture_recv(&self, id: u64, from: usize, version: u64) -> u32 {
        let mut guard = self.capture();
        let Some(c) = guard.as_mut() else {
            return u32::MAX;
        };
        let Some((buf, version)) = c.of(id, version) else {
            return u32::MAX;
        };
        c.actions.push(Action::Recv {
            buf,
            from: from as u32,
            version,
        });
        c.slots += 1;
        c.slots - 1
    }

    /// Notes task `t` run (through `bound`, if any).
    pub(super) fn capture_run(&self, t: &Queued, bound: Option<Arc<Bound>>) {
        if let Some(c) = self.capture().as_mut() {
            let mut waits = Few::new();
            for (i, _, version, slot) in &t.recvs {
                let Some((buf, version)) = c.of(t.args[*i].meta().id, *version) else {
                    return;
                };
                waits.push((buf, *slot, version));
            }
            c.actions.push(Action::Run {
                task: (t.seq - c.first_seq) as u32,
                waits,
                bound,
                then_send: None,
            });
            c.runs += 1;
        }
    }

    /// Notes `what` (a fetch, a write) moving data outside a task: the
    /// recording being made cannot stand for it.
    pub(super) fn capture_outside(&self, what: &'static str) {
        if let Some(c) = self.capture().as_mut() {
            c.outside.get_or_insert(what);
        }
    }

    fn begin_capture(&self) -> Result<()> {
        if self.capturing() {
            return Err(self.recording_error("a recording inside a recording"));
        }
        // Tasks submitted before it run first: the recording starts with
        // this rank's queue empty.
        self.drain(u64::MAX);
        *self.capture() = Some(Capture {
            first_seq: self.counters_tasks(),
            tasks: Vec::new(),
            touched: Vec::new(),
            index: FxMap::default(),
            actions: Vec::new(),
            slots: 0,
            runs: 0,
            outside: None,
        });
        self.capturing.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Runs this rank's part of the recorded tasks and ends the recording:
    /// its tasks, and the plan (`None` where none may be replayed: data
    /// moved outside a task, or balancing chose the ranks).
    fn end_capture(&self) -> (Vec<Task>, Option<Plan>, Option<&'static str>) {
        self.drain(u64::MAX);
        self.capturing.store(false, Ordering::Relaxed);
        let Some(mut c) = self.capture().take() else {
            return (Vec::new(), None, None);
        };
        let balancing = self
            .balance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if c.outside.is_some() || balancing {
            return (c.tasks, None, c.outside);
        }
        for t in &mut c.touched {
            let st = t.buf.meta().state();
            t.after = st.valid.clone();
            t.writes = st.version - t.version;
        }
        let plan = Plan {
            touched: c.touched,
            actions: c.actions,
            slots: c.slots as usize,
            runs: c.runs,
        };
        (c.tasks, Some(plan), None)
    }

    fn recording_error(&self, message: &str) -> Error {
        Error::Cluster {
            rank: self.rank(),
            size: self.size(),
            message: message.to_owned(),
        }
    }

    /// Submits the tasks `body` submits, as [`submit_on`](Self::submit_on)
    /// does (they run), and records them and how this rank ran them, for
    /// [`replay`](Self::replay). Every rank calls it. This rank's tasks
    /// submitted before it run first, and its own have run when it returns.
    ///
    /// A recording holds tasks alone: a [`fetch`](Self::fetch) or
    /// [`write`](Self::write) in `body` is an [`Error::Cluster`] (after
    /// `body` has run), as is a recording inside another.
    pub fn record(&self, body: impl FnOnce(&Self) -> Result<()>) -> Result<Recording> {
        self.begin_capture()?;
        let out = body(self);
        let (tasks, plan, outside) = self.end_capture();
        out?;
        if let Some(what) = outside {
            return Err(self.recording_error(&format!(
                "a `{what}` inside a recording: a recording holds tasks alone"
            )));
        }
        Ok(Recording {
            runtime: self.id,
            tasks,
            plan: Mutex::new(plan),
        })
    }

    /// Submits `recording`'s tasks again, in order: what submitting each
    /// with [`submit_on`](Self::submit_on) would do, and the same checks
    /// (made when recorded). Every rank calls it. Where the ranks holding
    /// each buffer the tasks touch are those of the last time, this rank
    /// does what it did then (posts the same receives, makes the same
    /// sends, runs the same tasks) without working any task out again;
    /// elsewhere the tasks are submitted as usual, and how they run is kept
    /// for the next replay. This rank's tasks have run when it returns (as
    /// after [`flush`](Self::flush), its runtime's work may still be
    /// running).
    pub fn replay(&self, recording: &Recording) -> Result<()> {
        if recording.runtime != self.id {
            return Err(self.recording_error(
                "a recording made by another cluster runtime: its buffers are not this one's",
            ));
        }
        if self.capturing() {
            return Err(self.recording_error("a replay inside a recording"));
        }
        if self.made.load(Ordering::Acquire) {
            self.agree()?;
        }
        self.drain(u64::MAX);
        let mut plan = recording.plan.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = plan.as_ref() {
            if let Some(versions) = self.holds(p) {
                self.run_plan(p, &recording.tasks, &versions);
                return Ok(());
            }
        }
        self.begin_capture()?;
        let mut out = Ok(());
        for t in &recording.tasks {
            let refs: Few<DistRef<'_>> = t
                .args
                .iter()
                .map(|a| DistRef {
                    inner: &**a,
                    arc: a,
                })
                .collect();
            if let Err(e) = self.submit_refs(t.on, (t.target, &t.kernel), &refs, &t.params, t.run) {
                out = Err(e);
                break;
            }
        }
        let (_, made, _) = self.end_capture();
        *plan = made;
        out
    }

    /// The versions of `plan`'s buffers now, if the ranks holding them are
    /// those it was made for (and no balancing chooses ranks).
    fn holds(&self, plan: &Plan) -> Option<Few<u64>> {
        if self
            .balance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return None;
        }
        plan.touched
            .iter()
            .map(|t| {
                let st = t.buf.meta().state();
                (st.valid == t.before).then_some(st.version)
            })
            .collect()
    }

    /// Does what `plan` says this rank did, for `tasks`; `versions`: the
    /// touched buffers' versions now.
    fn run_plan(&self, plan: &Plan, tasks: &[Task], versions: &[u64]) {
        let n = tasks.len() as u64;
        let first = self.count_tasks(n, plan.runs);
        let mut slots: Vec<Option<Recv>> = Vec::with_capacity(plan.slots);
        let at = |buf: u32, version: u64| {
            let i = buf as usize;
            (&*plan.touched[i].buf, versions[i] + version)
        };
        for a in &plan.actions {
            match a {
                Action::Recv { buf, from, version } => {
                    let (e, v) = at(*buf, *version);
                    slots.push(Some(self.recv(e, *from as usize, v)));
                }
                Action::Send { buf, to, version } => {
                    let (e, v) = at(*buf, *version);
                    self.send(e, *to as usize, v).unwrap_or_else(|err| {
                        self.fail(first, "a replayed send", &err.to_string())
                    });
                }
                Action::Run {
                    task,
                    waits,
                    bound,
                    then_send,
                } => {
                    let t = &tasks[*task as usize];
                    let seq = first + u64::from(*task);
                    for &(buf, slot, version) in waits {
                        let (e, v) = at(buf, version);
                        let recv = slots[slot as usize].take().expect("posted before");
                        self.receive(e, recv, v).unwrap_or_else(|err| {
                            self.fail(seq, t.kernel.name(), &err.to_string())
                        });
                    }
                    let local: Few<&dyn BufferArg> =
                        t.args.iter().map(|a| a.local(&self.rt)).collect();
                    let task = (seq, t.target, &t.kernel);
                    let code = (bound.as_deref(), t.run);
                    match then_send {
                        None => self.run_task(task, code, &local, &t.params, None),
                        Some((arg, buf, to, version)) => {
                            let (e, v) = at(*buf, *version);
                            let mut msg = self.message(e);
                            let out = Some((*arg as usize, e, &mut msg[self.wire.header()..]));
                            self.run_task(task, code, &local, &t.params, out);
                            self.post(e, *to as usize, v, msg);
                        }
                    }
                }
            }
        }
        for (t, &v) in plan.touched.iter().zip(versions) {
            let mut st = t.buf.meta().state();
            st.version = v + t.writes;
            st.valid.copy_from_slice(&t.after);
        }
    }
}

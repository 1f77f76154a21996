//! [`ClusterRuntime`]: one task graph, submitted by every rank in the same
//! order, run by the ranks that own what it writes, with every buffer's
//! copies tracked across ranks.
//!
//! Each rank keeps the same validity map of every [`DistBuffer`]: its
//! version, and which ranks hold that version. A task runs on the owner of
//! the first buffer it writes (or a rank given). Before it runs, every
//! argument its rank lacks is sent there by a rank that holds it (the owner
//! first) and cached; a write makes the writer's copy the only valid one.
//! A rank with no part in a task only updates the map. Messages carry a tag
//! from (buffer, version), so two never cross ([`Wire`]: where MPI's tags
//! are few, a header the receiver checks too).
//!
//! A rank's own tasks wait in a queue, in order, and run on the rank's
//! thread when something needs what they write: a send (the tasks up to
//! the buffer's last writer), a fetch, a flush. So a rank sends its
//! neighbours what they need before it runs the rest of its queue, and a
//! CPU task costs no hand-off to another thread.
//!
//! Why this cannot deadlock: sends never block (posted non-blocking; the
//! progress thread completes the slow ones), and a rank only waits for an
//! input that an earlier task in the common order produced, on a rank that
//! reaches that task first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Cluster;
use super::bindings::Bindings;
use super::dist_buffer::{DistArg, DistBuffer, DistRef, Erased, Inner};
use super::place::Balance;
use super::progress::{MAX_BLOCK, Progress, Recv};
use super::recording::Capture;
use super::wire::Wire;
use crate::buffer::{Buffer, BufferArg};
use crate::call::Bound;
use crate::error::{Error, Result};
use crate::ids::Target;
use crate::kernel::{Access, Element, Kernel};
use crate::runtime::Runtime;

/// The next cluster runtime's id.
static NEXT_RUNTIME: AtomicU64 = AtomicU64::new(0);

/// What a rank did and moved; [`ClusterRuntime::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Tasks submitted (every rank counts all).
    pub tasks: u64,
    /// Tasks this rank ran.
    pub tasks_run: u64,
    /// Tasks this rank only recorded (another rank ran them).
    pub tasks_pruned: u64,
    /// Tasks submitted by a replay that did what their recording did,
    /// without working them out again ([`ClusterRuntime::replay`]); of
    /// `tasks`.
    pub tasks_replayed: u64,
    /// Messages this rank sent.
    pub messages_sent: u64,
    /// Bytes of buffer data this rank sent (a header, where messages have
    /// one, not counted).
    pub bytes_sent: u64,
    /// Messages this rank received.
    pub messages_received: u64,
    /// Bytes of buffer data this rank received.
    pub bytes_received: u64,
}

impl ClusterStats {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &ClusterStats) -> ClusterStats {
        ClusterStats {
            tasks: self.tasks - earlier.tasks,
            tasks_run: self.tasks_run - earlier.tasks_run,
            tasks_pruned: self.tasks_pruned - earlier.tasks_pruned,
            tasks_replayed: self.tasks_replayed - earlier.tasks_replayed,
            messages_sent: self.messages_sent - earlier.messages_sent,
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            messages_received: self.messages_received - earlier.messages_received,
            bytes_received: self.bytes_received - earlier.bytes_received,
        }
    }
}

#[derive(Default)]
struct Counters {
    tasks: AtomicU64,
    tasks_run: AtomicU64,
    tasks_pruned: AtomicU64,
    tasks_replayed: AtomicU64,
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
}

fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

/// Runs a queued call: its params' bytes read back as the type they were.
pub(super) type RunFn = fn(&Runtime, Target, &Kernel, &[&dyn BufferArg], &[u8]) -> Result<()>;

/// [`RunFn`] for params of type `P`.
fn execute_as<P: bytemuck::Pod>(
    rt: &Runtime,
    target: Target,
    kernel: &Kernel,
    args: &[&dyn BufferArg],
    params: &[u8],
) -> Result<()> {
    let params: P = bytemuck::pod_read_unaligned(params);
    rt.execute(target, kernel, args, &params).map(drop)
}

/// A short list on the stack (a task's arguments, its params' bytes).
pub(super) type Few<T, const N: usize = 8> = smallvec::SmallVec<[T; N]>;

/// A task this rank runs, queued until something needs what it writes.
pub(super) struct Queued {
    pub(super) seq: u64,
    pub(super) kernel: Kernel,
    pub(super) target: Target,
    pub(super) params: Few<u8, 32>,
    pub(super) args: Few<Arc<dyn Erased>>,
    /// Inputs posted to arrive: argument, receive, version, and slot in a
    /// recording being made.
    pub(super) recvs: Few<(usize, Recv, u64, u32), 4>,
    pub(super) run: RunFn,
}

/// One program on many ranks: every rank makes the same buffers and submits
/// the same tasks in the same order; see the [module](super) page.
///
/// ```no_run
/// # use pel_runtime::cluster::{Cluster, ClusterRuntime};
/// # fn main() -> pel_runtime::Result<()> {
/// # let kernel: pel_runtime::Kernel = todo!();
/// let cr = ClusterRuntime::new(Cluster::init()?, pel_runtime::Runtime::new()?)?;
/// // Rank 0 owns x, rank 1 (if any) owns y: the task runs on y's owner,
/// // which receives x once.
/// let x = cr.buffer("x", 0, 4, || vec![1.0f32; 4])?;
/// let y = cr.zeros::<f32>("y", 1 % cr.size(), 4)?;
/// cr.submit(&kernel, &[&x, &y], &())?;
/// let on_0 = cr.fetch(&y, 0)?; // Some(..) on rank 0, None elsewhere
/// # Ok(()) }
/// ```
pub struct ClusterRuntime {
    // Stopped before the cluster finalises MPI (fields drop in order).
    pub(super) progress: Progress,
    /// How messages name what they carry.
    pub(super) wire: Wire,
    /// This rank's tasks not yet run, in order.
    queue: Mutex<VecDeque<Queued>>,
    /// The common placement model, when balancing is on.
    pub(super) balance: Mutex<Option<Balance>>,
    pub(super) rt: Runtime,
    /// The bindings of this rank's CPU tasks.
    pub(super) bindings: Bindings,
    /// What a recording being made has seen ([`record`](Self::record)).
    pub(super) capture: Mutex<Option<Capture>>,
    /// Whether `capture` holds one (read by every task, so no lock).
    pub(super) capturing: AtomicBool,
    /// Tells this cluster runtime's recordings from another's.
    pub(super) id: u64,
    counters: Counters,
    pub(super) next_id: AtomicU64,
    /// Digests of buffers made since the ranks last compared them.
    pub(super) unchecked: Mutex<Vec<(String, u64)>>,
    /// Whether `unchecked` holds any (read by every task, so no lock).
    pub(super) made: AtomicBool,
    pub(super) cluster: Cluster,
}

impl std::fmt::Debug for ClusterRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRuntime")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl ClusterRuntime {
    /// This rank's part of a job: `cluster` for the messages, `rt` for its
    /// own devices (placement inside the rank works as on one machine).
    /// Starts the progress thread. Every rank calls it.
    ///
    /// With `PEL_CLUSTER_CHECK=1` (on every rank), every message also
    /// carries the name of the buffer version it holds, and the receiver
    /// checks it ([`Error::Cluster`] where the ranks do not agree on it).
    /// `PEL_CLUSTER_MAX_MESSAGE=BYTES` cuts a message longer than that
    /// into blocks of it (one MPI message still; the default, and the
    /// most, is MPI's `int`, past which every message is cut so).
    pub fn new(cluster: Cluster, rt: Runtime) -> Result<ClusterRuntime> {
        // Every rank comes through the collectives below, a refused setting
        // or not, and all refuse together: none is left waiting.
        let block = max_message(&cluster);
        let progress = Progress::start(cluster.rank(), *block.as_ref().unwrap_or(&MAX_BLOCK));
        let check = std::env::var("PEL_CLUSTER_CHECK").is_ok_and(|v| v == "1");
        let wire = Wire::new(cluster.tag_ub(), check);
        let mine = u64::from(wire.checked()) | (u64::from(block.is_err()) << 1);
        let all = cluster.all_gather_u64(mine);
        let refuse = |message: String| Error::Cluster {
            rank: cluster.rank(),
            size: cluster.size(),
            message,
        };
        block?;
        if let Some(r) = all.iter().position(|&f| f & 2 != 0) {
            return Err(refuse(format!(
                "rank {r} refused its PEL_CLUSTER_MAX_MESSAGE"
            )));
        }
        let formats: Vec<u64> = all.iter().map(|&f| f & 1).collect();
        if formats.iter().any(|&f| f != formats[0]) {
            return Err(refuse(format!(
                "ranks disagree on PEL_CLUSTER_CHECK (headers on by rank: {formats:?}); set it on every rank or none"
            )));
        }
        Ok(ClusterRuntime {
            progress,
            wire,
            queue: Mutex::new(VecDeque::new()),
            balance: Mutex::new(None),
            rt,
            bindings: Bindings::default(),
            capture: Mutex::new(None),
            capturing: AtomicBool::new(false),
            id: NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed),
            counters: Counters::default(),
            next_id: AtomicU64::new(0),
            unchecked: Mutex::new(Vec::new()),
            made: AtomicBool::new(false),
            cluster,
        })
    }

    /// The MPI side: rank, size, collectives.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// This rank's runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.cluster.rank()
    }

    /// Ranks in the job.
    pub fn size(&self) -> usize {
        self.cluster.size()
    }

    /// Submits `kernel` on `args` (in the shader's binding order) at the
    /// owner of the first buffer it writes; see [`submit_on`](Self::submit_on).
    pub fn submit<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        args: &[&dyn DistArg],
        params: &P,
    ) -> Result<bool> {
        self.submit_on(None, Target::Auto, kernel, args, params)
    }

    /// Every rank calls this with the same task. It runs on rank `on`
    /// (default: the owner of the first argument the shader writes, else
    /// of the first argument), at `target` among that rank's devices, once
    /// each argument that rank lacks has come from a rank that holds it;
    /// there it is queued, and runs on this thread (through the rank's
    /// runtime, [`Runtime::execute`]) when something needs what it writes:
    /// a send to another rank, [`fetch`](Self::fetch), [`flush`](Self::flush)
    /// or [`wait_all`](Self::wait_all). Returns whether this rank runs it;
    /// a rank with no part only records what it writes. The call returns
    /// once this rank's part is posted: its sends on their way, its
    /// receives posted.
    ///
    /// Checked on every rank before anything moves: the params type
    /// ([`Error::Params`]), the argument count and element types
    /// ([`Error::ArgCount`], [`Error::ArgType`]), the rank, and that every rank made the same buffers ([`agree`](Self::agree)).
    /// A task that fails on its rank after that ends the job, naming the
    /// rank, the task and the error: the other ranks would wait for its
    /// results forever.
    pub fn submit_on<P: bytemuck::Pod>(
        &self,
        on: Option<usize>,
        target: Target,
        kernel: &Kernel,
        args: &[&dyn DistArg],
        params: &P,
    ) -> Result<bool> {
        kernel.check_params::<P>()?;
        let refs: Few<DistRef<'_>> = args.iter().map(|a| a.as_dist()).collect();
        let params = bytemuck::bytes_of(params);
        self.submit_refs(on, (target, kernel), &refs, params, execute_as::<P>)
    }

    /// [`submit_on`](Self::submit_on) once the params' type is checked:
    /// `params` are its bytes, `run` runs the task from them.
    pub(super) fn submit_refs(
        &self,
        on: Option<usize>,
        (target, kernel): (Target, &Kernel),
        args: &[DistRef<'_>],
        params: &[u8],
        run: RunFn,
    ) -> Result<bool> {
        // The checks a call makes, on every rank (only one would run it).
        let reflection = kernel.reflection();
        reflection.check_arg_count(kernel.name(), args.len())?;
        for (i, a) in args.iter().enumerate() {
            reflection.check_arg_elem(kernel.name(), i, a.inner.elem())?;
        }
        let storage = &reflection.storage;
        if self.made.load(Ordering::Acquire) {
            self.agree()?;
        }
        let meta = |i: usize| args[i].inner.meta();
        let exec = match on {
            Some(r) => r,
            None => {
                let owner = storage
                    .iter()
                    .position(|b| b.access == Access::ReadWrite)
                    .or(if args.is_empty() { None } else { Some(0) })
                    .map_or(0, |i| meta(i).owner);
                self.balanced(owner, kernel, args, params).unwrap_or(owner)
            }
        };
        if exec >= self.size() {
            return Err(Error::Cluster {
                rank: self.rank(),
                size: self.size(),
                message: format!(
                    "task `{}` asked for rank {exec}; the job has ranks 0 to {}",
                    kernel.name(),
                    self.size() - 1
                ),
            });
        }
        let seq = self.counters.tasks.fetch_add(1, Ordering::Relaxed);
        if self.capturing() {
            self.capture_task(seq, (on, target, kernel), args, params, run);
        }
        let me = self.rank();
        let mut recvs = Few::new();
        for (i, a) in args.iter().enumerate() {
            let moved = self.transfer(a.inner, exec);
            if let Some((recv, version, slot)) =
                moved.unwrap_or_else(|err| self.fail(seq, kernel.name(), &err.to_string()))
            {
                recvs.push((i, recv, version, slot));
            }
        }
        let runs = me == exec;
        if runs {
            for (i, b) in storage.iter().enumerate() {
                if b.access == Access::ReadWrite {
                    meta(i).last_writer.store(seq + 1, Ordering::Relaxed);
                }
            }
            self.queue().push_back(Queued {
                seq,
                kernel: kernel.clone(),
                target,
                params: Few::from_slice(params),
                args: args.iter().map(|a| Arc::clone(a.arc)).collect(),
                recvs,
                run,
            });
            bump(&self.counters.tasks_run, 1);
        } else {
            bump(&self.counters.tasks_pruned, 1);
        }
        for (i, b) in storage.iter().enumerate() {
            if b.access == Access::ReadWrite {
                meta(i).written_on(exec);
            }
        }
        Ok(runs)
    }

    /// Tasks submitted so far (the next one's number).
    pub(super) fn counters_tasks(&self) -> u64 {
        self.counters.tasks.load(Ordering::Relaxed)
    }

    /// Counts `n` tasks submitted at once, `runs` of them run here; the
    /// first one's number.
    pub(super) fn count_tasks(&self, n: u64, runs: u64) -> u64 {
        bump(&self.counters.tasks_run, runs);
        bump(&self.counters.tasks_pruned, n - runs);
        bump(&self.counters.tasks_replayed, n);
        self.counters.tasks.fetch_add(n, Ordering::Relaxed)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs this rank's queued tasks, in order, up to task `upto` (all of
    /// them for `u64::MAX`): each once its received inputs are in.
    pub(super) fn drain(&self, upto: u64) {
        loop {
            let task = {
                let mut q = self.queue();
                match q.front() {
                    Some(t) if t.seq <= upto => q.pop_front(),
                    _ => None,
                }
            };
            let Some(t) = task else {
                return;
            };
            let local: Few<&dyn BufferArg> = t.args.iter().map(|a| a.local(&self.rt)).collect();
            let ids = t.args.iter().map(|a| a.meta().id);
            let bound = self
                .bindings
                .get(&self.rt, (&t.kernel, t.target), ids, &local);
            if self.capturing() {
                self.capture_run(&t, bound.clone());
            }
            for (i, recv, version, _) in t.recvs {
                self.receive(&*t.args[i], recv, version)
                    .unwrap_or_else(|err| self.fail(t.seq, t.kernel.name(), &err.to_string()));
            }
            let task = (t.seq, t.target, &t.kernel);
            let code = (bound.as_deref(), t.run);
            self.run_task(task, code, &local, &t.params, None);
        }
    }

    /// Runs task number `seq` on this rank's runtime: through its binding
    /// where it has one and the runtime takes it, else as an ordinary
    /// call; then copies argument `out.0` (`out.1`) into `out.2`, if asked.
    /// A failure ends the job, naming the rank and the task.
    pub(super) fn run_task(
        &self,
        (seq, target, kernel): (u64, Target, &Kernel),
        (bound, run): (Option<&Bound>, RunFn),
        local: &[&dyn BufferArg],
        params: &[u8],
        mut out: Option<(usize, &dyn Erased, &mut [u8])>,
    ) {
        super::mpi_cluster::set_task(seq, kernel);
        let room = out.as_mut().map(|(i, _, room)| (*i, &mut **room));
        bound
            .and_then(|b| self.rt.run_bound(b, local, params, room))
            .unwrap_or_else(|| {
                run(&self.rt, target, kernel, local, params)?;
                match out {
                    Some((_, e, room)) => e.read_into(&self.rt, room),
                    None => Ok(()),
                }
            })
            .unwrap_or_else(|err| self.fail(seq, kernel.name(), &err.to_string()));
    }

    /// Makes `e`'s current version valid on rank `to`: marks it so (every
    /// rank), sends it there (on the rank that holds it: the owner if it
    /// can, once its tasks here that write it have run) and, on `to`,
    /// posts the receive: returns it, the version, and its slot in a
    /// recording being made.
    fn transfer(&self, e: &dyn Erased, to: usize) -> Result<Option<(Recv, u64, u32)>> {
        let m = e.meta();
        let mut st = m.state();
        if st.valid[to] {
            return Ok(None);
        }
        let src = if st.valid[m.owner] {
            m.owner
        } else {
            st.valid.iter().position(|&v| v).unwrap_or(m.owner)
        };
        let version = st.version;
        st.valid[to] = true;
        drop(st);
        let me = self.rank();
        if me == src {
            let writer = m.last_writer.load(Ordering::Relaxed);
            if writer > 0 {
                self.drain(writer - 1);
            }
            self.send(e, to, version)?;
            if self.capturing() {
                self.capture_send(m.id, to, version);
            }
        }
        if me != to {
            return Ok(None);
        }
        let slot = if self.capturing() {
            self.capture_recv(m.id, src, version)
        } else {
            u32::MAX
        };
        Ok(Some((self.recv(e, src, version), version, slot)))
    }

    /// Sends this rank's copy of `e`, as its `version`, to rank `to`.
    pub(super) fn send(&self, e: &dyn Erased, to: usize, version: u64) -> Result<()> {
        let mut msg = self.message(e);
        if let Err(err) = e.read_into(&self.rt, &mut msg[self.wire.header()..]) {
            self.progress.give_back(msg);
            return Err(err);
        }
        self.post(e, to, version, msg);
        Ok(())
    }

    /// A message's buffer for `e`: its header, if messages have one
    /// ([`Wire::header`]), then room for its bytes.
    pub(super) fn message(&self, e: &dyn Erased) -> Box<[u8]> {
        self.progress.buffer(self.message_len(e))
    }

    fn message_len(&self, e: &dyn Erased) -> usize {
        let m = e.meta();
        self.wire.header() + m.len * m.elem_size
    }

    /// Sends `msg` (a [`message`](Self::message) holding `e`'s bytes) as
    /// its `version` to rank `to`.
    pub(super) fn post(&self, e: &dyn Erased, to: usize, version: u64, mut msg: Box<[u8]>) {
        let m = e.meta();
        self.wire.stamp(&mut msg, m.id, version);
        bump(&self.counters.messages_sent, 1);
        bump(
            &self.counters.bytes_sent,
            (msg.len() - self.wire.header()) as u64,
        );
        self.progress.send(to, self.wire.tag(m.id, version), msg);
    }

    /// Posts the receive of `e`'s `version` from rank `from`.
    pub(super) fn recv(&self, e: &dyn Erased, from: usize, version: u64) -> Recv {
        let tag = self.wire.tag(e.meta().id, version);
        self.progress.recv(from, tag, self.message_len(e))
    }

    /// Waits for `recv`, checks it is `e`'s `version` (its length, and its
    /// header where messages have one), and stores it as this rank's copy.
    pub(super) fn receive(&self, e: &dyn Erased, recv: Recv, version: u64) -> Result<()> {
        let m = e.meta();
        let (data, got) = recv.wait();
        if let Some((id, v, len)) = self.wire.crossed(&data, got, data.len(), (m.id, version)) {
            self.progress.give_back(data);
            return Err(Error::Cluster {
                rank: self.rank(),
                size: self.size(),
                message: format!(
                    "`{}` version {version} expected; buffer {id} version {v} arrived as {len} bytes, not {} (messages crossed)",
                    m.name,
                    self.message_len(e)
                ),
            });
        }
        let payload = &data[self.wire.header()..];
        bump(&self.counters.messages_received, 1);
        bump(&self.counters.bytes_received, payload.len() as u64);
        let stored = e.store(&self.rt, payload);
        self.progress.give_back(data);
        stored
    }

    pub(super) fn fail(&self, seq: u64, kernel: &str, what: &str) -> ! {
        self.cluster
            .abort(&format!("task {seq} (`{kernel}`) failed: {what}"))
    }

    /// Brings `buf`'s current version to rank `to` (sent once, then
    /// cached there) and returns its contents there; `None` on the other
    /// ranks. Every rank calls it.
    pub fn fetch<T: Element>(&self, buf: &DistBuffer<T>, to: usize) -> Result<Option<Vec<T>>> {
        if to >= self.size() {
            return Err(Error::Cluster {
                rank: self.rank(),
                size: self.size(),
                message: format!(
                    "fetch of `{}` to rank {to}; the job has ranks 0 to {}",
                    buf.name(),
                    self.size() - 1
                ),
            });
        }
        if self.capturing() {
            self.capture_outside("fetch");
        }
        self.drain(u64::MAX);
        let e: &Inner<T> = &buf.inner;
        let me = self.rank();
        if let Some((recv, version, _)) = self.transfer(e, to)? {
            self.receive(e, recv, version)?;
        }
        if me == to {
            Ok(Some(self.rt.read(e.buffer(&self.rt))?))
        } else {
            Ok(None)
        }
    }

    /// Replaces `buf`'s contents on its owner with `data()` (no other rank
    /// calls it); the copies elsewhere become stale. Every rank calls it.
    pub fn write<T: Element>(
        &self,
        buf: &DistBuffer<T>,
        data: impl FnOnce() -> Vec<T>,
    ) -> Result<()> {
        if self.capturing() {
            self.capture_outside("write");
        }
        self.drain(u64::MAX);
        let m = &buf.inner.meta;
        if self.rank() == m.owner {
            let d = data();
            if d.len() != m.len {
                return Err(self.dist_error(
                    &m.name,
                    m.owner,
                    format!("{} elements written to a buffer of {}", d.len(), m.len),
                ));
            }
            self.rt.write(buf.inner.buffer(&self.rt), &d)?;
        }
        m.written_on(m.owner);
        Ok(())
    }

    /// This rank's copy of `buf`, if it holds the current version (once
    /// this rank's queued tasks have run).
    pub fn local<'a, T: Element>(&self, buf: &'a DistBuffer<T>) -> Option<&'a Buffer<T>> {
        self.drain(u64::MAX);
        if buf.inner.meta.state().valid[self.rank()] {
            buf.inner.local.get()
        } else {
            None
        }
    }

    /// What this rank has done and moved so far.
    pub fn stats(&self) -> ClusterStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterStats {
            tasks: get(&c.tasks),
            tasks_run: get(&c.tasks_run),
            tasks_pruned: get(&c.tasks_pruned),
            tasks_replayed: get(&c.tasks_replayed),
            messages_sent: get(&c.messages_sent),
            bytes_sent: get(&c.bytes_sent),
            messages_received: get(&c.messages_received),
            bytes_received: get(&c.bytes_received),
        }
    }

    /// Runs this rank's queued tasks and waits for them (not for other
    /// ranks).
    pub fn flush(&self) -> Result<()> {
        self.drain(u64::MAX);
        self.rt.wait_all()
    }

    /// Runs this rank's queued tasks and waits for them, then for every
    /// rank.
    pub fn wait_all(&self) -> Result<()> {
        self.flush()?;
        self.cluster.barrier();
        Ok(())
    }
}

/// `PEL_CLUSTER_MAX_MESSAGE`: the most bytes one MPI count tells of.
fn max_message(cluster: &Cluster) -> Result<usize> {
    let Ok(v) = std::env::var("PEL_CLUSTER_MAX_MESSAGE") else {
        return Ok(MAX_BLOCK);
    };
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .map(|n| n.min(MAX_BLOCK))
        .ok_or_else(|| Error::Cluster {
            rank: cluster.rank(),
            size: cluster.size(),
            message: format!("PEL_CLUSTER_MAX_MESSAGE={v:?}: not a positive number of bytes"),
        })
}

impl Drop for ClusterRuntime {
    /// Runs what this rank still has queued (another rank may wait for
    /// it); the progress thread then completes the sends.
    fn drop(&mut self) {
        self.drain(u64::MAX);
    }
}

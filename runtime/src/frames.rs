//! What this thread is running inside pel, so that a call into pel from
//! inside a kernel or a task can tell, before it waits, that it would wait
//! for itself.
//!
//! A call pushes a [`Frame`] while it holds its buffer leases and runs; a
//! worker marks its thread for the runtime it serves. The CPU device carries
//! the frames over to the pool thread that runs a closure
//! ([`snapshot`], [`with`]), so a closure's own `rt.read` of an argument it
//! writes is refused, not hung. Work a closure fans out to other rayon
//! threads (its `par_iter`s) carries no frames: a nested call there that
//! needs the closure's own arguments still waits for them.
//!
//! This module imports nothing of pel: it is vocabulary every layer names.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use smallvec::SmallVec;

/// A frame's buffer ids: a call's few, held in place (entering a frame,
/// which every CPU call does, allocates nothing).
pub(crate) type Ids = SmallVec<[u64; 4]>;

/// One call this thread is inside of: its buffer leases and, for a
/// submitted task, the task.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// The runtime the call belongs to.
    pub(crate) runtime: u64,
    /// The kernel's name.
    pub(crate) kernel: Arc<str>,
    /// Buffers it reads (shared leases).
    pub(crate) reads: Ids,
    /// Buffers it writes (exclusive leases).
    pub(crate) writes: Ids,
    /// The submitted task it runs, if any.
    pub(crate) task: Option<u64>,
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// The runtime whose worker this thread is (0: none).
    static WORKER_OF: Cell<u64> = const { Cell::new(0) };
}

/// Pushes a frame for a call of `kernel` in `runtime` holding leases on
/// `reads` and `writes` (running submitted `task`, if any), for as long as
/// the returned guard lives.
pub(crate) fn enter(
    runtime: u64,
    kernel: Arc<str>,
    reads: &[u64],
    writes: &[u64],
    task: Option<u64>,
) -> Entered {
    let frame = Frame {
        runtime,
        kernel,
        reads: Ids::from_slice(reads),
        writes: Ids::from_slice(writes),
        task,
    };
    FRAMES.with_borrow_mut(|f| f.push(frame));
    Entered(())
}

/// Pops the frame [`enter`] pushed, also on unwind.
pub(crate) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        FRAMES.with_borrow_mut(Vec::pop);
    }
}

/// This thread's frames, to carry to a thread that runs part of the call.
pub(crate) fn snapshot() -> Vec<Frame> {
    FRAMES.with_borrow(Vec::clone)
}

/// Runs `f` with `frames` as this thread's, then restores what it had.
pub(crate) fn with<R>(frames: Vec<Frame>, f: impl FnOnce() -> R) -> R {
    struct Restore(Vec<Frame>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FRAMES.with_borrow_mut(|f| std::mem::swap(f, &mut self.0));
        }
    }
    let old = FRAMES.with_borrow_mut(|f| std::mem::replace(f, frames));
    let _restore = Restore(old);
    f()
}

/// Whether this thread is inside a call of `runtime`.
pub(crate) fn inside(runtime: u64) -> bool {
    FRAMES.with_borrow(|f| f.iter().any(|fr| fr.runtime == runtime))
}

/// The frame of `runtime` on this thread whose leases a call needing
/// `reads` (shared) and `writes` (exclusive) would wait for, and the buffer.
pub(crate) fn conflict(runtime: u64, reads: &[u64], writes: &[u64]) -> Option<(Frame, u64)> {
    FRAMES.with_borrow(|frames| {
        frames
            .iter()
            .filter(|fr| fr.runtime == runtime)
            .find_map(|fr| {
                let clash = reads.iter().find(|id| fr.writes.contains(id)).or_else(|| {
                    writes
                        .iter()
                        .find(|id| fr.writes.contains(id) || fr.reads.contains(id))
                });
                clash.map(|&id| (fr.clone(), id))
            })
    })
}

/// The submitted tasks of `runtime` this thread is running, innermost last.
pub(crate) fn tasks(runtime: u64) -> Vec<u64> {
    FRAMES.with_borrow(|f| {
        f.iter()
            .filter(|fr| fr.runtime == runtime)
            .filter_map(|fr| fr.task)
            .collect()
    })
}

/// Marks this thread as a worker of `runtime`.
pub(crate) fn mark_worker(runtime: u64) {
    WORKER_OF.set(runtime);
}

/// Whether this thread is a worker of `runtime`.
pub(crate) fn is_worker_of(runtime: u64) -> bool {
    WORKER_OF.get() == runtime
}

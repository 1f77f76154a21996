//! The progress thread: the one thread of a rank that sends and receives
//! pel's messages. Callers hand it a send (which returns at once) or a
//! receive (a [`Slot`] to wait on); it posts them as non-blocking MPI
//! requests on a communicator of pel's own, and tests them until they
//! complete, so a large send progresses while its rank computes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use mpi::request::{Request, StaticScope};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{Destination, Source};

/// A receive's result, filled by the progress thread.
pub(super) struct Slot {
    done: AtomicBool,
    data: Mutex<Option<Box<[u8]>>>,
    ready: Condvar,
}

impl Slot {
    /// Waits for the message (yielding a little first: most arrive within
    /// microseconds) and takes it.
    pub(super) fn wait(&self) -> Box<[u8]> {
        for _ in 0..256 {
            if self.done.load(Ordering::Acquire) {
                break;
            }
            std::thread::yield_now();
        }
        let mut data = self.data.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(d) = data.take() {
                return d;
            }
            data = self.ready.wait(data).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn fill(&self, d: Box<[u8]>) {
        *self.data.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
        self.done.store(true, Ordering::Release);
        self.ready.notify_all();
    }
}

enum Op {
    Send {
        to: i32,
        tag: i32,
        data: Box<[u8]>,
    },
    Recv {
        from: i32,
        tag: i32,
        len: usize,
        slot: Arc<Slot>,
    },
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The progress thread of one rank; stopping it (on drop) completes every
/// send first.
pub(super) struct Progress {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the thread. It duplicates the world communicator (collective:
    /// every rank starts one) before this returns, so pel's messages never
    /// match a program's own.
    pub(super) fn start(rank: usize) -> Progress {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("pel-mpi-progress-{rank}"))
            .spawn(move || {
                let comm = SimpleCommunicator::world().duplicate();
                let _ = ready_tx.send(());
                drive(&comm, &s);
            })
            .expect("the progress thread starts");
        // The duplicate is collective; nothing else calls MPI until it is
        // done (two collectives on one communicator from two threads at
        // once would be erroneous).
        let _ = ready_rx.recv();
        Progress {
            shared,
            thread: Some(thread),
        }
    }

    fn push(&self, op: Op) {
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.ops.push(op);
        drop(q);
        self.shared.wake.notify_one();
    }

    /// Sends `data` to rank `to` with `tag`; returns at once.
    pub(super) fn send(&self, to: usize, tag: i32, data: Box<[u8]>) {
        self.push(Op::Send {
            to: to as i32,
            tag,
            data,
        });
    }

    /// Receives `len` bytes from rank `from` with `tag`: wait on the slot.
    pub(super) fn recv(&self, from: usize, tag: i32, len: usize) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            done: AtomicBool::new(false),
            data: Mutex::new(None),
            ready: Condvar::new(),
        });
        self.push(Op::Recv {
            from: from as i32,
            tag,
            len,
            slot: Arc::clone(&slot),
        });
        slot
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A posted request and the buffer it owns (leaked while MPI holds it).
struct Posted {
    request: Request<'static, [u8], StaticScope>,
    buf: *mut [u8],
    slot: Option<Arc<Slot>>,
}

/// The thread's loop: post what is queued, test what is posted, sleep when
/// nothing is either; stop once asked and every request is done.
fn drive(comm: &SimpleCommunicator, shared: &Shared) {
    let mut posted: Vec<Posted> = Vec::new();
    loop {
        let (ops, stop) = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            while q.ops.is_empty() && posted.is_empty() && !q.stop {
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            (std::mem::take(&mut q.ops), q.stop)
        };
        let new = !ops.is_empty();
        for op in ops {
            posted.push(post(comm, op));
        }
        let before = posted.len();
        posted = posted.into_iter().filter_map(test).collect();
        if stop && posted.is_empty() {
            return;
        }
        if !new && posted.len() == before {
            std::thread::yield_now();
        }
    }
}

fn post(comm: &SimpleCommunicator, op: Op) -> Posted {
    match op {
        Op::Send { to, tag, data } => {
            let buf: &'static mut [u8] = Box::leak(data);
            let ptr: *mut [u8] = buf;
            let request = comm
                .process_at_rank(to)
                .immediate_send_with_tag(StaticScope, &*buf, tag);
            Posted {
                request,
                buf: ptr,
                slot: None,
            }
        }
        Op::Recv {
            from,
            tag,
            len,
            slot,
        } => {
            let buf: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
            let ptr: *mut [u8] = buf;
            let request =
                comm.process_at_rank(from)
                    .immediate_receive_into_with_tag(StaticScope, buf, tag);
            Posted {
                request,
                buf: ptr,
                slot: Some(slot),
            }
        }
    }
}

/// `None` once the request completed (its buffer reclaimed, a receive's
/// handed to its slot); else the request, still posted.
fn test(p: Posted) -> Option<Posted> {
    match p.request.test() {
        Ok(_status) => {
            // SAFETY: `buf` came from `Box::leak` in `post`, and MPI has
            // finished with it (the request completed), so nothing else
            // refers to it: the box is whole again.
            let data = unsafe { Box::from_raw(p.buf) };
            if let Some(slot) = p.slot {
                slot.fill(data);
            }
            None
        }
        Err(request) => Some(Posted { request, ..p }),
    }
}

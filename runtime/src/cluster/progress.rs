//! pel's messages between ranks: non-blocking sends and receives on a
//! communicator of pel's own, and the progress thread that completes the
//! sends.
//!
//! A send is posted by the thread that has the data and returns at once;
//! the progress thread then tests it until MPI is done with it (a large
//! send needs MPI to be driven while its rank computes) and frees its
//! buffer. A receive is posted as early as the receiver knows of it, and
//! waited for when its data is needed.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mpi::ffi::MPI_Request;
use mpi::request::{Request, StaticScope};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{Destination, Source};

/// Tests of a send by its poster before the progress thread takes it.
const SEND_TESTS: usize = 4;

/// Bytes from which a send wakes the progress thread at once (past MPI's
/// eager sizes, a send moves only while MPI is driven).
const LARGE: usize = 64 << 10;

/// How often the progress thread looks at the pending sends.
const ROUND: Duration = Duration::from_millis(1);

/// A posted request and the buffer it owns (leaked while MPI holds it).
struct Posted {
    raw: MPI_Request,
    buf: *mut [u8],
}

// SAFETY: MPI was started with MPI_THREAD_MULTIPLE (`Cluster::init` checks
// it), under which a request may be tested or waited on from any thread;
// each `Posted` is used by one thread at a time (it moves, never shares).
// The buffer is owned by the request alone until it completes.
unsafe impl Send for Posted {}

impl Posted {
    fn new(request: Request<'static, [u8], StaticScope>, buf: *mut [u8]) -> Posted {
        // SAFETY: the request is completed before its buffer is freed: by
        // `wait` (receives) or by the progress thread (sends), which
        // reclaim the buffer only after MPI reports completion.
        let (raw, _, _) = unsafe { request.into_raw() };
        Posted { raw, buf }
    }

    fn request(&self) -> Request<'static, [u8], StaticScope> {
        // SAFETY: `raw` is the live request `new` took apart, used by no
        // one else now; its buffer (`buf`, leaked) outlives it.
        unsafe { Request::from_raw(self.raw, &*self.buf, StaticScope) }
    }

    /// Frees the buffer of a completed request.
    fn reclaim(self) -> Box<[u8]> {
        // SAFETY: `buf` came from `Box::leak`, and MPI has finished with it
        // (the request completed): the box is whole again.
        unsafe { Box::from_raw(self.buf) }
    }

    /// Tests it once: the buffer if done, else the request.
    fn test(self) -> Result<Box<[u8]>, Posted> {
        match self.request().test() {
            Ok(_) => Ok(self.reclaim()),
            Err(request) => Err(Posted::new(request, self.buf)),
        }
    }
}

/// A posted receive: [`wait`](Recv::wait) for its bytes.
pub(super) struct Recv(Posted);

impl Recv {
    /// Waits for the message (MPI's own wait) and takes its bytes.
    pub(super) fn wait(self) -> Box<[u8]> {
        self.0.request().wait();
        self.0.reclaim()
    }
}

/// pel's communicator.
struct Comm(SimpleCommunicator);

// SAFETY: under MPI_THREAD_MULTIPLE (checked by `Cluster::init`) any thread
// may post sends and receives on a communicator, concurrently; pel posts
// only point-to-point operations on this one after it is made.
unsafe impl Send for Comm {}
// SAFETY: as above: concurrent point-to-point calls are allowed.
unsafe impl Sync for Comm {}

#[derive(Default)]
struct Sends {
    posted: Vec<Posted>,
    stop: bool,
}

struct Shared {
    sends: Mutex<Sends>,
    wake: Condvar,
}

/// A rank's messages; dropping it completes every send first.
pub(super) struct Progress {
    comm: Comm,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Duplicates the world communicator (collective: every rank starts
    /// one), so pel's messages never match a program's own, and starts the
    /// progress thread.
    pub(super) fn start(rank: usize) -> Progress {
        let comm = Comm(SimpleCommunicator::world().duplicate());
        let shared = Arc::new(Shared {
            sends: Mutex::new(Sends::default()),
            wake: Condvar::new(),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("pel-mpi-progress-{rank}"))
            .spawn(move || drive(&s))
            .expect("the progress thread starts");
        Progress {
            comm,
            shared,
            thread: Some(thread),
        }
    }

    /// Sends `data` to rank `to` with `tag`; returns at once.
    pub(super) fn send(&self, to: usize, tag: i32, data: Box<[u8]>) {
        let buf: &'static mut [u8] = Box::leak(data);
        let ptr: *mut [u8] = buf;
        let request = self
            .comm
            .0
            .process_at_rank(to as i32)
            .immediate_send_with_tag(StaticScope, &*buf, tag);
        // A small message is done after a test or two (each drives MPI):
        // then the progress thread has nothing to do.
        let len = ptr.len();
        let mut posted = Posted::new(request, ptr);
        for _ in 0..SEND_TESTS {
            posted = match posted.test() {
                Ok(_) => return self.test_pending(),
                Err(p) => p,
            };
        }
        let mut s = self.shared.sends.lock().unwrap_or_else(|p| p.into_inner());
        s.posted.push(posted);
        drop(s);
        // A large one needs MPI driven until the receiver takes it: wake
        // the thread now. A small one it finds on its next round.
        if len >= LARGE {
            self.shared.wake.notify_one();
        }
    }

    /// Tests the sends still pending, if the progress thread is not at
    /// them (a few MPI tests, on the way, spare it a round).
    fn test_pending(&self) {
        if let Ok(mut s) = self.shared.sends.try_lock()
            && !s.posted.is_empty()
        {
            let posted = std::mem::take(&mut s.posted);
            s.posted = posted.into_iter().filter_map(|p| p.test().err()).collect();
        }
    }

    /// Posts the receive of `len` bytes from rank `from` with `tag`.
    pub(super) fn recv(&self, from: usize, tag: i32, len: usize) -> Recv {
        let buf: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
        let ptr: *mut [u8] = buf;
        let request = self
            .comm
            .0
            .process_at_rank(from as i32)
            .immediate_receive_into_with_tag(StaticScope, buf, tag);
        Recv(Posted::new(request, ptr))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.shared
            .sends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The progress thread: every [`ROUND`] (or at once, woken for a large
/// send) tests the pending sends, briefly yielding between tests while a
/// large one is pending; returns once asked to stop and every send is done.
fn drive(shared: &Shared) {
    let mut pending: Vec<Posted> = Vec::new();
    let mut idle_passes = 0u32;
    loop {
        let stop = {
            let mut s = shared.sends.lock().unwrap_or_else(|p| p.into_inner());
            if pending.is_empty() && s.posted.is_empty() && !s.stop {
                s = shared
                    .wake
                    .wait_timeout(s, ROUND)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            pending.append(&mut s.posted);
            s.stop
        };
        let before = pending.len();
        pending = pending.into_iter().filter_map(|p| p.test().err()).collect();
        if stop && pending.is_empty() {
            return;
        }
        if pending.len() == before && !pending.is_empty() {
            idle_passes += 1;
            if idle_passes < 4 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(20));
            }
        } else {
            idle_passes = 0;
        }
    }
}

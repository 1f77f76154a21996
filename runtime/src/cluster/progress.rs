//! pel's messages between ranks: non-blocking sends and receives on a
//! communicator of pel's own, and the progress thread that completes the
//! sends.
//!
//! A send is posted by the thread that has the data and returns at once.
//! Pending sends are tested together (`MPI_Testsome`), by the poster once
//! enough are pending and by the progress thread every round (at once for
//! a large send, which needs MPI driven while its rank computes); a send's
//! buffer is freed once MPI reports it done. A receive is posted as early as the receiver knows of it, and
//! waited for when its data is needed.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use std::os::raw::c_int;

use mpi::ffi::{MPI_Request, MPI_Status};
use mpi::raw::AsRaw;
use mpi::topology::{Communicator, SimpleCommunicator};

/// Pending sends at which the poster tests them all (one pass of MPI's
/// progress engine for the lot, `MPI_Testsome`) and frees the buffers of
/// those done. A small send is usually done at once; testing each as it
/// is posted cost a pass of the progress engine a message.
const TEST_AT: usize = 16;

/// Bytes from which a send wakes the progress thread at once (past MPI's
/// eager sizes, a send moves only while MPI is driven).
const LARGE: usize = 64 << 10;

/// Message buffers kept for reuse: an allocation freed on the progress
/// thread is slow to make again on the rank's.
const SPARE: usize = 64;

/// How often the progress thread looks at the pending sends.
const ROUND: Duration = Duration::from_millis(1);

/// A posted receive's request and the buffer it owns (leaked while MPI
/// holds it).
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
    /// Frees the buffer of a completed request.
    fn reclaim(self) -> Box<[u8]> {
        // SAFETY: `buf` came from `Box::leak`, and MPI has finished with it
        // (the request completed): the box is whole again.
        unsafe { Box::from_raw(self.buf) }
    }
}

/// A posted receive: [`wait`](Recv::wait) for its bytes.
pub(super) struct Recv(Posted);

impl Recv {
    /// Waits for the message and takes its buffer, and how many bytes
    /// came (a message may be shorter than the room). It tests until the
    /// message is in (each test drives MPI's progress, as a wait does):
    /// under `MPI_THREAD_MULTIPLE` Open MPI's wait makes and unmakes a
    /// mutex and a condition variable every time, which cost a rank with
    /// small tasks a tenth of its time.
    pub(super) fn wait(mut self) -> (Box<[u8]>, usize) {
        let mut done: c_int = 0;
        let mut got: c_int = 0;
        // SAFETY: `raw` is this receive's live request, tested by this
        // thread alone (a `Recv` moves, never shares) until it completes,
        // when MPI sets it to the null request and fills `status`, whose
        // count is then read.
        unsafe {
            let mut status = std::mem::MaybeUninit::<MPI_Status>::uninit();
            while done == 0 {
                mpi::ffi::MPI_Test(&mut self.0.raw, &mut done, status.as_mut_ptr());
            }
            mpi::ffi::MPI_Get_count(status.as_ptr(), mpi::ffi::RSMPI_UINT8_T, &mut got);
        }
        (self.0.reclaim(), usize::try_from(got).unwrap_or(0))
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

/// Sends posted and not yet seen complete: each request and the buffer
/// it owns (leaked while MPI holds it).
#[derive(Default)]
struct Sends {
    requests: Vec<MPI_Request>,
    bufs: Vec<*mut [u8]>,
    /// `MPI_Testsome`'s indices (kept, not made each test).
    indices: Vec<c_int>,
    /// Message buffers done with, for the next messages.
    spare: Vec<Box<[u8]>>,
    stop: bool,
}

// SAFETY: as for `Posted`: under MPI_THREAD_MULTIPLE a request may be
// tested from any thread, and `Sends` is used under its mutex only; each
// buffer is owned by its request until MPI completes it.
unsafe impl Send for Sends {}

impl Sends {
    fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Whether a pending send is [`LARGE`]: one that moves only while MPI
    /// is driven. A small one went eagerly; its buffer waits for a test.
    fn large_pending(&self) -> bool {
        self.bufs.iter().any(|b| b.len() >= LARGE)
    }

    /// Keeps `buf` for a later message, up to [`SPARE`] of them.
    fn keep(&mut self, buf: Box<[u8]>) {
        if self.spare.len() < SPARE {
            self.spare.push(buf);
        }
    }

    /// A buffer of `len` bytes: a spare one (its old bytes are
    /// overwritten whole: a payload or a message of this length), or a new
    /// one.
    fn take(&mut self, len: usize) -> Box<[u8]> {
        match self.spare.iter().rposition(|b| b.len() == len) {
            Some(i) => self.spare.swap_remove(i),
            None => vec![0u8; len].into_boxed_slice(),
        }
    }

    fn push(&mut self, request: MPI_Request, buf: *mut [u8]) {
        self.requests.push(request);
        self.bufs.push(buf);
    }

    /// Tests every pending send in one call (`MPI_Testsome`: one pass of
    /// the progress engine) and frees the buffers of those done. Returns
    /// whether any was.
    fn test(&mut self) -> bool {
        let n = self.requests.len();
        if n == 0 {
            return false;
        }
        self.indices.resize(n, 0);
        let mut done: c_int = 0;
        // SAFETY: `requests` holds `n` live send requests (each owning its
        // leaked buffer), and `indices` has room for `n` entries; MPI sets
        // a completed request to `MPI_REQUEST_NULL`, which the loop below
        // reads to free its buffer.
        unsafe {
            mpi::ffi::MPI_Testsome(
                n as c_int,
                self.requests.as_mut_ptr(),
                &mut done,
                self.indices.as_mut_ptr(),
                mpi::ffi::RSMPI_STATUSES_IGNORE,
            );
        }
        if done <= 0 {
            return false;
        }
        // SAFETY: reads an MPI constant.
        let null = unsafe { mpi::ffi::RSMPI_REQUEST_NULL };
        let mut kept = 0;
        for i in 0..n {
            if self.requests[i] == null {
                // SAFETY: the request completed, so MPI is done with the
                // buffer, which came from `Box::leak`: the box is whole.
                let buf = unsafe { Box::from_raw(self.bufs[i]) };
                self.keep(buf);
            } else {
                self.requests[kept] = self.requests[i];
                self.bufs[kept] = self.bufs[i];
                kept += 1;
            }
        }
        self.requests.truncate(kept);
        self.bufs.truncate(kept);
        true
    }
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
        let len = data.len();
        let ptr: *mut [u8] = Box::leak(data);
        // SAFETY: `ptr` is a leaked buffer of `len` bytes, owned by the
        // request until `Sends::test` sees it complete and frees it; the
        // communicator is pel's own, alive while `self` is (the progress
        // thread completes every send before it drops); `to` and `tag` are
        // a rank of the job and a tag in range (the caller's).
        let raw = unsafe {
            let mut raw = mpi::ffi::RSMPI_REQUEST_NULL;
            mpi::ffi::MPI_Isend(
                ptr.cast::<u8>().cast(),
                count(len),
                mpi::ffi::RSMPI_UINT8_T,
                to as c_int,
                tag,
                self.comm.0.as_raw(),
                &mut raw,
            );
            raw
        };
        let mut s = self.sends();
        s.push(raw, ptr);
        if s.requests.len() >= TEST_AT {
            s.test();
        }
        drop(s);
        // A large one needs MPI driven until the receiver takes it: wake
        // the thread now. A small one it finds on its next round.
        if len >= LARGE {
            self.shared.wake.notify_one();
        }
    }

    fn sends(&self) -> std::sync::MutexGuard<'_, Sends> {
        self.shared.sends.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message buffer of `len` bytes (its contents are whatever a
    /// message left: write it whole).
    pub(super) fn buffer(&self, len: usize) -> Box<[u8]> {
        self.sends().take(len)
    }

    /// Gives back a message's buffer, done with, for another.
    pub(super) fn give_back(&self, buf: Box<[u8]>) {
        self.sends().keep(buf);
    }

    /// Posts the receive of `len` bytes from rank `from` with `tag`.
    pub(super) fn recv(&self, from: usize, tag: i32, len: usize) -> Recv {
        let buf: *mut [u8] = Box::leak(self.buffer(len));
        // SAFETY: `buf` is a leaked buffer of `len` bytes, owned by the
        // request until `Recv::wait` sees it complete and takes it back;
        // the communicator is pel's own, alive while `self` is; `from` and
        // `tag` are a rank of the job and a tag in range (the caller's).
        let raw = unsafe {
            let mut raw = mpi::ffi::RSMPI_REQUEST_NULL;
            mpi::ffi::MPI_Irecv(
                buf.cast::<u8>().cast(),
                count(len),
                mpi::ffi::RSMPI_UINT8_T,
                from as c_int,
                tag,
                self.comm.0.as_raw(),
                &mut raw,
            );
            raw
        };
        Recv(Posted { raw, buf })
    }
}

/// A message's length as MPI's `int` count.
fn count(len: usize) -> c_int {
    c_int::try_from(len).expect("a message of at most 2^31 - 1 bytes")
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
/// send) tests the pending sends; while a large one is pending (or it is
/// asked to stop) it tests again and again, briefly yielding between
/// tests that complete none; returns once asked to stop and every send is
/// done.
fn drive(shared: &Shared) {
    let mut idle_passes = 0u32;
    loop {
        let mut s = shared.sends.lock().unwrap_or_else(|p| p.into_inner());
        // Small sends need no driving: the thread looks at them once a
        // round and otherwise sleeps, leaving the cores to the ranks (more
        // ranks than cores share them).
        if !s.stop && !s.large_pending() {
            s = shared
                .wake
                .wait_timeout(s, ROUND)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let progressed = s.test();
        if s.stop && s.is_empty() {
            return;
        }
        let pending = !s.is_empty();
        drop(s);
        if pending && !progressed {
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

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
pub(super) struct Recv(Posted, Shape);

impl Recv {
    /// Waits for the message and takes its buffer, and how many bytes
    /// came (a message may be shorter than the room). It tests until the
    /// message is in (each test drives MPI's progress, as a wait does):
    /// under `MPI_THREAD_MULTIPLE` Open MPI's wait makes and unmakes a
    /// mutex and a condition variable every time, which cost a rank with
    /// small tasks a tenth of its time.
    pub(super) fn wait(mut self) -> (Box<[u8]>, usize) {
        let mut done: c_int = 0;
        let got;
        // SAFETY: `raw` is this receive's live request, tested by this
        // thread alone (a `Recv` moves, never shares) until it completes,
        // when MPI sets it to the null request and fills `status`, whose
        // count is then read.
        unsafe {
            let mut status = std::mem::MaybeUninit::<MPI_Status>::uninit();
            while done == 0 {
                mpi::ffi::MPI_Test(&mut self.0.raw, &mut done, status.as_mut_ptr());
            }
            got = self.1.received(status.as_ptr());
        }
        (self.0.reclaim(), got)
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
    /// The most bytes MPI is told of as a count of bytes ([`Shape`]).
    block: usize,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Duplicates the world communicator (collective: every rank starts
    /// one), so pel's messages never match a program's own, and starts the
    /// progress thread. A message longer than `block` bytes (at most
    /// MPI's `int`) goes as blocks of it ([`Shape`]).
    pub(super) fn start(rank: usize, block: usize) -> Progress {
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
            block: block.clamp(1, MAX_BLOCK),
            shared,
            thread: Some(thread),
        }
    }

    /// Sends `data` to rank `to` with `tag`; returns at once.
    pub(super) fn send(&self, to: usize, tag: i32, data: Box<[u8]>) {
        let len = data.len();
        let ptr: *mut [u8] = Box::leak(data);
        let shape = Shape::of(len, self.block);
        // SAFETY: `ptr` is a leaked buffer of `len` bytes, owned by the
        // request until `Sends::test` sees it complete and frees it; the
        // communicator is pel's own, alive while `self` is (the progress
        // thread completes every send before it drops); `to` and `tag` are
        // a rank of the job and a tag in range (the caller's).
        let raw = unsafe {
            let mut raw = mpi::ffi::RSMPI_REQUEST_NULL;
            mpi::ffi::MPI_Isend(
                ptr.cast::<u8>().cast(),
                shape.count,
                shape.ty,
                to as c_int,
                tag,
                self.comm.0.as_raw(),
                &mut raw,
            );
            raw
        };
        // The send keeps what it needs of a made type.
        shape.free();
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
        let shape = Shape::of(len, self.block);
        // SAFETY: `buf` is a leaked buffer of `len` bytes, owned by the
        // request until `Recv::wait` sees it complete and takes it back;
        // the communicator is pel's own, alive while `self` is; `from` and
        // `tag` are a rank of the job and a tag in range (the caller's).
        let raw = unsafe {
            let mut raw = mpi::ffi::RSMPI_REQUEST_NULL;
            mpi::ffi::MPI_Irecv(
                buf.cast::<u8>().cast(),
                shape.count,
                shape.ty,
                from as c_int,
                tag,
                self.comm.0.as_raw(),
                &mut raw,
            );
            raw
        };
        Recv(Posted { raw, buf }, shape)
    }
}

/// The most bytes one count of bytes may tell MPI (its counts are `int`s).
pub(super) const MAX_BLOCK: usize = c_int::MAX as usize;

/// How a message's length is told to MPI: a count of bytes where it is
/// at most a block, else one element of a type made for it (blocks of
/// that many bytes and the rest, a single message either way; MPI matches
/// a send and a receive by the bytes they hold, so ranks need not cut a
/// message alike). The large-count way of MPI 3 (BigMPI's), which keeps
/// one request a message.
struct Shape {
    ty: mpi::ffi::MPI_Datatype,
    count: c_int,
    len: usize,
    made: bool,
}

// SAFETY: a datatype handle may be used and freed from any thread under
// MPI_THREAD_MULTIPLE (checked by `Cluster::init`); a `Shape` moves with
// its receive, never shared.
unsafe impl Send for Shape {}

impl Shape {
    fn of(len: usize, block: usize) -> Shape {
        // SAFETY: reads an MPI constant.
        let byte = unsafe { mpi::ffi::RSMPI_UINT8_T };
        if len <= block {
            return Shape {
                ty: byte,
                count: len as c_int,
                len,
                made: false,
            };
        }
        // Blocks few enough that their count is an `int` too.
        let block = block.max(len.div_ceil(MAX_BLOCK));
        let (blocks, rest) = (len / block, len % block);
        // SAFETY: makes and commits a datatype from the predefined byte
        // type: `blocks` (an `int`: `len / block <= MAX_BLOCK`) blocks of
        // `block` bytes (an `int`: at most MAX_BLOCK), then `rest` bytes
        // after them; the intermediate block type is freed once the struct
        // holds it (MPI keeps what a type is made of).
        unsafe {
            let mut chunk = std::mem::MaybeUninit::uninit();
            mpi::ffi::MPI_Type_contiguous(block as c_int, byte, chunk.as_mut_ptr());
            let mut chunk = chunk.assume_init();
            let lengths = [blocks as c_int, rest as c_int];
            let at = [0, (blocks * block) as mpi::ffi::MPI_Aint];
            let types = [chunk, byte];
            let mut ty = std::mem::MaybeUninit::uninit();
            mpi::ffi::MPI_Type_create_struct(
                2,
                lengths.as_ptr(),
                at.as_ptr(),
                types.as_ptr(),
                ty.as_mut_ptr(),
            );
            let mut ty = ty.assume_init();
            mpi::ffi::MPI_Type_commit(&mut ty);
            mpi::ffi::MPI_Type_free(&mut chunk);
            Shape {
                ty,
                count: 1,
                len,
                made: true,
            }
        }
    }

    /// Bytes a completed receive of this shape got (`status`): a made
    /// type's whole message or nothing (a shorter message has no whole
    /// element; 0 tells the receiver it is not the one it waited for).
    ///
    /// # Safety
    /// `status` is the completed receive's.
    unsafe fn received(self, status: *const MPI_Status) -> usize {
        let mut got: c_int = 0;
        // SAFETY: `status` is a completed receive's (the caller's), and
        // `ty` this receive's type, alive until freed below.
        unsafe { mpi::ffi::MPI_Get_count(status, self.ty, &mut got) };
        let bytes = match (self.made, usize::try_from(got)) {
            (false, Ok(n)) => n,
            (true, Ok(1)) => self.len,
            _ => 0,
        };
        self.free();
        bytes
    }

    /// Frees a made type (an operation posted with it keeps what it needs).
    fn free(mut self) {
        if self.made {
            // SAFETY: `ty` was made and committed by `of`, freed once here.
            unsafe { mpi::ffi::MPI_Type_free(&mut self.ty) };
        }
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

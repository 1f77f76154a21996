//! Buffers and where their valid copies live.
//!
//! Each buffer has at most one copy per device (the host and each GPU) and a
//! [`Validity`] record saying which copies hold the current contents. Data
//! moves only when a kernel or a read needs it somewhere it is not valid;
//! a write leaves only the writer's copy valid (modified / shared / invalid).
//! This module owns copies and transfers; it does not choose devices.
//!
//! **Lineage.** Every write makes a new version of a buffer. A kernel that
//! writes on a GPU leaves a [`Record`] of itself (kernel, params, and the
//! version of every argument it read) for each version it made, for as long
//! as the host copy is older than that version. When a device is lost, a
//! version that lived only there is rebuilt on the CPU by replaying its
//! records from the versions still held elsewhere ([`Table::lose_gpu`]).
//! Versions that records read are *pinned*: before a pinned version's host
//! bytes are overwritten they are kept aside, so a replay always finds its
//! inputs. A buffer whose handles are all dropped stays (as a *zombie*,
//! without its GPU copies being handed out) while a record still reads it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use crate::device::{Device, Memory};
use crate::error::{Error, Result};
use crate::ids::Backend;
use crate::kernel::{ElemType, Element, Kernel, RawSlice};
use crate::stats::Counters;

/// A typed array owned by a [`Runtime`](crate::Runtime).
///
/// The handle is cheap to clone; clones name the same data. The data is
/// freed (and its GPU memory returned to the pool) when the last clone
/// drops. Read it with [`Runtime::read`](crate::Runtime::read).
pub struct Buffer<T: Element> {
    handle: Arc<Handle>,
    _elem: PhantomData<fn() -> T>,
}

impl<T: Element> Clone for Buffer<T> {
    fn clone(&self) -> Self {
        Buffer {
            handle: Arc::clone(&self.handle),
            _elem: PhantomData,
        }
    }
}

impl<T: Element> fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("id", &self.handle.id)
            .field("len", &self.handle.len)
            .field("elem", &T::TYPE)
            .finish()
    }
}

impl<T: Element> Buffer<T> {
    pub(crate) fn from_handle(handle: Arc<Handle>) -> Self {
        Buffer {
            handle,
            _elem: PhantomData,
        }
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.handle.len
    }

    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.handle.len == 0
    }

    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.handle.bytes
    }
}

/// Bytes a backend would have to receive before it could run a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Moves {
    /// (GPU, bytes) to upload.
    pub(crate) up: Vec<(usize, u64)>,
    /// (GPU, bytes) to download.
    pub(crate) down: Vec<(usize, u64)>,
}

/// What frees a buffer's copies when its last handle drops: the runtime
/// that made it (through a weak reference, so a handle does not keep a
/// runtime alive).
pub(crate) trait Release: Send + Sync {
    /// Buffer `id` has no handle left.
    fn release_buffer(&self, id: u64);
}

/// The runtime's record of one buffer, shared by its typed handles.
pub(crate) struct Handle {
    pub(crate) id: u64,
    pub(crate) runtime: u64,
    pub(crate) len: usize,
    pub(crate) elem: ElemType,
    /// `size_of` the Rust element type the buffer was made from: a call
    /// checks it against its bindings' element size, so no kernel views
    /// the buffer as more bytes than it holds.
    pub(crate) elem_size: usize,
    pub(crate) bytes: u64,
    pub(crate) owner: Weak<dyn Release>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(shared) = self.owner.upgrade() {
            shared.release_buffer(self.id);
        }
    }
}

/// A buffer of any element type, as a kernel argument. Implemented by
/// [`Buffer`]; a call takes `&[&dyn BufferArg]`, e.g. `&[&x, &y]`.
pub trait BufferArg: Send + Sync {
    /// The buffer, type-erased.
    fn as_arg(&self) -> ArgRef<'_>;
}

impl<T: Element> BufferArg for Buffer<T> {
    fn as_arg(&self) -> ArgRef<'_> {
        ArgRef {
            handle: &self.handle,
        }
    }
}

/// A type-erased reference to a buffer; see [`BufferArg`].
#[derive(Clone, Copy)]
pub struct ArgRef<'a> {
    pub(crate) handle: &'a Arc<Handle>,
}

impl ArgRef<'_> {
    /// Element type of the buffer.
    pub fn elem(&self) -> ElemType {
        self.handle.elem
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.handle.len
    }
    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.handle.len == 0
    }
}

/// Which copies of a buffer hold its current contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validity {
    /// The host copy is current.
    pub host: bool,
    /// The copy on GPU `i` is current.
    pub gpu: Vec<bool>,
    /// No copy exists yet and the contents are all zeros: any device can
    /// materialise them locally, without a transfer.
    pub zero: bool,
}

impl Validity {
    /// Whether the copy on `backend` is current.
    pub fn on(&self, backend: Backend) -> bool {
        match backend {
            Backend::Cpu => self.host,
            Backend::Gpu(i) => self.gpu.get(i).copied().unwrap_or(false),
        }
    }

    /// Where the buffer is valid, e.g. `host+gpu0`, `zero` or `nowhere`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.host {
            parts.push("host".to_owned());
        }
        for (i, v) in self.gpu.iter().enumerate() {
            if *v {
                parts.push(format!("gpu{i}"));
            }
        }
        if parts.is_empty() {
            if self.zero { "zero" } else { "nowhere" }.to_owned()
        } else {
            parts.join("+")
        }
    }
}

/// Host storage aligned to 16 bytes, so it can be viewed as any element type
/// (an [`Element`] is aligned to at most 16).
#[derive(Clone)]
pub(crate) struct HostCopy {
    words: Vec<Block>,
    bytes: usize,
}

/// 16 bytes aligned to 16: a `Vec` of them is 16-aligned, which a `Vec` of
/// `[u32; 4]` (aligned to 4) is only by the allocator's grace.
#[repr(C, align(16))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Block([u32; 4]);

impl HostCopy {
    pub(crate) fn zeroed(bytes: usize) -> Self {
        HostCopy {
            // Zeroed by the allocator (fresh pages cost nothing until
            // touched), not written: `vec![Block(..); n]` would fill them.
            words: bytemuck::allocation::zeroed_vec(bytes.div_ceil(16)),
            bytes,
        }
    }

    pub(crate) fn from_bytes(data: &[u8]) -> Self {
        let mut h = Self::zeroed(data.len());
        h.as_bytes_mut().copy_from_slice(data);
        h
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.bytes]
    }

    pub(crate) fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.bytes]
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr() as *mut u8
    }
}

/// A kernel call that wrote on a GPU, kept to replay it (see the module
/// documentation).
pub(crate) struct Record {
    kernel: Kernel,
    params: Vec<u8>,
    /// Every argument: its buffer, the version the call read, its length in
    /// elements.
    inputs: Vec<(u64, u64, usize)>,
    /// The arguments it wrote (indices into `inputs`) and the versions it
    /// made.
    outputs: Vec<(usize, u64)>,
}

/// What a replay runs a record's kernel with: the CPU implementation.
pub(crate) type Replay<'a> = dyn FnMut(&Kernel, &[RawSlice], &[u8]) -> Result<()> + 'a;

/// The host-slot version meaning "these bytes are garbage" (a CPU kernel
/// failed halfway through writing them).
const GARBAGE: u64 = u64::MAX;

/// Beyond this many versions newer than the host copy, a buffer written
/// again on a GPU is brought to the host, so records stay few.
pub(crate) const MAX_CHAIN: usize = 64;

pub(crate) struct Entry {
    bytes: u64,
    len: usize,
    /// The version of the contents; every write adds one.
    version: u64,
    /// The version the host slot's bytes hold (when there is a host slot).
    host_version: u64,
    /// Created as zeros: version 0 is all zeros.
    born_zero: bool,
    /// The GPU calls that made versions newer than the host's, and older
    /// ones still pinned, by the version they made.
    records: BTreeMap<u64, Arc<Record>>,
    /// Versions of this buffer that live records read, and how many.
    pins: HashMap<u64, u32>,
    /// Of those, the pins of records that other buffers' versions came
    /// from: a zombie with none is needed by no one.
    outside_pins: u32,
    /// Host bytes of pinned versions, kept when the host slot moved on.
    retained: HashMap<u64, HostCopy>,
    /// Every handle has been dropped; kept only while pinned.
    zombie: bool,
    /// The contents could not be rebuilt (after a device loss) or were left
    /// half-written (a CPU kernel panicked): reads fail with this until the
    /// buffer is written again.
    lost: Option<Error>,
    /// Tick of its last use on a GPU, for eviction (least recent first).
    last_used: u64,
    /// Calls running now that read the buffer.
    readers: u32,
    /// A call running now writes the buffer.
    writer: bool,
    /// The kernel that last wrote the buffer on a GPU, while that copy is
    /// the newest: a download then tells the dispatcher its output was
    /// needed on the host.
    gpu_writer: Option<u64>,
    host: Option<HostCopy>,
    gpu: Vec<Option<Memory>>,
    valid: Validity,
}

/// Every live buffer of one runtime.
pub(crate) struct Table {
    entries: HashMap<u64, Entry>,
    /// Threads waiting for a lease to be given back.
    pub(crate) waiters: usize,
    next_id: u64,
    gpus: usize,
    /// Counts uses on a GPU, for eviction order.
    tick: u64,
    /// GPUs that have been lost: nothing is kept or made valid there.
    lost_gpus: Vec<bool>,
}

impl Table {
    pub(crate) fn new(gpus: usize) -> Self {
        Table {
            entries: HashMap::new(),
            waiters: 0,
            next_id: 1,
            gpus,
            tick: 0,
            lost_gpus: vec![false; gpus],
        }
    }

    /// Registers a buffer whose host copy is `data`, or whose contents are
    /// zeros (materialised lazily wherever first needed) when `data` is None.
    pub(crate) fn insert(&mut self, bytes: u64, len: usize, data: Option<HostCopy>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let host_valid = data.is_some();
        self.entries.insert(
            id,
            Entry {
                bytes,
                len,
                version: 0,
                host_version: 0,
                born_zero: !host_valid,
                records: BTreeMap::new(),
                pins: HashMap::new(),
                outside_pins: 0,
                retained: HashMap::new(),
                zombie: false,
                lost: None,
                last_used: 0,
                readers: 0,
                writer: false,
                gpu_writer: None,
                host: data,
                gpu: (0..self.gpus).map(|_| None).collect(),
                valid: Validity {
                    host: host_valid,
                    gpu: vec![false; self.gpus],
                    zero: !host_valid,
                },
            },
        );
        id
    }

    pub(crate) fn validity(&self, id: u64) -> Option<Validity> {
        self.entries.get(&id).map(|e| e.valid.clone())
    }

    /// Buffers the user still holds.
    pub(crate) fn live(&self) -> usize {
        self.entries.values().filter(|e| !e.zombie).count()
    }

    /// Takes leases for a call: shared on `reads`, exclusive on `writes`,
    /// all or none. A call holds them while it runs outside the table's
    /// lock, so no other call or host access can touch what it uses.
    pub(crate) fn try_lease(&mut self, reads: &[u64], writes: &[u64]) -> bool {
        let free = reads.iter().all(|id| !self.entries[id].writer)
            && writes
                .iter()
                .all(|id| !self.entries[id].writer && self.entries[id].readers == 0);
        if free {
            for id in reads {
                self.entry(*id).readers += 1;
            }
            for id in writes {
                self.entry(*id).writer = true;
            }
        }
        free
    }

    /// Gives back the leases of [`try_lease`](Self::try_lease).
    pub(crate) fn release_lease(&mut self, reads: &[u64], writes: &[u64]) {
        for id in reads {
            self.entry(*id).readers -= 1;
        }
        for id in writes {
            self.entry(*id).writer = false;
        }
    }

    /// Whether no running call writes the buffer (so it may be read).
    pub(crate) fn readable(&self, id: u64) -> bool {
        !self.entries[&id].writer
    }

    /// Whether no running call uses the buffer (so it may be written).
    pub(crate) fn writable(&self, id: u64) -> bool {
        let e = &self.entries[&id];
        !e.writer && e.readers == 0
    }

    /// Frees a buffer; its GPU copies go back to their pools. A buffer
    /// that records still read stays, as a zombie, until they are gone.
    pub(crate) fn remove(&mut self, id: u64, gpus: &[Box<dyn Device>]) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.zombie = true;
        if e.outside_pins == 0 {
            self.drop_entry(id, gpus);
        }
    }

    /// Removes a zombie (or freed) entry for good, and the records it held.
    fn drop_entry(&mut self, id: u64, gpus: &[Box<dyn Device>]) {
        let mut released = Vec::new();
        self.take_entry(id, gpus, &mut released);
        self.unpin_all(released, gpus);
    }

    /// Removes an entry: its GPU copies go back to their pools and what its
    /// records read goes to `released`.
    fn take_entry(&mut self, id: u64, gpus: &[Box<dyn Device>], released: &mut Vec<Unpin>) {
        let Some(e) = self.entries.remove(&id) else {
            return;
        };
        for (g, buf) in e.gpu.into_iter().enumerate() {
            if let Some(b) = buf {
                if !self.lost_gpus[g] {
                    gpus[g].release(b);
                }
            }
        }
        for (_, r) in e.records {
            release_record(r, released);
        }
    }

    /// The host copy of `id` holds a newer version: records it no longer
    /// needs go, and what they read is unpinned.
    fn host_caught_up(&mut self, id: u64, gpus: &[Box<dyn Device>]) {
        let mut released = Vec::new();
        prune(self.entry(id), &mut released);
        self.unpin_all(released, gpus);
    }

    /// Unpins what released records read, pruning (and dropping zombies)
    /// as pins fall to zero.
    fn unpin_all(&mut self, mut work: Vec<Unpin>, gpus: &[Box<dyn Device>]) {
        while let Some((id, v, outside)) = work.pop() {
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            if let Some(n) = e.pins.get_mut(&v) {
                *n -= 1;
                if *n == 0 {
                    e.pins.remove(&v);
                    e.retained.remove(&v);
                }
            }
            if outside {
                e.outside_pins -= 1;
            }
            if e.zombie && e.outside_pins == 0 {
                self.take_entry(id, gpus, &mut work);
            } else {
                prune(e, &mut work);
            }
        }
    }

    fn entry(&mut self, id: u64) -> &mut Entry {
        self.entries
            .get_mut(&id)
            .expect("a live handle keeps its table entry")
    }

    /// Makes the host copy valid, downloading from a GPU if needed. Returns
    /// the kernel whose GPU output was downloaded, if that happened.
    pub(crate) fn ensure_host(
        &mut self,
        id: u64,
        gpus: &[Box<dyn Device>],
        c: &Counters,
    ) -> Result<Option<u64>> {
        let e = self.entry(id);
        if e.valid.host {
            return Ok(None);
        }
        if let Some(err) = &e.lost {
            return Err(err.clone());
        }
        protect(e);
        let bytes = e.bytes as usize;
        // A fresh copy is zeroed already; only a reused one needs clearing.
        let (mut host, fresh) = match e.host.take() {
            Some(h) => (h, false),
            None => (HostCopy::zeroed(bytes), true),
        };
        let source = if e.valid.zero {
            None
        } else {
            e.valid.gpu.iter().position(|&v| v)
        };
        if let Some(g) = source {
            let Some(buf) = e.gpu[g].as_ref() else {
                e.host = Some(host);
                return Err(Error::Internal {
                    what: format!("buffer #{id}"),
                    message: format!("gpu{g} is marked valid but holds no copy"),
                });
            };
            let start = std::time::Instant::now();
            if let Err(err) = gpus[g].download(buf, host.as_bytes_mut()) {
                e.host = Some(host);
                return Err(err);
            }
            c.download(bytes as u64);
            c.timed(crate::stats::Timed {
                gpu: g,
                up: false,
                bytes: bytes as u64,
                secs: start.elapsed().as_secs_f64(),
            });
        } else if !e.valid.zero {
            // Nowhere valid, not lost: a bug, never zeros in silence.
            e.host = Some(host);
            return Err(Error::DataLost {
                buffer: id,
                device: "any device".to_owned(),
                reason: "no copy holds its current version".to_owned(),
            });
        } else if !fresh {
            // Zero contents in a reused copy.
            host.as_bytes_mut().fill(0);
        }
        e.host = Some(host);
        e.valid.host = true;
        e.host_version = e.version;
        let writer = source.and(e.gpu_writer.take());
        self.host_caught_up(id, gpus);
        Ok(writer)
    }

    /// Makes the copy on GPU `g` valid and returns it, and whether anything
    /// was queued for the device: cleared there for zero contents, uploaded
    /// from the host, or routed through the host from another GPU.
    pub(crate) fn ensure_gpu(
        &mut self,
        id: u64,
        g: usize,
        gpus: &[Box<dyn Device>],
        c: &Counters,
    ) -> Result<(Memory, bool)> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entry(id);
        if let Some(err) = &e.lost {
            return Err(err.clone());
        }
        e.last_used = tick;
        if e.gpu[g].is_none() {
            e.gpu[g] = Some(gpus[g].alloc(e.bytes)?);
        }
        let buf = e.gpu[g].clone().expect("allocated above");
        if e.valid.gpu[g] {
            return Ok((buf, false));
        }
        if !e.valid.zero && !e.valid.host {
            self.ensure_host(id, gpus, c)?;
        }
        let e = self.entry(id);
        if !e.valid.zero && e.valid.host {
            let host = e.host.as_ref().expect("valid host copy");
            gpus[g].upload(&buf, host.as_bytes())?;
            c.upload(e.bytes);
        } else {
            gpus[g].clear(&buf, e.bytes)?;
        }
        e.valid.gpu[g] = true;
        Ok((buf, true))
    }

    /// A pointer to the valid host copy (call [`ensure_host`] first).
    pub(crate) fn host_ptr(&mut self, id: u64) -> *mut u8 {
        let e = self.entry(id);
        debug_assert!(e.valid.host);
        e.host.as_mut().expect("host copy ensured").as_mut_ptr()
    }

    /// The buffer's size, bytes.
    pub(crate) fn bytes(&self, id: u64) -> u64 {
        self.entries[&id].bytes
    }

    pub(crate) fn host_bytes(&self, id: u64) -> &[u8] {
        self.entries[&id]
            .host
            .as_ref()
            .expect("host copy ensured")
            .as_bytes()
    }

    /// Replaces the contents from the host: only the host copy stays valid.
    pub(crate) fn write_host(&mut self, id: u64, data: &[u8], gpus: &[Box<dyn Device>]) {
        let e = self.entry(id);
        protect(e);
        match &mut e.host {
            Some(h) => h.as_bytes_mut().copy_from_slice(data),
            None => e.host = Some(HostCopy::from_bytes(data)),
        }
        e.valid.host = true;
        e.valid.zero = false;
        e.valid.gpu.fill(false);
        e.gpu_writer = None;
        e.lost = None;
        e.version += 1;
        e.host_version = e.version;
        self.host_caught_up(id, gpus);
    }

    /// The host bytes of the buffer when the host holds its only current
    /// copy, kept so a CPU kernel that fails halfway through writing it can
    /// be run again elsewhere from the same version.
    pub(crate) fn keep_for_retry(&self, id: u64) -> Option<HostCopy> {
        let e = &self.entries[&id];
        let only_host = e.valid.host && !e.valid.zero && !e.valid.gpu.iter().any(|&v| v);
        only_host.then(|| e.host.clone()).flatten()
    }

    /// Puts back host bytes kept by [`keep_for_retry`](Self::keep_for_retry)
    /// after the kernel that wrote over them failed: the buffer holds the
    /// version it had before the call.
    pub(crate) fn restore(&mut self, id: u64, kept: HostCopy) {
        let e = self.entry(id);
        e.host = Some(kept);
        e.host_version = e.version;
        e.valid.host = true;
        e.lost = None;
    }

    /// Whether a copy other than the host's holds the buffer's current
    /// version (a GPU's, or zeros).
    pub(crate) fn valid_off_host(&self, id: u64) -> bool {
        let e = &self.entries[&id];
        e.valid.zero || e.valid.gpu.iter().any(|&v| v)
    }

    /// Keeps the host bytes of a pinned version aside before a CPU kernel
    /// writes the host copy in place.
    pub(crate) fn protect_host(&mut self, id: u64) {
        protect(self.entry(id));
    }

    /// A CPU kernel failed while it may have written the host copy: the
    /// host bytes are garbage. The buffer stays valid where another copy
    /// holds the current version (a GPU, or the kept bytes of a pinned
    /// version); otherwise it is marked lost with `cause`.
    pub(crate) fn written_garbage(&mut self, id: u64, cause: &Error) {
        let e = self.entry(id);
        if !e.valid.host {
            return;
        }
        e.valid.host = false;
        e.host_version = GARBAGE;
        if e.valid.zero || e.valid.gpu.iter().any(|&v| v) {
            return;
        }
        if let Some(kept) = e.retained.get(&e.version) {
            e.host = Some(kept.clone());
            e.host_version = e.version;
            e.valid.host = true;
            return;
        }
        e.lost = Some(cause.clone());
    }

    /// Records that `kernel` wrote the buffer on `backend`: only that copy
    /// is valid now.
    pub(crate) fn mark_written(
        &mut self,
        id: u64,
        backend: Backend,
        kernel: u64,
        gpus: &[Box<dyn Device>],
    ) {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entry(id);
        e.gpu_writer = (backend != Backend::Cpu).then_some(kernel);
        e.version += 1;
        e.lost = None;
        let v = &mut e.valid;
        v.zero = false;
        v.host = backend == Backend::Cpu;
        for (i, g) in v.gpu.iter_mut().enumerate() {
            *g = backend == Backend::Gpu(i);
        }
        if backend == Backend::Cpu {
            e.host_version = e.version;
            self.host_caught_up(id, gpus);
        } else {
            e.last_used = tick;
        }
    }

    /// Records a call that is about to be marked as having written
    /// `writes` on a GPU, for replay: every argument's version now, and the
    /// versions it makes. Call before [`mark_written`](Self::mark_written).
    /// Returns the written buffers whose records have grown past
    /// [`MAX_CHAIN`].
    pub(crate) fn record_gpu_write(
        &mut self,
        kernel: &Kernel,
        params: &[u8],
        args: &[u64],
        writes: &[u64],
    ) -> Vec<u64> {
        let inputs: Vec<(u64, u64, usize)> = args
            .iter()
            .map(|id| (*id, self.entries[id].version, self.entries[id].len))
            .collect();
        let outputs: Vec<(usize, u64)> = args
            .iter()
            .enumerate()
            .filter(|(_, id)| writes.contains(id))
            .map(|(i, id)| (i, self.entries[id].version + 1))
            .collect();
        for &(id, v, _) in &inputs {
            let e = self.entry(id);
            *e.pins.entry(v).or_default() += 1;
            if !writes.contains(&id) {
                e.outside_pins += 1;
            }
        }
        let record = Arc::new(Record {
            kernel: kernel.clone(),
            params: params.to_vec(),
            inputs,
            outputs,
        });
        let mut long = Vec::new();
        for &(i, v) in &record.outputs {
            let id = args[i];
            let e = self.entry(id);
            e.records.insert(v, Arc::clone(&record));
            if e.records.range(e.host_version.saturating_add(1)..).count() > MAX_CHAIN {
                long.push(id);
            }
        }
        long
    }

    /// GPU `g` is lost: its copies are forgotten, and every buffer whose
    /// current version lived only there is rebuilt on the host by replaying
    /// its records with `run`. Returns the records replayed; buffers that
    /// cannot be rebuilt are marked lost.
    pub(crate) fn lose_gpu(
        &mut self,
        g: usize,
        device: &str,
        gpus: &[Box<dyn Device>],
        run: &mut Replay<'_>,
    ) -> u64 {
        if std::mem::replace(&mut self.lost_gpus[g], true) {
            return 0;
        }
        for e in self.entries.values_mut() {
            e.gpu[g] = None;
            e.valid.gpu[g] = false;
        }
        let mut orphans: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                !e.zombie
                    && e.lost.is_none()
                    && !e.valid.host
                    && !e.valid.zero
                    && !e.valid.gpu.iter().any(|&v| v)
            })
            .map(|(id, _)| *id)
            .collect();
        orphans.sort_unstable();
        let mut memo = HashMap::new();
        let mut replayed = 0;
        for id in orphans {
            let v = self.entries[&id].version;
            match self.materialize(id, v, gpus, run, &mut memo, &mut replayed, 0) {
                Ok(bytes) => {
                    let e = self.entry(id);
                    protect(e);
                    e.host = Some(bytes);
                    e.host_version = v;
                    e.valid.host = true;
                    self.host_caught_up(id, gpus);
                }
                Err(reason) => {
                    self.entry(id).lost = Some(Error::DataLost {
                        buffer: id,
                        device: device.to_owned(),
                        reason,
                    });
                }
            }
        }
        replayed
    }

    /// The bytes of version `v` of buffer `id`, from wherever they are:
    /// kept aside, the host copy, a live GPU's copy, zeros, or a replay of
    /// the record that made them (recursively).
    #[allow(clippy::too_many_arguments)]
    fn materialize(
        &mut self,
        id: u64,
        v: u64,
        gpus: &[Box<dyn Device>],
        run: &mut Replay<'_>,
        memo: &mut HashMap<(u64, u64), HostCopy>,
        replayed: &mut u64,
        depth: usize,
    ) -> std::result::Result<HostCopy, String> {
        if let Some(h) = memo.get(&(id, v)) {
            return Ok(h.clone());
        }
        if depth > 4 * MAX_CHAIN + 64 {
            return Err("its lineage is too deep to replay".to_owned());
        }
        let e = self
            .entries
            .get(&id)
            .ok_or_else(|| format!("buffer #{id}, which it was made from, is gone"))?;
        if let Some(h) = e.retained.get(&v) {
            return Ok(h.clone());
        }
        // A CPU call writing this host copy now kept a pinned version aside
        // first (above), and only pinned versions are asked for here.
        if e.host_version == v {
            if let Some(h) = &e.host {
                return Ok(h.clone());
            }
        }
        if v == e.version {
            for (g, valid) in e.valid.gpu.iter().enumerate() {
                if let (true, false, Some(buf)) = (*valid, self.lost_gpus[g], &e.gpu[g]) {
                    let mut h = HostCopy::zeroed(e.bytes as usize);
                    if gpus[g].download(buf, h.as_bytes_mut()).is_ok() {
                        return Ok(h);
                    }
                }
            }
        }
        if v == 0 && e.born_zero {
            return Ok(HostCopy::zeroed(e.bytes as usize));
        }
        let record = e.records.get(&v).cloned().ok_or_else(|| {
            format!("version {v} of buffer #{id} is held nowhere and no record made it")
        })?;
        let mut copies = Vec::with_capacity(record.inputs.len());
        for &(aid, av, _) in &record.inputs {
            copies.push(self.materialize(aid, av, gpus, run, memo, replayed, depth + 1)?);
        }
        let raw: Vec<RawSlice> = copies
            .iter_mut()
            .zip(&record.inputs)
            .map(|(c, &(_, _, len))| RawSlice {
                bytes: c.bytes,
                ptr: c.as_mut_ptr(),
                len,
            })
            .collect();
        run(&record.kernel, &raw, &record.params)
            .map_err(|err| format!("replaying `{}` failed: {err}", record.kernel.name()))?;
        *replayed += 1;
        for &(i, made) in &record.outputs {
            memo.insert((record.inputs[i].0, made), copies[i].clone());
        }
        memo.get(&(id, v))
            .cloned()
            .ok_or_else(|| format!("the record of version {v} of buffer #{id} did not make it"))
    }

    /// Whether GPU `g` has been lost.
    pub(crate) fn gpu_lost(&self, g: usize) -> bool {
        self.lost_gpus[g]
    }

    /// GPU copies on `g` that may be evicted to make room, least recently
    /// used first: not used by a running call, nor by `keep`.
    pub(crate) fn eviction_order(&self, g: usize, keep: &[u64]) -> Vec<u64> {
        let mut v: Vec<(u64, u64)> = self
            .entries
            .iter()
            .filter(|(id, e)| {
                e.gpu[g].is_some() && !e.writer && e.readers == 0 && !keep.contains(id)
            })
            .map(|(id, e)| (e.last_used, *id))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Frees the copy of `id` on GPU `g`, bringing it to the host first
    /// when that copy is the only valid one. Returns the bytes freed.
    pub(crate) fn evict(
        &mut self,
        id: u64,
        g: usize,
        gpus: &[Box<dyn Device>],
        c: &Counters,
    ) -> Result<u64> {
        let e = self.entry(id);
        let only_here = e.valid.gpu[g]
            && !e.valid.host
            && !e.valid.zero
            && e.valid.gpu.iter().filter(|&&v| v).count() == 1;
        if only_here {
            self.ensure_host(id, gpus, c)?;
        }
        let e = self.entry(id);
        e.valid.gpu[g] = false;
        let Some(buf) = e.gpu[g].take() else {
            return Ok(0);
        };
        let size = buf.size();
        gpus[g].release(buf);
        Ok(size)
    }

    /// Adds to `moves` what making this buffer valid on `backend` would move.
    pub(crate) fn moves_to(&self, id: u64, backend: Backend, moves: &mut Moves) {
        let e = &self.entries[&id];
        if e.valid.on(backend) || e.valid.zero || e.bytes == 0 {
            return;
        }
        let on_gpu = e.valid.gpu.iter().position(|&v| v);
        match backend {
            Backend::Cpu => {
                if let Some(h) = on_gpu {
                    moves.down.push((h, e.bytes));
                }
            }
            Backend::Gpu(g) => {
                if !e.valid.host {
                    if let Some(h) = on_gpu {
                        moves.down.push((h, e.bytes));
                    }
                }
                moves.up.push((g, e.bytes));
            }
        }
    }
}

/// Keeps the host bytes aside when their version is pinned and about to be
/// overwritten.
fn protect(e: &mut Entry) {
    if e.pins.is_empty() || e.host_version == GARBAGE || e.retained.contains_key(&e.host_version) {
        return;
    }
    if e.pins.contains_key(&e.host_version) {
        if let Some(h) = &e.host {
            e.retained.insert(e.host_version, h.clone());
        }
    }
}

/// Drops the records of versions the host copy has caught up with, unless
/// a record of another version still reads them; what the dropped records
/// read goes to `released` to be unpinned.
fn prune(e: &mut Entry, released: &mut Vec<Unpin>) {
    if e.records.is_empty() || e.host_version == GARBAGE || e.host.is_none() {
        return;
    }
    let h = e.host_version;
    let stale: Vec<u64> = e
        .records
        .range(..=h)
        .map(|(v, _)| *v)
        .filter(|v| !e.pins.contains_key(v))
        .collect();
    for v in stale {
        if let Some(r) = e.records.remove(&v) {
            release_record(r, released);
        }
    }
}

/// A pin to let go of: the buffer, its version, and whether the record
/// holding it made another buffer's version.
type Unpin = (u64, u64, bool);

/// Lets go of one holder of a record; when it was the last, what the
/// record read goes to `released` to be unpinned.
fn release_record(r: Arc<Record>, released: &mut Vec<Unpin>) {
    if let Some(r) = Arc::into_inner(r) {
        let written: Vec<u64> = r.outputs.iter().map(|&(i, _)| r.inputs[i].0).collect();
        released.extend(
            r.inputs
                .iter()
                .map(|&(id, v, _)| (id, v, !written.contains(&id))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, Error, Read, Runtime};

    #[test]
    fn host_copies_are_16_aligned() {
        for bytes in [0, 1, 4, 17, 4096, 1 << 20] {
            let mut h = HostCopy::zeroed(bytes);
            assert_eq!(h.as_mut_ptr() as usize % 16, 0, "{bytes} bytes");
        }
    }

    /// Safe code cannot make a buffer whose element size differs from its
    /// `TYPE` (that is refused at compile time); the call refuses one anyway.
    #[test]
    fn a_call_refuses_a_buffer_of_the_wrong_element_size() {
        let rt = Runtime::builder()
            .gpu(false)
            .persist_model(false)
            .build()
            .unwrap();
        let kernel = Kernel::builder(
            "touch",
            r#"
            @group(0) @binding(0) var<storage, read> x: array<u32>;
            @compute @workgroup_size(64)
            fn main(@builtin(global_invocation_id) id: vec3<u32>) {
                if id.x < arrayLength(&x) { let v = x[id.x]; }
            }"#,
        )
        .cpu::<(Read<u32>,)>(|args, _| {
            let (x,) = args.split();
            assert_eq!(x.len(), 1000);
        })
        .build()
        .unwrap();
        let mut x = rt.zeros::<u32>(1000);
        Arc::get_mut(&mut x.handle)
            .expect("the only handle")
            .elem_size = 2;
        let err = rt.run_on(Backend::Cpu, &kernel, &[&x], &()).unwrap_err();
        assert!(
            matches!(&err, Error::ArgType { index: 0, name, .. } if name == "x"),
            "{err:?}"
        );
        assert!(err.to_string().contains("2 bytes"), "{err}");
    }
}

//! Buffers and where their valid copies live.
//!
//! Each buffer has at most one copy per device (the host and each GPU) and a
//! [`Validity`] record saying which copies hold the current contents. Data
//! moves only when a kernel or a read needs it somewhere it is not valid;
//! a write leaves only the writer's copy valid (modified / shared / invalid).
//! This module owns copies and transfers; it does not choose devices.

pub(crate) mod pool;

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use crate::device::Backend;
use crate::device::gpu::GpuDevice;
use crate::dispatch::Moves;
use crate::error::Result;
use crate::graph::TaskInner;
use crate::kernel::{ElemType, Element};
use crate::runtime::Shared;
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

/// The runtime's record of one buffer, shared by its typed handles.
pub(crate) struct Handle {
    pub(crate) id: u64,
    pub(crate) runtime: u64,
    pub(crate) len: usize,
    pub(crate) elem: ElemType,
    pub(crate) bytes: u64,
    pub(crate) owner: Weak<Shared>,
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

/// Host storage aligned to 16 bytes, so it can be viewed as any element type.
pub(crate) struct HostCopy {
    words: Vec<[u32; 4]>,
    bytes: usize,
}

impl HostCopy {
    pub(crate) fn zeroed(bytes: usize) -> Self {
        HostCopy {
            words: vec![[0; 4]; bytes.div_ceil(16)],
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

pub(crate) struct Entry {
    bytes: u64,
    /// Calls running now that read the buffer.
    readers: u32,
    /// A call running now writes the buffer.
    writer: bool,
    /// The kernel that last wrote the buffer on a GPU, while that copy is
    /// the newest: a download then tells the dispatcher its output was
    /// needed on the host.
    gpu_writer: Option<u64>,
    host: Option<HostCopy>,
    gpu: Vec<Option<wgpu::Buffer>>,
    valid: Validity,
    /// The submitted task that writes (or last wrote) the current version.
    producer: Option<Arc<TaskInner>>,
    /// Submitted tasks that read the current version and may not have run.
    consumers: Vec<Arc<TaskInner>>,
}

/// Every live buffer of one runtime.
pub(crate) struct Table {
    entries: HashMap<u64, Entry>,
    /// Threads waiting for a lease to be given back.
    pub(crate) waiters: usize,
    next_id: u64,
    gpus: usize,
}

impl Table {
    pub(crate) fn new(gpus: usize) -> Self {
        Table {
            entries: HashMap::new(),
            waiters: 0,
            next_id: 1,
            gpus,
        }
    }

    /// Registers a buffer whose host copy is `data`, or whose contents are
    /// zeros (materialised lazily wherever first needed) when `data` is None.
    pub(crate) fn insert(&mut self, bytes: u64, data: Option<HostCopy>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let host_valid = data.is_some();
        self.entries.insert(
            id,
            Entry {
                bytes,
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
                producer: None,
                consumers: Vec::new(),
            },
        );
        id
    }

    pub(crate) fn validity(&self, id: u64) -> Option<Validity> {
        self.entries.get(&id).map(|e| e.valid.clone())
    }

    pub(crate) fn live(&self) -> usize {
        self.entries.len()
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

    /// The submitted task that produces the buffer's current version.
    pub(crate) fn producer(&self, id: u64) -> Option<&Arc<TaskInner>> {
        self.entries[&id].producer.as_ref()
    }

    /// Submitted tasks reading the current version that may not have run.
    pub(crate) fn consumers(&self, id: u64) -> &[Arc<TaskInner>] {
        &self.entries[&id].consumers
    }

    /// Whether every submitted task the host (or a call made now) must wait
    /// for has finished: the producer of each buffer read, and also the
    /// readers of each buffer written.
    pub(crate) fn settled(&self, reads: &[u64], writes: &[u64]) -> bool {
        let done = |t: &Option<Arc<TaskInner>>| t.as_ref().is_none_or(|t| t.is_finished());
        reads
            .iter()
            .chain(writes)
            .all(|id| done(&self.entries[id].producer))
            && writes
                .iter()
                .all(|id| self.entries[id].consumers.iter().all(|t| t.is_finished()))
    }

    /// Records `task` as the producer of the buffer's next version.
    pub(crate) fn set_producer(&mut self, id: u64, task: Option<Arc<TaskInner>>) {
        let e = self.entry(id);
        e.producer = task;
        e.consumers.clear();
    }

    /// Forgets a producer that has finished: a synchronous call has written
    /// a newer version (a producer submitted meanwhile stays).
    pub(crate) fn clear_finished_producer(&mut self, id: u64) {
        let e = self.entry(id);
        if e.producer.as_ref().is_some_and(|t| t.is_finished()) {
            e.producer = None;
        }
    }

    /// Records `task` as a reader of the buffer's current version.
    pub(crate) fn add_consumer(&mut self, id: u64, task: Arc<TaskInner>) {
        let e = self.entry(id);
        e.consumers.retain(|t| !t.is_finished());
        e.consumers.push(task);
    }

    /// Frees a buffer; its GPU copies go back to their pools.
    pub(crate) fn remove(&mut self, id: u64, gpus: &[GpuDevice]) {
        if let Some(e) = self.entries.remove(&id) {
            for (g, buf) in e.gpu.into_iter().enumerate() {
                if let Some(b) = buf {
                    gpus[g].release(b);
                }
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
        gpus: &[GpuDevice],
        c: &Counters,
    ) -> Result<Option<u64>> {
        let e = self.entry(id);
        if e.valid.host {
            return Ok(None);
        }
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
            let buf = e.gpu[g].as_ref().expect("a valid copy exists");
            if let Err(err) = gpus[g].download(buf, host.as_bytes_mut()) {
                e.host = Some(host);
                return Err(err);
            }
            c.download(bytes as u64);
        } else if !fresh {
            // Zero contents (or a buffer nobody wrote) in a reused copy.
            host.as_bytes_mut().fill(0);
        }
        e.host = Some(host);
        e.valid.host = true;
        Ok(source.and(e.gpu_writer.take()))
    }

    /// Makes the copy on GPU `g` valid and returns it, and whether anything
    /// was queued for the device: cleared there for zero contents, uploaded
    /// from the host, or routed through the host from another GPU.
    pub(crate) fn ensure_gpu(
        &mut self,
        id: u64,
        g: usize,
        gpus: &[GpuDevice],
        c: &Counters,
    ) -> Result<(wgpu::Buffer, bool)> {
        let e = self.entry(id);
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

    pub(crate) fn host_bytes(&self, id: u64) -> &[u8] {
        self.entries[&id]
            .host
            .as_ref()
            .expect("host copy ensured")
            .as_bytes()
    }

    /// Replaces the contents from the host: only the host copy stays valid.
    pub(crate) fn write_host(&mut self, id: u64, data: &[u8]) {
        let e = self.entry(id);
        match &mut e.host {
            Some(h) => h.as_bytes_mut().copy_from_slice(data),
            None => e.host = Some(HostCopy::from_bytes(data)),
        }
        e.valid.host = true;
        e.valid.zero = false;
        e.valid.gpu.fill(false);
        e.gpu_writer = None;
        e.producer = None;
    }

    /// Records that `kernel` wrote the buffer on `backend`: only that copy
    /// is valid now.
    pub(crate) fn mark_written(&mut self, id: u64, backend: Backend, kernel: u64) {
        let e = self.entry(id);
        e.gpu_writer = (backend != Backend::Cpu).then_some(kernel);
        let v = &mut e.valid;
        v.zero = false;
        v.host = backend == Backend::Cpu;
        for (i, g) in v.gpu.iter_mut().enumerate() {
            *g = backend == Backend::Gpu(i);
        }
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

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

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::device::timeline::Timeline;
use crate::device::{Device, Memory};
use crate::error::{Error, Result};
use crate::hash::FxMap;
use crate::ids::Backend;
use crate::stats::Counters;

mod handle;
mod lineage;
mod slots;

pub use handle::{ArgRef, Buffer, BufferArg, Validity};
pub(crate) use handle::{Handle, HostCopy, Moves, Release};
use lineage::{Record, Unpin, protect, prune, release_record};
use slots::Slots;

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
    pins: FxMap<u64, u32>,
    /// Of those, the pins of records that other buffers' versions came
    /// from: a zombie with none is needed by no one.
    outside_pins: u32,
    /// Host bytes of pinned versions, kept when the host slot moved on.
    retained: FxMap<u64, HostCopy>,
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

/// What [`Table::ensure_host`] did, for the layers above to learn from.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct HostMade {
    /// The kernel whose GPU output was downloaded, if that happened.
    pub(crate) writer: Option<u64>,
    /// The download, if one happened on a quiet device: the dispatcher's
    /// bus model learns from it (the table, below the dispatcher, only
    /// reports it).
    pub(crate) download: Option<Download>,
}

/// One timed download from a GPU to the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Download {
    /// The GPU it came from.
    pub(crate) gpu: usize,
    /// Bytes moved.
    pub(crate) bytes: u64,
    /// Seconds it took: staging, mapping and the copy into host memory.
    pub(crate) secs: f64,
}

/// Every live buffer of one runtime.
pub(crate) struct Table {
    entries: Slots<Entry>,
    /// Threads waiting for a lease to be given back.
    pub(crate) waiters: usize,
    gpus: usize,
    /// Counts uses on a GPU, for eviction order.
    tick: u64,
    /// GPUs that have been lost: nothing is kept or made valid there.
    lost_gpus: Vec<bool>,
    /// A simulated machine's clock: every copy made and every write from
    /// the host goes on it.
    timeline: Option<Arc<Timeline>>,
}

impl Table {
    pub(crate) fn new(gpus: usize) -> Self {
        Table {
            entries: Slots::default(),
            waiters: 0,
            gpus,
            tick: 0,
            lost_gpus: vec![false; gpus],
            timeline: None,
        }
    }

    /// A table whose copies and host writes go on `timeline`.
    pub(crate) fn on_timeline(mut self, timeline: Arc<Timeline>) -> Self {
        self.timeline = Some(timeline);
        self
    }

    /// Registers a buffer whose host copy is `data`, or whose contents are
    /// zeros (materialised lazily wherever first needed) when `data` is None.
    pub(crate) fn insert(&mut self, bytes: u64, len: usize, data: Option<HostCopy>) -> u64 {
        let host_valid = data.is_some();
        let id = self.entries.insert(Entry {
            bytes,
            len,
            version: 0,
            host_version: 0,
            born_zero: !host_valid,
            records: BTreeMap::new(),
            pins: FxMap::default(),
            outside_pins: 0,
            retained: FxMap::default(),
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
        });
        if let Some(t) = &self.timeline {
            t.created(id);
        }
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
        if let Some(t) = &self.timeline {
            t.forget(id);
        }
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
    /// needs go, and what they read is unpinned. (Nothing to do for a
    /// buffer without records, which callers skip.)
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
    /// the kernel whose GPU output was downloaded and the download's
    /// timing, if that happened.
    pub(crate) fn ensure_host(
        &mut self,
        id: u64,
        gpus: &[Box<dyn Device>],
        c: &Counters,
    ) -> Result<HostMade> {
        if self.entries[&id].valid.host {
            return Ok(HostMade::default());
        }
        let timeline = self.timeline.clone();
        let e = self.entry(id);
        if let Some(err) = &e.lost {
            return Err(err.clone());
        }
        // The host bytes about to be overwritten are kept aside for the
        // records of other buffers that read them. This buffer's own
        // records need them no more: the host is about to hold the current
        // version, and they go once it does. (A failed download leaves
        // the host bytes as they were.)
        if e.outside_pins > 0 {
            protect(e);
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
        let mut download = None;
        if let Some(g) = source {
            let Some(buf) = e.gpu[g].as_ref() else {
                e.host = Some(host);
                return Err(Error::Internal {
                    what: format!("buffer #{id}"),
                    message: format!("gpu{g} is marked valid but holds no copy"),
                });
            };
            // A download behind queued or running work waits for it too:
            // only one made on a quiet device times the bus. (Timing the
            // others took gpu0's bus on llvmpipe Vulkan to 0.1 GB/s.)
            let quiet = gpus[g].quiet();
            let start = std::time::Instant::now();
            if let Err(err) = gpus[g].download(buf, host.as_bytes_mut()) {
                e.host = Some(host);
                return Err(err);
            }
            c.download(bytes as u64);
            if let Some(t) = &timeline {
                t.transfer(id, g, false, bytes as u64);
            }
            download = quiet.then(|| Download {
                gpu: g,
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
        if let (None, Some(t)) = (source, &timeline) {
            t.cleared(id, 0);
        }
        e.host = Some(host);
        e.valid.host = true;
        e.host_version = e.version;
        let writer = source.and(e.gpu_writer.take());
        self.host_caught_up(id, gpus);
        Ok(HostMade { writer, download })
    }

    /// Makes the copy on GPU `g` valid and returns it, whether anything was
    /// queued for the device (cleared there for zero contents, uploaded
    /// from the host, or routed through the host from another GPU), and
    /// what coming through the host downloaded.
    pub(crate) fn ensure_gpu(
        &mut self,
        id: u64,
        g: usize,
        gpus: &[Box<dyn Device>],
        c: &Counters,
    ) -> Result<(Memory, bool, HostMade)> {
        self.tick += 1;
        let tick = self.tick;
        let timeline = self.timeline.clone();
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
            return Ok((buf, false, HostMade::default()));
        }
        let mut made = HostMade::default();
        if !e.valid.zero && !e.valid.host {
            made = self.ensure_host(id, gpus, c)?;
        }
        let e = self.entry(id);
        if !e.valid.zero && e.valid.host {
            let host = e.host.as_ref().expect("valid host copy");
            gpus[g].upload(&buf, host.as_bytes())?;
            c.upload(e.bytes);
            if let Some(t) = &timeline {
                t.transfer(id, g, true, e.bytes);
            }
        } else {
            gpus[g].clear(&buf, e.bytes)?;
            if let Some(t) = &timeline {
                t.cleared(id, g + 1);
            }
        }
        e.valid.gpu[g] = true;
        Ok((buf, true, made))
    }

    /// The host copy, if it is valid (one lookup: the common case of a
    /// CPU call's argument).
    pub(crate) fn valid_host_ptr(&mut self, id: u64) -> Option<*mut u8> {
        let e = self.entry(id);
        match (&mut e.host, e.valid.host) {
            (Some(h), true) => Some(h.as_mut_ptr()),
            _ => None,
        }
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
        if !e.records.is_empty() {
            self.host_caught_up(id, gpus);
        }
        if let Some(t) = &self.timeline {
            t.host_wrote(id);
        }
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
            if !e.records.is_empty() {
                self.host_caught_up(id, gpus);
            }
        } else {
            e.last_used = tick;
        }
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
    /// when that copy is the only valid one. Returns the bytes freed, and
    /// what the write-back downloaded.
    pub(crate) fn evict(
        &mut self,
        id: u64,
        g: usize,
        gpus: &[Box<dyn Device>],
        c: &Counters,
    ) -> Result<(u64, HostMade)> {
        let e = self.entry(id);
        let only_here = e.valid.gpu[g]
            && !e.valid.host
            && !e.valid.zero
            && e.valid.gpu.iter().filter(|&&v| v).count() == 1;
        let made = if only_here {
            self.ensure_host(id, gpus, c)?
        } else {
            HostMade::default()
        };
        let e = self.entry(id);
        e.valid.gpu[g] = false;
        let Some(buf) = e.gpu[g].take() else {
            return Ok((0, made));
        };
        let size = buf.size();
        gpus[g].release(buf);
        Ok((size, made))
    }

    /// Adds to `moves` what making this buffer valid on `backend` would move.
    /// Where buffer `id`'s valid copies are, as bits (the host's, the
    /// zeros', then each GPU's): what [`moves_to`](Self::moves_to) reads.
    /// `None` past 62 GPUs.
    pub(crate) fn residency(&self, id: u64) -> Option<u64> {
        let v = &self.entries.get(&id)?.valid;
        if v.gpu.len() > 62 {
            return None;
        }
        let gpus = v
            .gpu
            .iter()
            .enumerate()
            .fold(0u64, |bits, (i, &on)| bits | (u64::from(on) << (i + 2)));
        Some(u64::from(v.host) | u64::from(v.zero) << 1 | gpus)
    }

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

//! A buffer of a [`ClusterRuntime`](super::ClusterRuntime): what every
//! rank knows of it (owner, version, the ranks that hold that version), and
//! this rank's copy, made when first needed.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use crate::buffer::{Buffer, BufferArg};
use crate::error::Result;
use crate::kernel::Element;
use crate::runtime::Runtime;

/// What every rank knows of a buffer.
pub(super) struct Meta {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) owner: usize,
    pub(super) len: usize,
    pub(super) elem_size: usize,
    pub(super) state: Mutex<State>,
    /// On this rank: 1 + the number of the last task here that writes it
    /// (0: none), so a send runs what it must first.
    pub(super) last_writer: AtomicU64,
}

pub(super) struct State {
    pub(super) version: u64,
    /// Ranks holding the current version.
    pub(super) valid: Vec<bool>,
}

impl Meta {
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rank `rank` wrote it: a new version, held there alone.
    pub(super) fn written_on(&self, rank: usize) {
        let mut st = self.state();
        st.version += 1;
        st.valid.fill(false);
        st.valid[rank] = true;
    }
}

/// A buffer's typed side, erased for an argument list.
pub(super) trait Erased: Send + Sync {
    fn meta(&self) -> &Meta;
    fn elem(&self) -> crate::kernel::ElemType;
    /// This rank's copy, made (zeroed) if it has none.
    fn local(&self, rt: &Runtime) -> &dyn BufferArg;
    /// Copies this rank's copy into `out` (its bytes exactly; the
    /// message's payload).
    fn read_into(&self, rt: &Runtime, out: &mut [u8]) -> Result<()>;
    /// Replaces this rank's copy with `bytes`.
    fn store(&self, rt: &Runtime, bytes: &[u8]) -> Result<()>;
}

pub(super) struct Inner<T: Element> {
    pub(super) meta: Meta,
    pub(super) local: OnceLock<Buffer<T>>,
}

impl<T: Element> Inner<T> {
    pub(super) fn buffer(&self, rt: &Runtime) -> &Buffer<T> {
        self.local.get_or_init(|| rt.zeros(self.meta.len))
    }
}

impl<T: Element> Erased for Inner<T> {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn elem(&self) -> crate::kernel::ElemType {
        T::TYPE
    }
    fn local(&self, rt: &Runtime) -> &dyn BufferArg {
        self.buffer(rt)
    }
    fn read_into(&self, rt: &Runtime, out: &mut [u8]) -> Result<()> {
        let buf = self.buffer(rt);
        // Straight into the message where it is aligned for T (a message
        // buffer from the system allocator, past a header of 0 or 16
        // bytes, is); else through a copy.
        if let Ok(dst) = bytemuck::try_cast_slice_mut::<u8, T>(out) {
            rt.read_into(buf, dst)
        } else {
            let data = rt.read(buf)?;
            out.copy_from_slice(bytemuck::cast_slice(&data));
            Ok(())
        }
    }
    fn store(&self, rt: &Runtime, bytes: &[u8]) -> Result<()> {
        match bytemuck::try_cast_slice::<u8, T>(bytes) {
            Ok(data) => rt.write(self.buffer(rt), data),
            Err(_) => rt.write(
                self.buffer(rt),
                &bytemuck::pod_collect_to_vec::<u8, T>(bytes),
            ),
        }
    }
}

/// A buffer of a [`ClusterRuntime`](super::ClusterRuntime): one owner rank, copies cached on the
/// ranks that read it. Every rank holds the same handles (made in the same
/// order); a rank's own copy exists only once it needs one.
pub struct DistBuffer<T: Element> {
    pub(super) inner: Arc<Inner<T>>,
    /// The same, erased: what a queued task keeps.
    pub(super) erased: Arc<dyn Erased>,
}

impl<T: Element> Clone for DistBuffer<T> {
    fn clone(&self) -> Self {
        DistBuffer {
            inner: Arc::clone(&self.inner),
            erased: Arc::clone(&self.erased),
        }
    }
}

impl<T: Element> std::fmt::Debug for DistBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.inner.meta;
        f.debug_struct("DistBuffer")
            .field("name", &m.name)
            .field("owner", &m.owner)
            .field("len", &m.len)
            .finish()
    }
}

impl<T: Element> DistBuffer<T> {
    /// The name given when it was made (errors and panics name it).
    pub fn name(&self) -> &str {
        &self.inner.meta.name
    }
    /// Its owner rank.
    pub fn owner(&self) -> usize {
        self.inner.meta.owner
    }
    /// Elements.
    pub fn len(&self) -> usize {
        self.inner.meta.len
    }
    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.inner.meta.len == 0
    }
    /// Writes so far (every rank counts the same).
    pub fn version(&self) -> u64 {
        self.inner.meta.state().version
    }
    /// The ranks that hold its current version.
    pub fn valid_on(&self) -> Vec<usize> {
        let st = self.inner.meta.state();
        (0..st.valid.len()).filter(|&r| st.valid[r]).collect()
    }
}

/// A type-erased [`DistBuffer`] in an argument list; see
/// [`ClusterRuntime::submit`](super::ClusterRuntime::submit).
pub trait DistArg: Send + Sync {
    /// The buffer, type-erased.
    fn as_dist(&self) -> DistRef<'_>;
}

impl<T: Element> DistArg for DistBuffer<T> {
    fn as_dist(&self) -> DistRef<'_> {
        DistRef {
            inner: &*self.inner,
            arc: &self.erased,
        }
    }
}

/// A type-erased reference to a [`DistBuffer`].
#[derive(Clone, Copy)]
pub struct DistRef<'a> {
    pub(super) inner: &'a dyn Erased,
    pub(super) arc: &'a Arc<dyn Erased>,
}

//! The handles a user holds ([`Buffer`], [`BufferArg`]), what a buffer's
//! copies are ([`Validity`], `HostCopy`), and what moving them would cost
//! (`Moves`).

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use crate::ids::Backend;
use crate::kernel::{ElemType, Element};

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
    pub(crate) bytes: usize,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Kernel;
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

//! Bind groups made once per (kernel, buffers) and used again. A kernel
//! chain binds the same buffers call after call; making a bind group costs
//! more than recording the dispatch it serves. The params are not part of
//! the key: they sit at a dynamic offset in a uniform buffer (a batch's, or
//! a pooled one), so one group serves every launch over the same buffers.
//!
//! A cached group holds its buffers alive; the cache is therefore emptied
//! whenever the device destroys a pooled buffer, and it never grows past
//! [`MAX_GROUPS`].

use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;

use crate::hash::{FxHasher, FxMap};
use crate::kernel::{Access, Kernel};

/// Groups kept at most; past this the cache starts again empty.
pub(super) const MAX_GROUPS: usize = 1024;

/// One binding of a launch: a buffer and the bytes bound from its start.
pub(super) type Bound<'a> = (&'a wgpu::Buffer, u64);

struct Cached {
    kernel: u64,
    buffers: Vec<(wgpu::Buffer, u64)>,
    group: wgpu::BindGroup,
}

/// The cache: groups by a hash of their key, each key compared in full.
#[derive(Default)]
pub(super) struct BindGroups {
    by_hash: FxMap<u64, Vec<Cached>>,
    len: usize,
}

impl BindGroups {
    /// The group of `kernel` over `bound` (storage bindings in order, then
    /// the uniform, if any), made with `make` if not cached.
    pub(super) fn get(
        &mut self,
        kernel: u64,
        bound: &[Bound<'_>],
        make: impl FnOnce() -> wgpu::BindGroup,
    ) -> wgpu::BindGroup {
        let mut h = FxHasher::default();
        kernel.hash(&mut h);
        for (b, size) in bound {
            b.hash(&mut h);
            size.hash(&mut h);
        }
        let key = h.finish();
        let same = |c: &Cached| {
            c.kernel == kernel
                && c.buffers.len() == bound.len()
                && c.buffers
                    .iter()
                    .zip(bound)
                    .all(|((b, s), (b2, s2))| b == *b2 && s == s2)
        };
        if let Some(c) = self
            .by_hash
            .get(&key)
            .and_then(|v| v.iter().find(|c| same(c)))
        {
            return c.group.clone();
        }
        if self.len >= MAX_GROUPS {
            self.clear();
        }
        let group = make();
        self.by_hash.entry(key).or_default().push(Cached {
            kernel,
            buffers: bound.iter().map(|(b, s)| ((*b).clone(), *s)).collect(),
            group: group.clone(),
        });
        self.len += 1;
        group
    }

    /// Forgets every group (a buffer is about to be destroyed).
    pub(super) fn clear(&mut self) {
        self.by_hash.clear();
        self.len = 0;
    }
}

/// The bind group layout of `kernel`'s group 0, as its reflection reads:
/// its storage bindings read-only or not as declared, and its uniform
/// (if any) at a dynamic offset.
pub(super) fn layout(device: &wgpu::Device, kernel: &Kernel) -> wgpu::BindGroupLayout {
    let r = kernel.reflection();
    let mut entries: Vec<wgpu::BindGroupLayoutEntry> = r
        .storage
        .iter()
        .map(|s| wgpu::BindGroupLayoutEntry {
            binding: s.binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: s.access == Access::Read,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    if let Some(u) = &r.uniform {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: u.binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: NonZeroU64::new(u.size as u64),
            },
            count: None,
        });
    }
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(kernel.name()),
        entries: &entries,
    })
}

//! What a device is, as plain data: its kind, its limits, its description.
//! Below both the kernels (a variant's `can_run` reads it) and the devices
//! (which fill it in).

use std::fmt;

use crate::ids::{Backend, human_bytes};

/// What kind of processor a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// The host's cores.
    Cpu,
    /// A GPU on its own board.
    DiscreteGpu,
    /// A GPU sharing the host's memory.
    IntegratedGpu,
    /// A GPU behind a virtualisation layer.
    VirtualGpu,
    /// A GPU API implemented in software on the host (llvmpipe, lavapipe, WARP).
    SoftwareGpu,
    /// A simulated device (see [`SimDevice`](crate::SimDevice)).
    Simulated,
    /// Anything else wgpu reports.
    Other,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::DiscreteGpu => "discrete-gpu",
            DeviceKind::IntegratedGpu => "integrated-gpu",
            DeviceKind::VirtualGpu => "virtual-gpu",
            DeviceKind::SoftwareGpu => "software-gpu",
            DeviceKind::Simulated => "simulated",
            DeviceKind::Other => "other",
        })
    }
}

/// The limits of a device that decide what a kernel may ask of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Largest storage-buffer binding, in bytes.
    pub max_storage_binding: u64,
    /// Largest buffer, in bytes.
    pub max_buffer: u64,
    /// Most workgroups in one dimension of a dispatch.
    pub max_workgroups_per_dim: u32,
    /// Most invocations in one workgroup.
    pub max_invocations_per_workgroup: u32,
    /// Largest `@workgroup_size` in x, y and z.
    pub max_workgroup_size: [u32; 3],
    /// Largest uniform-buffer binding (a kernel's params), in bytes.
    pub max_uniform_binding: u64,
    /// Workgroup (shared) memory, in bytes.
    pub max_workgroup_memory: u32,
    /// Storage buffers one shader stage may bind.
    pub max_storage_buffers: u32,
}

/// A description of one backend, for people and for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Which backend this is.
    pub backend: Backend,
    /// The adapter's (or processor's) name.
    pub name: String,
    /// The driver and its version, where known.
    pub driver: String,
    /// The API pel drives it through: `rayon`, `vulkan`, `gl`, `metal`, `dx12`.
    pub api: String,
    /// What kind of processor it is.
    pub kind: DeviceKind,
    /// Worker threads (CPU only; 0 for GPUs).
    pub threads: usize,
    /// Its limits (`None` for the CPU, which has none worth naming).
    pub limits: Option<DeviceLimits>,
    /// Whether kernels are timed on the device itself (timestamp queries),
    /// for the trace.
    pub timestamps: bool,
    /// Whether launches that need no answer now are queued and submitted
    /// in batches, the host waiting only for bytes (a GPU not driven
    /// through GL); otherwise each launch is waited for.
    pub batches: bool,
}

impl DeviceInfo {
    /// A short label: `cpu` or `gpu0 (llvmpipe ..., vulkan)`.
    pub fn label(&self) -> String {
        match self.backend {
            Backend::Cpu => "cpu".to_owned(),
            Backend::Gpu(_) => format!("{} ({}, {})", self.backend, self.name, self.api),
        }
    }
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<5} {} | driver: {} | api: {} | type: {}",
            self.backend.to_string(),
            self.name,
            if self.driver.is_empty() {
                "-"
            } else {
                &self.driver
            },
            self.api,
            self.kind
        )?;
        match &self.limits {
            None => write!(f, " | threads: {}", self.threads),
            Some(l) => write!(
                f,
                " | max storage binding: {} | max buffer: {} | workgroups/dim: {} | invocations/workgroup: {} | workgroup size: {}×{}×{} | uniform binding: {} | workgroup memory: {} | storage buffers: {} | timestamp queries: {} | batches: {}",
                human_bytes(l.max_storage_binding),
                human_bytes(l.max_buffer),
                l.max_workgroups_per_dim,
                l.max_invocations_per_workgroup,
                l.max_workgroup_size[0],
                l.max_workgroup_size[1],
                l.max_workgroup_size[2],
                human_bytes(l.max_uniform_binding),
                human_bytes(l.max_workgroup_memory as u64),
                l.max_storage_buffers,
                if self.timestamps { "yes" } else { "no" },
                if self.batches { "yes" } else { "no" }
            ),
        }
    }
}

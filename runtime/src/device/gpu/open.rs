//! Opening the adapters: every usable one, best first, each as a
//! [`GpuDevice`] with its limits, its description and its own queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::pool::BufferPool;
use super::{GpuDevice, stream};
use crate::device::{Backend, DeviceInfo, DeviceKind, DeviceLimits, Liveness};

/// Opens every usable adapter, best first: real GPUs before software ones,
/// and native APIs before GL on the same kind of device.
pub(crate) fn open_all(
    instance: &wgpu::Instance,
    backends: wgpu::Backends,
    budget: Option<u64>,
    inject_oom: bool,
    batch: Option<usize>,
    only: Option<&[usize]>,
) -> Vec<GpuDevice> {
    let mut adapters: Vec<wgpu::Adapter> =
        pollster::block_on(instance.enumerate_adapters(backends))
            .into_iter()
            .filter(|a| {
                a.get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
            })
            .collect();
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        let kind = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        let api = match info.backend {
            wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
            _ => 1,
        };
        (kind, api)
    });
    let mut devices = Vec::new();
    // `only` names adapters by the index each would have had.
    for (_, adapter) in adapters
        .into_iter()
        .enumerate()
        .filter(|(i, _)| only.is_none_or(|o| o.contains(i)))
    {
        let index = devices.len();
        match GpuDevice::open(
            &adapter,
            index,
            batch.map(|b| b.clamp(1, stream::MAX_BATCH)),
        ) {
            Ok(mut d) => {
                d.budget = budget;
                d.inject_oom = inject_oom;
                devices.push(d)
            }
            Err(e) => eprintln!(
                "pel: skipping adapter {} ({:?}): {e}",
                adapter.get_info().name,
                adapter.get_info().backend
            ),
        }
    }
    devices
}

impl GpuDevice {
    fn open(
        adapter: &wgpu::Adapter,
        index: usize,
        batch: Option<usize>,
    ) -> std::result::Result<Self, String> {
        let ai = adapter.get_info();
        let al = adapter.limits();
        // Timestamp queries time kernels on the device itself, for the trace.
        let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("pel"),
            required_features: features,
            required_limits: al.clone(),
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?;

        let backend = Backend::Gpu(index);
        let name = format!("{backend} ({})", ai.name);
        let lost = Liveness::default();
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                lost_flag.lose(&format!("{reason:?}: {message}"));
            }
        });
        let uncaptured_name = name.clone();
        device.on_uncaptured_error(Arc::new(move |e| {
            eprintln!("pel: {uncaptured_name}: wgpu error outside an error scope: {e}");
        }));

        let limits = DeviceLimits {
            max_storage_binding: al.max_storage_buffer_binding_size,
            max_buffer: al.max_buffer_size,
            max_workgroups_per_dim: al.max_compute_workgroups_per_dimension,
            max_invocations_per_workgroup: al.max_compute_invocations_per_workgroup,
            max_workgroup_size: [
                al.max_compute_workgroup_size_x,
                al.max_compute_workgroup_size_y,
                al.max_compute_workgroup_size_z,
            ],
            max_uniform_binding: al.max_uniform_buffer_binding_size,
            max_workgroup_memory: al.max_compute_workgroup_storage_size,
            max_storage_buffers: al.max_storage_buffers_per_shader_stage,
        };
        let kind = match ai.device_type {
            wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu,
            wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu,
            wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu,
            wgpu::DeviceType::Cpu => DeviceKind::SoftwareGpu,
            wgpu::DeviceType::Other => DeviceKind::Other,
        };
        // A device on the host's own cores batches longer and starts a
        // batch early later (see `stream`).
        let shared = kind == DeviceKind::SoftwareGpu;
        let batch = batch.unwrap_or(if shared {
            stream::SHARED_BATCH
        } else {
            stream::DEFAULT_BATCH
        });
        let driver = format!("{} {}", ai.driver, ai.driver_info)
            .trim()
            .to_owned();
        let info = DeviceInfo {
            backend,
            name: ai.name.clone(),
            driver,
            api: ai.backend.to_str().to_owned(),
            kind,
            threads: 0,
            limits: Some(limits),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            // GL is driven one operation at a time.
            batches: ai.backend != wgpu::Backend::Gl && batch > 1,
        };
        // Free buffers kept for reuse: a quarter of the largest buffer, at
        // least 256 MiB, so a chain of kernels reuses its temporaries.
        let cap = (al.max_buffer_size / 4).max(256 << 20);
        let mut gpu = GpuDevice {
            info,
            limits,
            device,
            lost,
            pipelines: Mutex::new(HashMap::new()),
            pool: Mutex::new(BufferPool::new(cap)),
            serial: (ai.backend == wgpu::Backend::Gl).then(|| Mutex::new(())),
            timestamp_period: features
                .contains(wgpu::Features::TIMESTAMP_QUERY)
                .then(|| queue.get_timestamp_period()),
            queue,
            used: AtomicU64::new(0),
            budget: None,
            inject_oom: false,
            waits: AtomicU64::new(0),
            query_sets: Mutex::new(Vec::new()),
            groups: Mutex::default(),
            stream: Mutex::new(stream::Stream::default()),
            batch,
            eager_s: if shared {
                stream::EAGER_SHARED_S
            } else {
                stream::EAGER_S
            },
            uniform_align: al.min_uniform_buffer_offset_alignment as u64,
            latency: Duration::ZERO,
        };
        // A queued launch's device time reaches the model with this added.
        if gpu.batches() && gpu.timestamp_period.is_some() {
            gpu.latency = gpu.measure_latency();
            gpu.waits.store(0, Ordering::Relaxed);
        }
        Ok(gpu)
    }
}

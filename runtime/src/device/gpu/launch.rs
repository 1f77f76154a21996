//! A kernel's launch on a GPU: its pipeline (made once per kernel and
//! device, with the workgroup-size overrides the index prelude reads), the
//! bind group, the dispatch, and its timestamps where the device has them.

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::stream::Dispatch;
use super::{GpuDevice, Pipeline, READBACK, RESOLVE, UNIFORM, groups, stamp_span, wgpu_buffer};
use crate::device::limits::fold_for;
use crate::device::{Device, Memory};
use crate::error::Result;
use crate::kernel::Kernel;

impl GpuDevice {
    fn pipeline(&self, kernel: &Kernel) -> Result<Arc<Pipeline>> {
        let mut cache = self
            .pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = cache.get(&kernel.id()) {
            return Ok(Arc::clone(p));
        }
        let p = self.scoped("compiling the pipeline", kernel.name(), || {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(kernel.name()),
                    source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(kernel.wgsl())),
                });
            // The prelude's `pel_index` needs the workgroup size, which
            // only the reflection knows; an override carries it in, so the
            // user's source stays as written and its line numbers with it.
            let size = kernel.reflection().workgroup_size;
            let constants: Vec<(&str, f64)> = if kernel.reflection().prelude {
                crate::kernel::WORKGROUP_OVERRIDES
                    .iter()
                    .zip(size)
                    .map(|(&name, n)| (name, n as f64))
                    .collect()
            } else {
                Vec::new()
            };
            // The layout is made from the reflection rather than left to
            // wgpu, so that the uniform can sit at a dynamic offset.
            let layout = groups::layout(&self.device, kernel);
            let pipeline_layout =
                self.device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(kernel.name()),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kernel.name()),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(&kernel.reflection().entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        ..Default::default()
                    },
                    cache: None,
                });
            Arc::new(Pipeline { pipeline, layout })
        })?;
        cache.insert(kernel.id(), Arc::clone(&p));
        Ok(p)
    }

    /// The bind group of one launch: `args` (buffer and bound size, in
    /// binding order) and the uniform buffer, if the kernel has one (its
    /// params at a dynamic offset). Made once per (kernel, buffers).
    fn bind_group(
        &self,
        kernel: &Kernel,
        pipeline: &Pipeline,
        args: &[(Memory, u64)],
        uniform: Option<&wgpu::Buffer>,
    ) -> wgpu::BindGroup {
        let r = kernel.reflection();
        let mut bound: Vec<groups::Bound<'_>> = args
            .iter()
            .map(|(memory, size)| (wgpu_buffer(memory), (*size).max(4)))
            .collect();
        let u = r.uniform.as_ref().zip(uniform);
        if let Some((u, buf)) = u {
            bound.push((buf, u.size as u64));
        }
        let make = || {
            let mut entries: Vec<wgpu::BindGroupEntry<'_>> = r
                .storage
                .iter()
                .zip(&bound)
                .map(|(binding, (buffer, size))| wgpu::BindGroupEntry {
                    binding: binding.binding,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: 0,
                        size: NonZeroU64::new(*size),
                    }),
                })
                .collect();
            if let Some((u, buffer)) = u {
                entries.push(wgpu::BindGroupEntry {
                    binding: u.binding,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: 0,
                        size: NonZeroU64::new(u.size as u64),
                    }),
                });
            }
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.name()),
                layout: &pipeline.layout,
                entries: &entries,
            })
        };
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kernel.id(), &bound, make)
    }

    /// The uniform buffer of a launch, `params` written into it (the write
    /// lands before the next submission).
    fn uniform(&self, kernel: &Kernel, params: &[u8]) -> Result<Option<wgpu::Buffer>> {
        match &kernel.reflection().uniform {
            Some(u) => {
                let b = self.alloc_usage(u.size as u64, UNIFORM)?;
                self.queue.write_buffer(&b, 0, params);
                Ok(Some(b))
            }
            None => Ok(None),
        }
    }

    /// Queues `kernel` over `args` for `workgroups` workgroups behind this
    /// device's earlier work and returns its ticket at once (`None`: no
    /// workgroups, nothing to run). `expect_s`: the model's estimate of
    /// its time, which decides whether it starts at once; `sample`: the
    /// model wants its device time, which then comes with the ticket from
    /// [`finished`](crate::device::Device::finished) (so does every
    /// [`SAMPLE_EVERY`](super::stream::SAMPLE_EVERY)-th launch's).
    pub(super) fn dispatch_queued(
        &self,
        kernel: &Kernel,
        args: &[(Memory, u64)],
        params: &[u8],
        workgroups: u64,
        (expect_s, sample): (Option<f64>, bool),
    ) -> Result<Option<u64>> {
        self.check_alive()?;
        let (x, y) = fold_for(&self.limits, &|| self.label(), kernel.name(), workgroups)?;
        if x == 0 {
            return Ok(None);
        }
        let pipeline = self.pipeline(kernel)?;
        let mut s = self.stream();
        // The params go in the batch's uniform buffer, written once for
        // the batch; params too large for a slot get a buffer of their own.
        let slot = match &kernel.reflection().uniform {
            Some(u) => Some(match self.params_slot(&mut s, params)? {
                Some((buf, offset)) => (buf, offset, false),
                None => {
                    let buf = self.alloc_usage(u.size as u64, UNIFORM)?;
                    self.queue.write_buffer(&buf, 0, params);
                    (buf, 0, true)
                }
            }),
            None => None,
        };
        let ticket = self.scoped("dispatching", kernel.name(), || {
            let group = self.bind_group(kernel, &pipeline, args, slot.as_ref().map(|u| &u.0));
            let own = slot.as_ref().filter(|u| u.2).map(|u| u.0.clone());
            let d = Dispatch {
                kernel: kernel.id(),
                pipeline: &pipeline.pipeline,
                group: &group,
                offset: slot.as_ref().map(|u| u.1 as u32),
                groups: (x, y),
            };
            self.record_pass(&mut s, kernel.name(), own, (expect_s, sample), d)
        })??;
        Ok(Some(ticket))
    }

    /// Runs `kernel` over `args` (buffer and bound size, in binding order)
    /// for `workgroups` workgroups and waits for it, after whatever this
    /// device has queued. With `timed`, and where the device has timestamp
    /// queries, returns the kernel's time as the device measured it.
    pub(super) fn dispatch(
        &self,
        kernel: &Kernel,
        args: &[(Memory, u64)],
        params: &[u8],
        workgroups: u64,
        timed: bool,
    ) -> Result<Option<std::time::Duration>> {
        let _serial = self.exclusive();
        self.check_alive()?;
        // The caller has checked the call (`check_call`); a split call's
        // GPU part is a smaller launch of the same kernel and buffers.
        let (x, y) = fold_for(&self.limits, &|| self.label(), kernel.name(), workgroups)?;
        // No workgroups: nothing to run (and wgpu would bind empty buffers).
        if x == 0 {
            return Ok(None);
        }
        // What is queued comes first.
        let upto = {
            let mut s = self.stream();
            self.submit_batch(&mut s)?;
            Self::submitted(&s)
        };
        let stamps = match (timed, self.timestamp_period) {
            (true, Some(period)) => Some((
                self.query_sets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop()
                    .unwrap_or_else(|| {
                        self.device.create_query_set(&wgpu::QuerySetDescriptor {
                            label: Some("pel kernel time"),
                            ty: wgpu::QueryType::Timestamp,
                            count: 2,
                        })
                    }),
                self.alloc_usage(16, RESOLVE)?,
                self.alloc_usage(16, READBACK)?,
                period,
            )),
            _ => None,
        };
        let pipeline = self.pipeline(kernel)?;
        let uniform = self.uniform(kernel, params)?;
        let index = self.scoped("dispatching", kernel.name(), || {
            let group = self.bind_group(kernel, &pipeline, args, uniform.as_ref());
            let mut enc = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(kernel.name()),
                    timestamp_writes: stamps.as_ref().map(|(set, ..)| {
                        wgpu::ComputePassTimestampWrites {
                            query_set: set,
                            beginning_of_pass_write_index: Some(0),
                            end_of_pass_write_index: Some(1),
                        }
                    }),
                });
                pass.set_pipeline(&pipeline.pipeline);
                let offsets: &[u32] = if uniform.is_some() { &[0] } else { &[] };
                pass.set_bind_group(0, &group, offsets);
                pass.dispatch_workgroups(x, y, 1);
            }
            if let Some((set, resolve, readback, _)) = &stamps {
                enc.resolve_query_set(set, 0..2, resolve, 0);
                enc.copy_buffer_to_buffer(resolve, 0, readback, 0, 16);
            }
            self.queue.submit([enc.finish()])
        })?;
        // One host wait: for the kernel, or for its timestamps' readback
        // (copied in the same submission).
        let Some((set, resolve, readback, period)) = stamps else {
            self.wait(index)?;
            self.finished_before(upto);
            if let Some(b) = uniform {
                self.give_back(b);
            }
            return Ok(None);
        };
        let mut ticks = [0u8; 16];
        self.read_mapped(&readback, &mut ticks, index)?;
        self.finished_before(upto);
        if let Some(b) = uniform {
            self.give_back(b);
        }
        self.give_back(resolve);
        self.give_back(readback);
        // Its queries were resolved in a finished submission: free again.
        self.query_sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(set);
        Ok(stamp_span(period, bytemuck::cast(ticks)))
    }

    /// Measures [`Device::launch_latency`]: an empty kernel launched and
    /// waited for, as an unqueued launch is, a few times; the median of
    /// its host time less its device time. Zero where it cannot be told.
    pub(super) fn measure_latency(&self) -> Duration {
        const RUNS: u32 = 9;
        let Some(period) = self.timestamp_period else {
            return Duration::ZERO;
        };
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("pel launch probe"),
                source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(
                    "@compute @workgroup_size(1) fn main() {}",
                )),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("pel launch probe"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("pel launch probe"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * RUNS,
        });
        let mut host = Vec::new();
        for run in 0..RUNS {
            let t = Instant::now();
            let launched = self.scoped("timing a launch", "launch probe", || {
                let mut enc = self.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("pel launch probe"),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: &set,
                            beginning_of_pass_write_index: Some(2 * run),
                            end_of_pass_write_index: Some(2 * run + 1),
                        }),
                    });
                    pass.set_pipeline(&pipeline);
                    pass.dispatch_workgroups(1, 1, 1);
                }
                self.queue.submit([enc.finish()])
            });
            match launched.map(|index| self.wait(index)) {
                Ok(Ok(())) => host.push(t.elapsed()),
                _ => return Duration::ZERO,
            }
        }
        let bytes = 16 * RUNS as u64;
        let (Ok(resolve), Ok(readback)) = (
            self.alloc_usage(bytes, RESOLVE),
            self.alloc_usage(bytes, READBACK),
        ) else {
            return Duration::ZERO;
        };
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.resolve_query_set(&set, 0..2 * RUNS, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &readback, 0, bytes);
        let index = self.queue.submit([enc.finish()]);
        let mut ticks = vec![0u8; bytes as usize];
        let read = self.read_mapped(&readback, &mut ticks, index);
        self.give_back(resolve);
        self.give_back(readback);
        if read.is_err() {
            return Duration::ZERO;
        }
        let ticks: &[u64] = bytemuck::cast_slice(&ticks);
        // The first run pays for warming up; the rest are the measure.
        let mut gaps: Vec<Duration> = host
            .iter()
            .zip(ticks.chunks_exact(2))
            .skip(1)
            .map(|(h, pair)| {
                h.saturating_sub(stamp_span(period, [pair[0], pair[1]]).unwrap_or_default())
            })
            .collect();
        gaps.sort();
        gaps.get(gaps.len() / 2).copied().unwrap_or_default()
    }
}

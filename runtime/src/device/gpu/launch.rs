//! A kernel's launch on a GPU: its pipeline (made once per kernel and
//! device, with the workgroup-size overrides the index prelude reads), the
//! bind group, the dispatch, and its timestamps where the device has them.

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::{Arc, PoisonError};

use super::{GpuDevice, Pipeline, READBACK, RESOLVE, UNIFORM, wgpu_buffer};
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
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kernel.name()),
                    layout: None,
                    module: &module,
                    entry_point: Some(&kernel.reflection().entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        ..Default::default()
                    },
                    cache: None,
                });
            let layout = pipeline.get_bind_group_layout(0);
            Arc::new(Pipeline { pipeline, layout })
        })?;
        cache.insert(kernel.id(), Arc::clone(&p));
        Ok(p)
    }

    /// The bind group of one launch: `args` (buffer and bound size, in
    /// binding order) and the uniform, if the kernel has one.
    fn bind_group(
        &self,
        kernel: &Kernel,
        pipeline: &Pipeline,
        args: &[(Memory, u64)],
        uniform: Option<(u32, &wgpu::Buffer, u64, u64)>,
    ) -> wgpu::BindGroup {
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = kernel
            .reflection()
            .storage
            .iter()
            .zip(args)
            .map(|(binding, (memory, size))| wgpu::BindGroupEntry {
                binding: binding.binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: wgpu_buffer(memory),
                    offset: 0,
                    size: NonZeroU64::new((*size).max(4)),
                }),
            })
            .collect();
        if let Some((binding, buf, offset, size)) = uniform {
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: buf,
                    offset,
                    size: NonZeroU64::new(size),
                }),
            });
        }
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name()),
            layout: &pipeline.layout,
            entries: &entries,
        })
    }

    /// The uniform buffer of a launch, `params` written into it (the write
    /// lands before the next submission), with its binding and size.
    fn uniform(&self, kernel: &Kernel, params: &[u8]) -> Result<Option<(u32, wgpu::Buffer, u64)>> {
        match &kernel.reflection().uniform {
            Some(u) => {
                let b = self.alloc_usage(u.size as u64, UNIFORM)?;
                self.queue.write_buffer(&b, 0, params);
                Ok(Some((u.binding, b, u.size as u64)))
            }
            None => Ok(None),
        }
    }

    /// Queues `kernel` over `args` for `workgroups` workgroups behind this
    /// device's earlier work and returns its ticket at once (`None`: no
    /// workgroups, nothing to run). Its device time comes with the ticket
    /// from [`finished`](crate::device::Device::finished).
    pub(super) fn dispatch_queued(
        &self,
        kernel: &Kernel,
        args: &[(Memory, u64)],
        params: &[u8],
        workgroups: u64,
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
                Some((buf, offset)) => (u.binding, buf, offset, u.size as u64, false),
                None => {
                    let buf = self.alloc_usage(u.size as u64, UNIFORM)?;
                    self.queue.write_buffer(&buf, 0, params);
                    (u.binding, buf, 0, u.size as u64, true)
                }
            }),
            None => None,
        };
        let ticket = self.scoped("dispatching", kernel.name(), || {
            let at = slot
                .as_ref()
                .map(|(b, buf, o, size, _)| (*b, buf, *o, *size));
            let group = self.bind_group(kernel, &pipeline, args, at);
            let own = slot.as_ref().filter(|u| u.4).map(|u| u.1.clone());
            self.record_pass(&mut s, kernel.name(), own, |pass| {
                pass.set_pipeline(&pipeline.pipeline);
                pass.set_bind_group(0, &group, &[]);
                pass.dispatch_workgroups(x, y, 1);
            })
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
            let u = uniform.as_ref().map(|(b, buf, size)| (*b, buf, 0, *size));
            let group = self.bind_group(kernel, &pipeline, args, u);
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
                pass.set_bind_group(0, &group, &[]);
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
            if let Some((_, b, _)) = uniform {
                self.give_back(b);
            }
            return Ok(None);
        };
        let mut ticks = [0u8; 16];
        self.read_mapped(&readback, &mut ticks, index)?;
        self.finished_before(upto);
        if let Some((_, b, _)) = uniform {
            self.give_back(b);
        }
        self.give_back(resolve);
        self.give_back(readback);
        // Its queries were resolved in a finished submission: free again.
        self.query_sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(set);
        let [start, end]: [u64; 2] = bytemuck::cast(ticks);
        Ok((end > start).then(|| {
            std::time::Duration::from_nanos(((end - start) as f64 * period as f64) as u64)
        }))
    }
}

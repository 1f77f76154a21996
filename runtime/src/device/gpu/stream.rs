//! A GPU's stream: launches recorded into one open command encoder and
//! submitted together: at once while the device has nothing in flight (so
//! it never idles with work waiting), otherwise once [`GpuDevice::batch`]
//! launches are waiting or something needs what they did (a download, an
//! upload that must come after them, a launch that waits). The host blocks only for bytes: a
//! download waits on its own submission, never on the whole device.
//!
//! Each queued launch gets a ticket, and its params a slot in the batch's
//! uniform buffer, written once as the batch is submitted. One launch in
//! [`TIMED_EVERY`] writes timestamps into the batch's query set; the batch
//! resolves them into a readback buffer that is mapped as soon as the batch
//! is submitted, so the times are there to read once the device has
//! finished it, without a wait of their own.
//! [`GpuDevice::finished`] hands out the tickets of finished batches with
//! each launch's device time.
//!
//! Queue order alone orders the launches on one device, so a launch that
//! depends on an earlier one needs no wait. What queue order does not
//! cover is `write_buffer`, which wgpu runs before the command buffers of
//! the next submission: an upload therefore submits the open batch first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use super::{GpuDevice, READBACK, RESOLVE};
use crate::device::Device;
use crate::error::Result;

/// Launches in one batch at most, unless `PEL_GPU_BATCH` says otherwise
/// (CubeCL uses 32 too).
pub(crate) const DEFAULT_BATCH: usize = 32;

/// Bytes of a launch's slot in its batch's uniform buffer (at least the
/// device's uniform offset alignment); larger params get a buffer of their
/// own.
pub(crate) const PARAMS_SLOT: u64 = 256;

/// One queued launch in this many writes timestamps around its pass (the
/// first of a batch among them): enough samples for the model, while a
/// device whose timestamps cost (llvmpipe waits for the pass to end at
/// each) pays for few. A launch without them comes back with no time.
pub(crate) const TIMED_EVERY: usize = 8;

/// The largest batch: two timestamps a launch in one query set of at most
/// 4,096 queries (wgpu's limit).
pub(crate) const MAX_BATCH: usize = 2048;

/// The open batch and the submitted ones whose times are not read yet.
#[derive(Default)]
pub(super) struct Stream {
    /// The open batch's encoder, if a launch or a copy is recorded.
    encoder: Option<wgpu::CommandEncoder>,
    /// The open batch's queued launches, in order: their tickets.
    tickets: Vec<u64>,
    /// The open batch's timestamp queries (two per launch).
    queries: Option<wgpu::QuerySet>,
    /// Buffers given back once the open batch is submitted: uniforms it
    /// reads, and buffers released while it could still use them.
    hold: Vec<wgpu::Buffer>,
    /// Submitted batches, oldest first.
    inflight: VecDeque<Inflight>,
    /// Finished tickets not yet handed out.
    done: Vec<(u64, Option<Duration>)>,
    /// The next ticket.
    next: u64,
    /// Query sets free for the next batch.
    free_queries: Vec<wgpu::QuerySet>,
    /// The open batch's params, each launch's at its slot, written to
    /// `uniforms` in one write as the batch is submitted.
    params: Vec<u8>,
    /// The open batch's uniform buffer: one slot a launch.
    uniforms: Option<wgpu::Buffer>,
}

/// A submitted batch: its tickets and where their timestamps will be.
struct Inflight {
    tickets: Vec<u64>,
    times: Option<Times>,
}

/// A batch's timestamps on their way back.
struct Times {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// 0 while mapping, 1 mapped, 2 failed.
    state: Arc<AtomicU8>,
}

impl Stream {
    /// Whether a batch is open (something recorded, not yet submitted).
    pub(super) fn is_open(&self) -> bool {
        self.encoder.is_some()
    }

    /// Keeps `buf` until the open batch is submitted.
    pub(super) fn hold(&mut self, buf: wgpu::Buffer) {
        self.hold.push(buf);
    }
}

impl GpuDevice {
    pub(super) fn stream(&self) -> MutexGuard<'_, Stream> {
        self.stream.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether launches that need no answer now are queued on this device
    /// rather than waited for: where it times its kernels itself and runs
    /// from more than one thread (not on GL, which pel drives one
    /// operation at a time).
    pub(super) fn batches(&self) -> bool {
        self.info.batches
    }

    /// The open batch's encoder, made if none is open.
    pub(super) fn encoder<'s>(&self, s: &'s mut Stream) -> &'s mut wgpu::CommandEncoder {
        s.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("pel batch"),
                })
        })
    }

    /// The bytes between two launches' params in a batch's uniform buffer.
    pub(super) fn params_stride(&self) -> u64 {
        PARAMS_SLOT.max(self.uniform_align)
    }

    /// Puts `params` in the next launch's slot of the open batch's uniform
    /// buffer; returns the buffer and the slot's offset (`None`: they do
    /// not fit a slot).
    pub(super) fn params_slot(
        &self,
        s: &mut Stream,
        params: &[u8],
    ) -> Result<Option<(wgpu::Buffer, u64)>> {
        let stride = self.params_stride();
        if params.len() as u64 > stride {
            return Ok(None);
        }
        if s.uniforms.is_none() {
            s.uniforms = Some(self.alloc_usage(stride * self.batch as u64, super::UNIFORM)?);
        }
        let offset = s.tickets.len() as u64 * stride;
        s.params.resize(offset as usize, 0);
        s.params.extend_from_slice(params);
        Ok(s.uniforms.clone().map(|u| (u, offset)))
    }

    /// Records one queued compute pass: `record` sets its pipeline, bind
    /// group and dispatch. Holds `uniform` until the batch is submitted,
    /// and submits the batch once it is full. Returns the launch's ticket.
    pub(super) fn record_pass(
        &self,
        s: &mut Stream,
        label: &str,
        uniform: Option<wgpu::Buffer>,
        record: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) -> Result<u64> {
        let ticket = s.next;
        s.next += 1;
        let i = s.tickets.len() as u32;
        if self.timestamp_period.is_some() && s.queries.is_none() {
            let queries = s.free_queries.pop().unwrap_or_else(|| {
                self.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("pel batch times"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * self.batch as u32,
                })
            });
            s.queries = Some(queries);
        }
        let queries = s.queries.take();
        {
            let enc = self.encoder(s);
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: queries
                    .as_ref()
                    .filter(|_| (i as usize).is_multiple_of(TIMED_EVERY))
                    .map(|q| wgpu::ComputePassTimestampWrites {
                        query_set: q,
                        beginning_of_pass_write_index: Some(2 * i),
                        end_of_pass_write_index: Some(2 * i + 1),
                    }),
            });
            record(&mut pass);
        }
        s.queries = queries;
        s.tickets.push(ticket);
        s.hold.extend(uniform);
        // A full batch goes; so does any batch while the device has nothing
        // in flight that pel knows of, so that it never idles with work
        // waiting in an open encoder (its earlier batches' ends are seen
        // at each call's record, without blocking).
        if s.tickets.len() >= self.batch || s.inflight.is_empty() {
            self.submit_batch(s)?;
        }
        Ok(ticket)
    }

    /// Submits the open batch, if any, without waiting; returns the
    /// submission's index.
    pub(super) fn submit_batch(&self, s: &mut Stream) -> Result<Option<wgpu::SubmissionIndex>> {
        let Some(mut enc) = s.encoder.take() else {
            return Ok(None);
        };
        let tickets = std::mem::take(&mut s.tickets);
        let n = tickets.len() as u64;
        // The batch goes without its times if their buffers cannot be had.
        let buffers = || -> Result<_> {
            Ok((
                self.alloc_usage(16 * n, RESOLVE)?,
                self.alloc_usage(16 * n, READBACK)?,
            ))
        };
        let times = match (s.queries.take(), n > 0) {
            (Some(queries), true) if let Ok((resolve, readback)) = buffers() => {
                enc.resolve_query_set(&queries, 0..2 * n as u32, &resolve, 0);
                enc.copy_buffer_to_buffer(&resolve, 0, &readback, 0, 16 * n);
                Some(Times {
                    queries,
                    resolve,
                    readback,
                    state: Arc::new(AtomicU8::new(0)),
                })
            }
            (Some(queries), _) => {
                s.free_queries.push(queries);
                None
            }
            (None, _) => None,
        };
        // The batch's params in one write, which lands before its commands.
        if let Some(u) = s.uniforms.take() {
            self.queue.write_buffer(&u, 0, &s.params);
            s.params.clear();
            s.hold.push(u);
        }
        let index = self.scoped("submitting a batch", "batch", || {
            self.queue.submit([enc.finish()])
        });
        // What the batch used may be used again: queue order puts any
        // later write after it.
        for b in std::mem::take(&mut s.hold) {
            self.give_back(b);
        }
        let index = match index {
            Ok(index) => index,
            Err(e) => {
                s.done.extend(tickets.iter().map(|&t| (t, None)));
                return Err(e);
            }
        };
        if let Some(t) = &times {
            let state = Arc::clone(&t.state);
            t.readback
                .map_async(wgpu::MapMode::Read, 0..16 * n, move |r| {
                    state.store(if r.is_ok() { 1 } else { 2 }, Ordering::Release);
                });
        }
        s.inflight.push_back(Inflight { tickets, times });
        Ok(Some(index))
    }

    /// Hands out the tickets of the batches that have finished, each with
    /// its launch's device time where the device measured it. Never
    /// blocks.
    pub(super) fn take_finished(&self) -> Vec<(u64, Option<Duration>)> {
        let mut s = self.stream();
        if s.inflight.is_empty() && s.done.is_empty() {
            return Vec::new();
        }
        if !s.inflight.is_empty() {
            // Runs the callbacks of whatever has finished.
            let _ = self.device.poll(wgpu::PollType::Poll);
        }
        let lost = self.check_alive().is_err();
        while let Some(front) = s.inflight.front() {
            let state = match &front.times {
                Some(t) => t.state.load(Ordering::Acquire),
                None => 2,
            };
            if state == 0 && !lost {
                break;
            }
            let batch = s.inflight.pop_front().expect("a front batch");
            match batch.times {
                Some(t) if state == 1 => {
                    let durations = self.read_times(&t, batch.tickets.len());
                    s.done.extend(batch.tickets.iter().copied().zip(durations));
                    s.free_queries.push(t.queries);
                    self.give_back(t.resolve);
                    self.give_back(t.readback);
                }
                _ => s.done.extend(batch.tickets.iter().map(|&t| (t, None))),
            }
        }
        std::mem::take(&mut s.done)
    }

    /// The device times of a batch's `n` launches from its mapped readback.
    fn read_times(&self, t: &Times, n: usize) -> Vec<Option<Duration>> {
        let period = self.timestamp_period.unwrap_or(1.0) as f64;
        let times = match t.readback.get_mapped_range(0..16 * n as u64) {
            Ok(view) => {
                let ticks: &[u64] = bytemuck::cast_slice(&view);
                ticks
                    .chunks_exact(2)
                    .map(|w| {
                        (w[1] > w[0])
                            .then(|| Duration::from_nanos(((w[1] - w[0]) as f64 * period) as u64))
                    })
                    .collect()
            }
            Err(_) => vec![None; n],
        };
        t.readback.unmap();
        times
    }

    /// Drops the open batch (the device is lost): its launches never run.
    pub(super) fn abandon(&self) {
        let mut s = self.stream();
        s.encoder = None;
        s.queries = None;
        s.uniforms = None;
        s.params.clear();
        let tickets = std::mem::take(&mut s.tickets);
        s.done.extend(tickets.into_iter().map(|t| (t, None)));
        s.hold.clear();
    }
}

//! A GPU's stream: launches recorded into one open command encoder and
//! submitted together once [`GpuDevice::batch`] launches are waiting, or
//! something needs what they did (a download, an upload that must come
//! after them, a launch that waits), or the device has nothing in flight
//! and the open batch is expected to take [`EAGER_S`] or more (or its
//! time is unknown): then it starts at once rather than idle with work
//! waiting, while small launches still share a submission, whose cost
//! would be most of theirs. The host blocks only for bytes: a download
//! waits on its own submission, never on the whole device.
//!
//! Each queued launch gets a ticket, and its params a slot in the batch's
//! uniform buffer, written once as the batch is submitted. A submitted
//! batch is known finished when its completion callback has run
//! (`on_submitted_work_done`) or the host has waited for a later
//! submission; [`GpuDevice::take_finished`] hands out the tickets of
//! finished batches without blocking.
//!
//! Where the device has timestamp queries, a queued pass whose time the
//! model wants (and every [`SAMPLE_EVERY`]-th, so that drift is seen)
//! writes one at its start and one at its end into the batch's query set;
//! the batch resolves them into a buffer that is mapped as the batch
//! finishes, so the kernels' device times come with their tickets and no
//! one waits for them. Not every pass is timed: a timestamp costs a
//! driver a flush of the work before it (lavapipe doubles a chain of
//! small kernels' time when all are timed).
//!
//! Queue order alone orders the launches on one device, so a launch that
//! depends on an earlier one needs no wait. What queue order does not
//! cover is `write_buffer`, which wgpu runs before the command buffers of
//! the next submission: an upload therefore submits the open batch first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use super::{GpuDevice, READBACK, RESOLVE, stamp_span};
use crate::device::Device;
use crate::error::Result;

/// Launches in one batch at most, unless `PEL_GPU_BATCH` says otherwise
/// (CubeCL uses 32 too).
pub(crate) const DEFAULT_BATCH: usize = 32;

/// Bytes of a launch's slot in its batch's uniform buffer (at least the
/// device's uniform offset alignment); larger params get a buffer of their
/// own.
pub(crate) const PARAMS_SLOT: u64 = 256;

/// The expected time of an open batch at which it is submitted at once
/// when the device has nothing in flight, seconds.
pub(crate) const EAGER_S: f64 = 1e-3;

/// A queued launch in this many is timed on the device even where the
/// model has its fill of samples.
pub(crate) const SAMPLE_EVERY: u64 = 16;

/// The largest batch (its params fill one uniform buffer).
pub(crate) const MAX_BATCH: usize = 2048;

/// The open batch and the submitted ones not yet seen finished.
#[derive(Default)]
pub(super) struct Stream {
    /// The open batch's encoder, if a launch or a copy is recorded.
    encoder: Option<wgpu::CommandEncoder>,
    /// The open batch's queued launches, in order: their tickets.
    tickets: Vec<u64>,
    /// Buffers given back once the open batch is submitted: uniforms it
    /// reads, and buffers released while it could still use them.
    hold: Vec<wgpu::Buffer>,
    /// Submitted batches, oldest first.
    inflight: VecDeque<Inflight>,
    /// Finished launches not yet handed out.
    done: Vec<Finished>,
    /// The next ticket.
    next: u64,
    /// Batches submitted so far (the next batch's number).
    submitted: u64,
    /// The open batch's params, each launch's at its slot, written to
    /// `uniforms` in one write as the batch is submitted.
    params: Vec<u8>,
    /// The open batch's uniform buffer: one slot a launch.
    uniforms: Option<wgpu::Buffer>,
    /// The open batch's timestamp queries: two a launch.
    queries: Option<wgpu::QuerySet>,
    /// Which of the open batch's launches write their timestamps (the
    /// others' queries hold whatever an earlier batch left there).
    timed: Vec<bool>,
    /// Query sets of finished batches, free again.
    free_queries: Vec<wgpu::QuerySet>,
    /// What the model expects the open batch's launches to take, seconds
    /// (infinite if one is unknown).
    open_s: f64,
    /// Launches queued so far.
    launches: u64,
}

/// A submitted batch: its tickets, whether the device has finished it,
/// and its timestamps on their way back.
struct Inflight {
    number: u64,
    tickets: Vec<u64>,
    finished: Arc<AtomicBool>,
    stamps: Option<Stamps>,
}

/// A batch's timestamps: its queries, resolved into `resolve` and copied
/// to `readback`, which is mapped once the batch has run.
struct Stamps {
    queries: wgpu::QuerySet,
    timed: Vec<bool>,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    bytes: u64,
    mapped: Arc<AtomicBool>,
}

/// A queued launch that has finished: its ticket, and its time as the
/// device measured it, where it has timestamps.
pub(crate) type Finished = (u64, Option<Duration>);

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

    /// Records one queued compute pass, expected to take `expect_s` and
    /// timed on the device if `sample` (see the module's notes):
    /// `record` sets its pipeline, bind group and dispatch. Holds
    /// `uniform` until the batch is submitted, and submits the batch when
    /// it is full or worth starting now (see the module's notes). Returns
    /// the launch's ticket.
    pub(super) fn record_pass(
        &self,
        s: &mut Stream,
        label: &str,
        uniform: Option<wgpu::Buffer>,
        (expect_s, sample): (Option<f64>, bool),
        record: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) -> Result<u64> {
        let ticket = s.next;
        s.next += 1;
        s.launches += 1;
        let timed =
            self.timestamp_period.is_some() && (sample || s.launches.is_multiple_of(SAMPLE_EVERY));
        if timed && s.queries.is_none() {
            let reuse = s.free_queries.pop();
            s.queries = Some(reuse.unwrap_or_else(|| {
                self.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("pel batch times"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * self.batch as u32,
                })
            }));
        }
        let at = 2 * s.tickets.len() as u32;
        let queries = s.queries.take();
        let writes = queries.as_ref().filter(|_| timed);
        {
            let mut pass = self
                .encoder(s)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(label),
                    timestamp_writes: writes.map(|q| wgpu::ComputePassTimestampWrites {
                        query_set: q,
                        beginning_of_pass_write_index: Some(at),
                        end_of_pass_write_index: Some(at + 1),
                    }),
                });
            record(&mut pass);
        }
        s.queries = queries;
        s.timed.push(timed);
        s.tickets.push(ticket);
        s.hold.extend(uniform);
        s.open_s += expect_s.unwrap_or(f64::INFINITY);
        // A full batch goes; so does one worth starting while the device
        // has nothing in flight that pel knows of (its earlier batches'
        // ends are seen at each call's record, without blocking).
        if s.tickets.len() >= self.batch || (s.inflight.is_empty() && s.open_s >= EAGER_S) {
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
        let timed = std::mem::take(&mut s.timed);
        s.open_s = 0.0;
        let stamps = s
            .queries
            .take()
            .and_then(|q| self.resolve_stamps(s, &mut enc, q, timed));
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
                s.done.extend(tickets.into_iter().map(|t| (t, None)));
                return Err(e);
            }
        };
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        self.queue
            .on_submitted_work_done(move || flag.store(true, Ordering::Release));
        if let Some(st) = &stamps {
            let mapped = Arc::clone(&st.mapped);
            st.readback
                .map_async(wgpu::MapMode::Read, 0..st.bytes, move |r| {
                    mapped.store(r.is_ok(), Ordering::Release)
                });
        }
        s.inflight.push_back(Inflight {
            number: s.submitted,
            tickets,
            finished,
            stamps,
        });
        s.submitted += 1;
        Ok(Some(index))
    }

    /// Records the resolve of the open batch's timestamps from `queries`
    /// (`timed`: which of its launches wrote theirs) and their copy to a
    /// mappable buffer.
    /// `None` (the queries free again) where no buffers can be had: the
    /// batch goes without its times.
    fn resolve_stamps(
        &self,
        s: &mut Stream,
        enc: &mut wgpu::CommandEncoder,
        queries: wgpu::QuerySet,
        timed: Vec<bool>,
    ) -> Option<Stamps> {
        let n = 2 * timed.len() as u32;
        let bytes = n as u64 * 8;
        let (resolve, readback) = match (
            self.alloc_usage(bytes, RESOLVE),
            self.alloc_usage(bytes, READBACK),
        ) {
            (Ok(r), Ok(b)) => (r, b),
            (r, b) => {
                for buf in [r, b].into_iter().flatten() {
                    self.give_back(buf);
                }
                s.free_queries.push(queries);
                return None;
            }
        };
        enc.resolve_query_set(&queries, 0..n, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &readback, 0, bytes);
        Some(Stamps {
            queries,
            timed,
            resolve,
            readback,
            bytes,
            mapped: Arc::default(),
        })
    }

    /// The device times of a finished batch's launches, in order, if its
    /// timestamps came back; its buffers and queries go back for reuse.
    fn read_stamps(&self, s: &mut Stream, st: Stamps, launches: usize) -> Vec<Option<Duration>> {
        let mut times = vec![None; launches];
        if !st.mapped.load(Ordering::Acquire) {
            // Not mapped (yet): the buffer is dropped rather than pooled
            // with a map pending.
            s.free_queries.push(st.queries);
            self.give_back(st.resolve);
            return times;
        }
        if let (Ok(view), Some(period)) = (
            st.readback.get_mapped_range(0..st.bytes),
            self.timestamp_period,
        ) {
            let ticks: &[u64] = bytemuck::cast_slice(&view);
            for ((t, pair), _) in times
                .iter_mut()
                .zip(ticks.chunks_exact(2))
                .zip(&st.timed)
                .filter(|(_, timed)| **timed)
            {
                *t = stamp_span(period, [pair[0], pair[1]]);
            }
        }
        st.readback.unmap();
        s.free_queries.push(st.queries);
        self.give_back(st.resolve);
        self.give_back(st.readback);
        times
    }

    /// Batches submitted so far: after a wait for a submission made once
    /// this many were, they have all finished ([`finished_before`]).
    ///
    /// [`finished_before`]: Self::finished_before
    pub(super) fn submitted(s: &Stream) -> u64 {
        s.submitted
    }

    /// Marks the batches numbered below `n` finished: the host has waited
    /// for a submission made after them, and queue order finished them
    /// first. (Their own completion callbacks may run later.)
    pub(super) fn finished_before(&self, n: u64) {
        for b in self.stream().inflight.iter().filter(|b| b.number < n) {
            b.finished.store(true, Ordering::Release);
        }
    }

    /// Hands out the launches of the batches that have finished (all of
    /// them once the device is lost), with their device times where they
    /// came back. Never blocks.
    pub(super) fn take_finished(&self) -> Vec<Finished> {
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
            if !lost && !front.finished.load(Ordering::Acquire) {
                break;
            }
            let batch = s.inflight.pop_front().expect("a front batch");
            let times = match batch.stamps {
                Some(st) if !lost => self.read_stamps(&mut s, st, batch.tickets.len()),
                _ => vec![None; batch.tickets.len()],
            };
            s.done.extend(batch.tickets.into_iter().zip(times));
        }
        std::mem::take(&mut s.done)
    }

    /// Drops the open batch (the device is lost): its launches never run.
    pub(super) fn abandon(&self) {
        let mut s = self.stream();
        s.encoder = None;
        s.uniforms = None;
        s.queries = None;
        s.timed.clear();
        s.open_s = 0.0;
        s.params.clear();
        let tickets = std::mem::take(&mut s.tickets);
        s.done.extend(tickets.into_iter().map(|t| (t, None)));
        s.hold.clear();
    }
}

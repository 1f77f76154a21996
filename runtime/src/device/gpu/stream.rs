//! A GPU's stream: launches recorded into one open command encoder and
//! submitted together once [`GpuDevice::batch`] launches are waiting, or
//! something needs what they did (a download, an upload that must come
//! after them, a launch that waits), or the device has nothing in flight
//! and the open batch is expected to take [`EAGER_S`] or more (or its
//! time is unknown; [`EAGER_SHARED_S`] on a device that shares the host's
//! cores): then it starts at once rather than idle with work waiting,
//! while small launches still share a submission, whose cost would be
//! most of theirs. The host blocks only for bytes: a download
//! waits on its own submission, never on the whole device.
//!
//! Each queued launch gets a ticket, and its params a slot in the batch's
//! uniform buffer, written once as the batch is submitted. A submitted
//! batch is known finished when its completion callback has run
//! (`on_submitted_work_done`) or the host has waited for a later
//! submission; [`GpuDevice::take_finished`] hands out the tickets of
//! finished batches without blocking.
//!
//! The batch's untimed launches share one compute pass, and a launch sets
//! the pipeline and bind group only where they differ from the one before
//! it in that pass (a chain of calls with the same params shares their
//! slot too). A pass costs a driver more than a dispatch: wgpu gives each
//! its own command buffers, and lavapipe resets every one after the
//! submission; one pass per launch made a 64-call chain of 1K saxpy take
//! 1.6-1.8x a hand-written program's single pass, one shared pass 1.16.
//! wgpu's barriers order the dispatches inside a pass as across passes.
//!
//! Where the device has timestamp queries, a queued launch whose time the
//! model wants (and every [`SAMPLE_EVERY`]-th, so that drift is seen) gets
//! a pass of its own that writes one at its start and one at its end into
//! the batch's query set; the batch resolves them into a buffer that is
//! mapped as the batch finishes, so the kernels' device times come with
//! their tickets and no one waits for them. Few launches are timed: a
//! timestamp costs a driver a flush of the work before it and splits the
//! shared pass (lavapipe doubles a chain of small kernels' time when all
//! are timed; one in 16 still cost a 1K chain a third).
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

/// [`DEFAULT_BATCH`] on a device that runs on the host's own cores. There
/// a submission behind one in flight blocks the host until that one is
/// done (lavapipe), so fewer, longer batches cost less: a 64-call chain of
/// 1K saxpy in one submission took 1.05-1.12x a hand-written program's,
/// in two 1.12-1.18x (both on one device).
pub(crate) const SHARED_BATCH: usize = 256;

/// Bytes of a launch's slot in its batch's uniform buffer (at least the
/// device's uniform offset alignment); larger params get a buffer of their
/// own.
pub(crate) const PARAMS_SLOT: u64 = 256;

/// The expected time of an open batch at which it is submitted at once
/// when the device has nothing in flight, seconds.
pub(crate) const EAGER_S: f64 = 1e-3;

/// [`EAGER_S`] on a device that runs on the host's own cores (llvmpipe,
/// lavapipe, WARP). There, running ahead buys little and costs much: the
/// host's recording of the next launches takes cores from the device's
/// threads. On lavapipe (2 cores) a chain of 64 1K saxpys took 1.15-1.25x
/// a hand-written program's single submission when every 5th launch went
/// early, 1.02-1.03x when the batch filled first. Only a batch long enough
/// that recording a full one is a small part of it starts early.
pub(crate) const EAGER_SHARED_S: f64 = 10e-3;

/// A queued launch in this many is timed on the device even where the
/// model has its fill of samples (enough to follow drift: a timed launch
/// costs a pass of its own).
pub(crate) const SAMPLE_EVERY: u64 = 256;

/// The largest batch (its params fill one uniform buffer).
pub(crate) const MAX_BATCH: usize = 2048;

/// The open batch and the submitted ones not yet seen finished.
#[derive(Default)]
pub(super) struct Stream {
    /// The open batch's open compute pass, which its untimed launches
    /// share (ended before anything else is recorded; before `encoder`,
    /// so that it is dropped first).
    pass: Option<wgpu::ComputePass<'static>>,
    /// What the shared pass has bound: the kernel whose pipeline is set,
    /// its bind group and the uniform's offset (set again only when a
    /// launch's differ: wgpu rebinds on every set).
    bound: Option<(u64, wgpu::BindGroup, Option<u32>)>,
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
    /// `uniforms` in one write as the batch is submitted. A launch whose
    /// params are the last slot's shares that slot.
    params: Vec<u8>,
    /// The open batch's params slots in use.
    slots: u64,
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

/// What one launch records: its kernel's pipeline, its bind group with
/// the uniform's dynamic offset, and its workgroups.
pub(super) struct Dispatch<'a> {
    /// The kernel's identity.
    pub kernel: u64,
    pub pipeline: &'a wgpu::ComputePipeline,
    pub group: &'a wgpu::BindGroup,
    pub offset: Option<u32>,
    /// Workgroups along x and y.
    pub groups: (u32, u32),
}

impl Dispatch<'_> {
    /// Records the dispatch into `pass`, setting the pipeline and the bind
    /// group only where they differ from what `bound` says the pass has
    /// (and updating it).
    fn record(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bound: &mut Option<(u64, wgpu::BindGroup, Option<u32>)>,
    ) {
        let (same_kernel, same_group) = match bound {
            Some((k, g, o)) => {
                let same = *k == self.kernel;
                (same, same && g == self.group && *o == self.offset)
            }
            None => (false, false),
        };
        if !same_kernel {
            pass.set_pipeline(self.pipeline);
        }
        if !same_group {
            pass.set_bind_group(0, self.group, self.offset.as_slice());
            *bound = Some((self.kernel, self.group.clone(), self.offset));
        }
        pass.dispatch_workgroups(self.groups.0, self.groups.1, 1);
    }
}

/// A queued launch that has finished: its ticket, and its time as the
/// device measured it, where it has timestamps.
pub(crate) type Finished = (u64, Option<Duration>);

impl Stream {
    /// Whether a batch is open (something recorded, not yet submitted).
    pub(super) fn is_open(&self) -> bool {
        self.encoder.is_some()
    }

    /// The open batch's queued launches.
    pub(super) fn open_launches(&self) -> usize {
        self.tickets.len()
    }

    /// Keeps `buf` until the open batch is submitted.
    pub(super) fn hold(&mut self, buf: wgpu::Buffer) {
        self.hold.push(buf);
    }

    /// Ends the shared compute pass, if one is open.
    fn end_pass(&mut self) {
        self.pass = None;
        self.bound = None;
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

    /// The open batch's encoder, made if none is open, its shared compute
    /// pass ended (what is recorded next goes after the pass's launches).
    pub(super) fn encoder<'s>(&self, s: &'s mut Stream) -> &'s mut wgpu::CommandEncoder {
        s.end_pass();
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
        // A chain of calls with the same params (an iteration's steps)
        // shares one slot, so the shared pass binds it once.
        if let Some(last) = s.slots.checked_sub(1) {
            let at = (last * stride) as usize;
            if s.params.get(at..) == Some(params) {
                return Ok(s.uniforms.clone().map(|u| (u, at as u64)));
            }
        }
        let offset = s.slots * stride;
        s.slots += 1;
        s.params.resize(offset as usize, 0);
        s.params.extend_from_slice(params);
        Ok(s.uniforms.clone().map(|u| (u, offset)))
    }

    /// Records one queued launch, expected to take `expect_s` and timed
    /// on the device if `sample` (see the module's notes). Holds `uniform`
    /// until the batch is submitted, and submits the batch when it is full
    /// or worth starting now (see the module's notes). Returns the
    /// launch's ticket.
    pub(super) fn record_pass(
        &self,
        s: &mut Stream,
        label: &str,
        uniform: Option<wgpu::Buffer>,
        (expect_s, sample): (Option<f64>, bool),
        d: Dispatch<'_>,
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
        if timed {
            // A pass of its own, whose start and end are the launch's.
            let queries = s.queries.take();
            {
                let mut pass = self
                    .encoder(s)
                    .begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(label),
                        timestamp_writes: queries.as_ref().map(|q| {
                            wgpu::ComputePassTimestampWrites {
                                query_set: q,
                                beginning_of_pass_write_index: Some(at),
                                end_of_pass_write_index: Some(at + 1),
                            }
                        }),
                    });
                d.record(&mut pass, &mut None);
            }
            s.queries = queries;
        } else {
            // Untimed launches share one pass: a driver pays for each pass
            // (wgpu gives each its own command buffers, lavapipe resets
            // every one), and barriers between dispatches order them the
            // same inside a pass as across passes.
            if s.pass.is_none() {
                let pass = self
                    .encoder(s)
                    .begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("pel batch"),
                        timestamp_writes: None,
                    })
                    .forget_lifetime();
                s.pass = Some(pass);
            }
            let Stream { pass, bound, .. } = s;
            d.record(pass.as_mut().expect("a pass was just begun"), bound);
        }
        s.timed.push(timed);
        s.tickets.push(ticket);
        s.hold.extend(uniform);
        // The model's estimate is a waited call's: the device time plus
        // the submission and wait around it, which a launch sharing a
        // batch does not pay. Summed whole, 27 launches of a 1K saxpy on
        // llvmpipe (~0.1 ms each on the device, ~0.37 ms waited) made
        // "10 ms" and split a 64-call chain into two submissions.
        let latency = self.latency.as_secs_f64();
        s.open_s += expect_s.map_or(f64::INFINITY, |e| (e - latency).max(0.1 * e));
        // A full batch goes; so does one worth starting while the device
        // has nothing in flight that pel knows of (its earlier batches'
        // ends are seen at each call's record, without blocking).
        if s.tickets.len() >= self.batch || (s.inflight.is_empty() && s.open_s >= self.eager_s) {
            self.submit_batch(s)?;
        }
        Ok(ticket)
    }

    /// Submits the open batch, if any, without waiting; returns the
    /// submission's index.
    pub(super) fn submit_batch(&self, s: &mut Stream) -> Result<Option<wgpu::SubmissionIndex>> {
        s.end_pass();
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
            s.slots = 0;
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

    /// Whether nothing is recorded or running that a transfer made now
    /// would wait for (a non-blocking poll first, where batches are in
    /// flight): the transfer's time is then the bus's alone.
    pub(super) fn quiet(&self) -> bool {
        let s = self.stream();
        if s.encoder.is_some() || !s.tickets.is_empty() {
            return false;
        }
        if s.inflight.is_empty() {
            return true;
        }
        let _ = self.device.poll(wgpu::PollType::Poll);
        s.inflight
            .iter()
            .all(|b| b.finished.load(Ordering::Acquire))
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
        s.end_pass();
        s.encoder = None;
        s.uniforms = None;
        s.queries = None;
        s.timed.clear();
        s.open_s = 0.0;
        s.params.clear();
        s.slots = 0;
        let tickets = std::mem::take(&mut s.tickets);
        s.done.extend(tickets.into_iter().map(|t| (t, None)));
        s.hold.clear();
    }
}

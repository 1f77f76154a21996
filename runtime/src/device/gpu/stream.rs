//! A GPU's stream: launches recorded into one open command encoder and
//! submitted together: at once while the device has nothing in flight (so
//! it never idles with work waiting), otherwise once [`GpuDevice::batch`]
//! launches are waiting or something needs what they did (a download, an
//! upload that must come after them, a launch that waits). The host blocks
//! only for bytes: a download waits on its own submission, never on the
//! whole device.
//!
//! Each queued launch gets a ticket, and its params a slot in the batch's
//! uniform buffer, written once as the batch is submitted. A submitted
//! batch is known finished when its completion callback has run
//! (`on_submitted_work_done`) or the host has waited for a later
//! submission; [`GpuDevice::take_finished`] hands out the tickets of
//! finished batches without blocking.
//!
//! Queue order alone orders the launches on one device, so a launch that
//! depends on an earlier one needs no wait. What queue order does not
//! cover is `write_buffer`, which wgpu runs before the command buffers of
//! the next submission: an upload therefore submits the open batch first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard, PoisonError};

use super::GpuDevice;
use crate::device::Device;
use crate::error::Result;

/// Launches in one batch at most, unless `PEL_GPU_BATCH` says otherwise
/// (CubeCL uses 32 too).
pub(crate) const DEFAULT_BATCH: usize = 32;

/// Bytes of a launch's slot in its batch's uniform buffer (at least the
/// device's uniform offset alignment); larger params get a buffer of their
/// own.
pub(crate) const PARAMS_SLOT: u64 = 256;

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
    /// Finished tickets not yet handed out.
    done: Vec<u64>,
    /// The next ticket.
    next: u64,
    /// Batches submitted so far (the next batch's number).
    submitted: u64,
    /// The open batch's params, each launch's at its slot, written to
    /// `uniforms` in one write as the batch is submitted.
    params: Vec<u8>,
    /// The open batch's uniform buffer: one slot a launch.
    uniforms: Option<wgpu::Buffer>,
}

/// A submitted batch: its tickets, and whether the device has finished it.
struct Inflight {
    number: u64,
    tickets: Vec<u64>,
    finished: Arc<AtomicBool>,
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
        {
            let mut pass = self
                .encoder(s)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(label),
                    timestamp_writes: None,
                });
            record(&mut pass);
        }
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
        let Some(enc) = s.encoder.take() else {
            return Ok(None);
        };
        let tickets = std::mem::take(&mut s.tickets);
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
                s.done.extend(tickets);
                return Err(e);
            }
        };
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        self.queue
            .on_submitted_work_done(move || flag.store(true, Ordering::Release));
        s.inflight.push_back(Inflight {
            number: s.submitted,
            tickets,
            finished,
        });
        s.submitted += 1;
        Ok(Some(index))
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

    /// Hands out the tickets of the batches that have finished (all of
    /// them once the device is lost). Never blocks.
    pub(super) fn take_finished(&self) -> Vec<u64> {
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
            s.done.extend(batch.tickets);
        }
        std::mem::take(&mut s.done)
    }

    /// Drops the open batch (the device is lost): its launches never run.
    pub(super) fn abandon(&self) {
        let mut s = self.stream();
        s.encoder = None;
        s.uniforms = None;
        s.params.clear();
        let tickets = std::mem::take(&mut s.tickets);
        s.done.extend(tickets);
        s.hold.clear();
    }
}

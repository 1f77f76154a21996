//! Queued calls: which calls a GPU queues rather than waits for, and what
//! the engine keeps of them until their batch has finished (the
//! dispatcher's queue estimate counts them until then). The GPU side, the
//! stream, is `device/gpu/stream.rs`.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::dispatch::{Placement, Reason};
use crate::error::Result;
use crate::ids::Backend;
use crate::kernel::Kernel;

use super::Engine;

/// A call queued on a GPU whose batch has not finished: the dispatcher
/// hears that it ended once it has.
pub(crate) struct QueuedCall {
    pub(super) gpu: usize,
    pub(super) ticket: u64,
    pub(super) kernel: Kernel,
    pub(super) size: u64,
    /// The backend the dispatcher counts it queued on, to discharge.
    pub(super) charged: Option<Backend>,
}

/// The calls queued on GPUs whose batches have not finished, and the
/// finished launches whose calls are not here yet: a batch can finish,
/// and another thread take its end, before the call that queued the launch
/// has been recorded.
#[derive(Default)]
pub(crate) struct Queued {
    pub(super) calls: Vec<QueuedCall>,
    early: Vec<(usize, u64, Option<Duration>)>,
}

/// Finished launches kept for calls not yet recorded, at most.
const MAX_EARLY: usize = 4096;

/// A queued call whose batch has finished, with its kernel's device time
/// where the device measured it.
struct Ended {
    call: QueuedCall,
    device_time: Option<Duration>,
}

impl Engine {
    /// Whether a call placed by `p` is queued on its GPU rather than waited
    /// for: a call whose backend the caller named (or the only one that
    /// can run it), not split, not traced (the trace wants each kernel's
    /// span), on a GPU that queues. A call the dispatcher placed itself,
    /// to calibrate or by its model, waits, so that the model learns from
    /// the host time of whole calls; a queued call's sample is its device
    /// time plus the GPU's launch latency, which only approximates that.
    pub(crate) fn queues(&self, p: &Placement) -> bool {
        match p.backend {
            Backend::Gpu(g) => {
                p.split.is_none()
                    && matches!(p.reason, Reason::Forced | Reason::OnlyBackend)
                    && !self.tracer.on()
                    && self.gpus[g].queues()
            }
            Backend::Cpu => false,
        }
    }

    /// Tells the dispatcher of the queued calls whose batches have
    /// finished: each leaves its GPU's queue, and its device time (plus
    /// the GPU's launch latency: what the call would have taken waited
    /// for) goes to the model. Never blocks.
    pub(crate) fn settle_queued(&self) {
        if !self.queued_any.load(Ordering::Acquire) {
            return;
        }
        let resolved: Vec<Ended> = {
            let mut q = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
            if q.calls.is_empty() {
                self.queued_any.store(false, Ordering::Release);
                return;
            }
            let Queued { calls, early } = &mut *q;
            for (g, gpu) in self.gpus.iter().enumerate() {
                if calls.iter().any(|c| c.gpu == g) {
                    early.extend(gpu.finished().into_iter().map(|(t, d)| (g, t, d)));
                }
            }
            let mut out = Vec::new();
            early.retain(|&(g, ticket, device_time)| {
                match calls.iter().position(|c| c.gpu == g && c.ticket == ticket) {
                    Some(i) => {
                        out.push(Ended {
                            call: calls.swap_remove(i),
                            device_time,
                        });
                        false
                    }
                    None => true,
                }
            });
            // A launch whose call failed after queuing it never comes.
            let excess = early.len().saturating_sub(MAX_EARLY);
            early.drain(..excess);
            if calls.is_empty() {
                self.queued_any.store(false, Ordering::Release);
            }
            out
        };
        if resolved.is_empty() {
            return;
        }
        let mut d = self.dispatcher();
        for Ended {
            call: c,
            device_time,
        } in resolved
        {
            if let Some(b) = c.charged {
                d.finished(c.kernel.id(), b, c.size);
            }
            if let Some(t) = device_time {
                let waited = t + self.gpus[c.gpu].launch_latency();
                d.record_sample(
                    c.kernel.id(),
                    c.kernel.name(),
                    Backend::Gpu(c.gpu),
                    c.size,
                    waited.as_secs_f64(),
                    false,
                );
            }
        }
    }

    /// Submits what each GPU has queued, without waiting for it; returns
    /// the launches submitted.
    pub(crate) fn start_gpus(&self) -> usize {
        self.gpus
            .iter()
            .filter(|gpu| gpu.check_alive().is_ok())
            .map(|gpu| gpu.kick())
            .sum()
    }

    /// Waits until each GPU has run what is queued on it, and tells the
    /// dispatcher of the calls that ended.
    pub(crate) fn sync_gpus(&self) -> Result<()> {
        for gpu in &self.gpus {
            if gpu.check_alive().is_ok() {
                gpu.flush()?;
            }
        }
        self.settle_queued();
        self.trace_waits();
        Ok(())
    }

    /// Samples each GPU's host waits into the trace's counter tracks.
    pub(crate) fn trace_waits(&self) {
        if self.tracer.on() {
            for (g, gpu) in self.gpus.iter().enumerate() {
                self.tracer
                    .counter(&format!("gpu{g} host waits"), gpu.host_waits());
            }
        }
    }
}

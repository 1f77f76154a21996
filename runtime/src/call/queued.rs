//! Queued calls: which calls a GPU queues rather than waits for, and what
//! the engine keeps of them until their batch has finished (the
//! dispatcher's queue estimate counts them until then). The GPU side, the
//! stream, is `device/gpu/stream.rs`.

use std::sync::PoisonError;

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

impl Engine {
    /// Whether a call placed by `p` is queued on its GPU rather than waited
    /// for: a call whose backend the caller named (or the only one that
    /// can run it), not split, not traced (the trace wants each kernel's
    /// span), on a GPU that queues. A call the dispatcher placed itself,
    /// to calibrate or by its model, waits, so that its host time goes to
    /// the model as every sample there did: a queued launch's device time
    /// lacks the latency of its submission and wait, and beside them would
    /// read as drift.
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
    /// finished: each leaves its GPU's queue. Never blocks.
    pub(crate) fn settle_queued(&self) {
        let resolved: Vec<QueuedCall> = {
            let mut q = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
            if q.is_empty() {
                return;
            }
            let mut out = Vec::new();
            for (g, gpu) in self.gpus.iter().enumerate() {
                if !q.iter().any(|c| c.gpu == g) {
                    continue;
                }
                for ticket in gpu.finished() {
                    if let Some(i) = q.iter().position(|c| c.gpu == g && c.ticket == ticket) {
                        out.push(q.swap_remove(i));
                    }
                }
            }
            out
        };
        if resolved.is_empty() {
            return;
        }
        let mut d = self.dispatcher();
        // Nothing goes to the model (see `queues`): its samples are host
        // times of whole calls.
        for c in resolved {
            if let Some(b) = c.charged {
                d.finished(c.kernel.id(), b, c.size);
            }
        }
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

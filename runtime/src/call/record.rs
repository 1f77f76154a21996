//! Record: what a call did goes where it is kept. The write makes a new
//! version valid only where it was written (a GPU write also leaves a
//! lineage record, for replay), the time goes to the performance model,
//! the launch to the counters. Runs under the table's lock, with the
//! call's leases still held.

use crate::buffer::{HostMade, Table};
use crate::dispatch;
use crate::error::Result;
use crate::ids::Backend;
use crate::kernel::Kernel;

use super::{Call, Charge, Engine, QueuedCall, RunInfo};

impl Engine {
    /// Records a finished call's outcome (`parts`: a split call's CPU and
    /// GPU times, seconds) and returns what the caller sees. `kernel` is
    /// the kernel called and the implementation that ran (itself or one of
    /// its variants): the model's sample and the lineage are the
    /// implementation's, what later reads of its outputs teach is the
    /// kernel's.
    pub(super) fn record(
        &self,
        table: &mut Table,
        (called, kernel): (&Kernel, &Kernel),
        call: &Call<'_>,
        result: Result<(RunInfo, Option<(f64, f64)>)>,
        charge: Charge,
        host_written: bool,
    ) -> Result<RunInfo> {
        let Charge { decided, ticket } = charge;
        self.settle_queued();
        let (size, write_ids) = (call.size, &call.writes[..]);
        match &result {
            Ok((info, _)) => {
                // A split call's halves meet in the host copy.
                let written_on = match info.split {
                    Some(_) => Backend::Cpu,
                    None => info.backend,
                };
                // A GPU write leaves a record for replay, made before the
                // versions move on.
                let long = if written_on != Backend::Cpu {
                    table.record_gpu_write(kernel, call.params, &call.ids(), write_ids)
                } else {
                    Vec::new()
                };
                for id in write_ids {
                    table.mark_written(*id, written_on, called.id(), &self.gpus);
                }
                // A long lineage is cut short: the newest version comes to
                // the host, and what led to it is forgotten.
                for id in long {
                    match table.ensure_host(id, &self.gpus, &self.counters) {
                        // A checkpoint is no readback of the kernel's
                        // output; its download still times the bus.
                        Ok(made) => self.learn_from(HostMade {
                            writer: None,
                            ..made
                        }),
                        Err(e) => {
                            eprintln!("pel: warning: buffer #{id} could not be checkpointed: {e}")
                        }
                    }
                }
            }
            Err(e) => {
                // A CPU kernel (or a split call's CPU part) that failed may
                // have written part of its outputs: those host bytes are not
                // the buffer's any more.
                if host_written {
                    for id in write_ids {
                        table.written_garbage(*id, e);
                    }
                }
            }
        }
        // A queued call is still on its GPU: the dispatcher hears of it
        // when its batch has finished.
        let queued = match (ticket, &result) {
            (Some((gpu, ticket)), Ok(_)) => {
                let mut q = self
                    .queued
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                q.calls.push(QueuedCall {
                    gpu,
                    ticket,
                    kernel: kernel.clone(),
                    size,
                    charged: decided,
                });
                self.queued_any
                    .store(true, std::sync::atomic::Ordering::Release);
                true
            }
            _ => false,
        };
        if !queued {
            let mut d = self.dispatcher();
            if let Some(backend) = decided {
                d.finished(kernel.id(), backend, size);
            }
            match &result {
                Ok((info, None)) => d.record(
                    kernel.id(),
                    kernel.name(),
                    info.backend,
                    size,
                    info.exec.as_secs_f64(),
                ),
                Ok((info, Some((cpu_s, gpu_s)))) => d.record_split(
                    kernel.id(),
                    size,
                    dispatch::device_index(info.backend).saturating_sub(1),
                    info.split.unwrap_or(0.0),
                    info.exec.as_secs_f64(),
                    *cpu_s,
                    *gpu_s,
                ),
                Err(_) => {}
            }
        }
        result.map(|(info, parts)| {
            if parts.is_some() {
                self.counters.ran(false);
            }
            self.counters.ran(info.backend != Backend::Cpu);
            info
        })
    }
}

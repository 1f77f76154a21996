//! Execute: a staged call runs on its device, outside the table's lock
//! (the leases keep its buffers to it), with the faults `PEL_INJECT` asks
//! for, and its span goes to the trace.

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::device::{Args, Device, Launch};
use crate::error::{Error, Result};
use crate::ids::Backend;
use crate::kernel::Kernel;

use super::{Call, Engine, Parts, Placement, RunInfo, Ticket, Work};

impl Engine {
    /// Runs a prepared call outside the table's lock (the leases keep its
    /// buffers to it), with the faults `PEL_INJECT` asks for.
    pub(super) fn execute_work(
        &self,
        kernel: &Kernel,
        call: &Call<'_>,
        placement: Placement,
        work: Work,
        start: Instant,
        host_written: &mut bool,
    ) -> Result<(RunInfo, Parts, Ticket)> {
        let params = call.params;
        let (panics, rejected, factor) = if self.faults_on.load(Ordering::Relaxed) {
            let inject = self.faults_now();
            (
                inject.cpu_panic.iter().any(|k| k == kernel.name()),
                inject.gpu_reject.iter().any(|k| k == kernel.name()),
                inject.slowdown(placement.backend),
            )
        } else {
            (false, false, 1.0)
        };
        let t = Instant::now();
        let mut ticket = None;
        // A device on a virtual clock reports the time its kernel took.
        let mut virtual_time = None;
        let parts = match work {
            Work::Cpu(raw) => {
                *host_written = true;
                if panics {
                    let written: Vec<bool> = kernel
                        .reflection()
                        .storage
                        .iter()
                        .map(|b| b.access.writes())
                        .collect();
                    self.cpu.execute_faulty(kernel, &raw, &written)?;
                }
                let cpu_time = Device::execute(
                    &self.cpu,
                    Launch {
                        kernel,
                        args: Args::Host(&raw),
                        params,
                        workgroups: call.workgroups,
                        timed: false,
                        sample: false,
                        expect_s: None,
                    },
                )?;
                if self.cpu.virtual_clock() {
                    virtual_time = cpu_time;
                }
                None
            }
            Work::Gpu(g, bound) => {
                if rejected {
                    return Err(Error::Gpu {
                        kernel: kernel.name().to_owned(),
                        device: self.gpus[g].info().backend.to_string(),
                        message: format!(
                            "the pipeline was rejected (injected by PEL_INJECT=gpu-reject@{})",
                            kernel.name()
                        ),
                    });
                }
                self.inject_gpu_loss(g);
                self.virtual_loss(g);
                let timed = self.tracer.on();
                let launch = Launch {
                    kernel,
                    args: Args::Device(&bound),
                    params,
                    workgroups: call.workgroups,
                    timed,
                    sample: placement.samples < crate::dispatch::KEEP_SAMPLES,
                    expect_s: placement.expect_s,
                };
                // Queued: it runs behind the GPU's earlier work, and the
                // call returns now; its time reaches the model later.
                let gpu_time = if self.queues(&placement) {
                    ticket = self.gpus[g].queue_launch(launch)?.map(|t| (g, t));
                    None
                } else {
                    self.gpus[g].execute(launch)?
                };
                if self.gpus[g].virtual_clock() {
                    virtual_time = gpu_time;
                }
                if let Some(d) = gpu_time {
                    self.tracer
                        .span_ending(kernel.name(), g as u32 + 1, Instant::now(), d);
                } else if ticket.is_none() {
                    self.tracer.span(kernel.name(), g as u32 + 1, t);
                }
                self.trace_waits();
                None
            }
            Work::Split(split) => {
                self.inject_gpu_loss(split.gpu);
                // A GPU already lost fails the call before the CPU part
                // writes anything, so it can run again elsewhere.
                self.gpus[split.gpu].check_alive()?;
                *host_written = true;
                Some(self.run_split(kernel, call, split)?)
            }
        };
        if factor > 1.0 {
            std::thread::sleep(t.elapsed().mul_f64(factor - 1.0));
        }
        let end = Instant::now();
        let exec = virtual_time.unwrap_or_else(|| end - t);
        if let (Some(timeline), None) = (&self.timeline, &parts) {
            let bytes = call.args.iter().map(|h| h.bytes).sum();
            let loc = crate::dispatch::device_index(placement.backend);
            let access = (&call.reads[..], &call.writes[..]);
            timeline.kernel(kernel.name(), loc, access, bytes, exec.as_secs_f64());
        }
        if let (None, Backend::Cpu) = (&parts, placement.backend) {
            self.tracer.span_ending(kernel.name(), 0, end, end - t);
        }
        Ok((
            RunInfo {
                backend: placement.backend,
                reason: placement.reason,
                elapsed: end - start,
                exec,
                split: placement.split,
            },
            parts,
            ticket,
        ))
    }

    /// A simulated GPU whose loss time has come on the virtual clock is
    /// lost before it runs anything more.
    fn virtual_loss(&self, g: usize) {
        if let Some(at) = self.timeline.as_ref().and_then(|t| t.lost_by_now(g)) {
            self.gpus[g].lose(&format!(
                "lost at {:.6} s of virtual time, as the simulation asked",
                at
            ));
        }
    }

    /// `gpu-lost@N`: loses GPU `g` when it is about to run the (N+1)-th
    /// GPU kernel.
    pub(super) fn inject_gpu_loss(&self, g: usize) {
        if !self.faults_on.load(Ordering::Relaxed) {
            return;
        }
        let lose_after = self.faults_now().gpu_lost_after;
        if let Some(n) = lose_after {
            if self.gpu_kernels.fetch_add(1, Ordering::Relaxed) == n {
                self.gpus[g].lose(&format!("injected by PEL_INJECT=gpu-lost@{n}"));
            }
        }
    }
}

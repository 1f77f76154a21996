//! The host path: a call that runs on the CPU and cannot go anywhere else
//! whatever happens to it skips what only other calls need (the retry
//! loop, a GPU's staging and recovery, the split): it leases, stages its
//! host copies, runs, and records as the general path would, with the same
//! decisions, model samples and errors.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::buffer::Table;
use crate::device::{Args, Device, Launch};
use crate::error::{Error, Result};
use crate::frames;
use crate::ids::{Backend, Target};
use crate::kernel::Kernel;

use super::{Call, Charge, Done, Engine, LeaseGuard, Placement, RunInfo};

#[cfg(test)]
thread_local! {
    /// Calls this thread ran on the host path (the tests check it is taken).
    pub(crate) static HOST_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Engine {
    /// Whether nothing only the general path serves is on: no fault
    /// injected, no trace, no virtual clock. The host path and bound runs
    /// ([`run_bound`](Self::run_bound)) are open only then.
    pub(crate) fn quiet(&self) -> bool {
        !self.faults_on.load(Ordering::Relaxed)
            && self.timeline.is_none()
            && !self.cpu.virtual_clock()
            && !self.tracer.on()
    }

    /// Whether a call may take the host path, once placed on the CPU: no
    /// fault, trace or virtual clock to serve, and a failure could not run
    /// it again elsewhere (a forced call never does; an automatic one only
    /// from a copy its CPU kernel cannot have spoiled, or one kept aside
    /// while its CPU kernel is unproven).
    pub(super) fn host_path_open(&self, table: &Table, kernel: &Kernel, call: &Call<'_>) -> bool {
        let cpu = kernel.has_cpu() || kernel.built_variants().iter().any(|v| v.kernel.has_cpu());
        self.quiet()
            && cpu
            && match call.target {
                Target::On(Backend::Cpu) => true,
                Target::Auto => {
                    (self.gpus.is_empty() || self.proven_on_cpu(kernel.id()))
                        && call.writes.iter().all(|id| !table.valid_off_host(*id))
                }
                _ => false,
            }
    }

    /// Whether implementation `variant` of `kernel`, placed on the CPU,
    /// may take the host path: an automatic call on a machine with GPUs
    /// keeps the general path until that implementation has run once (its
    /// outputs are kept aside there, so a panic costs no data).
    pub(super) fn host_variant_open(&self, kernel: &Kernel, target: Target, variant: u8) -> bool {
        variant == 0
            || target != Target::Auto
            || self.gpus.is_empty()
            || self.proven_on_cpu(kernel.implementation(variant).id())
    }

    /// Runs a call placed on the CPU (`placement`, charged already) on the
    /// host path: implementation `used` of the `called` kernel. `table` is
    /// locked and `lease` holds the call's leases. The outcome is recorded
    /// as the general path records it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_on_host<'a>(
        &'a self,
        mut table: MutexGuard<'a, Table>,
        mut lease: LeaseGuard<'_>,
        (called, used): (&Kernel, &Kernel),
        call: &Call<'_>,
        placement: Placement,
        start: Instant,
        done: Done<'_>,
    ) -> Result<RunInfo> {
        #[cfg(test)]
        HOST_CALLS.with(|c| c.set(c.get() + 1));
        let (reads, writes) = (&call.reads[..], &call.writes[..]);
        let (result, decided, host_written) = match self.host_args(&mut table, &call.args) {
            Ok(raw) => {
                for id in writes {
                    table.protect_host(*id);
                }
                drop(table);
                // User code runs on this thread: a call into pel from it
                // must see what this call holds.
                let frame = frames::enter(self.id, used.shared_name(), reads, writes, call.task);
                let t = Instant::now();
                let launch = Launch {
                    kernel: used,
                    args: Args::Host(&raw),
                    params: call.params,
                    workgroups: call.workgroups,
                    timed: false,
                    sample: false,
                    expect_s: None,
                };
                let ran = Device::execute(&self.cpu, launch).map(|_| RunInfo {
                    backend: Backend::Cpu,
                    reason: placement.reason,
                    elapsed: start.elapsed(),
                    exec: t.elapsed(),
                    split: None,
                });
                drop(frame);
                table = self.table();
                (ran, Some(Backend::Cpu), true)
            }
            // Nothing ran (a copy lost on the way): the charge is taken back.
            Err(e) => {
                self.dispatcher()
                    .uncharge(Backend::Cpu, placement.expect_s.unwrap_or(0.0));
                (Err(e), None, false)
            }
        };
        // A panicking CPU implementation is excluded from placement (for
        // this process), as on the general path.
        if let Err(e @ Error::KernelPanicked { .. }) = &result {
            self.dispatcher()
                .exclude(used.id(), Backend::Cpu, e.to_string(), false);
        }
        let charge = Charge {
            decided,
            ticket: None,
        };
        let result = result.map(|info| (info, None));
        let result = self.record(
            &mut table,
            (called, used),
            call,
            result,
            charge,
            host_written,
        );
        table.release_lease(reads, writes);
        lease.held = false;
        done(&mut table, &result);
        self.unlock(table);
        result
    }
}

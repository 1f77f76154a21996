//! Bound calls: a CPU call checked once against its kernel and buffers,
//! then run again and again (with new params) at a fraction of a call's
//! cost. What a bound run skips is what cannot change between its runs:
//! the checks of its arguments, their access sets, and the placement (the
//! CPU, and the kernel's own implementation: a kernel with CPU variants is
//! never bound). What it keeps is what coherence needs: the leases, the
//! host copies made valid, the write recorded; the model gets one run in
//! [`SAMPLE_EVERY`], timed.
//!
//! A bound run is open only where the host path is ([`Engine::quiet`]);
//! elsewhere the caller makes an ordinary call.
//! The cluster's ranks run their tasks through bindings; a build without
//! them has no caller yet.
#![cfg_attr(not(feature = "cluster"), allow(dead_code))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::buffer::Handle;
use crate::device::{Args, Device, Launch};
use crate::error::{Error, Result};
use crate::frames;
use crate::ids::Backend;
use crate::kernel::Kernel;

use super::prepare::access_sets;
use super::{Engine, Few, What};

/// A bound call's runs of which one is timed for the model.
pub(crate) const SAMPLE_EVERY: u64 = 16;

/// A call bound to the CPU: its kernel, buffers and access sets, checked.
pub(crate) struct Bound {
    kernel: Kernel,
    ids: Few<u64>,
    lens: Few<usize>,
    reads: Few<u64>,
    writes: Few<u64>,
    runs: AtomicU64,
}

impl Bound {
    /// Whether `args` are the buffers it was bound to.
    pub(crate) fn binds(&self, args: &[&Handle]) -> bool {
        args.len() == self.ids.len() && args.iter().zip(&self.ids).all(|(h, id)| h.id == *id)
    }
}

impl Engine {
    /// Checks `kernel` on `args` as a call would, and binds it to the CPU;
    /// `None` for a kernel a bound run cannot stand for (no CPU
    /// implementation, or CPU variants for placement to choose among).
    pub(crate) fn bind(&self, kernel: &Kernel, args: &[&Handle]) -> Result<Option<Bound>> {
        self.check_args(kernel, args)?;
        let variants = kernel.built_variants().iter().any(|v| v.kernel.has_cpu());
        if !kernel.has_cpu() || variants {
            return Ok(None);
        }
        let (reads, writes) = access_sets(kernel, args);
        Ok(Some(Bound {
            kernel: kernel.clone(),
            ids: args.iter().map(|h| h.id).collect(),
            lens: args.iter().map(|h| h.len).collect(),
            reads,
            writes,
            runs: AtomicU64::new(0),
        }))
    }

    /// Runs `bound` on `args` (its own buffers, [`Bound::binds`]) with
    /// `params` on this thread: leased, staged on the host, run, and its
    /// writes recorded as the host path records them. With `out`
    /// (argument, room), that argument's bytes are copied out once the run
    /// succeeded, under the run's own lease.
    pub(crate) fn run_bound(
        &self,
        bound: &Bound,
        args: &[&Handle],
        params: &[u8],
        out: Option<(usize, &mut [u8])>,
    ) -> Result<()> {
        let kernel = &bound.kernel;
        let fits = |(i, room): &(usize, &mut [u8])| {
            args.get(*i).is_some_and(|h| h.bytes as usize == room.len())
        };
        if params.len() != kernel.params_size()
            || !bound.binds(args)
            || !out.as_ref().is_none_or(fits)
        {
            return Err(Error::Internal {
                what: format!("kernel `{}`", kernel.name()),
                message: "a bound call ran on buffers or params it was not bound to".to_owned(),
            });
        }
        let (reads, writes) = (&bound.reads[..], &bound.writes[..]);
        let mut table = self.table_ready(What::Kernel(kernel.name()), reads, writes, true)?;
        let raw = match self.host_args(&mut table, args) {
            Ok(raw) => raw,
            Err(e) => {
                table.release_lease(reads, writes);
                self.unlock(table);
                return Err(e);
            }
        };
        for id in writes {
            table.protect_host(*id);
        }
        drop(table);
        let sample = bound
            .runs
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SAMPLE_EVERY);
        let frame = frames::enter(self.id, kernel.shared_name(), reads, writes, None);
        let t = sample.then(Instant::now);
        let launch = Launch {
            kernel,
            args: Args::Host(&raw),
            params,
            workgroups: kernel.workgroups(params, &bound.lens),
            timed: false,
            sample: false,
            expect_s: None,
        };
        let ran = Device::execute(&self.cpu, launch).map(drop);
        let secs = t.map(|t| t.elapsed().as_secs_f64());
        if let (Ok(()), Some((i, room))) = (&ran, out) {
            let r = &raw[i];
            // SAFETY: `r` is argument `i`'s host copy, `r.bytes` long (made
            // valid above from the table, which sized it from the buffer),
            // and this run's lease on it (shared or exclusive) is held until
            // the table's lock is taken again below: no one writes it now.
            room.copy_from_slice(unsafe { std::slice::from_raw_parts(r.ptr, r.bytes) });
        }
        drop(frame);
        let mut table = self.table();
        match &ran {
            Ok(()) => {
                for id in writes {
                    table.mark_written(*id, Backend::Cpu, kernel.id(), &self.gpus);
                }
            }
            Err(e) => {
                for id in writes {
                    table.written_garbage(*id, e);
                }
            }
        }
        table.release_lease(reads, writes);
        self.unlock(table);
        match &ran {
            Ok(()) => {
                self.counters.ran(false);
                if let Some(secs) = secs {
                    let size = kernel.cost(params, &bound.lens);
                    self.dispatcher()
                        .record(kernel.id(), kernel.name(), Backend::Cpu, size, secs);
                }
            }
            Err(e @ Error::KernelPanicked { .. }) => {
                self.dispatcher()
                    .exclude(kernel.id(), Backend::Cpu, e.to_string(), false);
            }
            Err(_) => {}
        }
        ran
    }
}

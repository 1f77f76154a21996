//! Recover: a lost GPU's copies are forgotten, and every buffer whose only
//! valid copy was there is rebuilt from its lineage (on the CPU, or on a
//! GPU still alive for a kernel with no CPU implementation).

use crate::buffer::Table;
use crate::device::{Args, Launch};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, RawSlice};

use super::Engine;

impl Engine {
    /// Recovers from every GPU that is lost and not recovered from yet.
    /// Returns whether there was one.
    pub(super) fn recover_lost_gpus(&self, table: &mut Table) -> bool {
        let mut any = false;
        for g in 0..self.gpus.len() {
            if self.gpus[g].check_alive().is_err() && !table.gpu_lost(g) {
                self.recover_gpu(table, g);
                any = true;
            }
        }
        any
    }

    /// GPU `g` is lost: forget its copies and rebuild, on the CPU, every
    /// buffer whose only valid copy was there.
    pub(super) fn recover_gpu(&self, table: &mut Table, g: usize) {
        if table.gpu_lost(g) {
            return;
        }
        let device = self.gpus[g].info().backend.to_string();
        let cpu = &self.cpu;
        // A kernel with no CPU implementation replays on a GPU still alive.
        let replayed = table.lose_gpu(g, &device, &self.gpus, &mut |k, raw, p| {
            if !k.has_cpu() {
                return self.replay_on_gpu(k, raw, p);
            }
            let Some(timeline) = &self.timeline else {
                return cpu.execute(k, raw, p);
            };
            // On a simulated machine the replay takes the CPU's modelled
            // time (and computes only if the simulation does).
            let launch = Launch {
                kernel: k,
                args: Args::Host(raw),
                params: p,
                workgroups: 0,
                timed: false,
                sample: false,
                expect_s: None,
            };
            let secs =
                crate::device::Device::execute(cpu, launch)?.map_or(0.0, |d| d.as_secs_f64());
            let bytes = raw.iter().map(|r| r.bytes as u64).sum();
            timeline.kernel(k.name(), 0, (&[], &[]), bytes, secs);
            Ok(())
        });
        self.counters.lost_device(replayed);
    }

    /// Replays a GPU-only kernel's record on the first GPU that is alive
    /// and can take it: `raw` are the scratch host copies of its arguments,
    /// into which its outputs come back.
    fn replay_on_gpu(&self, kernel: &Kernel, raw: &[RawSlice], params: &[u8]) -> Result<()> {
        let lens: Vec<usize> = raw.iter().map(|r| r.len).collect();
        let bytes: Vec<u64> = raw.iter().map(|r| r.bytes as u64).collect();
        let workgroups = kernel.workgroups(params, &lens);
        let mut refusals = Vec::new();
        for (g, gpu) in self.gpus.iter().enumerate() {
            if gpu.check_alive().is_err() {
                continue;
            }
            match self.replay_on(g, kernel, raw, &bytes, params, workgroups) {
                Ok(()) => return Ok(()),
                Err(e) => refusals.push(e.to_string()),
            }
        }
        if refusals.is_empty() {
            refusals.push("no GPU is left to replay it on".to_owned());
        }
        Err(Error::NoBackend {
            kernel: kernel.name().to_owned(),
            reason: format!(
                "it has no CPU implementation (built without `.cpu(...)`): {}",
                refusals.join("; ")
            ),
        })
    }

    fn replay_on(
        &self,
        g: usize,
        kernel: &Kernel,
        raw: &[RawSlice],
        bytes: &[u64],
        params: &[u8],
        workgroups: u64,
    ) -> Result<()> {
        let gpu = &self.gpus[g];
        gpu.check_call(kernel, &mut bytes.iter().copied(), params.len(), workgroups)?;
        let mut bound = Vec::with_capacity(raw.len());
        for (r, &b) in raw.iter().zip(bytes) {
            let buf = gpu.alloc(b)?;
            // SAFETY: `r` is a scratch host copy that the replay made for
            // this record, `r.bytes` long, initialised, and used by nothing
            // else until the replay returns.
            let src = unsafe { std::slice::from_raw_parts(r.ptr, r.bytes) };
            gpu.upload(&buf, src)?;
            bound.push((buf, b));
        }
        gpu.flush()?;
        gpu.execute(Launch {
            kernel,
            args: Args::Device(&bound),
            params,
            workgroups,
            timed: false,
            sample: false,
            expect_s: None,
        })?;
        for ((r, (buf, _)), binding) in raw.iter().zip(&bound).zip(&kernel.reflection().storage) {
            if binding.access.writes() {
                // SAFETY: as above; nothing else reads or writes the scratch
                // copy while the download fills it.
                let dst = unsafe { std::slice::from_raw_parts_mut(r.ptr, r.bytes) };
                gpu.download(buf, dst)?;
            }
        }
        for (buf, _) in bound {
            gpu.release(buf);
        }
        Ok(())
    }
}

//! Stage: every argument made valid where the call runs, through the
//! buffer table (uploads and downloads happen lazily, only for copies that
//! are stale there), and the host's own reads and writes of a buffer. A
//! full GPU frees other buffers' copies here (eviction).

use std::time::Instant;

use crate::buffer::{Handle, HostMade, Table};
use crate::device::Memory;
use crate::error::{Error, Result};
use crate::ids::Backend;
use crate::kernel::{Kernel, RawSlice};

use super::{Call, Engine, Few, Placement, SplitWork, What, Work, split_items};

impl Engine {
    /// Makes every argument valid where `placement` runs the call.
    pub(super) fn make_work(
        &self,
        table: &mut Table,
        placement: Placement,
        kernel: &Kernel,
        call: &Call<'_>,
    ) -> Result<Work> {
        let args = &call.args;
        let split = match (placement.split, placement.backend) {
            (Some(share), Backend::Gpu(g)) => {
                split_items(kernel, args, call.params).map(|items| (g, share, items))
            }
            _ => None,
        };
        Ok(match (split, placement.backend) {
            (Some((g, share, items)), _) => {
                let raw = self.host_args(table, args)?;
                let bound = self.gpu_args(table, kernel, args, g, call.workgroups, false)?;
                let cut = ((items as f64 * share).round() as u64).clamp(1, items - 1);
                Work::Split(SplitWork {
                    gpu: g,
                    items,
                    cut,
                    raw,
                    bound,
                })
            }
            (None, Backend::Cpu) => Work::Cpu(self.host_args(table, args)?),
            (None, Backend::Gpu(g)) => {
                let queued = self.queues(&placement);
                Work::Gpu(
                    g,
                    self.gpu_args(table, kernel, args, g, call.workgroups, queued)?,
                )
            }
        })
    }

    /// Makes every argument valid on the host; their host copies.
    pub(super) fn host_args(&self, table: &mut Table, args: &[&Handle]) -> Result<Few<RawSlice>> {
        let mut raw = Few::with_capacity(args.len());
        for h in args {
            if let Some(ptr) = table.valid_host_ptr(h.id) {
                raw.push(RawSlice {
                    ptr,
                    len: h.len,
                    bytes: h.bytes as usize,
                });
                continue;
            }
            // The clock only for the trace: a read costs a CPU call a tenth
            // of its overhead.
            let t = self.tracer.on().then(Instant::now);
            let before = self.counters.download_count();
            let made = self.ensure_host(table, h.id)?;
            self.learn_from(made);
            if let (Some(t), true) = (t, self.counters.download_count() != before) {
                self.trace_transfer("to host", h.bytes, t);
            }
            raw.push(RawSlice {
                ptr: table.host_ptr(h.id),
                len: h.len,
                bytes: h.bytes as usize,
            });
        }
        Ok(raw)
    }

    /// Makes every argument valid on GPU `g` (and, unless the call is
    /// `queued`, waits for the transfers, so the execution is timed alone
    /// and the bus model learns from them); the bound buffers. A queued
    /// call's uploads go with its batch, in queue order.
    pub(super) fn gpu_args(
        &self,
        table: &mut Table,
        kernel: &Kernel,
        args: &[&Handle],
        g: usize,
        workgroups: u64,
        queued: bool,
    ) -> Result<Vec<(Memory, u64)>> {
        self.check_gpu_limits(kernel, args, g, workgroups)?;
        let mut bound = Vec::with_capacity(args.len());
        let mut moved_any = false;
        let t = Instant::now();
        let uploaded = self.counters.upload_bytes();
        for h in args {
            let (buf, moved, made) = match table.ensure_gpu(h.id, g, &self.gpus, &self.counters) {
                Err(Error::DeviceLost { .. }) if self.recover_lost_gpus(table) => {
                    table.ensure_gpu(h.id, g, &self.gpus, &self.counters)?
                }
                other => other?,
            };
            moved_any |= moved;
            self.learn_transfer(made);
            bound.push((buf, h.bytes));
        }
        if moved_any && !queued {
            self.gpus[g].flush()?;
            // Zero buffers were cleared there: only uploads are transfers.
            let bytes = self.counters.upload_bytes() - uploaded;
            if bytes > 0 {
                self.trace_transfer(&format!("to gpu{g}"), bytes, t);
                // A simulated machine's copies take no host time: its bus
                // model stays the links' figures.
                if self.timeline.is_none() {
                    self.dispatcher()
                        .observe_transfer(g, true, bytes, t.elapsed().as_secs_f64());
                }
            }
        }
        Ok(bound)
    }

    /// [`Table::ensure_host`], recovering first from a GPU found lost on the
    /// way (the copy to bring home was there). The caller hands what it
    /// did to [`learn_from`](Self::learn_from).
    pub(crate) fn ensure_host(&self, table: &mut Table, id: u64) -> Result<HostMade> {
        match table.ensure_host(id, &self.gpus, &self.counters) {
            Err(Error::DeviceLost { .. }) if self.recover_lost_gpus(table) => {
                table.ensure_host(id, &self.gpus, &self.counters)
            }
            other => other,
        }
    }

    /// Tells the dispatcher what bringing a copy home showed: the download's
    /// time (for the bus model) and that a GPU output of its writer was
    /// needed on the host (for the readback estimate).
    /// [`learn_from`](Self::learn_from) for a download made on the way
    /// to somewhere else (a route between GPUs, a write-back): it times
    /// the bus, but no kernel's output was needed on the host.
    fn learn_transfer(&self, made: HostMade) {
        self.learn_from(HostMade {
            writer: None,
            ..made
        });
    }

    pub(super) fn learn_from(&self, made: HostMade) {
        if made.writer.is_none() && made.download.is_none() {
            return;
        }
        let mut d = self.dispatcher();
        if let Some(t) = made.download.filter(|_| self.timeline.is_none()) {
            d.observe_transfer(t.gpu, false, t.bytes, t.secs);
        }
        if let Some(k) = made.writer {
            d.note_readback(k);
        }
    }

    /// Frees GPU copies on `g`, least recently used first (each written
    /// back first where it is the only valid copy), keeping `keep`.
    /// Returns whether anything was freed.
    pub(super) fn evict_for(&self, table: &mut Table, g: usize, keep: &[u64]) -> bool {
        let order = table.eviction_order(g, keep);
        let mut freed = 0;
        for id in order {
            match table.evict(id, g, &self.gpus, &self.counters) {
                Ok((bytes, made)) => {
                    self.learn_transfer(made);
                    if bytes > 0 {
                        freed += bytes;
                        self.counters.evicted();
                    }
                }
                Err(e) => eprintln!("pel: warning: buffer #{id} could not be evicted: {e}"),
            }
        }
        self.gpus[g].trim();
        freed > 0
    }

    /// Uploads a placed task's arguments to GPU `g` while the device still
    /// runs earlier work, so the task finds them there. Buffers a running
    /// call writes are left alone; a GL device, which serialises every
    /// operation, is not prefetched to.
    pub(crate) fn prefetch(&self, table: &mut Table, args: &[&Handle], g: usize) {
        let gpu = &self.gpus[g];
        if gpu.serialised() {
            return;
        }
        let t = Instant::now();
        let uploaded = self.counters.upload_bytes();
        let mut queued = false;
        for h in args {
            if !table.readable(h.id) {
                continue;
            }
            if let Ok((_, true, made)) = table.ensure_gpu(h.id, g, &self.gpus, &self.counters) {
                self.learn_transfer(made);
                queued = true;
                self.counters.prefetched();
            }
        }
        if queued {
            gpu.kick();
            let bytes = self.counters.upload_bytes() - uploaded;
            if bytes > 0 {
                self.trace_transfer(&format!("prefetch to gpu{g}"), bytes, t);
            }
        }
    }

    /// Brings buffer `id`'s valid copy to the host and hands its bytes to
    /// `take` (for `what`, a host operation; its writer has finished).
    pub(crate) fn host_read<R>(
        &self,
        what: &str,
        id: u64,
        take: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let mut table = self.table_ready(What::Op(what), &[id], &[], false)?;
        // The clock only for the trace, as for a call's arguments.
        let t = self.tracer.on().then(Instant::now);
        let before = self.counters.download_count();
        let made = self.ensure_host(&mut table, id)?;
        if let (Some(t), true) = (t, self.counters.download_count() != before) {
            self.trace_transfer("to host", table.bytes(id), t);
        }
        let data = take(table.host_bytes(id));
        let bytes = table.bytes(id);
        drop(table);
        if let Some(t) = &self.timeline {
            t.host_reads(id, bytes);
        }
        self.learn_from(made);
        // The download waited for the GPU's work before it: what finished
        // there reaches the model.
        self.settle_queued();
        Ok(data)
    }

    /// Replaces buffer `id`'s contents from the host; other copies become
    /// stale.
    pub(crate) fn host_write(&self, id: u64, data: &[u8]) -> Result<()> {
        let mut table = self.table_ready(What::Op("write"), &[], &[id], false)?;
        table.write_host(id, data, &self.gpus);
        self.unlock(table);
        Ok(())
    }
}

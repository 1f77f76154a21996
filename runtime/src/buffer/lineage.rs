//! Lineage: the record a device write leaves, the pins it holds on the
//! versions it read, and the replay that rebuilds a version lost with its
//! device (see `README.md`).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Entry, GARBAGE, HostCopy, MAX_CHAIN, Table};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernel::{Kernel, RawSlice};

/// A kernel call that wrote on a GPU, kept to replay it (see the module
/// documentation).
pub(crate) struct Record {
    kernel: Kernel,
    params: Vec<u8>,
    /// Every argument: its buffer, the version the call read, its length in
    /// elements.
    inputs: Vec<(u64, u64, usize)>,
    /// The arguments it wrote (indices into `inputs`) and the versions it
    /// made.
    outputs: Vec<(usize, u64)>,
}

/// What a replay runs a record's kernel with: the CPU implementation.
pub(crate) type Replay<'a> = dyn FnMut(&Kernel, &[RawSlice], &[u8]) -> Result<()> + 'a;

impl Table {
    /// Records a call that is about to be marked as having written
    /// `writes` on a GPU, for replay: every argument's version now, and the
    /// versions it makes. Call before [`mark_written`](Self::mark_written).
    /// Returns the written buffers whose records have grown past
    /// [`MAX_CHAIN`].
    pub(crate) fn record_gpu_write(
        &mut self,
        kernel: &Kernel,
        params: &[u8],
        args: &[u64],
        writes: &[u64],
    ) -> Vec<u64> {
        let inputs: Vec<(u64, u64, usize)> = args
            .iter()
            .map(|id| (*id, self.entries[id].version, self.entries[id].len))
            .collect();
        let outputs: Vec<(usize, u64)> = args
            .iter()
            .enumerate()
            .filter(|(_, id)| writes.contains(id))
            .map(|(i, id)| (i, self.entries[id].version + 1))
            .collect();
        for &(id, v, _) in &inputs {
            let e = self.entry(id);
            *e.pins.entry(v).or_default() += 1;
            if !writes.contains(&id) {
                e.outside_pins += 1;
            }
        }
        let record = Arc::new(Record {
            kernel: kernel.clone(),
            params: params.to_vec(),
            inputs,
            outputs,
        });
        let mut long = Vec::new();
        for &(i, v) in &record.outputs {
            let id = args[i];
            let e = self.entry(id);
            e.records.insert(v, Arc::clone(&record));
            if e.records.range(e.host_version.saturating_add(1)..).count() > MAX_CHAIN {
                long.push(id);
            }
        }
        long
    }

    /// GPU `g` is lost: its copies are forgotten, and every buffer whose
    /// current version lived only there is rebuilt on the host by replaying
    /// its records with `run`. Returns the records replayed; buffers that
    /// cannot be rebuilt are marked lost.
    pub(crate) fn lose_gpu(
        &mut self,
        g: usize,
        device: &str,
        gpus: &[Box<dyn Device>],
        run: &mut Replay<'_>,
    ) -> u64 {
        if std::mem::replace(&mut self.lost_gpus[g], true) {
            return 0;
        }
        for e in self.entries.values_mut() {
            e.gpu[g] = None;
            e.valid.gpu[g] = false;
        }
        let mut orphans: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                !e.zombie
                    && e.lost.is_none()
                    && !e.valid.host
                    && !e.valid.zero
                    && !e.valid.gpu.iter().any(|&v| v)
            })
            .map(|(id, _)| *id)
            .collect();
        orphans.sort_unstable();
        let mut memo = HashMap::new();
        let mut replayed = 0;
        for id in orphans {
            let v = self.entries[&id].version;
            match self.materialize(id, v, gpus, run, &mut memo, &mut replayed, 0) {
                Ok(bytes) => {
                    let e = self.entry(id);
                    protect(e);
                    e.host = Some(bytes);
                    e.host_version = v;
                    e.valid.host = true;
                    self.host_caught_up(id, gpus);
                }
                Err(reason) => {
                    self.entry(id).lost = Some(Error::DataLost {
                        buffer: id,
                        device: device.to_owned(),
                        reason,
                    });
                }
            }
        }
        replayed
    }

    /// The bytes of version `v` of buffer `id`, from wherever they are:
    /// kept aside, the host copy, a live GPU's copy, zeros, or a replay of
    /// the record that made them (recursively).
    #[allow(clippy::too_many_arguments)]
    fn materialize(
        &mut self,
        id: u64,
        v: u64,
        gpus: &[Box<dyn Device>],
        run: &mut Replay<'_>,
        memo: &mut HashMap<(u64, u64), HostCopy>,
        replayed: &mut u64,
        depth: usize,
    ) -> std::result::Result<HostCopy, String> {
        if let Some(h) = memo.get(&(id, v)) {
            return Ok(h.clone());
        }
        if depth > 4 * MAX_CHAIN + 64 {
            return Err("its lineage is too deep to replay".to_owned());
        }
        let e = self
            .entries
            .get(&id)
            .ok_or_else(|| format!("buffer #{id}, which it was made from, is gone"))?;
        if let Some(h) = e.retained.get(&v) {
            return Ok(h.clone());
        }
        // A CPU call writing this host copy now kept a pinned version aside
        // first (above), and only pinned versions are asked for here.
        if e.host_version == v {
            if let Some(h) = &e.host {
                return Ok(h.clone());
            }
        }
        if v == e.version {
            for (g, valid) in e.valid.gpu.iter().enumerate() {
                if let (true, false, Some(buf)) = (*valid, self.lost_gpus[g], &e.gpu[g]) {
                    let mut h = HostCopy::zeroed(e.bytes as usize);
                    if gpus[g].download(buf, h.as_bytes_mut()).is_ok() {
                        return Ok(h);
                    }
                }
            }
        }
        if v == 0 && e.born_zero {
            return Ok(HostCopy::zeroed(e.bytes as usize));
        }
        let record = e.records.get(&v).cloned().ok_or_else(|| {
            format!("version {v} of buffer #{id} is held nowhere and no record made it")
        })?;
        let mut copies = Vec::with_capacity(record.inputs.len());
        for &(aid, av, _) in &record.inputs {
            copies.push(self.materialize(aid, av, gpus, run, memo, replayed, depth + 1)?);
        }
        let raw: Vec<RawSlice> = copies
            .iter_mut()
            .zip(&record.inputs)
            .map(|(c, &(_, _, len))| RawSlice {
                bytes: c.bytes,
                ptr: c.as_mut_ptr(),
                len,
            })
            .collect();
        run(&record.kernel, &raw, &record.params)
            .map_err(|err| format!("replaying `{}` failed: {err}", record.kernel.name()))?;
        *replayed += 1;
        for &(i, made) in &record.outputs {
            memo.insert((record.inputs[i].0, made), copies[i].clone());
        }
        memo.get(&(id, v))
            .cloned()
            .ok_or_else(|| format!("the record of version {v} of buffer #{id} did not make it"))
    }
}

/// Keeps the host bytes aside when their version is pinned and about to be
/// overwritten.
pub(super) fn protect(e: &mut Entry) {
    if e.pins.is_empty() || e.host_version == GARBAGE || e.retained.contains_key(&e.host_version) {
        return;
    }
    if e.pins.contains_key(&e.host_version) {
        if let Some(h) = &e.host {
            e.retained.insert(e.host_version, h.clone());
        }
    }
}

/// Drops the records of versions the host copy has caught up with, unless
/// a record of another version still reads them; what the dropped records
/// read goes to `released` to be unpinned.
pub(super) fn prune(e: &mut Entry, released: &mut Vec<Unpin>) {
    if e.records.is_empty() || e.host_version == GARBAGE || e.host.is_none() {
        return;
    }
    let h = e.host_version;
    let stale: Vec<u64> = e
        .records
        .range(..=h)
        .map(|(v, _)| *v)
        .filter(|v| !e.pins.contains_key(v))
        .collect();
    for v in stale {
        if let Some(r) = e.records.remove(&v) {
            release_record(r, released);
        }
    }
}

/// A pin to let go of: the buffer, its version, and whether the record
/// holding it made another buffer's version.
pub(super) type Unpin = (u64, u64, bool);

/// Lets go of one holder of a record; when it was the last, what the
/// record read goes to `released` to be unpinned.
pub(super) fn release_record(r: Arc<Record>, released: &mut Vec<Unpin>) {
    if let Some(r) = Arc::into_inner(r) {
        let written: Vec<u64> = r.outputs.iter().map(|&(i, _)| r.inputs[i].0).collect();
        released.extend(
            r.inputs
                .iter()
                .map(|&(id, v, _)| (id, v, !written.contains(&id))),
        );
    }
}

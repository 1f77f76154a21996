//! Making a [`ClusterRuntime`]'s buffers: every rank makes the same ones,
//! in the same order, and the ranks compare what they made.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::dist_buffer::{DistBuffer, Erased, Inner, Meta, State};
use super::{ClusterRuntime, DistMap};
use crate::error::{Error, Result};
use crate::hash::Fnv;
use crate::kernel::Element;

impl ClusterRuntime {
    pub(super) fn dist_error(&self, buffer: &str, rank: usize, message: String) -> Error {
        Error::Distribution {
            buffer: buffer.to_owned(),
            rank,
            message,
        }
    }

    /// A buffer of `len` elements owned by rank `owner`, which fills it
    /// with `init()` (no other rank calls it). Every rank calls this, in
    /// the same order. [`Error::Distribution`] for an owner past the job,
    /// or `init` giving another length.
    pub fn buffer<T: Element>(
        &self,
        name: &str,
        owner: usize,
        len: usize,
        init: impl FnOnce() -> Vec<T>,
    ) -> Result<DistBuffer<T>> {
        let size = self.size();
        if owner >= size {
            return Err(self.dist_error(
                name,
                owner,
                format!("owner rank {owner}; the job has ranks 0 to {}", size - 1),
            ));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut valid = vec![false; size];
        valid[owner] = true;
        let inner = Inner {
            meta: Meta {
                id,
                name: name.to_owned(),
                owner,
                len,
                elem_size: std::mem::size_of::<T>(),
                state: Mutex::new(State { version: 0, valid }),
                last_writer: AtomicU64::new(0),
            },
            local: OnceLock::new(),
        };
        if owner == self.rank() {
            let data = init();
            if data.len() != len {
                return Err(self.dist_error(
                    name,
                    owner,
                    format!("{len} elements declared; its owner made {}", data.len()),
                ));
            }
            let _ = inner.local.set(self.rt.buffer(&data));
        }
        let mut h = Fnv::new();
        h.write(name.as_bytes());
        h.write(&id.to_le_bytes());
        h.write(&(owner as u64).to_le_bytes());
        h.write(&(len as u64).to_le_bytes());
        h.write(T::TYPE.to_string().as_bytes());
        self.unchecked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_owned(), h.finish()));
        self.made.store(true, Ordering::Release);
        let inner = Arc::new(inner);
        let erased: Arc<dyn Erased> = Arc::clone(&inner) as _;
        Ok(DistBuffer { inner, erased })
    }

    /// A buffer of `len` zeros owned by `owner`.
    pub fn zeros<T: Element>(&self, name: &str, owner: usize, len: usize) -> Result<DistBuffer<T>> {
        self.buffer(name, owner, len, || vec![T::zeroed(); len])
    }

    /// One buffer for each run of consecutive elements `map` gives one
    /// rank (a block a rank for [`Block`](super::Distribution::Block)),
    /// in element order, with the range it covers; its owner fills it with
    /// `init(range)`. Every rank calls this with the same map.
    pub fn blocks<T: Element>(
        &self,
        name: &str,
        map: &DistMap,
        init: impl Fn(Range<usize>) -> Vec<T>,
    ) -> Result<Vec<(Range<usize>, DistBuffer<T>)>> {
        if map.ranks() != self.size() {
            return Err(self.dist_error(
                name,
                0,
                format!(
                    "a map over {} ranks in a job of {}",
                    map.ranks(),
                    self.size()
                ),
            ));
        }
        let mut runs: Vec<(usize, Range<usize>)> = (0..map.ranks())
            .flat_map(|r| map.owned(r).into_iter().map(move |range| (r, range)))
            .collect();
        runs.sort_by_key(|(_, range)| range.start);
        runs.into_iter()
            .enumerate()
            .map(|(i, (owner, range))| {
                let b = self.buffer(&format!("{name}[{i}]"), owner, range.len(), || {
                    init(range.clone())
                })?;
                Ok((range, b))
            })
            .collect()
    }

    /// Compares the buffers made since the last check across ranks: one
    /// all-gather of a digest, and on a difference [`Error::Distribution`]
    /// naming the first buffer and rank that differ.
    pub fn agree(&self) -> Result<()> {
        let made = {
            let mut unchecked = self.unchecked.lock().unwrap_or_else(|p| p.into_inner());
            self.made.store(false, Ordering::Release);
            std::mem::take(&mut *unchecked)
        };
        if made.is_empty() {
            return Ok(());
        }
        let mut h = Fnv::new();
        for (_, d) in &made {
            h.write(&d.to_le_bytes());
        }
        h.write(&(made.len() as u64).to_le_bytes());
        let all = self.cluster.all_gather_u64(h.finish());
        let Some(rank) = all.iter().position(|&d| d != all[0]) else {
            return Ok(());
        };
        // Find the first buffer that differs (collectively: every rank
        // takes this path, as every rank saw the digests differ).
        let mine: Vec<u64> = made.iter().map(|(_, d)| *d).collect();
        let counts = self.cluster.all_gather_u64(mine.len() as u64);
        let n = counts.iter().copied().min().unwrap_or(0) as usize;
        for (i, (name, d)) in made.iter().enumerate().take(n) {
            let all = self.cluster.all_gather_u64(*d);
            if let Some(r) = all.iter().position(|&x| x != all[0]) {
                return Err(self.dist_error(
                    name,
                    r,
                    format!("rank {r} made buffer {i} of this batch differently from rank 0 (its owner, length or type): two ranks would each own it"),
                ));
            }
        }
        let r = counts.iter().position(|&c| c != counts[0]).unwrap_or(rank);
        Err(self.dist_error(
            made.get(n).map_or("?", |(name, _)| name),
            r,
            format!(
                "rank {r} made {} buffers here, rank 0 {}",
                counts[r], counts[0]
            ),
        ))
    }
}

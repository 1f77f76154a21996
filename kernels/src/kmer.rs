//! kmer: counts of every k-mer (k ≤ 12) of a DNA sequence.
//!
//! The sequence is 2-bit encoded (A=0, C=1, G=2, T=3) and packed 16 bases
//! per u32, the first base in the lowest bits: base i is bits
//! `2(i mod 16)..2(i mod 16)+1` of word `i / 16` ([`encode`] packs ASCII).
//! The output holds the counts of all 4^k k-mers in lexicographic order: a
//! k-mer's code has its first base most significant, so `AAA` is count 0,
//! `AAC` count 1 and `TTT` count 63 for k = 3 ([`kmer_code`]). A sequence
//! shorter than k has no k-mers: every count is 0.
//!
//! Per base: no floating-point operations; one increment of a count (an
//! atomic add on the GPU), reading 0.25 bytes of sequence and touching a
//! 4-byte count, plus 4 bytes per count (4^k) to clear the table. Bound by
//! the latency of scattered increments, and by the table's size for large k.
//!
//! The GPU runs one invocation per position and adds to the counts with
//! global atomics; for k ≤ 4 (256 counts at most), where few distinct
//! k-mers would make those atomics contend, a workgroup first counts its
//! 4,096 positions in workgroup memory and adds only its non-zero bins.
//! The CPU counts chunks of positions with a rolling code into one private
//! table per task for k ≤ 8, and into one shared table of atomics beyond.
//! Counts are exact.

use std::sync::atomic::{AtomicU32, Ordering};

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result};
use rayon::prelude::*;

use crate::launch::{Launch, builder, run_and_submit};
use crate::par::fill_par;
use crate::uniform::wgsl_struct;
use crate::{invalid, u32_len};

/// The longest k-mer counted: 4^12 = 16,777,216 counts (64 MiB).
pub const MAX_K: usize = 12;

/// The longest k-mer the GPU counts in workgroup memory first (4^4 counts,
/// 1 KiB of workgroup memory, one bin per invocation to flush).
pub const LOCAL_MAX_K: usize = 4;

/// Positions one workgroup of `count_local` counts.
pub const LOCAL_TILE: usize = 256 * 16;

/// The longest k-mer the CPU counts in per-task tables (4^8 counts,
/// 256 KiB each); beyond, tasks share one table of atomics.
const PRIVATE_MAX_K: usize = 8;

/// Positions per CPU task: enough to amortise a private table's clearing
/// and merging.
const CPU_CHUNK: usize = 1 << 16;

wgsl_struct! {
    kmer_params => Params;
    /// The shaders' uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct KmerParams {
        /// Bases in the sequence.
        pub len: u32,
        /// Bases per k-mer, 1 to 12.
        pub k: u32,
        /// Positions where a whole k-mer starts: `len − k + 1`, or 0.
        pub positions: u32,
        /// Counts: 4^k.
        pub bins: u32,
    }
}

/// The WGSL source (entry points `clear`, `count` and `count_local`).
pub const WGSL: &str = concat!(include_str!("../../shaders/kmer.wgsl"), kmer_params!());

/// The 2-bit code of an ASCII base, either case.
fn base_code(b: u8) -> Option<u32> {
    match b {
        b'A' | b'a' => Some(0),
        b'C' | b'c' => Some(1),
        b'G' | b'g' => Some(2),
        b'T' | b't' => Some(3),
        _ => None,
    }
}

fn bad_base(arg: &str, ascii: &[u8]) -> pel_runtime::Error {
    let (i, b) = ascii
        .iter()
        .enumerate()
        .find(|(_, b)| base_code(**b).is_none())
        .map_or((0, 0), |(i, &b)| (i, b));
    invalid(
        "kmer",
        arg,
        format!(
            "byte {i} is {:?} ({b:#04x}); only A, C, G and T (either case) are bases",
            b as char
        ),
    )
}

/// Packs an ASCII sequence of A, C, G and T (either case) 16 bases per u32,
/// the first base in the lowest bits; unused bits of the last word are 0.
/// Any other byte (N, a newline, ...) is an [`InvalidInput`] naming its
/// position.
///
/// [`InvalidInput`]: pel_runtime::Error::InvalidInput
///
/// # Examples
///
/// ```
/// let words = pel_kernels::kmer::encode(b"ACGT")?;
/// assert_eq!(words, vec![0b11_10_01_00]);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
pub fn encode(ascii: &[u8]) -> Result<Vec<u32>> {
    ascii
        .par_chunks(16)
        .with_min_len(1 << 12)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .try_fold(0u32, |w, (j, &b)| base_code(b).map(|c| w | c << (2 * j)))
        })
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| bad_base("sequence", ascii))
}

/// The index in the counts of an ASCII k-mer (1 to 12 bases): its code,
/// first base most significant.
pub fn kmer_code(kmer: &[u8]) -> Result<usize> {
    if kmer.is_empty() || kmer.len() > MAX_K {
        return Err(bad_k(kmer.len()));
    }
    kmer.iter()
        .try_fold(0usize, |code, &b| {
            base_code(b).map(|c| code << 2 | c as usize)
        })
        .ok_or_else(|| bad_base("kmer", kmer))
}

pub(crate) fn bad_k(k: usize) -> pel_runtime::Error {
    invalid(
        "kmer",
        "k",
        format!("k = {k}; k-mers of 1 to {MAX_K} bases can be counted (4^{MAX_K} counts at most)"),
    )
}

/// Calls `f` with the code of each k-mer starting at positions `lo..hi`
/// (each must have k bases in `words`), rolling the code base by base and
/// word by word.
#[inline]
fn for_each_code(words: &[u32], k: usize, lo: usize, hi: usize, mut f: impl FnMut(usize)) {
    if lo >= hi {
        return;
    }
    let mask = (1usize << (2 * k)) - 1;
    let end = hi + k - 1;
    let mut code = 0usize;
    let mut i = lo;
    let mut primed = 0;
    while i < end {
        let mut w = words[i >> 4] >> ((i & 15) * 2);
        let n = (16 - (i & 15)).min(end - i);
        for _ in 0..n {
            code = (code << 2 | (w & 3) as usize) & mask;
            w >>= 2;
            if primed + 1 < k {
                primed += 1;
            } else {
                f(code);
            }
        }
        i += n;
    }
}

/// The CPU's count pass: adds the counts of the k-mers of `words` into
/// `counts`.
pub(crate) fn count_cpu(words: &[u32], counts: &mut [u32], p: &KmerParams) {
    let k = p.k as usize;
    if k == 0 || k > MAX_K || counts.len() < 1 << (2 * k) {
        return;
    }
    // `run` checks that the sequence holds every position's k-mer; a
    // hand-made call counts only those it holds.
    let positions = (p.positions as usize).min((words.len() * 16 + 1).saturating_sub(k));
    if positions == 0 {
        return;
    }
    let bins = 1usize << (2 * k);
    let chunks = positions.div_ceil(CPU_CHUNK);
    let range = |c: usize| (c * CPU_CHUNK, ((c + 1) * CPU_CHUNK).min(positions));
    if chunks == 1 {
        // One task: straight into the counts.
        for_each_code(words, k, 0, positions, |code| counts[code] += 1);
    } else if k <= PRIVATE_MAX_K {
        let total = (0..chunks)
            .into_par_iter()
            .fold(
                || vec![0u32; bins],
                |mut acc, c| {
                    let (lo, hi) = range(c);
                    for_each_code(words, k, lo, hi, |code| acc[code] += 1);
                    acc
                },
            )
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            });
        if let Some(total) = total {
            counts[..bins]
                .iter_mut()
                .zip(&total)
                .for_each(|(c, t)| *c += t);
        }
    } else {
        let shared: Vec<AtomicU32> = (0..bins).map(|_| AtomicU32::new(0)).collect();
        (0..chunks).into_par_iter().for_each(|c| {
            let (lo, hi) = range(c);
            for_each_code(words, k, lo, hi, |code| {
                shared[code].fetch_add(1, Ordering::Relaxed);
            });
        });
        counts[..bins]
            .par_chunks_mut(1 << 16)
            .zip(shared.par_chunks(1 << 16))
            .for_each(|(c, s)| {
                for (c, s) in c.iter_mut().zip(s) {
                    *c += s.load(Ordering::Relaxed);
                }
            });
    }
}

/// The k-mer counting kernels: clear, count with global atomics, count in
/// workgroup memory first.
#[derive(Debug, Clone)]
pub struct KmerCounter {
    clear: Kernel,
    count: Kernel,
    count_local: Kernel,
}

impl KmerCounter {
    /// Builds the kernels.
    pub fn new() -> Result<Self> {
        let clear = builder::<KmerParams, (ReadWrite<u32>,)>("kmer_clear", WGSL, |(counts,), p| {
            let bins = (p.bins as usize).min(counts.len());
            fill_par(&mut counts[..bins], 0, 1 << 16);
        })
        .entry("clear")
        .invocations(|p, _| p.bins as u64)
        .build()?;
        let count = |name: &str, entry: &str| {
            type Args = (Read<u32>, ReadWrite<u32>);
            builder::<KmerParams, Args>(name, WGSL, |(words, counts), p| {
                count_cpu(words, counts, p)
            })
            .entry(entry)
            .cost(|p, _| p.len as u64)
        };
        Ok(KmerCounter {
            clear,
            count: count("kmer", "count")
                .invocations(|p, _| p.positions as u64)
                .build()?,
            count_local: count("kmer_local", "count_local")
                .workgroups(|p, _| (p.positions as u64).div_ceil(LOCAL_TILE as u64))
                .build()?,
        })
    }

    /// The kernel that zeroes the counts.
    pub fn clear_kernel(&self) -> &Kernel {
        &self.clear
    }

    /// The kernel that counts k-mers of this length (after the clear).
    pub fn kernel(&self, k: usize) -> &Kernel {
        if k <= LOCAL_MAX_K {
            &self.count_local
        } else {
            &self.count
        }
    }

    run_and_submit! {
        /// Counts the k-mers of the first `len` bases of `seq` (packed as by
        /// [`encode`]) into `counts` (4^k elements, overwritten) at `target`:
        /// a clear pass, then a count pass, both at `target`.
        run,
        /// Submits the passes of [`run`](Self::run) and returns the last one's
        /// task at once (the count waits for the clear).
        submit = passes(seq: &Buffer<u32>, len: usize, k: usize, counts: &Buffer<u32>);
    }

    /// Launches the clear pass, then (when there is a k-mer to count) the
    /// count pass; returns what the last launch gave.
    fn passes<L: Launch>(
        &self,
        l: &mut L,
        seq: &Buffer<u32>,
        len: usize,
        k: usize,
        counts: &Buffer<u32>,
    ) -> Result<L::Out> {
        let p = Self::params(seq, len, k, counts)?;
        let clear = l.launch(&self.clear, &[counts], &p)?;
        if p.positions == 0 {
            return Ok(clear);
        }
        l.launch(self.kernel(k), &[seq, counts], &p)
    }

    /// The params of a count, checked.
    pub fn params(
        seq: &Buffer<u32>,
        len: usize,
        k: usize,
        counts: &Buffer<u32>,
    ) -> Result<KmerParams> {
        if k == 0 || k > MAX_K {
            return Err(bad_k(k));
        }
        let words = len.div_ceil(16);
        if seq.len() < words {
            return Err(invalid(
                "kmer",
                "seq",
                format!(
                    "{len} bases take {words} words of 16, but seq has {}",
                    seq.len()
                ),
            ));
        }
        let bins = 1usize << (2 * k);
        if counts.len() != bins {
            return Err(invalid(
                "kmer",
                "counts",
                format!(
                    "k = {k} has 4^{k} = {bins} k-mers, but counts has {} elements",
                    counts.len()
                ),
            ));
        }
        let len = u32_len("kmer", "len", len)?;
        Ok(KmerParams {
            len,
            k: k as u32,
            positions: (len + 1).saturating_sub(k as u32),
            bins: bins as u32,
        })
    }
}

/// The serial reference: for each position, the k-mer's code built base by
/// base from the definition, and its count incremented.
pub fn reference(words: &[u32], len: usize, k: usize) -> Vec<u32> {
    let mut counts = vec![0u32; 1 << (2 * k)];
    let base = |i: usize| ((words[i / 16] >> (2 * (i % 16))) & 3) as usize;
    for pos in 0..(len + 1).saturating_sub(k) {
        let code = (pos..pos + k).fold(0, |code, i| code * 4 + base(i));
        counts[code] += 1;
    }
    counts
}

//! The kmer sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::kmer`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};

use super::verify::{self, Check, Trial, Work};
use crate::kmer::*;

/// k-mer counts of a seeded random sequence (uniform bases; the unused bits
/// of its last word random too, which the kernels must ignore). The counts
/// start poisoned (0xDEADBEEF).
///
/// Tolerance: exact, every count.
pub struct KmerTrial {
    counter: KmerCounter,
    words: Vec<u32>,
    len: usize,
    k: usize,
    seq: Buffer<u32>,
    counts: Buffer<u32>,
    got: Vec<u32>,
    want: Option<Vec<u32>>,
}

/// Prepares the count of the k-mers of a random sequence of `len` bases.
pub fn trial(rt: &Runtime, (len, k): (usize, usize), seed: u64) -> Result<KmerTrial> {
    if k == 0 || k > MAX_K {
        return Err(bad_k(k));
    }
    let mut rng = verify::rng(seed);
    let words: Vec<u32> = (0..len.div_ceil(16))
        .map(|_| rand::Rng::random(&mut rng))
        .collect();
    Ok(KmerTrial {
        counter: KmerCounter::new()?,
        seq: rt.buffer(&words),
        counts: rt.zeros(1 << (2 * k)),
        words,
        len,
        k,
        got: Vec::new(),
        want: None,
    })
}

impl Trial for KmerTrial {
    fn shape(&self) -> String {
        format!("{} bases, k={}", self.len, self.k)
    }
    fn work(&self) -> Work {
        Work {
            flops: 0.0,
            bytes: 4.25 * self.len as f64 + 4.0 * self.counts.len() as f64,
        }
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.seq, &self.words)?;
        rt.write(&self.counts, &vec![0xDEAD_BEEF; self.counts.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self
            .counter
            .run(rt, target, &self.seq, self.len, self.k, &self.counts)?;
        rt.read_to_vec(&self.counts, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (words, len, k) = (&self.words, self.len, self.k);
        let shape = self.shape();
        let want = self.want.get_or_insert_with(|| reference(words, len, k));
        // Equal tables (the usual outcome) need no element-wise report.
        let c = if self.got == *want {
            verify::Compare {
                compared: want.len(),
                mismatches: 0,
                worst: 0.0,
                first_bad: None,
            }
        } else {
            verify::compare(
                self.got.iter().map(|&v| v as f64),
                want.iter().map(|&v| v as f64),
                |_| 0.0,
            )
        };
        c.into_check(shape, backend, want.len().abs_diff(self.got.len()), "exact")
    }
}

/// The k of the `kmer` sample.
pub(crate) const SAMPLE_K: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_packs_the_first_base_lowest() {
        assert_eq!(encode(b"").unwrap(), Vec::<u32>::new());
        assert_eq!(encode(b"C").unwrap(), vec![1]);
        assert_eq!(encode(b"acgt").unwrap(), vec![0b11_10_01_00]);
        let words = encode(b"TTTTTTTTTTTTTTTTG").unwrap();
        assert_eq!(words, vec![u32::MAX, 2]);
        let e = encode(b"ACGTN").unwrap_err();
        assert!(e.to_string().contains("byte 4"), "{e}");
    }

    #[test]
    fn codes_are_lexicographic() {
        assert_eq!(kmer_code(b"AAA").unwrap(), 0);
        assert_eq!(kmer_code(b"AAC").unwrap(), 1);
        assert_eq!(kmer_code(b"CAA").unwrap(), 16);
        assert_eq!(kmer_code(b"TTT").unwrap(), 63);
        assert!(kmer_code(b"").is_err());
        assert!(kmer_code(b"ACGTACGTACGTA").is_err());
        assert!(kmer_code(b"AXA").is_err());
    }

    #[test]
    fn cpu_count_matches_the_reference() {
        let seq: Vec<u8> = (0..100_003u32)
            .map(|i| b"ACGT"[(i.wrapping_mul(2_654_435_761) >> 13) as usize % 4])
            .collect();
        let words = encode(&seq).unwrap();
        for k in [1, 2, 5, 8, 9, 12] {
            for len in [0, 1, k - 1, k, 17, 70_000, seq.len()] {
                let bins = 1 << (2 * k);
                let mut counts = vec![0u32; bins];
                let p = KmerParams {
                    len: len as u32,
                    k: k as u32,
                    positions: (len + 1).saturating_sub(k) as u32,
                    bins: bins as u32,
                };
                count_cpu(&words, &mut counts, &p);
                assert_eq!(counts, reference(&words, len, k), "k={k} len={len}");
            }
        }
        // Counting a known k-mer.
        let words = encode(b"ACGACGAC").unwrap();
        let counts = reference(&words, 8, 3);
        assert_eq!(counts[kmer_code(b"ACG").unwrap()], 2);
        assert_eq!(counts[kmer_code(b"CGA").unwrap()], 2);
        assert_eq!(counts[kmer_code(b"GAC").unwrap()], 2);
        assert_eq!(counts.iter().sum::<u32>(), 6);
    }
}

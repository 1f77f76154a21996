//! The kmer sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::kmer`].

use pel_runtime::{Buffer, Result, RunInfo, Runtime, Target};

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::kmer::*;

/// k-mer counts of a seeded random sequence (uniform bases; the unused bits
/// of its last word random too, which the kernels must ignore). The counts
/// start poisoned (0xDEADBEEF).
///
/// Tolerance: exact, every count.
pub type KmerTrial = Sampled<KmerProblem>;

/// The sequence of a [`KmerTrial`], and the reference's counts once known.
pub struct KmerProblem {
    counter: KmerCounter,
    words: Input<u32>,
    len: usize,
    k: usize,
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
    let problem = KmerProblem {
        counter: KmerCounter::new()?,
        words: Input::new(rt, words),
        len,
        k,
        want: None,
    };
    Ok(Sampled::poisoned(rt, problem, 1 << (2 * k), 0xDEAD_BEEF))
}

impl Problem for KmerProblem {
    type Out = u32;
    const TOLERANCE: &'static str = "exact";
    fn shape(&self) -> String {
        format!("{} bases, k={}", self.len, self.k)
    }
    fn work(&self, _: &[u32]) -> Work {
        Work {
            flops: 0.0,
            bytes: 4.25 * self.len as f64 + 4.0 * (1usize << (2 * self.k)) as f64,
        }
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.words.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, counts: &Buffer<u32>) -> Result<RunInfo> {
        let seq = self.words.buf();
        self.counter.run(rt, target, seq, self.len, self.k, counts)
    }
    fn compare(&mut self, got: &[u32]) -> Compare {
        let (words, len, k) = (&self.words, self.len, self.k);
        let want = self.want.get_or_insert_with(|| reference(words, len, k));
        // Equal tables (the usual outcome) need no element-wise report.
        if got == &want[..] {
            Compare {
                compared: want.len(),
                mismatches: 0,
                worst: 0.0,
                first_bad: None,
            }
        } else {
            verify::exact(got, want)
        }
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

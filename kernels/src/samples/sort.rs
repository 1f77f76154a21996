//! The sort sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::sort`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Check, Compare, Input, Problem, Sampled, Trial, Work};
use crate::sort::*;

/// Which keys a trial sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Uniform over the whole u32 range.
    Full,
    /// Drawn from this many distinct values (themselves uniform over the
    /// u32 range, so every digit varies): many ties, which show stability.
    Ties(u32),
    /// Uniform below this bound: the high digits are all zero.
    Below(u32),
}

pub(crate) fn random_keys(n: usize, keys: Keys, seed: u64) -> Vec<u32> {
    let mut rng = verify::rng(seed);
    match keys {
        Keys::Full => (0..n).map(|_| rng.random()).collect(),
        Keys::Ties(k) => {
            let set: Vec<u32> = (0..k.max(1)).map(|_| rng.random()).collect();
            (0..n)
                .map(|_| set[rng.random_range(0..set.len())])
                .collect()
        }
        Keys::Below(bound) => (0..n).map(|_| rng.random_range(0..bound.max(1))).collect(),
    }
}

fn shape(n: usize, keys: Keys, multi_pass: Option<Digits>) -> String {
    let keys = match keys {
        Keys::Full => n.to_string(),
        Keys::Ties(k) => format!("{n} ({k} distinct)"),
        Keys::Below(bound) => format!("{n} (below {bound})"),
    };
    match multi_pass {
        Some(Digits::Four) => format!("{keys}, multi-pass"),
        Some(Digits::Eight) => format!("{keys}, multi-pass, 8-bit digits"),
        None => keys,
    }
}

/// A sort of seeded random u32 keys, in place.
///
/// Tolerance: none; the result must equal the serial sort exactly.
pub type SortTrial = Sampled<SortKeys>;

/// The keys of a [`SortTrial`], which the sort overwrites.
pub struct SortKeys {
    sort: Sort,
    spread: Keys,
    multi_pass: Option<Digits>,
    keys: Input<u32>,
}

impl SortTrial {
    /// Prepares a sort of `n` keys drawn as `keys` says.
    pub fn new(rt: &Runtime, n: usize, keys: Keys, seed: u64) -> Result<Self> {
        let input = Input::new(rt, random_keys(n, keys, seed));
        let out = input.buf().clone();
        let problem = SortKeys {
            sort: Sort::new()?,
            spread: keys,
            multi_pass: None,
            keys: input,
        };
        Ok(Sampled::in_place(problem, &out))
    }

    /// Sorts with the multi-pass kernels wherever it runs (see
    /// [`Sort::radix_sort_passes`]), the CPU included.
    pub fn multi_pass(self) -> Self {
        self.multi_pass_with(Digits::Four)
    }

    /// Sorts with the multi-pass kernels of `digits` wherever it runs (see
    /// [`Sort::radix_sort_passes_with`]).
    pub fn multi_pass_with(mut self, digits: Digits) -> Self {
        self.problem.multi_pass = Some(digits);
        self
    }
}

/// Prepares a sort of `n` keys uniform over the u32 range.
pub fn trial(rt: &Runtime, n: usize, seed: u64) -> Result<SortTrial> {
    SortTrial::new(rt, n, Keys::Full, seed)
}

impl Problem for SortKeys {
    type Out = u32;
    const TOLERANCE: &'static str = "exact: equal to a serial sort";
    fn shape(&self) -> String {
        shape(self.keys.len(), self.spread, self.multi_pass)
    }
    fn work(&self, _: &[u32]) -> Work {
        Work::per(self.keys.len(), 0.0, 8.0)
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.keys.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, keys: &Buffer<u32>) -> Result<RunInfo> {
        if let Some(digits) = self.multi_pass {
            self.sort
                .radix_sort_passes_with(rt, target, keys, None, digits)
        } else {
            self.sort.radix_sort(rt, target, keys)
        }
    }
    fn compare(&mut self, got: &[u32]) -> Compare {
        verify::exact(got, &reference(&self.keys))
    }
}

/// A sort of seeded random u32 keys with seeded random u32 values, in
/// place. Elements compared: the n keys, then the n values.
///
/// Tolerance: none; keys and values must equal a serial stable sort by key
/// exactly (values follow their keys, equal keys keep their input order).
pub struct SortPairsTrial {
    sort: Sort,
    spread: Keys,
    multi_pass: Option<Digits>,
    keys: Input<u32>,
    values: Input<u32>,
    got: (Vec<u32>, Vec<u32>),
}

impl SortPairsTrial {
    /// Prepares a sort of `n` pairs whose keys are drawn as `keys` says.
    pub fn new(rt: &Runtime, n: usize, keys: Keys, seed: u64) -> Result<Self> {
        Ok(SortPairsTrial {
            sort: Sort::new()?,
            spread: keys,
            multi_pass: None,
            keys: Input::new(rt, random_keys(n, keys, seed)),
            values: Input::new(rt, random_keys(n, Keys::Full, seed ^ 0x5eed)),
            got: (Vec::new(), Vec::new()),
        })
    }

    /// Sorts with the multi-pass kernels wherever it runs (see
    /// [`Sort::radix_sort_passes`]), the CPU included.
    pub fn multi_pass(self) -> Self {
        self.multi_pass_with(Digits::Four)
    }

    /// Sorts with the multi-pass kernels of `digits` wherever it runs (see
    /// [`Sort::radix_sort_passes_with`]).
    pub fn multi_pass_with(mut self, digits: Digits) -> Self {
        self.multi_pass = Some(digits);
        self
    }
}

/// Prepares a sort of `n` pairs with keys uniform over the u32 range.
pub fn trial_pairs(rt: &Runtime, n: usize, seed: u64) -> Result<SortPairsTrial> {
    SortPairsTrial::new(rt, n, Keys::Full, seed)
}

impl Trial for SortPairsTrial {
    fn shape(&self) -> String {
        shape(self.keys.len(), self.spread, self.multi_pass)
    }
    fn work(&self) -> Work {
        Work::per(self.keys.len(), 0.0, 16.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        self.got = (Vec::new(), Vec::new());
        self.keys.write(rt)?;
        self.values.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let (keys, values) = (self.keys.buf(), self.values.buf());
        let info = if let Some(digits) = self.multi_pass {
            self.sort
                .radix_sort_passes_with(rt, target, keys, Some(values), digits)?
        } else {
            self.sort.radix_sort_pairs(rt, target, keys, values)?
        };
        self.got = (rt.read(keys)?, rt.read(values)?);
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (wk, wv) = reference_pairs(&self.keys, &self.values);
        let got = [&self.got.0[..], &self.got.1[..]].concat();
        let c = verify::exact(&got, &[wk, wv].concat());
        let missing = (2 * self.keys.len()).abs_diff(got.len());
        c.into_check(
            self.shape(),
            backend,
            missing,
            "exact: equal to a serial stable sort by key",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU's whole sort, keys alone and pairs, against the references.
    fn check_whole(keys: Vec<u32>) {
        let n = keys.len();
        let ids: Vec<u32> = (0..n as u32).collect();
        let (want_keys, want_ids) = reference_pairs(&keys, &ids);
        let (mut k, mut v) = (keys.clone(), ids);
        whole_cpu::<true>(&mut k, &mut v, &mut vec![0; n], &mut vec![0; n]);
        assert_eq!(k, want_keys, "pairs' keys, n={n}");
        assert_eq!(v, want_ids, "pairs' values, n={n}");
        let mut k = keys;
        whole_cpu::<false>(&mut k, &mut [], &mut vec![0; n], &mut []);
        assert_eq!(k, want_keys, "keys, n={n}");
    }

    #[test]
    fn whole_cpu_sorts_every_shape() {
        for (i, n) in [0, 1, 2, 1000, SERIAL_BELOW - 1, SERIAL_BELOW, 200_003]
            .into_iter()
            .enumerate()
        {
            check_whole(random_keys(n, Keys::Full, i as u64));
        }
        // Two buckets, few values, high bytes zero, nothing varying.
        check_whole(random_keys(300_000, Keys::Ties(2), 10));
        check_whole(random_keys(300_000, Keys::Ties(300), 11));
        check_whole(random_keys(300_000, Keys::Below(300), 12));
        check_whole(vec![7; 100_000]);
        // One bucket holds nearly everything: sorted by parallel passes.
        check_whole(
            (0..300_000u32)
                .map(|i| {
                    if i % 1000 == 0 {
                        u32::MAX - i
                    } else {
                        i.wrapping_mul(2_654_435_761) >> 8
                    }
                })
                .collect(),
        );
    }
}

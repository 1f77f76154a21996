//! The scan sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::scan`].

use pel_runtime::{Buffer, Element, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::scan::*;

/// A scan of seeded random u32 values over the whole range (so the sums
/// wrap many times); the output starts poisoned (0xDEADBEEF). Runs alternate
/// between the two kinds, starting with the one given; the check's shape
/// names the kind it verified.
///
/// Tolerance: none. Wrapping u32 addition is exact in any order.
pub type ScanU32Trial = Sampled<ScanProblem<u32>>;

/// A scan of seeded random f32 values in [-1, 1); the output starts
/// poisoned (NaN). Runs alternate between the two kinds, starting with the
/// one given; the check's shape names the kind it verified.
///
/// Tolerance: element i within `(log2(n) + 2)·ε·Σ|x_j|` of the f64
/// reference, the sum over the elements it adds up (j ≤ i inclusive, j < i
/// exclusive): the error of a tree of that depth, whatever the blocking.
pub type ScanF32Trial = Sampled<ScanProblem<f32>>;

/// The input of a [`ScanU32Trial`] or a [`ScanF32Trial`], and the kinds of
/// scan its runs take by turns.
pub struct ScanProblem<T: Element> {
    scan: Scan,
    next: ScanKind,
    last: ScanKind,
    x: Input<T>,
}

/// A scan of `x` into `y` with a [`Scan`]'s kernels, at a target.
pub type ScanFn<T> =
    fn(&Scan, &Runtime, Target, &Buffer<T>, &Buffer<T>, ScanKind) -> Result<RunInfo>;

/// An element type [`Scan`] scans, as a [`ScanProblem`] runs and checks it.
pub trait Scanned: Element + Into<f64> {
    /// What the output starts as before each run.
    const POISON: Self;
    /// Floating-point operations per element.
    const FLOPS: f64;
    /// The tolerance, in words.
    const TOLERANCE: &'static str;
    /// Seeded random input.
    fn random(n: usize, seed: u64) -> Vec<Self>;
    /// Scans `x` into `y`: [`Scan::scan_u32`] or [`Scan::scan_f32`].
    const SCAN: ScanFn<Self>;
    /// Compares a scan of `xs` with the reference.
    fn compare(got: &[Self], xs: &[Self], kind: ScanKind) -> Compare;
}

impl Scanned for u32 {
    const SCAN: ScanFn<u32> = Scan::scan_u32;
    const POISON: u32 = 0xDEAD_BEEF;
    const FLOPS: f64 = 0.0;
    const TOLERANCE: &'static str = "exact (wrapping u32 addition)";
    fn random(n: usize, seed: u64) -> Vec<u32> {
        let mut rng = verify::rng(seed);
        (0..n).map(|_| rng.random()).collect()
    }
    fn compare(got: &[u32], xs: &[u32], kind: ScanKind) -> Compare {
        verify::exact(got, &reference_u32(xs, kind))
    }
}

impl Scanned for f32 {
    const SCAN: ScanFn<f32> = Scan::scan_f32;
    const POISON: f32 = f32::NAN;
    const FLOPS: f64 = 1.0;
    const TOLERANCE: &'static str = "(log2(n)+2)·ε·Σ|x_j| over the summed elements";
    fn random(n: usize, seed: u64) -> Vec<f32> {
        verify::random_f32(seed, n, -1.0, 1.0)
    }
    fn compare(got: &[f32], xs: &[f32], kind: ScanKind) -> Compare {
        let (want, mag) = reference_f32(xs, kind);
        let depth = (xs.len().max(2) as f64).log2().ceil() + 2.0;
        let eps = f32::EPSILON as f64;
        verify::compare(verify::f64s(got), want, |i| {
            depth * eps * mag[i] + f32::MIN_POSITIVE as f64
        })
    }
}

impl<T: Scanned> Sampled<ScanProblem<T>> {
    /// Prepares a scan of `n` elements whose first run is a `kind` scan.
    pub fn new(rt: &Runtime, n: usize, kind: ScanKind, seed: u64) -> Result<Self> {
        let problem = ScanProblem {
            scan: Scan::new()?,
            next: kind,
            last: kind,
            x: Input::new(rt, T::random(n, seed)),
        };
        Ok(Sampled::poisoned(rt, problem, n, T::POISON))
    }
}

/// The first kind a seed's trial runs: inclusive for even seeds.
pub(crate) fn first_kind(seed: u64) -> ScanKind {
    if seed.is_multiple_of(2) {
        ScanKind::Inclusive
    } else {
        ScanKind::Exclusive
    }
}

/// Prepares a u32 scan of `n` elements (inclusive first for an even seed).
pub fn trial_u32(rt: &Runtime, n: usize, seed: u64) -> Result<ScanU32Trial> {
    ScanU32Trial::new(rt, n, first_kind(seed), seed)
}

/// Prepares an f32 scan of `n` elements (inclusive first for an even seed).
pub fn trial_f32(rt: &Runtime, n: usize, seed: u64) -> Result<ScanF32Trial> {
    ScanF32Trial::new(rt, n, first_kind(seed), seed)
}

impl<T: Scanned> Problem for ScanProblem<T> {
    type Out = T;
    const TOLERANCE: &'static str = T::TOLERANCE;
    fn shape(&self) -> String {
        self.x.len().to_string()
    }
    fn work(&self, _: &[T]) -> Work {
        Work::per(self.x.len(), T::FLOPS, 8.0)
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.x.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, y: &Buffer<T>) -> Result<RunInfo> {
        self.last = self.next;
        self.next = self.next.other();
        (T::SCAN)(&self.scan, rt, target, self.x.buf(), y, self.last)
    }
    fn compare(&mut self, got: &[T]) -> Compare {
        T::compare(got, &self.x, self.last)
    }
    fn checked_shape(&self) -> String {
        format!("{} {}", self.x.len(), self.last.name())
    }
}

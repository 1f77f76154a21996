//! The reduce sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::reduce`].

use pel_runtime::{Buffer, Element, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Compare, Input, Problem, Sampled, Work};
use crate::reduce::*;

/// Seeded random input that is never all NaN: multiples of 1/64 in
/// [-64, 64) (so the maximum repeats at large sizes, and ties are tested),
/// about 1 in 16 of them NaN, zeros of either sign.
pub(crate) fn input(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = verify::rng(seed);
    let mut xs: Vec<f32> = (0..n)
        .map(|_| {
            if rng.random_ratio(1, 16) {
                f32::NAN
            } else {
                let v = rng.random_range(-4096i32..4096) as f32 / 64.0;
                if v == 0.0 && rng.random::<bool>() {
                    -0.0
                } else {
                    v
                }
            }
        })
        .collect();
    if n > 0 && xs.iter().all(|v| v.is_nan()) {
        let i = rng.random_range(0..n);
        xs[i] = rng.random_range(-4096i32..4096) as f32 / 64.0;
    }
    xs
}

/// The min or max of seeded random input (see `input`: multiples of 1/64 in
/// [-64, 64), about 1 in 16 NaN, never all NaN); the result starts poisoned
/// (NaN).
///
/// Tolerance: none; the result must equal the reference's exactly (-0 and
/// +0 count as equal).
pub type ReduceTrial = Sampled<Reduction<Reduce>>;

/// The argmax of seeded random input (as for [`ReduceTrial`]: many ties for
/// the maximum at large sizes); the result starts poisoned (0xDEADBEEF).
///
/// Tolerance: none; the index must equal the reference's exactly (the
/// first maximum).
pub type ArgmaxTrial = Sampled<Reduction<Argmax>>;

/// The inputs of a [`ReduceTrial`], an [`ArgmaxTrial`] or a
/// [`SumTrial`](super::sum::SumTrial): seeded values, the kernel that
/// reduces them to one, and its `run`.
pub struct Reduction<K: Reducer> {
    kernel: K,
    run: Run<K>,
    x: Input<f32>,
}

/// A reducing kernel's `run`: `x` into `out` at a target.
type Run<K> =
    fn(&K, &Runtime, Target, &Buffer<f32>, &Buffer<<K as Reducer>::Out>) -> Result<RunInfo>;

/// A kernel that reduces f32 values to one, as a [`Reduction`] checks it.
pub trait Reducer: Send {
    /// The result's element.
    type Out: Element + Into<f64>;
    /// What the result starts as before each run.
    const POISON: Self::Out;
    /// The tolerance, in words.
    const TOLERANCE: &'static str;
    /// The serial reference's result for `xs`, and how far from it the
    /// kernel's may be.
    fn want(&self, xs: &[f32]) -> (f64, f64);
}

impl<K: Reducer> Reduction<K> {
    /// A trial that reduces `xs` with `kernel`'s `run`.
    pub(crate) fn trial(rt: &Runtime, kernel: K, run: Run<K>, xs: Vec<f32>) -> Sampled<Self> {
        let x = Input::new(rt, xs);
        Sampled::poisoned(rt, Reduction { kernel, run, x }, 1, K::POISON)
    }
}

/// Prepares the min or max of `n` elements.
pub fn trial(rt: &Runtime, op: ReduceOp, n: usize, seed: u64) -> Result<ReduceTrial> {
    Ok(Reduction::trial(
        rt,
        Reduce::new(op)?,
        Reduce::run,
        input(seed, n),
    ))
}

/// Prepares the argmax of `n` elements.
pub fn argmax_trial(rt: &Runtime, n: usize, seed: u64) -> Result<ArgmaxTrial> {
    Ok(Reduction::trial(
        rt,
        Argmax::new()?,
        Argmax::run,
        input(seed, n),
    ))
}

impl Reducer for Reduce {
    type Out = f32;
    const POISON: f32 = f32::NAN;
    const TOLERANCE: &'static str = "exact";
    fn want(&self, xs: &[f32]) -> (f64, f64) {
        (reference(self.op(), xs).map_or(f64::NAN, f64::from), 0.0)
    }
}

impl Reducer for Argmax {
    type Out = u32;
    const POISON: u32 = 0xDEAD_BEEF;
    const TOLERANCE: &'static str = "exact (the first maximum)";
    fn want(&self, xs: &[f32]) -> (f64, f64) {
        (argmax_reference(xs).map_or(f64::NAN, |i| i as f64), 0.0)
    }
}

impl<K: Reducer> Problem for Reduction<K> {
    type Out = K::Out;
    const TOLERANCE: &'static str = K::TOLERANCE;
    fn shape(&self) -> String {
        self.x.len().to_string()
    }
    fn work(&self, _: &[K::Out]) -> Work {
        Work::per(self.x.len(), 1.0, 4.0)
    }
    fn reset(&self, rt: &Runtime) -> Result<()> {
        self.x.write(rt)
    }
    fn run(&mut self, rt: &Runtime, target: Target, out: &Buffer<K::Out>) -> Result<RunInfo> {
        (self.run)(&self.kernel, rt, target, self.x.buf(), out)
    }
    fn compare(&mut self, got: &[K::Out]) -> Compare {
        let (want, tol) = self.kernel.want(&self.x);
        verify::compare(verify::f64s(got), [want], |_| tol)
    }
}

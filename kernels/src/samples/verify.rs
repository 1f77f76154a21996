//! Checking a result against its serial reference, with the tolerance
//! stated, and the outcome as a value the CLI, the tour and the tests share.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use pel_runtime::{Backend, Buffer, Element, Reason, Result, RunInfo, Runtime, Target};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The outcome of running a sample kernel on seeded random input and
/// comparing it with the serial reference.
#[derive(Debug, Clone)]
pub struct Check {
    /// The problem's shape, e.g. `1000003` or `256×256×256`.
    pub shape: String,
    /// Where the last kernel of the operation ran.
    pub backend: Backend,
    /// Wall time of the operation, from host-resident inputs to the result
    /// read back to the host.
    pub elapsed: Duration,
    /// Elements compared.
    pub compared: usize,
    /// Elements outside the tolerance.
    pub mismatches: usize,
    /// Mismatches the tolerance excused one by one (ill-conditioned elements);
    /// they are not counted in `mismatches`.
    pub excused: usize,
    /// Mismatches allowed (non-zero only where the tolerance says so).
    pub allowed_mismatches: usize,
    /// Largest error as a fraction of its element's tolerance (≤ 1 passes).
    pub worst: f64,
    /// The first element outside the tolerance: (index, got, expected).
    pub first_bad: Option<(usize, f64, f64)>,
    /// The tolerance, in words.
    pub tolerance: &'static str,
    /// Why the operation ran where it did (its first call's placement), and
    /// the GPU's share when it was split with the CPU.
    pub placement: Option<(Reason, Option<f64>)>,
}

impl Check {
    /// Whether the result agrees with the reference within the tolerance.
    pub fn verified(&self) -> bool {
        self.mismatches <= self.allowed_mismatches
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.verified() {
            write!(f, "verified")?;
        } else {
            write!(f, "MISMATCH")?;
        }
        write!(
            f,
            " ({} of {} outside tolerance, {} allowed",
            self.mismatches, self.compared, self.allowed_mismatches
        )?;
        if self.excused > 0 {
            write!(f, ", {} excused as ill-conditioned", self.excused)?;
        } else {
            write!(f, "; worst {:.3} of tolerance", self.worst)?;
        }
        write!(f, "; {})", self.tolerance)?;
        if let Some((i, got, want)) = self.first_bad {
            write!(f, "; first at [{i}]: got {got}, expected {want}")?;
        }
        Ok(())
    }
}

/// The work of one run of an operation, counted as its kernel's module
/// documentation counts it: floating-point operations (a transcendental
/// counts as one) and the bytes it must move through memory at the least.
/// Benchmarks divide these by a time for GFLOP/s and GB/s, and by the
/// machine's peaks for the fraction of its roofline.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Work {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes moved, at the least.
    pub bytes: f64,
}

impl Work {
    /// `per` work for each of `items`.
    pub fn per(items: usize, flops: f64, bytes: f64) -> Work {
        Work {
            flops: items as f64 * flops,
            bytes: items as f64 * bytes,
        }
    }
}

/// A sample problem: seeded inputs in buffers, the operation, and the
/// comparison of its result with the serial reference.
pub trait Trial: Send {
    /// The problem's shape, e.g. `1000003` or `256×256×256`.
    fn shape(&self) -> String;
    /// The work of one run (for a kernel whose work depends on the data,
    /// such as mandelbrot's iterations, that of the last run).
    fn work(&self) -> Work;
    /// Puts fresh inputs back on the host only (as a user's new data would
    /// be) and poisons the outputs.
    fn reset(&mut self, rt: &Runtime) -> Result<()>;
    /// Runs the operation at `target` and reads its result back to the host.
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo>;
    /// Compares the last result with the serial reference.
    fn verify(&mut self, backend: Backend) -> Check;
}

/// Resets, runs (timed, from host-resident inputs to the result on the
/// host) and verifies one trial.
pub fn run_check(trial: &mut dyn Trial, rt: &Runtime, target: Target) -> Result<Check> {
    trial.reset(rt)?;
    let start = std::time::Instant::now();
    let info = trial.run(rt, target)?;
    let elapsed = start.elapsed();
    let mut check = trial.verify(info.backend);
    check.backend = info.backend;
    check.elapsed = elapsed;
    check.placement = Some((info.reason, info.split));
    Ok(check)
}

/// Seeded host data and the buffer it goes to, written back to the buffer
/// (host-only, as a user's fresh data would be) before every run.
pub struct Input<T: Element> {
    host: Vec<T>,
    buf: Buffer<T>,
}

impl<T: Element> Input<T> {
    pub(crate) fn new(rt: &Runtime, host: Vec<T>) -> Self {
        Input {
            buf: rt.buffer(&host),
            host,
        }
    }

    /// Puts the host data back in the buffer.
    pub(crate) fn write(&self, rt: &Runtime) -> Result<()> {
        rt.write(&self.buf, &self.host)
    }

    /// The buffer the operation reads.
    pub(crate) fn buf(&self) -> &Buffer<T> {
        &self.buf
    }
}

impl<T: Element> Deref for Input<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.host
    }
}

/// What one sample kernel's trial knows: its inputs, how to run the
/// operation into one output buffer, and how to compare that output with
/// the serial reference. [`Sampled`] does the rest (poisoning the output,
/// reading it back, counting the elements missing) once for all of them.
pub trait Problem: Send {
    /// The output's element.
    type Out: Element;
    /// The tolerance, in words.
    const TOLERANCE: &'static str;
    /// The problem's shape, e.g. `1000003` or `256×256×256`.
    fn shape(&self) -> String;
    /// The work of one run; `got` is the last result (empty before any).
    fn work(&self, got: &[Self::Out]) -> Work;
    /// Puts the inputs back on the host only.
    fn reset(&self, rt: &Runtime) -> Result<()>;
    /// Runs the operation at `target`, its result into `out`.
    fn run(&mut self, rt: &Runtime, target: Target, out: &Buffer<Self::Out>) -> Result<RunInfo>;
    /// Compares the result read back with the serial reference.
    fn compare(&mut self, got: &[Self::Out]) -> Compare;
    /// The shape a check reports (by default [`shape`](Self::shape)).
    fn checked_shape(&self) -> String {
        self.shape()
    }
    /// The check, adjusted where the tolerance excuses or allows
    /// mismatches (by default as it is).
    fn judge(&mut self, check: Check, _got: &[Self::Out]) -> Check {
        check
    }
}

/// A [`Trial`] of a [`Problem`]: its output poisoned before each run (or,
/// for an operation in place, rewritten by the problem's reset), read back
/// after it, and compared with the reference.
pub struct Sampled<P: Problem> {
    pub(crate) problem: P,
    out: Buffer<P::Out>,
    poison: Option<P::Out>,
    pub(crate) got: Vec<P::Out>,
}

impl<P: Problem> Sampled<P> {
    /// A trial whose output of `len` elements starts as `poison`.
    pub(crate) fn poisoned(rt: &Runtime, problem: P, len: usize, poison: P::Out) -> Self {
        Sampled {
            problem,
            out: rt.zeros(len),
            poison: Some(poison),
            got: Vec::new(),
        }
    }

    /// A trial whose operation works in place on `out`, one of its inputs.
    pub(crate) fn in_place(problem: P, out: &Buffer<P::Out>) -> Self {
        Sampled {
            problem,
            out: out.clone(),
            poison: None,
            got: Vec::new(),
        }
    }
}

impl<P: Problem> Trial for Sampled<P> {
    fn shape(&self) -> String {
        self.problem.shape()
    }
    fn work(&self) -> Work {
        self.problem.work(&self.got)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        self.got.clear();
        self.problem.reset(rt)?;
        match self.poison {
            Some(p) => rt.write(&self.out, &vec![p; self.out.len()]),
            None => Ok(()),
        }
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.problem.run(rt, target, &self.out)?;
        rt.read_to_vec(&self.out, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let missing = self.out.len().abs_diff(self.got.len());
        let check = self.problem.compare(&self.got).into_check(
            self.problem.checked_shape(),
            backend,
            missing,
            P::TOLERANCE,
        );
        self.problem.judge(check, &self.got)
    }
}

/// Prepares a trial with `prepare` and checks one run of it at `target`.
pub fn check_with<D, T: Trial>(
    prepare: fn(&Runtime, D, u64) -> Result<T>,
    rt: &Runtime,
    target: Target,
    dims: D,
    seed: u64,
) -> Result<Check> {
    run_check(&mut prepare(rt, dims, seed)?, rt, target)
}

/// Compares values element by element, exactly.
pub(crate) fn exact<T: Copy + Into<f64>>(got: &[T], want: &[T]) -> Compare {
    compare(
        got.iter().map(|&v| v.into()),
        want.iter().map(|&v| v.into()),
        |_| 0.0,
    )
}

/// `got` as f64, for [`compare`].
pub(crate) fn f64s<T: Copy + Into<f64>>(got: &[T]) -> impl Iterator<Item = f64> + '_ {
    got.iter().map(|&v| v.into())
}

/// Element-wise comparison of `got` with `want`, where element `i` may be off
/// by `tol(i)`. A NaN (for example a poisoned output never written) always
/// counts as a mismatch.
pub struct Compare {
    pub(crate) compared: usize,
    pub(crate) mismatches: usize,
    pub(crate) worst: f64,
    pub(crate) first_bad: Option<(usize, f64, f64)>,
}

impl Compare {
    /// The check these results make, with `missing` elements never produced
    /// counted as mismatches, and no mismatch allowed.
    pub(crate) fn into_check(
        self,
        shape: String,
        backend: Backend,
        missing: usize,
        tolerance: &'static str,
    ) -> Check {
        Check {
            shape,
            backend,
            elapsed: Default::default(),
            compared: self.compared,
            mismatches: self.mismatches + missing,
            excused: 0,
            allowed_mismatches: 0,
            worst: self.worst,
            first_bad: self.first_bad,
            tolerance,
            placement: None,
        }
    }
}

pub(crate) fn compare(
    got: impl IntoIterator<Item = f64>,
    want: impl IntoIterator<Item = f64>,
    tol: impl Fn(usize) -> f64,
) -> Compare {
    let mut c = Compare {
        compared: 0,
        mismatches: 0,
        worst: 0.0,
        first_bad: None,
    };
    for (i, (g, w)) in got.into_iter().zip(want).enumerate() {
        c.compared += 1;
        let err = (g - w).abs();
        let t = tol(i);
        let ratio = if err == 0.0 {
            0.0
        } else if t > 0.0 {
            err / t
        } else {
            f64::INFINITY
        };
        let bad = ratio.is_nan() || ratio > 1.0;
        if bad {
            c.mismatches += 1;
            if c.first_bad.is_none() {
                c.first_bad = Some((i, g, w));
            }
        }
        if ratio.is_nan() || ratio > c.worst {
            c.worst = if ratio.is_nan() { f64::INFINITY } else { ratio };
        }
    }
    c
}

/// Seeded uniform f32 values in `[lo, hi)`.
pub(crate) fn random_f32(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// A CPU-only runtime that keeps no model file, for unit tests.
#[cfg(test)]
pub(crate) fn cpu_runtime() -> Runtime {
    Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .build()
        .expect("a CPU runtime starts")
}

/// A seeded random generator for a sample's scalar parameters.
pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_catches_errors_and_nan() {
        let c = compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], |_| 0.0);
        assert_eq!((c.compared, c.mismatches), (3, 0));
        let c = compare([1.0, 2.5, f64::NAN], [1.0, 2.0, 3.0], |_| 0.1);
        assert_eq!(c.mismatches, 2);
        assert_eq!(c.first_bad, Some((1, 2.5, 2.0)));
        assert!(c.worst.is_infinite());
        let c = compare([1.05], [1.0], |_| 0.1);
        assert_eq!(c.mismatches, 0);
        assert!((c.worst - 0.5).abs() < 1e-9);
    }
}

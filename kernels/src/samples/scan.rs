//! The scan sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::scan`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::Sample;
use super::verify::{self, Check, Trial, Work};
use crate::scan::*;

/// A scan of seeded random u32 values over the whole range (so the sums
/// wrap many times); the output starts poisoned (0xDEADBEEF). Runs alternate
/// between the two kinds, starting with the one given; the check's shape
/// names the kind it verified.
///
/// Tolerance: none. Wrapping u32 addition is exact in any order.
pub struct ScanU32Trial {
    scan: Scan,
    next: ScanKind,
    last: ScanKind,
    xs: Vec<u32>,
    x: Buffer<u32>,
    y: Buffer<u32>,
    got: Vec<u32>,
}

impl ScanU32Trial {
    /// Prepares a scan of `n` elements whose first run is a `kind` scan.
    pub fn new(rt: &Runtime, n: usize, kind: ScanKind, seed: u64) -> Result<Self> {
        let mut rng = verify::rng(seed);
        let xs: Vec<u32> = (0..n).map(|_| rng.random()).collect();
        Ok(ScanU32Trial {
            scan: Scan::new()?,
            next: kind,
            last: kind,
            x: rt.buffer(&xs),
            y: rt.zeros(n),
            xs,
            got: Vec::new(),
        })
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

impl Trial for ScanU32Trial {
    fn shape(&self) -> String {
        self.xs.len().to_string()
    }
    fn work(&self) -> Work {
        Work::per(self.xs.len(), 0.0, 8.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.x, &self.xs)?;
        rt.write(&self.y, &vec![0xDEAD_BEEF; self.xs.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        self.last = self.next;
        self.next = self.next.other();
        let info = self
            .scan
            .scan_u32(rt, target, &self.x, &self.y, self.last)?;
        rt.read_to_vec(&self.y, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let want = reference_u32(&self.xs, self.last);
        let c = verify::compare(
            self.got.iter().map(|&v| v as f64),
            want.iter().map(|&v| v as f64),
            |_| 0.0,
        );
        c.into_check(
            format!("{} {}", self.xs.len(), self.last.name()),
            backend,
            self.xs.len().abs_diff(self.got.len()),
            "exact (wrapping u32 addition)",
        )
    }
}

/// Scans `n` seeded random u32 values and checks it (see [`ScanU32Trial`]).
pub fn check_u32(rt: &Runtime, target: Target, n: usize, seed: u64) -> Result<Check> {
    verify::run_check(&mut trial_u32(rt, n, seed)?, rt, target)
}

/// A scan of seeded random f32 values in [-1, 1); the output starts
/// poisoned (NaN). Runs alternate between the two kinds, starting with the
/// one given; the check's shape names the kind it verified.
///
/// Tolerance: element i within `(log2(n) + 2)·ε·Σ|x_j|` of the f64
/// reference, the sum over the elements it adds up (j ≤ i inclusive, j < i
/// exclusive): the error of a tree of that depth, whatever the blocking.
pub struct ScanF32Trial {
    scan: Scan,
    next: ScanKind,
    last: ScanKind,
    xs: Vec<f32>,
    x: Buffer<f32>,
    y: Buffer<f32>,
    got: Vec<f32>,
}

impl ScanF32Trial {
    /// Prepares a scan of `n` elements whose first run is a `kind` scan.
    pub fn new(rt: &Runtime, n: usize, kind: ScanKind, seed: u64) -> Result<Self> {
        let xs = verify::random_f32(seed, n, -1.0, 1.0);
        Ok(ScanF32Trial {
            scan: Scan::new()?,
            next: kind,
            last: kind,
            x: rt.buffer(&xs),
            y: rt.zeros(n),
            xs,
            got: Vec::new(),
        })
    }
}

/// Prepares an f32 scan of `n` elements (inclusive first for an even seed).
pub fn trial_f32(rt: &Runtime, n: usize, seed: u64) -> Result<ScanF32Trial> {
    ScanF32Trial::new(rt, n, first_kind(seed), seed)
}

impl Trial for ScanF32Trial {
    fn shape(&self) -> String {
        self.xs.len().to_string()
    }
    fn work(&self) -> Work {
        Work::per(self.xs.len(), 1.0, 8.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.x, &self.xs)?;
        rt.write(&self.y, &vec![f32::NAN; self.xs.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        self.last = self.next;
        self.next = self.next.other();
        let info = self
            .scan
            .scan_f32(rt, target, &self.x, &self.y, self.last)?;
        rt.read_to_vec(&self.y, &mut self.got)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let (want, mag) = reference_f32(&self.xs, self.last);
        let depth = (self.xs.len().max(2) as f64).log2().ceil() + 2.0;
        let eps = f32::EPSILON as f64;
        let c = verify::compare(self.got.iter().map(|&v| v as f64), want, |i| {
            depth * eps * mag[i] + f32::MIN_POSITIVE as f64
        });
        c.into_check(
            format!("{} {}", self.xs.len(), self.last.name()),
            backend,
            self.xs.len().abs_diff(self.got.len()),
            "(log2(n)+2)·ε·Σ|x_j| over the summed elements",
        )
    }
}

/// Scans `n` seeded random f32 values and checks it (see [`ScanF32Trial`]).
pub fn check_f32(rt: &Runtime, target: Target, n: usize, seed: u64) -> Result<Check> {
    verify::run_check(&mut trial_f32(rt, n, seed)?, rt, target)
}

/// This module's entries in [`samples`](super::samples).
pub(crate) fn samples() -> Vec<Sample> {
    vec![
        Sample {
            name: "scan_u32",
            about: "prefix sums of u32 (wrapping, exact), inclusive and exclusive by turns; reduce-then-scan in blocks of 256 (memory-bound)",
            size_meaning: "elements",
            default_size: 1 << 23,
            tour_size: 1 << 19,
            prepare: |rt, n, seed| super::boxed(trial_u32(rt, n, seed)),
        },
        Sample {
            name: "scan_f32",
            about: "prefix sums of f32, inclusive and exclusive by turns; reduce-then-scan in blocks of 256 (memory-bound)",
            size_meaning: "elements",
            default_size: 1 << 23,
            tour_size: 1 << 19,
            prepare: |rt, n, seed| super::boxed(trial_f32(rt, n, seed)),
        },
    ]
}

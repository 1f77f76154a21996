//! The sum sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::sum`].

use pel_runtime::{Result, Runtime};

use super::reduce::{Reducer, Reduction};
use super::verify::{self, Sampled};
use crate::sum::*;

/// A sum of seeded random values in [-1, 1); the result starts poisoned (NaN).
///
/// Tolerance: within `1e-5 · Σ|x|`. The f32 error grows with the depth of
/// the additions each element goes through: per pass at most 16 + 8 on the
/// GPU and 32 + 16 on the CPU, two passes up to 16M elements; 1e-5 is about
/// `100·ε`.
pub type SumTrial = Sampled<Reduction<Sum>>;

/// Prepares a sum of `n` elements.
pub fn trial(rt: &Runtime, n: usize, seed: u64) -> Result<SumTrial> {
    let xs = verify::random_f32(seed, n, -1.0, 1.0);
    Ok(Reduction::trial(rt, Sum::new()?, Sum::run, xs))
}

impl Reducer for Sum {
    type Out = f32;
    const POISON: f32 = f32::NAN;
    const TOLERANCE: &'static str = "1e-5 of Σ|x|";
    fn want(&self, xs: &[f32]) -> (f64, f64) {
        let (want, magnitude) = reference(xs);
        (want, 1e-5 * magnitude + f32::MIN_POSITIVE as f64)
    }
}

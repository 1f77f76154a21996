//! monte_carlo: Monte Carlo option pricing with a counter-based generator. (Being written.)

use crate::Sample;

/// This module's entries in [`samples`](crate::samples).
pub(crate) fn samples() -> Vec<Sample> {
    Vec::new()
}

//! heat: 2-D heat diffusion (5-point Jacobi stencil). (Being written.)

use crate::Sample;

/// This module's entries in [`samples`](crate::samples).
pub(crate) fn samples() -> Vec<Sample> {
    Vec::new()
}

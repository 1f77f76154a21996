//! kmer: k-mer counting over 2-bit-encoded DNA. (Being written.)

use crate::Sample;

/// This module's entries in [`samples`](crate::samples).
pub(crate) fn samples() -> Vec<Sample> {
    Vec::new()
}

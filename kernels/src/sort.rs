//! sort: radix sort of u32 keys and key-value pairs. (Being written.)

use crate::Sample;

/// This module's entries in [`samples`](crate::samples).
pub(crate) fn samples() -> Vec<Sample> {
    Vec::new()
}

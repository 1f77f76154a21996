//! kmeans: k-means: assignment to the nearest centroid, then the centroid update. (Being written.)

use crate::Sample;

/// This module's entries in [`samples`](crate::samples).
pub(crate) fn samples() -> Vec<Sample> {
    Vec::new()
}

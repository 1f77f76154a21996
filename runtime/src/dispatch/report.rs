//! The model as rows, for `pel model show` and the runtime's accessors.

use super::Dispatcher;
use super::profile::{self, Curve, Summary};

/// What the model knows about splitting one kernel at one size bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitRow {
    /// Kernel name.
    pub kernel: String,
    /// Smallest size in the bucket.
    pub bucket_from: u64,
    /// Largest size in the bucket.
    pub bucket_to: u64,
    /// The GPU that takes its share.
    pub gpu: usize,
    /// The GPU's share of the items.
    pub share: f64,
    /// Split runs measured (the latest are kept).
    pub runs: usize,
    /// Their median wall time, seconds.
    pub median_s: Option<f64>,
}

/// One entry of the performance model, as `pel model show` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Kernel name.
    pub kernel: String,
    /// Device key.
    pub device: String,
    /// Smallest size in the bucket.
    pub bucket_from: u64,
    /// Largest size in the bucket.
    pub bucket_to: u64,
    /// The samples' statistics.
    pub summary: Summary,
    /// The curve fitted across this kernel's buckets on this device.
    pub curve: Option<Curve>,
}

impl Dispatcher {
    /// One row per profile entry, for `pel model show`.
    pub(crate) fn rows(&mut self) -> Vec<ModelRow> {
        let min = self.min_samples;
        let mut keys: Vec<_> = self.profile.iter().map(|(key, _)| key).collect();
        keys.sort_by_key(|&(k, d, b)| (self.names.get(&k).cloned().unwrap_or_default(), d, b));
        keys.into_iter()
            .filter_map(|(k, d, b)| {
                let s = self.profile.get((k, d, b))?.summary()?;
                Some(ModelRow {
                    kernel: self
                        .names
                        .get(&k)
                        .cloned()
                        .unwrap_or_else(|| format!("{k:016x}")),
                    device: self.keys[d].clone(),
                    bucket_from: profile::bucket_start(b),
                    bucket_to: profile::bucket_start(b + 1) - 1,
                    summary: s,
                    curve: self.profile.curve(k, d, min),
                })
            })
            .collect()
    }

    /// One row per split entry, for `pel model show`.
    pub(crate) fn split_rows(&self) -> Vec<SplitRow> {
        self.splits
            .iter()
            .map(|(&(k, b, gpu), e)| SplitRow {
                kernel: self
                    .names
                    .get(&k)
                    .cloned()
                    .unwrap_or_else(|| format!("{k:016x}")),
                bucket_from: profile::bucket_start(b),
                bucket_to: profile::bucket_start(b + 1) - 1,
                gpu,
                share: e.share,
                runs: e.times.len(),
                median_s: e.median(),
            })
            .collect()
    }
}

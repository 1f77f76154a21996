//! Plans: the ways to carry out one operation on a device, each a sequence
//! of kernel calls its caller launches (a sort's passes of 4-bit or of
//! 8-bit digits). A plan is timed as a whole, under an identity of its own,
//! and a device's plans are chosen among as a kernel's variants are there:
//! each explored (a few samples, one if it is well behind), then the one
//! expected to finish first.

use std::sync::Arc;

use super::decision::{Decision, Estimate, Reason};
use super::profile::bucket;
use super::{Dispatcher, device_index};
use crate::ids::Backend;

impl Dispatcher {
    /// Chooses among `plans` (identity, label) of operation `name` for a
    /// problem of `size` on `backend`, and logs the decision, which names
    /// the plan as its variant. Returns the plan's index and why:
    /// [`Reason::Calibrating`] while the plans are measured (the caller
    /// times that run alone), else [`Reason::Modelled`].
    pub(crate) fn choose_plan(
        &mut self,
        name: &str,
        plans: &[(u64, Arc<str>)],
        backend: Backend,
        size: u64,
    ) -> (usize, Reason) {
        let (d, min, b) = (device_index(backend), self.min_samples, bucket(size));
        let estimates: Vec<Estimate> = plans
            .iter()
            .map(|(id, label)| Estimate {
                backend,
                variant: Some(label.to_string()),
                exec_s: self.profile.estimate(*id, d, size, min),
                transfer_s: 0.0,
                queue_s: 0.0,
                samples: self.profile.samples_near(*id, d, b),
            })
            .collect();
        let ids: Vec<u64> = plans.iter().map(|(id, _)| *id).collect();
        let pool: Vec<usize> = (0..plans.len()).collect();
        let (i, reason) = match plans.len() {
            0 | 1 => (0, Reason::OnlyBackend),
            _ => self.pick(&estimates, &ids, &pool, (min, b), true),
        };
        if reason == Reason::Calibrating {
            self.calibration_runs += 1;
        }
        let decision = Decision {
            kernel: name.to_owned(),
            size,
            chosen: backend,
            variant: plans.get(i).map(|(_, label)| label.to_string()),
            reason,
            estimates,
            split: None,
            excluded: Vec::new(),
        };
        self.log_shared(Arc::new(decision));
        (i, reason)
    }
}

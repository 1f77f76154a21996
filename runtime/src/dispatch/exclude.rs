//! Exclusions: a (kernel, backend) pair that failed in a way a retry there
//! would not fix is set aside, for this runtime or for good.

use super::{Dispatcher, device_index};
use crate::ids::Backend;

/// Why a (kernel, device) pair is excluded, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Excluded {
    /// What went wrong there.
    pub(crate) reason: String,
    /// Saved with the model (else forgotten with the runtime).
    pub(crate) permanent: bool,
}

impl Dispatcher {
    /// Sets `backend` aside for `kernel`: automatic placement no longer
    /// picks it. A `permanent` exclusion is saved with the model, so later
    /// processes skip the pair too; a pair excluded twice keeps the latest
    /// reason and stays permanent once it was.
    pub(crate) fn exclude(
        &mut self,
        kernel: u64,
        backend: Backend,
        reason: String,
        permanent: bool,
    ) {
        let key = (kernel, device_index(backend));
        let permanent = permanent || self.excluded.get(&key).is_some_and(|x| x.permanent);
        self.touch();
        self.excluded.insert(key, Excluded { reason, permanent });
        if permanent {
            self.dirty = true;
        }
    }

    /// Why `backend` is excluded for `kernel`, if it is.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn excluded(&self, kernel: u64, backend: Backend) -> Option<&str> {
        self.excluded
            .get(&(kernel, device_index(backend)))
            .map(|x| x.reason.as_str())
    }
}

//! What a placement says: the backend chosen, why, and the estimates
//! behind it ([`Decision`]); the verdict a call runs by ([`Placement`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::Backend;

/// Why a backend was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// Measuring: this backend had the fewest samples near this size.
    Calibrating,
    /// The model predicted the earliest finish here.
    Modelled,
    /// The call or `PEL_BACKEND` named the backend.
    Forced,
    /// No other backend can run the call.
    OnlyBackend,
    /// Its device was lost or out of memory: the call ran again here.
    Recovered,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Calibrating => "calibrating",
            Reason::Modelled => "modelled",
            Reason::Forced => "forced",
            Reason::OnlyBackend => "only backend",
            Reason::Recovered => "recovered",
        })
    }
}

/// One backend's side of a decision (one of the kernel's variants there,
/// where it has several).
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The backend.
    pub backend: Backend,
    /// The variant (see [`Variant`](crate::Variant)) by its label; `None`
    /// for the kernel's own implementation.
    pub variant: Option<String>,
    /// Expected execution time, seconds (`None`: never measured).
    pub exec_s: Option<f64>,
    /// Expected time to move the arguments there, seconds.
    pub transfer_s: f64,
    /// Work already queued there, seconds.
    pub queue_s: f64,
    /// Samples of this kernel near this size on this backend.
    pub samples: usize,
}

impl Estimate {
    /// Expected finish: queue + transfers + execution (`None` if unknown).
    pub fn finish_s(&self) -> Option<f64> {
        self.exec_s.map(|e| e + self.transfer_s + self.queue_s)
    }
}

/// A placement decision, with the estimates behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The kernel's name.
    pub kernel: String,
    /// The call's problem size (the kernel's cost measure).
    pub size: u64,
    /// Where it goes.
    pub chosen: Backend,
    /// Which of the kernel's variants runs there, by its label; `None` for
    /// the kernel's own implementation.
    pub variant: Option<String>,
    /// Why.
    pub reason: Reason,
    /// Every backend that could run it.
    pub estimates: Vec<Estimate>,
    /// Co-execution: the share of the items `chosen` (a GPU) computes while
    /// the CPU computes the rest; `None` when the call runs unsplit.
    pub split: Option<f64>,
    /// Backends that could run the call but are excluded for this kernel,
    /// with why. Automatic placement skipped them, so they have no entry in
    /// `estimates`; a forced call is not filtered and goes where it is told.
    pub excluded: Vec<Exclusion>,
}

/// A backend set aside for one kernel because it failed in a way that
/// retrying there would not fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// The backend set aside.
    pub backend: Backend,
    /// The variant set aside there, by its label (`None`: the kernel's own).
    pub variant: Option<String>,
    /// What went wrong there.
    pub reason: String,
    /// Kept in the model file, so later processes skip it too; otherwise
    /// it lasts as long as this runtime.
    pub permanent: bool,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (size {}) → {}", self.kernel, self.size, self.chosen)?;
        if let Some(v) = &self.variant {
            write!(f, "[{v}]")?;
        }
        if let Some(share) = self.split {
            write!(
                f,
                "+cpu split {:.0}%/{:.0}%",
                share * 100.0,
                (1.0 - share) * 100.0
            )?;
        }
        write!(f, " [{}]:", self.reason)?;
        for e in &self.estimates {
            let label = e
                .variant
                .as_ref()
                .map_or(String::new(), |v| format!("[{v}]"));
            match e.finish_s() {
                Some(t) => write!(
                    f,
                    " {}{label}: {} (exec {} + transfer {} + queue {}, {} samples);",
                    e.backend,
                    secs(t),
                    secs(e.exec_s.unwrap_or(0.0)),
                    secs(e.transfer_s),
                    secs(e.queue_s),
                    e.samples
                )?,
                None => write!(f, " {}{label}: unmeasured;", e.backend)?,
            }
        }
        for x in &self.excluded {
            let lasting = if x.permanent { ", permanently" } else { "" };
            let label = x
                .variant
                .as_ref()
                .map_or(String::new(), |v| format!("[{v}]"));
            write!(f, " {}{label} excluded{lasting}: {};", x.backend, x.reason)?;
        }
        Ok(())
    }
}

/// `0.00123` → `1.23 ms`.
pub fn secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Where a call runs, and why: a [`Decision`]'s verdict without the
/// estimates, which the decision log keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Placement {
    /// Where it runs (a split call: the GPU that takes its share).
    pub(crate) backend: Backend,
    /// Why it runs there.
    pub(crate) reason: Reason,
    /// The GPU's share of a call split with the CPU.
    pub(crate) split: Option<f64>,
    /// What the model expects the call to take there, seconds.
    pub(crate) expect_s: Option<f64>,
    /// The model's samples near the call's size there.
    pub(crate) samples: usize,
    /// Which implementation runs: 0 for the kernel's own, `i` for its
    /// variant `i - 1` (see `Kernel::implementation`).
    pub(crate) variant: u8,
}

impl Placement {
    /// The verdict of `d`, whose chosen implementation is number `variant`.
    pub(crate) fn of(d: &Decision, variant: u8) -> Self {
        let chosen = d
            .estimates
            .iter()
            .find(|e| e.backend == d.chosen && e.variant == d.variant);
        Placement {
            backend: d.chosen,
            reason: d.reason,
            split: d.split,
            expect_s: chosen.and_then(|e| e.exec_s),
            samples: chosen.map_or(0, |e| e.samples),
            variant,
        }
    }
}

//! Plans: several ways to carry out one operation, chosen per device and
//! size by the model, as a kernel's variants are (see [`Plans`]).

use std::sync::Arc;
use std::time::Instant;

use super::Runtime;
use crate::dispatch::Reason;
use crate::error::{Error, Result};
use crate::hash::Fnv;
use crate::ids::Backend;

/// The ways to carry out one operation on a device, each a sequence of
/// kernel calls its caller launches: a radix sort's passes of 4-bit or of
/// 8-bit digits, say, which no single kernel's [`Variant`](crate::Variant)
/// can stand for (the plans differ in their passes and buffers). The model
/// times each plan as a whole, under an identity of its own (named
/// `operation[label]`, hashed from the operation, the label and a version
/// of the plan's code), and [`Runtime::choose_plan`] picks the one it
/// expects to finish first on the device, after measuring each.
#[derive(Debug, Clone)]
pub struct Plans {
    name: String,
    /// Identity and label, in order.
    plans: Vec<(u64, Arc<str>)>,
}

impl Plans {
    /// The plans of operation `name`, each a label and a version of its
    /// code (a changed version is a new identity, measured afresh). A label
    /// empty or given twice is an [`Error::Variant`].
    pub fn new(name: impl Into<String>, plans: &[(&str, &str)]) -> Result<Plans> {
        let name = name.into();
        let mut out: Vec<(u64, Arc<str>)> = Vec::with_capacity(plans.len());
        for &(label, version) in plans {
            let refuse = |message: &str| Error::Variant {
                kernel: name.clone(),
                variant: label.to_owned(),
                message: message.to_owned(),
            };
            if label.is_empty() {
                return Err(refuse("a plan needs a label"));
            }
            if out.iter().any(|(_, l)| &**l == label) {
                return Err(refuse("another plan has this label"));
            }
            let mut h = Fnv::new();
            for part in ["plan", &name, label, version] {
                h.write(part.as_bytes());
                h.write(&[0xff]);
            }
            out.push((h.finish(), Arc::from(label)));
        }
        Ok(Plans { name, plans: out })
    }

    /// The operation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plans' labels, in order.
    pub fn labels(&self) -> Vec<&str> {
        self.plans.iter().map(|(_, l)| &**l).collect()
    }
}

/// The plan chosen for one run of an operation: run plan
/// [`index`](Self::index), then call [`finish`](Self::finish).
#[derive(Debug)]
#[must_use = "a plan being measured gives the model its time only at finish"]
pub struct PlanRun {
    index: usize,
    label: Arc<str>,
    id: u64,
    backend: Backend,
    size: u64,
    /// When a measured run started, and the name its time is recorded
    /// under (`operation[label]`).
    timed: Option<(Instant, String)>,
}

impl PlanRun {
    /// The plan to run: its place among the [`Plans`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// The plan's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the run is measured (the model is still comparing the
    /// plans): it started with the runtime idle and ends waiting for its
    /// work.
    pub fn measured(&self) -> bool {
        self.timed.is_some()
    }

    /// Ends the run: a measured one waits for every GPU to finish its work
    /// ([`Runtime::sync`]) and gives the model its time. Fails as `sync`
    /// does.
    pub fn finish(self, rt: &Runtime) -> Result<()> {
        let Some((start, name)) = self.timed else {
            return Ok(());
        };
        rt.sync()?;
        let secs = start.elapsed().as_secs_f64();
        rt.engine()
            .dispatcher()
            .record(self.id, &name, self.backend, self.size, secs);
        Ok(())
    }
}

impl Runtime {
    /// Which of `plans` to run on `backend` for a problem of `size` (the
    /// measure the plans' times grow with): one the model is still
    /// measuring, else the one it expects to finish first. A measured run
    /// starts with the runtime idle ([`sync`](Self::sync)); called where
    /// waiting would deadlock (inside a task), the run is not measured.
    /// The decision is logged ([`decisions`](Self::decisions),
    /// `PEL_EXPLAIN`) under the operation's name, the plan as its variant.
    pub fn choose_plan(&self, plans: &Plans, backend: Backend, size: u64) -> Result<PlanRun> {
        if plans.plans.is_empty() {
            return Err(Error::InvalidInput {
                kernel: plans.name.clone(),
                arg: "plans".to_owned(),
                message: "no plan to choose from".to_owned(),
            });
        }
        let (index, reason) =
            self.engine()
                .dispatcher()
                .choose_plan(&plans.name, &plans.plans, backend, size);
        let (id, label) = plans.plans[index].clone();
        let timed = match reason {
            Reason::Calibrating => match self.sync() {
                Ok(()) => Some((Instant::now(), format!("{}[{label}]", plans.name))),
                Err(Error::WouldDeadlock { .. }) => None,
                Err(e) => return Err(e),
            },
            _ => None,
        };
        Ok(PlanRun {
            index,
            label,
            id,
            backend,
            size,
            timed,
        })
    }
}

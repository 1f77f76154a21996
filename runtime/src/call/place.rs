//! Place: where a call runs. The devices that can take it (a CPU
//! implementation, a GPU within its limits and not failed by this call)
//! go to the dispatcher as [`Candidates`], with what each would have to
//! move; the dispatcher's estimate of the earliest finish decides
//! ([`Dispatcher::place`]). The policy is the dispatcher's: this layer
//! only says what can run the call, and checks what a target names.

use crate::buffer::{Handle, Moves, Table};
use crate::dispatch::{
    Candidate, Candidates, Decision, Dispatcher, MEMO_ARGS, MemoKey, Placement, Reason,
};
use crate::error::{Error, Result};
use crate::ids::{Backend, Target};
use crate::kernel::Kernel;

use std::sync::Arc;

use super::{Call, Engine, split_items};

impl Engine {
    /// Where the call runs: as placed, or decided now.
    pub(super) fn place_call(
        &self,
        table: &mut Table,
        target: Target,
        placed: Option<Placement>,
        kernel: &Kernel,
        call: &Call<'_>,
        avoid: &[usize],
    ) -> Result<Placement> {
        match placed {
            Some(p) => Ok(p),
            None => self.place(table, target, kernel, call, avoid, true),
        }
    }

    /// Decides where a call runs, recorded (counted and logged): the
    /// dispatcher places it among the candidates, or the target names the
    /// backend or the split. GPUs in `avoid` failed this call already.
    /// With `charge`, the chosen device is charged with the call's expected
    /// time under the same lock of the dispatcher (see
    /// [`Dispatcher::charge`]).
    pub(crate) fn place(
        &self,
        table: &Table,
        target: Target,
        kernel: &Kernel,
        call: &Call<'_>,
        avoid: &[usize],
        charge: bool,
    ) -> Result<Placement> {
        let charged = |d: &mut Dispatcher, p: Placement| {
            if charge {
                d.charge(p.backend, p.expect_s.unwrap_or(0.0));
            }
            p
        };
        let forced = match target {
            Target::On(b) => {
                self.has_device(b)?;
                if b == Backend::Cpu && !kernel.has_cpu() {
                    return Err(Error::NoCpuImplementation {
                        kernel: kernel.name().to_owned(),
                    });
                }
                Some(b)
            }
            Target::Auto => None,
            Target::Split { gpu, permille } => {
                let p = Placement::of(&self.forced_split(kernel, call, gpu, permille)?, 0);
                return Ok(charged(&mut self.dispatcher(), p));
            }
        };
        // On a simulated machine the queues are the virtual clock's, which
        // a remembered decision would not see.
        let memo = match self.timeline {
            None => memo_key(table, kernel, call, forced, avoid),
            Some(_) => None,
        };
        if let Some(key) = &memo {
            let mut d = self.dispatcher();
            if let Some(p) = d.recall(key) {
                return Ok(charged(&mut d, p));
            }
        }
        self.offer(table, kernel, call, avoid, forced, |d, c| {
            d.place(c, memo).map(|p| charged(d, p))
        })
    }

    /// What [`place`](Self::place) would decide for an automatic call, with
    /// the estimates behind it; nothing is recorded.
    pub(crate) fn explain(
        &self,
        table: &Table,
        kernel: &Kernel,
        call: &Call<'_>,
    ) -> Result<Decision> {
        self.offer(table, kernel, call, &[], None, |d, c| d.explain(c))
    }

    /// Builds the call's candidates (every backend that can run it, with
    /// what it would have to move there) and hands them to `ask` with the
    /// dispatcher.
    fn offer<T>(
        &self,
        table: &Table,
        kernel: &Kernel,
        call: &Call<'_>,
        avoid: &[usize],
        forced: Option<Backend>,
        ask: impl FnOnce(&mut Dispatcher, &Candidates<'_>) -> Result<T>,
    ) -> Result<T> {
        let (args, workgroups) = (&call.args[..], call.workgroups);
        // Every backend, even for a call that names one: its decision shows
        // what the others would have cost. (Offering only the named one
        // made forced calls 0.2 µs cheaper than automatic ones, and
        // `pel bench routing`, which compares the two, read the difference
        // as regret: 1.26 on the smallest calls.)
        let backends = self.implementations(table, kernel, call, avoid);
        let written = args
            .iter()
            .zip(&kernel.reflection().storage)
            .filter(|(_, s)| s.access.writes())
            .map(|(h, _)| h.bytes)
            .sum();
        let why_none = || self.refusals(kernel, args, workgroups, avoid);
        // On a simulated machine: what each device would make the call wait.
        let queue_s = self.timeline.as_ref().map(|t| {
            let access = (&call.reads[..], &call.writes[..]);
            t.backlogs(access, args.iter().map(|h| h.bytes).sum())
        });
        let candidates = Candidates {
            kernel: kernel.id(),
            name: kernel.name(),
            size: call.size,
            forced,
            // The split's own checks cost an allocation: only for kernels
            // declared splittable.
            // (The simulator does not model a split's two halves.)
            splittable: self.timeline.is_none()
                && kernel.is_splittable()
                && split_items(kernel, args, call.params).is_some(),
            written,
            queue_s,
            backends,
            why_none: Some(&why_none),
        };
        let mut d = self.dispatcher();
        // A backend forced for every call (`PEL_BACKEND`, the builder) must
        // exist on this machine.
        if let (Some(f), None) = (d.forced(), forced) {
            self.has_device(f)?;
        }
        ask(&mut d, &candidates)
    }

    /// Every (backend, implementation) that can run the call, backends in
    /// order, each with what it would have to receive first: the kernel's
    /// own implementation and each variant where it has code for the
    /// device, its `can_run` holds, and (a GPU) the launch fits.
    fn implementations(
        &self,
        table: &Table,
        kernel: &Kernel,
        call: &Call<'_>,
        avoid: &[usize],
    ) -> Vec<Candidate> {
        let args = &call.args[..];
        let variants = kernel.built_variants();
        // The arguments' lengths, for a variant's own launch size.
        let lens: Vec<usize> = if variants.is_empty() {
            Vec::new()
        } else {
            args.iter().map(|h| h.len).collect()
        };
        let mut out = Vec::with_capacity(1 + self.gpus.len() * (1 + variants.len()));
        let backends = std::iter::once(Backend::Cpu).chain((0..self.gpus.len()).map(Backend::Gpu));
        for backend in backends {
            if matches!(backend, Backend::Gpu(g) if avoid.contains(&g)) {
                continue;
            }
            let mut moves: Option<Moves> = None;
            for i in 0..=variants.len() {
                let k = kernel.implementation(i as u8);
                let runs = match backend {
                    Backend::Cpu => k.has_cpu(),
                    Backend::Gpu(g) => {
                        let workgroups = if i == 0 {
                            call.workgroups
                        } else {
                            k.workgroups(call.params, &lens)
                        };
                        k.on_gpu() && self.check_gpu_limits(k, args, g, workgroups).is_ok()
                    }
                };
                let allowed = i == 0
                    || variants[i - 1].can_run.as_ref().is_none_or(|can| {
                        can(match backend {
                            Backend::Cpu => self.cpu.info(),
                            Backend::Gpu(g) => self.gpus[g].info(),
                        })
                    });
                if !(runs && allowed) {
                    continue;
                }
                let moves = moves
                    .get_or_insert_with(|| {
                        let mut m = Moves::default();
                        for h in args {
                            table.moves_to(h.id, backend, &mut m);
                        }
                        m
                    })
                    .clone();
                out.push(Candidate {
                    backend,
                    variant: i as u8,
                    kernel: k.id(),
                    label: (i > 0).then(|| Arc::clone(&variants[i - 1].label)),
                    moves,
                });
            }
        }
        out
    }

    /// Why no backend can run the call: the CPU for want of an
    /// implementation, each GPU for its own reason.
    fn refusals(
        &self,
        kernel: &Kernel,
        args: &[&Handle],
        workgroups: u64,
        avoid: &[usize],
    ) -> String {
        let mut refusals =
            vec!["it has no CPU implementation (built without `.cpu(...)`)".to_owned()];
        for g in 0..self.gpus.len() {
            refusals.push(if avoid.contains(&g) {
                format!("gpu{g} failed this call")
            } else if let Err(e) = self.check_gpu_limits(kernel, args, g, workgroups) {
                e.to_string()
            } else {
                continue;
            });
        }
        if self.gpus.is_empty() {
            refusals.push("this runtime has no GPU".to_owned());
        }
        refusals.join("; ")
    }

    /// The decision for a [`Target::Split`], once the call is known to fit.
    fn forced_split(
        &self,
        kernel: &Kernel,
        call: &Call<'_>,
        gpu: usize,
        permille: u16,
    ) -> Result<Decision> {
        let (args, params, size, workgroups) =
            (&call.args[..], call.params, call.size, call.workgroups);
        let backend = Backend::Gpu(gpu);
        self.has_device(backend)?;
        self.check_gpu_limits(kernel, args, gpu, workgroups)?;
        let invalid = |message: String| Error::InvalidInput {
            kernel: kernel.name().to_owned(),
            arg: "target".to_owned(),
            message,
        };
        if !(1..=999).contains(&permille) {
            return Err(invalid(format!(
                "a split gives the GPU 1 to 999 thousandths of the items, not {permille}"
            )));
        }
        if split_items(kernel, args, params).is_none() {
            return Err(invalid(if kernel.is_splittable() {
                "this call cannot be split: it has fewer than 2 items, or a written buffer is not a whole number of elements per item".to_owned()
            } else {
                "the kernel was not declared splittable (KernelBuilder::splittable)".to_owned()
            }));
        }
        Ok(Decision {
            kernel: kernel.name().to_owned(),
            size,
            chosen: backend,
            variant: None,
            reason: Reason::Forced,
            estimates: Vec::new(),
            split: Some(permille as f64 / 1000.0),
            excluded: Vec::new(),
        })
    }

    /// Whether GPU `g` can run the call at all, and right: every argument
    /// within its binding limit, and the launch within its limits and one
    /// the shader can index (see `Device::check_call`).
    pub(crate) fn check_gpu_limits(
        &self,
        kernel: &Kernel,
        args: &[&Handle],
        g: usize,
        workgroups: u64,
    ) -> Result<()> {
        let gpu = &self.gpus[g];
        gpu.check_alive()?;
        if let Some((need, budget)) = self.over_budget(args, g) {
            return Err(Error::OutOfMemory {
                device: format!("gpu{g} ({})", gpu.info().name),
                doing: format!(
                    "running `{}`, whose arguments need {} together",
                    kernel.name(),
                    crate::ids::human_bytes(need)
                ),
                message: format!(
                    "over the memory budget of {} (PEL_GPU_MEMORY_BUDGET)",
                    crate::ids::human_bytes(budget)
                ),
            });
        }
        if let Some(limits) = gpu.limits() {
            let limit = limits.max_storage_binding.min(limits.max_buffer);
            for (index, (h, binding)) in args.iter().zip(&kernel.reflection().storage).enumerate() {
                if h.bytes > limit {
                    return Err(Error::BindingTooLarge {
                        kernel: kernel.name().to_owned(),
                        index,
                        name: binding.name.clone(),
                        size: h.bytes,
                        limit,
                        device: format!("gpu{g} ({})", gpu.info().name),
                    });
                }
            }
        }
        gpu.check_call(
            kernel,
            &mut args.iter().map(|h| h.bytes),
            kernel.params_size(),
            workgroups,
        )
    }

    /// Whether the call's arguments together fit GPU `g`'s memory budget
    /// (always, without one): a call that cannot fit is not retried.
    pub(super) fn within_budget(&self, args: &[&Handle], g: usize) -> bool {
        self.over_budget(args, g).is_none()
    }

    /// (what the arguments need together, the budget) when they exceed GPU
    /// `g`'s memory budget.
    fn over_budget(&self, args: &[&Handle], g: usize) -> Option<(u64, u64)> {
        let budget = self.gpus[g].budget()?;
        let need: u64 = args.iter().map(|h| h.bytes).sum();
        (need > budget).then_some((need, budget))
    }
}

/// The key a decision for this call is remembered under (see
/// [`Dispatcher::recall`]): `None` where it is always decided afresh (a
/// call avoiding a failed GPU, of a splittable kernel, or with more than
/// [`MEMO_ARGS`] arguments).
fn memo_key(
    table: &Table,
    kernel: &Kernel,
    call: &Call<'_>,
    forced: Option<Backend>,
    avoid: &[usize],
) -> Option<MemoKey> {
    if !avoid.is_empty() || kernel.is_splittable() || call.args.len() > MEMO_ARGS {
        return None;
    }
    let mut args = [(0, 0); MEMO_ARGS];
    for (slot, h) in args.iter_mut().zip(&call.args) {
        *slot = (h.bytes, table.residency(h.id)?);
    }
    Some(MemoKey {
        kernel: kernel.id(),
        // Its variants' identities, in order: 0 for none.
        variants: kernel
            .built_variants()
            .iter()
            .fold(0, |h, v| h.rotate_left(7) ^ v.kernel.id()),
        size: call.size,
        workgroups: call.workgroups,
        forced,
        args,
    })
}

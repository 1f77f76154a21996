//! Place: where a call runs. The devices that can take it (a CPU
//! implementation, a GPU within its limits and not failed by this call)
//! go to the dispatcher with what each would have to move; the
//! dispatcher's estimate of the earliest finish decides.

use crate::buffer::{Handle, Moves, Table};
use crate::dispatch::{self, Decision, Reason};
use crate::error::{Error, Result};
use crate::ids::{Backend, Target};
use crate::kernel::Kernel;

use super::{Call, Engine, Placement, split_items};

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
        if let Some(p) = placed {
            return Ok(p);
        }
        let d = self.decide(table, target, kernel, call, avoid, true)?;
        Ok(Placement {
            backend: d.chosen,
            reason: d.reason,
            split: d.split,
        })
    }

    /// The placement decision for a call (`commit`: a real call, counted and
    /// logged; otherwise an explanation).
    pub(crate) fn decide(
        &self,
        table: &Table,
        target: Target,
        kernel: &Kernel,
        call: &Call<'_>,
        avoid: &[usize],
        commit: bool,
    ) -> Result<Decision> {
        let (args, params, size, workgroups) =
            (&call.args[..], call.params, call.size, call.workgroups);
        let forced = match target {
            Target::On(b) => {
                self.device(b)?;
                if b == Backend::Cpu && !kernel.has_cpu() {
                    return Err(Error::NoCpuImplementation {
                        kernel: kernel.name().to_owned(),
                    });
                }
                Some(b)
            }
            Target::Auto => None,
            Target::Split { gpu, permille } => {
                return self.forced_split(kernel, call, gpu, permille);
            }
        };
        let mut d = self.dispatcher();
        for t in self.counters.take_timed() {
            d.observe_transfer(t.gpu, t.up, t.bytes, t.secs);
        }
        let candidates: Vec<(Backend, f64, f64)> = std::iter::once(Backend::Cpu)
            .chain((0..self.gpus.len()).map(Backend::Gpu))
            .filter(|&b| match b {
                Backend::Cpu => kernel.has_cpu(),
                Backend::Gpu(g) => {
                    !avoid.contains(&g)
                        && self.check_gpu_limits(kernel, args, g, workgroups).is_ok()
                }
            })
            .map(|b| {
                let mut moves = Moves::default();
                for h in args {
                    table.moves_to(h.id, b, &mut moves);
                }
                // Outputs left on a GPU come home as often as this kernel's
                // outputs have been needed on the host before.
                if let Backend::Gpu(g) = b {
                    let p = d.readback_probability(kernel.id());
                    let written: u64 = args
                        .iter()
                        .zip(&kernel.reflection().storage)
                        .filter(|(_, s)| s.access.writes())
                        .map(|(h, _)| h.bytes)
                        .sum();
                    if p > 0.0 && written > 0 {
                        let back = d.transfer_secs(&Moves {
                            up: Vec::new(),
                            down: vec![(g, written)],
                        });
                        return (b, d.transfer_secs(&moves) + p * back, d.queued(b));
                    }
                }
                (b, d.transfer_secs(&moves), d.queued(b))
            })
            .collect();
        if let (Some(f), None) = (d.forced, forced) {
            self.device(f)?;
        }
        if candidates.is_empty() && forced.or(d.forced).is_none() {
            // Why each GPU cannot take it, worded only now.
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
            return Err(Error::NoBackend {
                kernel: kernel.name().to_owned(),
                reason: refusals.join("; "),
            });
        }
        let calibrations = d.calibration_runs;
        let mut decision = d.decide(kernel.id(), kernel.name(), size, &candidates, forced)?;
        // A splittable call the model has calibrated on every device may
        // run partly on the best GPU and partly on the CPU.
        if forced.is_none()
            && d.forced.is_none()
            && decision.reason == Reason::Modelled
            && split_items(kernel, args, params).is_some()
        {
            let kept = d.split_gpu(kernel.id(), size);
            let (cpu, gpu) = dispatch::split::split_pair(&decision.estimates, kept);
            if let (Some(c), Some(g)) = (cpu, gpu) {
                let (c, g) = (c.clone(), g.clone());
                if let Some((share, reason)) = d.split_choice(kernel.id(), size, &c, &g) {
                    decision.chosen = g.backend;
                    decision.reason = reason;
                    decision.split = Some(share);
                }
            }
        }
        if !commit {
            d.calibration_runs = calibrations;
            return Ok(decision);
        }
        // The log keeps the whole decision; the caller needs only its verdict.
        let verdict = Decision {
            kernel: String::new(),
            size,
            chosen: decision.chosen,
            reason: decision.reason,
            estimates: Vec::new(),
            split: decision.split,
            excluded: decision.excluded.clone(),
        };
        d.log(decision, self.explain);
        Ok(verdict)
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
        self.device(backend)?;
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

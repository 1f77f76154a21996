//! Fault injection, off by default: every fault pel recovers from can be
//! made to happen on any machine, deterministically, so recovery is tested
//! on real adapters. Set `PEL_INJECT` (items separated by commas) or call
//! [`RuntimeBuilder::inject`](crate::RuntimeBuilder::inject):
//!
//! | item | fault |
//! |---|---|
//! | `gpu-lost@N` | the GPU that would run the (N+1)-th GPU kernel is lost instead |
//! | `gpu-oom` | every allocation of a GPU buffer for kernel arguments fails as out of memory |
//! | `cpu-panic@KERNEL` | that kernel's CPU implementation writes garbage into the first half of its outputs, then panics |
//! | `gpu-reject@KERNEL` | every GPU rejects that kernel's pipeline, as a driver that cannot compile it would |
//! | `slow@DEVICE:FACTOR` | kernels on `cpu`, `gpu` (the first GPU) or `gpuN` take FACTOR times as long (the device sleeps for the difference) |
//!
//! A fault that could never fire is refused rather than ignored, so a test
//! that sets one cannot pass for the wrong reason: an empty item (two
//! commas in a row, one at either end), the same fault twice, and, once
//! the runtime knows its GPUs, a fault on a GPU it does not have.

use std::str::FromStr;

use crate::error::Error;
use crate::ids::Backend;

/// Faults to inject; see the [module documentation](self).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inject {
    /// Lose a GPU once this many GPU kernels have run.
    pub gpu_lost_after: Option<u64>,
    /// Every GPU allocation fails.
    pub gpu_oom: bool,
    /// Kernels whose CPU implementation panics halfway.
    pub cpu_panic: Vec<String>,
    /// Kernels whose pipeline every GPU rejects.
    pub gpu_reject: Vec<String>,
    /// Devices made slower, by a factor of at least 1.
    pub slow: Vec<(Backend, f64)>,
}

impl Inject {
    /// Whether anything is injected.
    pub fn any(&self) -> bool {
        *self != Inject::default()
    }

    /// The slowdown factor of `backend` (1 when none).
    pub(crate) fn slowdown(&self, backend: Backend) -> f64 {
        self.slow
            .iter()
            .filter(|(b, _)| *b == backend)
            .map(|(_, f)| *f)
            .fold(1.0, f64::max)
    }

    /// Refuses faults on GPUs a runtime with `gpus` GPUs does not have:
    /// they would never fire.
    pub(crate) fn check_devices(&self, gpus: usize) -> Result<(), Error> {
        let have = match gpus {
            0 => "this runtime has no GPU".to_owned(),
            1 => "this runtime has 1 GPU (gpu0)".to_owned(),
            n => format!(
                "this runtime has {n} GPUs ({})",
                (0..n)
                    .map(|g| format!("gpu{g}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let never = |item: String| Error::BadInjection {
            item,
            message: format!("{have}: the fault could never happen"),
        };
        if gpus == 0 {
            if let Some(n) = self.gpu_lost_after {
                return Err(never(format!("gpu-lost@{n}")));
            }
            if self.gpu_oom {
                return Err(never("gpu-oom".to_owned()));
            }
            if let Some(k) = self.gpu_reject.first() {
                return Err(never(format!("gpu-reject@{k}")));
            }
        }
        for &(backend, factor) in &self.slow {
            if let Backend::Gpu(g) = backend {
                if g >= gpus {
                    return Err(never(format!("slow@gpu{g}:{factor}")));
                }
            }
        }
        Ok(())
    }
}

impl FromStr for Inject {
    type Err = Error;

    /// Parses items such as `gpu-lost@3,slow@gpu0:4`. An empty or blank
    /// setting injects nothing; an empty item or a fault given twice is an
    /// error.
    fn from_str(spec: &str) -> Result<Inject, Error> {
        let mut inject = Inject::default();
        if spec.trim().is_empty() {
            return Ok(inject);
        }
        let items: Vec<&str> = spec.split(',').map(str::trim).collect();
        for (i, &item) in items.iter().enumerate() {
            if item.is_empty() {
                return Err(Error::BadInjection {
                    item: spec.to_owned(),
                    message: format!(
                        "item {} of {} is empty (two commas in a row, or one at either end)",
                        i + 1,
                        items.len()
                    ),
                });
            }
            let bad = |message: &str| Error::BadInjection {
                item: item.to_owned(),
                message: message.to_owned(),
            };
            // The same fault twice: the second would override or repeat the
            // first, so one of them could never fire as written.
            let twice = |first: &str| {
                bad(&format!(
                    "the same fault as `{first}`, given earlier; give each fault once"
                ))
            };
            let earlier = |same: &dyn Fn(&str) -> bool| {
                items[..i].iter().copied().find(|e| same(e)).unwrap_or("")
            };
            let (name, arg) = item.split_once('@').unwrap_or((item, ""));
            match name {
                "gpu-lost" => {
                    let n = arg
                        .parse()
                        .map_err(|_| bad("expected gpu-lost@N, N a number of GPU kernels"))?;
                    if inject.gpu_lost_after.is_some() {
                        return Err(twice(earlier(&|e| e.starts_with("gpu-lost@"))));
                    }
                    inject.gpu_lost_after = Some(n);
                }
                "gpu-oom" if arg.is_empty() => {
                    if inject.gpu_oom {
                        return Err(twice("gpu-oom"));
                    }
                    inject.gpu_oom = true;
                }
                "cpu-panic" if !arg.is_empty() => {
                    if inject.cpu_panic.iter().any(|k| k == arg) {
                        return Err(twice(item));
                    }
                    inject.cpu_panic.push(arg.to_owned());
                }
                "cpu-panic" => return Err(bad("expected cpu-panic@KERNEL")),
                "gpu-reject" if !arg.is_empty() => {
                    if inject.gpu_reject.iter().any(|k| k == arg) {
                        return Err(twice(item));
                    }
                    inject.gpu_reject.push(arg.to_owned());
                }
                "gpu-reject" => return Err(bad("expected gpu-reject@KERNEL")),
                "slow" => {
                    let usage = "expected slow@DEVICE:FACTOR, DEVICE cpu, gpu or gpuN and FACTOR a number ≥ 1";
                    let (device, factor) = arg.split_once(':').ok_or_else(|| bad(usage))?;
                    let backend = slow_device(device).ok_or_else(|| bad(usage))?;
                    let factor: f64 = factor.parse().map_err(|_| bad(usage))?;
                    if !(factor.is_finite() && (1.0..=1e6).contains(&factor)) {
                        return Err(bad(usage));
                    }
                    if inject.slow.iter().any(|(b, _)| *b == backend) {
                        return Err(twice(earlier(&|e| {
                            e.strip_prefix("slow@")
                                .and_then(|a| a.split_once(':'))
                                .is_some_and(|(d, _)| slow_device(d) == Some(backend))
                        })));
                    }
                    inject.slow.push((backend, factor));
                }
                _ => {
                    return Err(bad(
                        "unknown fault; one of gpu-lost@N, gpu-oom, cpu-panic@KERNEL, gpu-reject@KERNEL, slow@DEVICE:FACTOR",
                    ));
                }
            }
        }
        Ok(inject)
    }
}

/// The device of a `slow@DEVICE:FACTOR` item: `cpu`, `gpu` (the first) or
/// `gpuN`.
fn slow_device(device: &str) -> Option<Backend> {
    match device {
        "cpu" => Some(Backend::Cpu),
        "gpu" => Some(Backend::Gpu(0)),
        d => d
            .strip_prefix("gpu")
            .and_then(|i| i.parse().ok())
            .map(Backend::Gpu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_parses_and_bad_items_are_errors() {
        let i: Inject = "gpu-lost@3, gpu-oom,cpu-panic@saxpy,slow@gpu1:4,slow@cpu:2.5"
            .parse()
            .unwrap();
        assert_eq!(i.gpu_lost_after, Some(3));
        assert!(i.gpu_oom);
        assert_eq!(i.cpu_panic, vec!["saxpy".to_owned()]);
        assert_eq!(i.slowdown(Backend::Gpu(1)), 4.0);
        assert_eq!(i.slowdown(Backend::Cpu), 2.5);
        assert_eq!(i.slowdown(Backend::Gpu(0)), 1.0);
        assert!(!"".parse::<Inject>().unwrap().any());
        for bad in [
            "gpu-lost",
            "gpu-lost@x",
            "gpu-oom@2",
            "cpu-panic",
            "slow@gpu",
            "slow@tpu:2",
            "slow@cpu:0.5",
            "slow@cpu:NaN",
            "meteor",
        ] {
            let e = bad.parse::<Inject>().unwrap_err();
            assert!(e.to_string().contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn empty_items_are_refused() {
        for spec in [
            "gpu-lost@1,,gpu-oom",
            "gpu-oom,",
            ",gpu-oom",
            "gpu-oom, ,slow@cpu:2",
        ] {
            let e = spec.parse::<Inject>().unwrap_err().to_string();
            assert!(e.contains(spec) && e.contains("is empty"), "{spec}: {e}");
        }
        assert!(!"  ".parse::<Inject>().unwrap().any(), "blank: nothing");
    }

    #[test]
    fn a_fault_given_twice_is_refused() {
        for (spec, second, first) in [
            ("gpu-lost@1,gpu-lost@5", "gpu-lost@5", "gpu-lost@1"),
            ("gpu-oom,gpu-oom", "gpu-oom", "gpu-oom"),
            (
                "cpu-panic@saxpy,cpu-panic@saxpy",
                "cpu-panic@saxpy",
                "cpu-panic@saxpy",
            ),
            (
                "slow@gpu0:2,slow@cpu:2,slow@gpu0:3",
                "slow@gpu0:3",
                "slow@gpu0:2",
            ),
            ("slow@gpu:2,slow@gpu0:3", "slow@gpu0:3", "slow@gpu:2"),
        ] {
            let e = spec.parse::<Inject>().unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{second}`")) && e.contains(&format!("as `{first}`")),
                "{spec}: {e}"
            );
        }
        // Different kernels and devices are different faults.
        let i: Inject = "cpu-panic@a,cpu-panic@b,slow@gpu0:2,slow@gpu1:2,slow@cpu:2"
            .parse()
            .unwrap();
        assert_eq!(i.cpu_panic.len(), 2);
        assert_eq!(i.slow.len(), 3);
    }

    #[test]
    fn faults_on_missing_gpus_are_refused() {
        let i: Inject = "slow@gpu1:2".parse().unwrap();
        assert!(i.check_devices(2).is_ok());
        let e = i.check_devices(1).unwrap_err().to_string();
        assert!(
            e.contains("slow@gpu1:2") && e.contains("1 GPU (gpu0)"),
            "{e}"
        );
        let i: Inject = "slow@gpu7:2".parse().unwrap();
        let e = i.check_devices(2).unwrap_err().to_string();
        assert!(e.contains("slow@gpu7:2"), "{e}");
        assert!(e.contains("this runtime has 2 GPUs (gpu0, gpu1)"), "{e}");
        for spec in ["gpu-lost@3", "gpu-oom", "slow@gpu:2"] {
            let i: Inject = spec.parse().unwrap();
            assert!(i.check_devices(1).is_ok(), "{spec}");
            let e = i.check_devices(0).unwrap_err().to_string();
            assert!(e.contains("this runtime has no GPU"), "{spec}: {e}");
        }
        let cpu_only: Inject = "slow@cpu:2,cpu-panic@saxpy".parse().unwrap();
        assert!(cpu_only.check_devices(0).is_ok());
    }
}

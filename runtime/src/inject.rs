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
//! | `slow@DEVICE:FACTOR` | kernels on `cpu`, `gpu` or `gpuN` take FACTOR times as long (the device sleeps for the difference) |

use std::str::FromStr;

use crate::device::Backend;
use crate::error::Error;

/// Faults to inject; see the [module documentation](self).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inject {
    /// Lose a GPU once this many GPU kernels have run.
    pub gpu_lost_after: Option<u64>,
    /// Every GPU allocation fails.
    pub gpu_oom: bool,
    /// Kernels whose CPU implementation panics halfway.
    pub cpu_panic: Vec<String>,
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

    /// Reads `PEL_INJECT` (empty or unset: nothing).
    pub(crate) fn from_env() -> Result<Inject, Error> {
        match std::env::var("PEL_INJECT") {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(Inject::default()),
        }
    }
}

impl FromStr for Inject {
    type Err = Error;

    /// Parses items such as `gpu-lost@3,slow@gpu0:4`.
    fn from_str(spec: &str) -> Result<Inject, Error> {
        let mut inject = Inject::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = |message: &str| Error::BadInjection {
                item: item.to_owned(),
                message: message.to_owned(),
            };
            let (name, arg) = item.split_once('@').unwrap_or((item, ""));
            match name {
                "gpu-lost" => {
                    let n = arg
                        .parse()
                        .map_err(|_| bad("expected gpu-lost@N, N a number of GPU kernels"))?;
                    inject.gpu_lost_after = Some(n);
                }
                "gpu-oom" if arg.is_empty() => inject.gpu_oom = true,
                "cpu-panic" if !arg.is_empty() => inject.cpu_panic.push(arg.to_owned()),
                "cpu-panic" => return Err(bad("expected cpu-panic@KERNEL")),
                "slow" => {
                    let usage = "expected slow@DEVICE:FACTOR, DEVICE cpu, gpu or gpuN and FACTOR a number ≥ 1";
                    let (device, factor) = arg.split_once(':').ok_or_else(|| bad(usage))?;
                    let backend = match device {
                        "cpu" => Backend::Cpu,
                        "gpu" => Backend::Gpu(0),
                        d => d
                            .strip_prefix("gpu")
                            .and_then(|i| i.parse().ok())
                            .map(Backend::Gpu)
                            .ok_or_else(|| bad(usage))?,
                    };
                    let factor: f64 = factor.parse().map_err(|_| bad(usage))?;
                    if !(factor.is_finite() && (1.0..=1e6).contains(&factor)) {
                        return Err(bad(usage));
                    }
                    inject.slow.push((backend, factor));
                }
                _ => {
                    return Err(bad(
                        "unknown fault; one of gpu-lost@N, gpu-oom, cpu-panic@KERNEL, slow@DEVICE:FACTOR",
                    ));
                }
            }
        }
        Ok(inject)
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
}

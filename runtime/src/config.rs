//! Configuration: every `PEL_*` environment variable, read once, when a
//! runtime is built, into one [`Config`] that the builder's own settings
//! override. Nothing else in pel reads the environment (wgpu reads its
//! own `WGPU_*` variables). A leaf: it uses only the vocabulary modules.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::ids::Backend;
use crate::inject::Inject;

/// What the environment asks for. Unset or empty variables leave a field
/// at its default; a value pel cannot read is an error where a wrong guess
/// would test or measure the wrong thing (`PEL_INJECT`,
/// `PEL_GPU_MEMORY_BUDGET`: kept, and returned by the build unless the
/// builder sets that field itself), and a warning otherwise.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `PEL_GPU=off|0|false|no`: open no GPU.
    pub(crate) gpu_off: bool,
    /// `PEL_CPU_THREADS`: threads in the CPU pool.
    pub(crate) cpu_threads: Option<usize>,
    /// `PEL_CALIBRATION_SAMPLES`: samples per backend before the model is
    /// trusted.
    pub(crate) calibration_samples: Option<usize>,
    /// `PEL_BACKEND=cpu|gpu|gpuN|auto`: force automatic calls somewhere.
    pub(crate) backend: Option<Backend>,
    /// `PEL_TRACE=FILE`: write a trace there when the runtime drops.
    pub(crate) trace: Option<PathBuf>,
    /// `PEL_INJECT`: faults to inject.
    pub(crate) inject: Result<Inject>,
    /// `PEL_GPU_MEMORY_BUDGET`: bytes per GPU.
    pub(crate) gpu_budget: Result<Option<u64>>,
    /// `PEL_EXPLAIN`: print every placement decision.
    pub(crate) explain: bool,
    /// `PEL_MODEL_DIR`: where performance models are kept.
    pub(crate) model_dir: Option<PathBuf>,
    /// `PEL_GPU_BATCH`: launches a GPU records before it submits them
    /// (1: every launch is submitted and waited for).
    pub(crate) gpu_batch: Option<usize>,
}

impl Config {
    /// Reads the environment.
    pub(crate) fn from_env() -> Config {
        Config::from_vars(|k| std::env::var(k).ok())
    }

    /// Reads the variables `var` gives (the environment, or a test's map).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Config {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let positive = |k: &str| {
            var(k)
                .and_then(|s| s.trim().parse().ok())
                .filter(|&n: &usize| n > 0)
        };
        let inject = match var("PEL_INJECT") {
            Some(v) => v.parse(),
            None => Ok(Inject::default()),
        };
        let gpu_budget = match var("PEL_GPU_MEMORY_BUDGET") {
            None => Ok(None),
            Some(v) => parse_bytes(v.trim())
                .map(Some)
                .ok_or_else(|| Error::InvalidInput {
                    kernel: "PEL_GPU_MEMORY_BUDGET".to_owned(),
                    arg: v.trim().to_owned(),
                    message:
                        "expected bytes, or a number with KiB, MiB, GiB, KB, MB or GB, above 0"
                            .to_owned(),
                }),
        };
        Config {
            gpu_off: matches!(
                var("PEL_GPU").as_deref(),
                Some("off" | "0" | "false" | "no")
            ),
            cpu_threads: positive("PEL_CPU_THREADS"),
            calibration_samples: positive("PEL_CALIBRATION_SAMPLES"),
            backend: var("PEL_BACKEND").and_then(|v| parse_backend(&v)),
            trace: var("PEL_TRACE").map(PathBuf::from),
            inject,
            gpu_budget,
            explain: var("PEL_EXPLAIN").is_some_and(|v| v != "0"),
            model_dir: var("PEL_MODEL_DIR").map(PathBuf::from),
            gpu_batch: positive("PEL_GPU_BATCH"),
        }
    }
}

/// `PEL_BACKEND`: `cpu`, `gpu` (the first GPU), `gpuN`, or `auto`.
fn parse_backend(v: &str) -> Option<Backend> {
    match v.trim() {
        "" | "auto" => None,
        "cpu" => Some(Backend::Cpu),
        "gpu" => Some(Backend::Gpu(0)),
        other => match other.strip_prefix("gpu").and_then(|n| n.parse().ok()) {
            Some(i) => Some(Backend::Gpu(i)),
            None => {
                eprintln!(
                    "pel: warning: PEL_BACKEND={other} is not cpu, gpu, gpuN or auto; ignored"
                );
                None
            }
        },
    }
}

/// `64MiB`, `1.5GB`, `4096`: bytes.
fn parse_bytes(v: &str) -> Option<u64> {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return None,
    };
    let bytes = num * scale;
    (1.0..1e19).contains(&bytes).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn unset_and_empty_variables_are_defaults() {
        let c = config(&[("PEL_GPU", ""), ("PEL_BACKEND", " ")]);
        assert!(!c.gpu_off && c.backend.is_none() && !c.explain);
        assert!(matches!(c.gpu_budget, Ok(None)) && !c.inject.unwrap().any());
    }

    #[test]
    fn each_variable_is_read() {
        let c = config(&[
            ("PEL_GPU", "off"),
            ("PEL_CPU_THREADS", "3"),
            ("PEL_CALIBRATION_SAMPLES", "7"),
            ("PEL_BACKEND", "gpu1"),
            ("PEL_TRACE", "t.json"),
            ("PEL_GPU_MEMORY_BUDGET", "64MiB"),
            ("PEL_EXPLAIN", "1"),
            ("PEL_MODEL_DIR", "models"),
            ("PEL_INJECT", "slow@cpu:2"),
        ]);
        assert!(c.gpu_off && c.explain);
        assert_eq!((c.cpu_threads, c.calibration_samples), (Some(3), Some(7)));
        assert_eq!(c.backend, Some(Backend::Gpu(1)));
        assert_eq!(c.gpu_budget.unwrap(), Some(64 << 20));
        assert_eq!(c.trace, Some(PathBuf::from("t.json")));
        assert_eq!(c.model_dir, Some(PathBuf::from("models")));
        assert!(c.inject.unwrap().any());
    }

    #[test]
    fn unreadable_values_that_matter_are_errors() {
        assert!(
            config(&[("PEL_GPU_MEMORY_BUDGET", "lots")])
                .gpu_budget
                .is_err()
        );
        assert!(config(&[("PEL_INJECT", "gremlins")]).inject.is_err());
        // A thread count that is not one is ignored, as before.
        assert_eq!(config(&[("PEL_CPU_THREADS", "0")]).cpu_threads, None);
    }

    #[test]
    fn sizes_read_with_units() {
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_bytes("2 KiB"), Some(2048));
        assert_eq!(parse_bytes("0"), None);
        assert_eq!(parse_bytes("12parsecs"), None);
    }
}

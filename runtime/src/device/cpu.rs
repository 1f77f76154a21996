//! The CPU backend: a rayon pool of its own, so pel's kernels neither queue
//! behind nor starve the application's global pool.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{Backend, DeviceInfo, DeviceKind};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, RawSlice};

pub(crate) struct CpuDevice {
    pool: rayon::ThreadPool,
    info: DeviceInfo,
}

impl CpuDevice {
    pub(crate) fn new(threads: Option<usize>) -> Self {
        let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("pel-cpu-{i}"));
        if let Some(n) = threads {
            builder = builder.num_threads(n);
        }
        // Building a pool fails only when the OS refuses threads; then fall
        // back to a single thread rather than refusing to start at all.
        let pool = builder.build().unwrap_or_else(|_| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .expect("a one-thread rayon pool")
        });
        let info = DeviceInfo {
            backend: Backend::Cpu,
            name: cpu_name(),
            driver: format!("rayon, {} threads", pool.current_num_threads()),
            api: "rayon".to_owned(),
            kind: DeviceKind::Cpu,
            threads: pool.current_num_threads(),
            limits: None,
        };
        CpuDevice { pool, info }
    }

    pub(crate) fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Runs the kernel's CPU implementation in the pool; a panic becomes
    /// [`Error::KernelPanicked`].
    pub(crate) fn execute(&self, kernel: &Kernel, args: &[RawSlice], params: &[u8]) -> Result<()> {
        self.pool
            .install(|| catch_unwind(AssertUnwindSafe(|| kernel.run_cpu(args, params))))
            .map_err(|payload| Error::KernelPanicked {
                kernel: kernel.name().to_owned(),
                message: panic_message(payload.as_ref()),
            })
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| format!("{} host CPU", std::env::consts::ARCH))
}

//! The CPU backend: rayon. By default the kernels run on the calling thread
//! and fan out over rayon's global pool, which costs nothing per call; with
//! a thread count set (`PEL_CPU_THREADS`, or the builder) pel builds a pool
//! of its own and runs kernels inside it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{Backend, DeviceInfo, DeviceKind};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, RawSlice};

pub(crate) struct CpuDevice {
    /// `None`: rayon's global pool.
    pool: Option<rayon::ThreadPool>,
    info: DeviceInfo,
}

impl CpuDevice {
    pub(crate) fn new(threads: Option<usize>) -> Self {
        // Building a pool fails only when the OS refuses threads; then the
        // global pool serves rather than refusing to start at all.
        let pool = threads.and_then(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("pel-cpu-{i}"))
                .build()
                .ok()
        });
        let threads = pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
        let info = DeviceInfo {
            backend: Backend::Cpu,
            name: cpu_name(),
            driver: format!("rayon, {threads} threads"),
            api: "rayon".to_owned(),
            kind: DeviceKind::Cpu,
            threads,
            limits: None,
            timestamps: false,
        };
        CpuDevice { pool, info }
    }

    pub(crate) fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Runs the kernel's CPU implementation in the pool; a panic becomes
    /// [`Error::KernelPanicked`], a kernel without one
    /// [`Error::NoCpuImplementation`].
    pub(crate) fn execute(&self, kernel: &Kernel, args: &[RawSlice], params: &[u8]) -> Result<()> {
        self.guarded(kernel, || kernel.run_cpu(args, params))
    }

    /// Runs `f` in the pool; a panic becomes [`Error::KernelPanicked`].
    fn guarded(&self, kernel: &Kernel, f: impl FnOnce() -> Result<()> + Send) -> Result<()> {
        let run = || catch_unwind(AssertUnwindSafe(f));
        match &self.pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
        .map_err(|payload| Error::KernelPanicked {
            kernel: kernel.name().to_owned(),
            message: panic_message(payload.as_ref()),
        })?
    }
}

impl CpuDevice {
    /// `cpu-panic@KERNEL`: writes garbage into the start of every written
    /// argument, as a kernel that fails halfway would, then panics; the
    /// panic becomes [`Error::KernelPanicked`] as a real one does.
    pub(crate) fn execute_faulty(
        &self,
        kernel: &Kernel,
        args: &[RawSlice],
        written: &[bool],
    ) -> Result<()> {
        self.guarded(kernel, || {
            for (a, _) in args.iter().zip(written).filter(|(_, w)| **w) {
                // SAFETY: `a` is the host copy of a written argument,
                // `a.bytes` long (the runtime sized it from the buffer's
                // element size), held exclusively by this call's lease
                // (aliased writes are refused); half of it is in bounds,
                // and any bytes are a valid `Element` (Pod). No safe code
                // can break this: `RawSlice`s are made only by the runtime.
                unsafe { std::ptr::write_bytes(a.ptr, 0xFF, a.bytes / 2) };
            }
            panic!(
                "injected by PEL_INJECT=cpu-panic@{}, after writing part of its outputs",
                kernel.name()
            );
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

//! The CPU backend: rayon. By default the kernels run on the calling thread
//! and fan out over rayon's global pool, which costs nothing per call; with
//! a thread count set (`PEL_CPU_THREADS`, or the builder) pel builds a pool
//! of its own and runs kernels inside it.
//!
//! **Calls from rayon code.** A rayon worker that waits for work in another
//! pool (`ThreadPool::install`), or joins its own `par_iter`, takes other
//! jobs of its pool meanwhile. Were it holding a call's buffer leases, a job
//! it took could need those same leases, lower on its own stack, and wait
//! forever. So a call made on a rayon worker, from outside the pool pel
//! runs kernels in, runs its kernel in pel's pool (rayon's global pool
//! being the caller's own, a pool pel keeps for such calls) from a thread of
//! its own, while the caller blocks without taking other jobs. A call from
//! inside pel's pool (a kernel calling pel) runs inline, as before.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use super::{Backend, DeviceInfo, DeviceKind};
use std::time::Duration;

use super::{Args, Device, Launch};
use crate::error::{Error, Result};
use crate::frames;
use crate::kernel::{Kernel, RawSlice};

pub(crate) struct CpuDevice {
    /// `None`: rayon's global pool.
    pool: Option<rayon::ThreadPool>,
    /// For calls from rayon's own workers when `pool` is the global one.
    apart: OnceLock<Option<rayon::ThreadPool>>,
    info: DeviceInfo,
    /// The CPU of a simulated machine: kernels timed by the description
    /// (and run only if it computes).
    modelled: Option<super::sim::Modelled>,
}

/// How a call reaches the pool its kernel runs in.
enum Route<'a> {
    /// On this thread (its `par_iter`s go to the pool this thread is in,
    /// or the global one).
    Inline,
    /// Through `install`, from a thread that is no rayon worker (it blocks
    /// without taking jobs) or from a worker of that same pool (inline).
    Install(&'a rayon::ThreadPool),
    /// From a rayon worker of another pool: through a thread of its own.
    Apart(&'a rayon::ThreadPool),
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
            batches: false,
        };
        CpuDevice {
            pool,
            apart: OnceLock::new(),
            info,
            modelled: None,
        }
    }

    /// The CPU of a simulated machine of `cores` cores: `modelled` times
    /// its kernels on the virtual clock.
    pub(crate) fn simulated(mut self, cores: usize, modelled: super::sim::Modelled) -> Self {
        self.info.name = format!("simulated CPU, {cores} cores");
        self.info.driver = "simulated".to_owned();
        self.info.kind = DeviceKind::Simulated;
        self.modelled = Some(modelled);
        self
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

    fn route(&self) -> Route<'_> {
        let on_worker = rayon::current_thread_index().is_some();
        match &self.pool {
            Some(pool) if on_worker && pool.current_thread_index().is_none() => Route::Apart(pool),
            Some(pool) => Route::Install(pool),
            None if !on_worker => Route::Inline,
            None => match self.apart_pool() {
                Some(apart) if apart.current_thread_index().is_none() => Route::Apart(apart),
                // A kernel already running apart calls pel: inline there.
                Some(_) => Route::Inline,
                // No pool for it (the OS refused threads): as before.
                None => Route::Inline,
            },
        }
    }

    /// The pool for kernels called from rayon's global workers, made on
    /// first need with as many threads as the global pool.
    fn apart_pool(&self) -> Option<&rayon::ThreadPool> {
        self.apart
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(rayon::current_num_threads())
                    .thread_name(|i| format!("pel-cpu-apart-{i}"))
                    .build()
                    .ok()
            })
            .as_ref()
    }

    /// Runs `f` in the pool; a panic becomes [`Error::KernelPanicked`].
    fn guarded(&self, kernel: &Kernel, f: impl FnOnce() -> Result<()> + Send) -> Result<()> {
        let outcome = match self.route() {
            Route::Inline => caught(f),
            Route::Install(pool) => {
                // The closure may run on a pool thread: it carries what this
                // thread is inside of.
                let held = frames::snapshot();
                pool.install(|| frames::with(held, || caught(f)))
            }
            Route::Apart(pool) => {
                let held = frames::snapshot();
                std::thread::scope(|s| {
                    s.spawn(|| pool.install(|| frames::with(held, || caught(f))))
                        .join()
                })
                .unwrap_or_else(Err)
            }
        };
        outcome.map_err(|payload| Error::KernelPanicked {
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

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

fn caught(f: impl FnOnce() -> Result<()>) -> std::thread::Result<Result<()>> {
    catch_unwind(AssertUnwindSafe(f))
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

impl Device for CpuDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn can_run(&self, kernel: &Kernel) -> Result<()> {
        if kernel.has_cpu() {
            Ok(())
        } else {
            Err(Error::NoCpuImplementation {
                kernel: kernel.name().to_owned(),
            })
        }
    }

    fn execute(&self, l: Launch<'_>) -> Result<Option<Duration>> {
        let Args::Host(raw) = l.args else {
            return Err(self.wrong_args());
        };
        let Some(m) = &self.modelled else {
            return CpuDevice::execute(self, l.kernel, raw, l.params).map(|()| None);
        };
        if m.compute {
            CpuDevice::execute(self, l.kernel, raw, l.params)?;
        }
        let lens: Vec<usize> = raw.iter().map(|r| r.len).collect();
        let bytes = raw.iter().map(|r| r.bytes as u64).sum();
        m.time(l.kernel, l.params, &lens, bytes).map(Some)
    }

    fn virtual_clock(&self) -> bool {
        self.modelled.is_some()
    }
}

//! The engine's unit tests on simulated devices: the real buffer table,
//! dispatcher, task graph, lineage and recovery, with GPUs that keep their
//! copies in host memory, compute with the kernel's CPU implementation and
//! report times from a cost function. No adapter, no wall-clock luck: a
//! simulated time is what its cost function says, so placement outcomes are
//! fixed by making sim costs far from anything the real CPU can take.
//!
//! - `validity`: where copies live after uploads, writes, reads, zeros and
//!   host writes; `Validity::describe`; virtual times.
//! - `lineage`: replay after a loss, the counters, calls lost mid-flight,
//!   kernels a simulated device cannot run.
//! - `eviction`: a memory budget too small for two calls' buffers.
//! - `leases`: threads taking turns on a buffer; a kernel using its own
//!   arguments through the runtime.
//! - `edges`: submitted tasks ordered by what their shaders read and write;
//!   failures travelling down the edges.
//! - `placement`: calibration, drift, a lost device, forced targets.

mod edges;
mod eviction;
mod leases;
mod lineage;
mod machine;
mod placement;
mod validity;

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use super::*;
use crate::device::sim::{SimDevice, SimOp};
use crate::dispatch::Reason;
use crate::kernel::{Read, ReadWrite};

/// `y` from `x`: `(Read<f32>, ReadWrite<f32>)`. The shader's arithmetic is
/// never run (a simulated device computes with the CPU closure); its
/// bindings give the access modes.
const BINARY: &str = r#"
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&y) { y[id.x] = y[id.x] + x[id.x]; }
}
"#;

/// One buffer of counters, read and written: `(ReadWrite<u32>,)`.
pub(super) const UNARY: &str = r#"
@group(0) @binding(0) var<storage, read_write> c: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&c) { c[id.x] = c[id.x] + 1u; }
}
"#;

/// A kernel over `(Read<f32>, ReadWrite<f32>)` whose CPU implementation
/// (and so every simulated device's) is `f(x, y)`.
pub(super) fn binary(name: &str, f: impl Fn(&[f32], &mut [f32]) + Send + Sync + 'static) -> Kernel {
    Kernel::builder(name, BINARY)
        .cpu::<(Read<f32>, ReadWrite<f32>)>(move |args, _: &()| {
            let (x, y) = args.split();
            f(x, y)
        })
        .build()
        .unwrap()
}

/// `y += x`.
pub(super) fn add() -> Kernel {
    binary("add", |x, y| {
        for (y, x) in y.iter_mut().zip(x) {
            *y += x;
        }
    })
}

/// `y = x`.
pub(super) fn copy() -> Kernel {
    binary("copy", |x, y| y.copy_from_slice(x))
}

/// A kernel over `(ReadWrite<u32>,)` computing `f(c)`.
pub(super) fn unary(name: &str, f: impl Fn(&mut [u32]) + Send + Sync + 'static) -> Kernel {
    Kernel::builder(name, UNARY)
        .cpu::<(ReadWrite<u32>,)>(move |args, _: &()| f(args.split().0))
        .build()
        .unwrap()
}

/// `c += 1`.
pub(super) fn inc() -> Kernel {
    unary("inc", |c| c.iter_mut().for_each(|v| *v += 1))
}

/// `y += x` without a CPU implementation: GPUs only.
pub(super) fn gpu_only() -> Kernel {
    Kernel::builder("gpu-only", BINARY).build().unwrap()
}

/// A simulated device whose every kernel takes `kernel`, and whose
/// transfers take no time.
pub(super) fn sim(name: &str, kernel: Duration) -> SimDevice {
    SimDevice::new(name).cost(move |op| match op {
        SimOp::Kernel { .. } => kernel,
        SimOp::Upload { .. } | SimOp::Download { .. } => Duration::ZERO,
    })
}

/// A simulated device like [`sim`] that also logs the name of every kernel
/// it runs, in order, into `log`.
pub(super) fn logging(name: &str, kernel: Duration, log: &Log) -> SimDevice {
    let log = Arc::clone(log);
    SimDevice::new(name).cost(move |op| match op {
        SimOp::Kernel { name, .. } => {
            log.lock().unwrap().push((*name).to_owned());
            kernel
        }
        _ => Duration::ZERO,
    })
}

/// The kernels a [`logging`] device ran, in order.
pub(super) type Log = Arc<Mutex<Vec<String>>>;

/// The builder of a runtime whose GPUs are `sims` (`gpu0`, `gpu1`, ...),
/// with a model that starts empty and is never saved.
pub(super) fn builder(sims: &[&SimDevice]) -> RuntimeBuilder {
    Runtime::builder()
        .simulated(sims.iter().map(|s| (*s).clone()).collect())
        .persist_model(false)
        .cpu_threads(2)
}

/// A runtime on `sims`; see [`builder`].
pub(super) fn runtime(sims: &[&SimDevice]) -> Runtime {
    builder(sims).build().unwrap()
}

/// One microsecond, for sim costs.
pub(super) const US: Duration = Duration::from_micros(1);
/// One millisecond, for sim costs.
pub(super) const MS: Duration = Duration::from_millis(1);

/// `y += x` on `backend`, which must take it.
pub(super) fn add_on(rt: &Runtime, backend: Backend, x: &Buffer<f32>, y: &Buffer<f32>) -> RunInfo {
    rt.run_on(backend, &add(), &[x, y], &()).unwrap()
}

/// Where `buf`'s valid copies are, as [`Validity::describe`] names them.
pub(super) fn describe(rt: &Runtime, buf: &Buffer<f32>) -> String {
    rt.validity(buf).unwrap().describe()
}

/// `0.0, 1.0, ... n-1`.
pub(super) fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

/// Runs `f` on a thread of its own and returns its result, failing the test
/// (instead of hanging it) if it has not returned within `secs` seconds.
pub(super) fn within<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("still running after {secs} s (a hang?): {e}"))
}

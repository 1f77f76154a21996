//! # pel-runtime
//!
//! The engine of pel (Parallel Execution Layer): it runs compute kernels on
//! whichever processor does them best and keeps every buffer's data coherent
//! between the host and the GPUs.
//!
//! - A [`Kernel`] is a WGSL compute shader plus a Rust implementation of the
//!   same computation. naga reads the shader's bindings, so the runtime knows
//!   what each kernel reads and writes without being told.
//! - A [`Runtime`] owns a rayon pool and every usable wgpu adapter, and the
//!   [`Buffer`]s. [`Runtime::run_on`] runs a kernel on a chosen [`Backend`];
//!   [`Runtime::run`] chooses.
//! - Buffers move lazily: only when a kernel or a [`Runtime::read`] needs
//!   them somewhere their valid copy is not. [`Runtime::stats`] counts it.
//! - [`Runtime::submit`] returns a [`Task`] at once; tasks are ordered by
//!   what their shaders read and write, placed on the device expected to
//!   finish first given what is queued there, and run on every device at
//!   once. A kernel declared [`splittable`](KernelBuilder::splittable) may
//!   run partly on a GPU and partly on the CPU, at a calibrated share.
//!
//! Every fallible call returns [`Error`], whose message names the kernel,
//! the argument, what was asked and the limit.
//!
//! Environment: `PEL_GPU=off` opens no GPU; `WGPU_BACKEND=vulkan|gl|...`
//! limits the wgpu backends tried; `PEL_CPU_THREADS=N` gives pel a CPU pool
//! of its own; `PEL_BACKEND=cpu|gpu|gpuN` forces every automatic call;
//! `PEL_MODEL_DIR` says where the performance model is kept;
//! `PEL_CALIBRATION_SAMPLES` how many samples calibrate a size;
//! `PEL_EXPLAIN=1` prints every placement decision; `PEL_TRACE=FILE` writes
//! a Chrome trace of every kernel and transfer when the runtime drops.

#![deny(missing_docs, unreachable_pub)]

// Layers, top down: each module uses only the ones below it.
mod buffer;
mod call;
pub mod cluster;
mod device;
mod dispatch;
mod graph;
mod kernel;
mod runtime;
// Leaves: the vocabulary every layer names.
mod config;
mod error;
mod frames;
mod hash;
mod ids;
mod info;
pub mod inject;
mod machine;
mod stats;
mod trace;

pub use buffer::{ArgRef, Buffer, BufferArg, Validity};
pub use call::RunInfo;
pub use device::sim::{SimDevice, SimOp};
pub use device::{DeviceInfo, DeviceKind, DeviceLimits};
pub use dispatch::{
    Curve, Decision, Estimate, Exclusion, Link, ModelRow, Reason, SplitRow, Summary, TransferModel,
    secs,
};
pub use error::{Error, Result};
pub use graph::Task;
pub use ids::{Backend, Target, human_bytes};
pub use inject::Inject;
pub use kernel::{
    Access, ArgKind, ArgSpec, CpuArgs, ElemType, Element, Grid, Kernel, KernelBuilder, Read,
    ReadWrite, Reflection, Scalar, Signature, StorageBinding, UniformBinding, Variant,
};
pub use machine::{CpuSpec, GpuSpec, LinkSpec, Machine, Times};
pub use runtime::{PlanRun, Plans, Runtime, RuntimeBuilder, SimReport, SimUse};
pub use stats::Stats;
pub use trace::TraceEvent;
/// The wgpu that pel runs on, for [`Runtime::wgpu_device`]'s device and
/// queue (a program that names wgpu types through it gets pel's version).
pub use wgpu;

/// Entry points for the fuzz targets (`fuzz/`): not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::dispatch::{Dispatcher, persist};

    /// Reads `text` as a model file for a CPU and one GPU, then does what
    /// the runtime does with a loaded model: summaries, fitted curves,
    /// estimates and a save to memory. Must never panic.
    pub fn model_file(text: &str) {
        let keys = vec!["cpu fuzz".to_owned(), "vulkan fuzz".to_owned()];
        let Ok(loaded) = persist::parse(text, &keys, "the input") else {
            return;
        };
        let mut d = Dispatcher::new(keys, 5, None);
        d.absorb(loaded);
        for row in d.rows() {
            let _ = row.curve.map(|c| c.to_string());
        }
    }
}

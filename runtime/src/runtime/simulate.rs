//! A runtime on a machine description: the processors it describes,
//! simulated on one virtual clock (see `device/timeline.rs`), with the
//! dispatcher, buffer table, graph, lineage and recovery running for real.
//! [`RuntimeBuilder::simulate`](super::RuntimeBuilder::simulate) starts
//! one; [`Runtime::simulation`](super::Runtime::simulation) reports on it.

use std::sync::{Arc, Mutex, PoisonError};

use crate::device::sim::{KernelTimeFn, Modelled, SimDevice};
use crate::device::timeline::{Link, Shape, Totals, lanes_for};
use crate::dispatch::persist;
use crate::error::{Error, Result};
use crate::ids::Backend;
use crate::machine::{Machine, Times};

/// What the builder was asked to simulate.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) machine: Machine,
    pub(super) compute: bool,
    /// (GPU, virtual seconds): losses to inject.
    pub(super) losses: Vec<(usize, f64)>,
}

/// The simulated machine's processors and shape.
pub(super) struct Opened {
    pub(super) cpu_cores: usize,
    pub(super) cpu: Modelled,
    pub(super) gpus: Vec<SimDevice>,
    pub(super) shape: Shape,
}

impl Plan {
    /// Opens the description's processors, each timed by its source.
    pub(super) fn open(&self) -> Result<Opened> {
        let m = &self.machine;
        m.check("the machine description")?;
        for &(g, _) in &self.losses {
            if g >= m.gpus.len() {
                return Err(Error::NoSuchBackend {
                    backend: Backend::Gpu(g),
                    available: describe_backends(m.gpus.len()),
                });
            }
        }
        let modelled = |times: &Times, p: Processor, field: String| -> Result<Modelled> {
            Ok(Modelled {
                time: kernel_times(times, p, field)?,
                compute: self.compute,
            })
        };
        let cpu = modelled(
            &m.cpu.times,
            Processor::Cpu(m.cpu.cores),
            "cpu.times".to_owned(),
        )?;
        let mut gpus = Vec::new();
        let mut link_of = Vec::new();
        for (g, spec) in m.gpus.iter().enumerate() {
            let link = m
                .links
                .iter()
                .position(|l| l.name == spec.link)
                .expect("checked: every GPU's link is described");
            let figures = Link {
                latency_s: m.links[link].latency_s,
                bandwidth: m.links[link].bandwidth,
            };
            link_of.push(link);
            gpus.push(SimDevice::modelled(
                &spec.name,
                spec.memory_bytes,
                modelled(&spec.times, Processor::Gpu, format!("gpus[{g}].times"))?,
                figures,
            ));
        }
        let mut lose_at = vec![None; m.gpus.len()];
        for &(g, at) in &self.losses {
            lose_at[g] = Some(at);
        }
        Ok(Opened {
            cpu_cores: m.cpu.cores,
            cpu,
            gpus,
            shape: Shape {
                cpu_lanes: m.cpu.cores,
                cpu_overhead_s: m.cpu.task_overhead_s,
                copy_bandwidth: m.cpu.copy_bandwidth,
                cpu_measured: matches!(m.cpu.times, Times::Model { .. }),
                link_of,
                shares_host: m.gpus.iter().map(|g| g.shares_host_cores).collect(),
                links: m
                    .links
                    .iter()
                    .map(|l| {
                        (
                            l.name.clone(),
                            Link {
                                latency_s: l.latency_s,
                                bandwidth: l.bandwidth,
                            },
                        )
                    })
                    .collect(),
                lose_at,
            },
        })
    }
}

fn describe_backends(gpus: usize) -> String {
    std::iter::once("cpu".to_owned())
        .chain((0..gpus).map(|g| format!("gpu{g}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which kind of processor a roofline times: its share of the processor
/// depends on it.
#[derive(Debug, Clone, Copy)]
enum Processor {
    /// A CPU of this many cores: a kernel has the cores its chunks spread
    /// over (see `device/timeline.rs`).
    Cpu(usize),
    /// A GPU: a kernel has its invocations over the GPU's `threads`.
    Gpu,
}

/// How a processor described by `times` times a kernel (`field` names it
/// in errors).
fn kernel_times(times: &Times, p: Processor, field: String) -> Result<Arc<KernelTimeFn>> {
    match *times {
        Times::Roofline { threads, .. } => {
            let times = times.clone();
            Ok(Arc::new(move |kernel, params, lens, size, bytes| {
                let (f, b) = kernel
                    .work(params, lens)
                    .unwrap_or((size as f64, bytes as f64));
                let share = match (p, threads) {
                    (Processor::Cpu(cores), _) => {
                        lanes_for(bytes, cores) as f64 / cores.max(1) as f64
                    }
                    (Processor::Gpu, Some(threads)) => {
                        let invocations = kernel.workgroups(params, lens)
                            * kernel.reflection().workgroup_invocations();
                        invocations as f64 / threads
                    }
                    (Processor::Gpu, None) => 1.0,
                };
                Ok(times.roofline_share_s(f, b, share).unwrap_or(0.0))
            }))
        }
        Times::Model {
            ref file,
            ref device,
        } => {
            let bad = |message: String| Error::Machine {
                file: file.clone().unwrap_or_default(),
                field: field.clone(),
                message,
            };
            let Some(file) = file.clone() else {
                return Err(bad(
                    "a model's `file` is needed (`pel simulate describe` writes it)".to_owned(),
                ));
            };
            let text = std::fs::read_to_string(&file)
                .map_err(|e| bad(format!("cannot read the model: {e}")))?;
            let loaded = persist::parse(&text, std::slice::from_ref(device), &file).map_err(bad)?;
            if loaded.profile.iter().next().is_none() {
                return Err(bad(format!("the model holds no samples of `{device}`")));
            }
            let profile = Mutex::new(loaded.profile);
            let device = device.clone();
            Ok(Arc::new(move |kernel, _, _, size, _| {
                profile
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .estimate(kernel.id(), 0, size, 1)
                    .ok_or_else(|| Error::Machine {
                        file: file.clone(),
                        field: field.clone(),
                        message: format!(
                            "the model has no samples of kernel `{}` on `{device}`: run it there first",
                            kernel.name()
                        ),
                    })
            }))
        }
    }
}

/// One processor's part in a simulated run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimUse {
    /// The processor.
    pub backend: Backend,
    /// Kernels it ran.
    pub kernels: u64,
    /// Virtual seconds it was busy (the CPU's: lane-seconds over its
    /// cores).
    pub busy_s: f64,
    /// `busy_s` over the makespan.
    pub busy_fraction: f64,
}

/// What a simulated runtime has done so far, on its virtual clock; see
/// [`Runtime::simulation`](super::Runtime::simulation).
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    /// Virtual seconds from the start to the end of the last thing done.
    pub makespan_s: f64,
    /// Each processor, the CPU first.
    pub devices: Vec<SimUse>,
    /// Bytes moved on each link, by its name.
    pub link_bytes: Vec<(String, u64)>,
}

impl SimReport {
    pub(super) fn from_totals(t: Totals) -> SimReport {
        let span = t.now_s.max(f64::MIN_POSITIVE);
        let devices = t
            .busy_s
            .iter()
            .zip(&t.kernels)
            .enumerate()
            .map(|(i, (&busy, &kernels))| {
                let busy_s = if i == 0 {
                    busy / t.cpu_lanes as f64
                } else {
                    busy
                };
                SimUse {
                    backend: if i == 0 {
                        Backend::Cpu
                    } else {
                        Backend::Gpu(i - 1)
                    },
                    kernels,
                    busy_s,
                    busy_fraction: busy_s / span,
                }
            })
            .collect();
        SimReport {
            makespan_s: t.now_s,
            devices,
            link_bytes: t.link_bytes,
        }
    }

    /// This report less an earlier one of the same runtime: what happened
    /// between the two (the makespan: the virtual time between them).
    pub fn since(&self, earlier: &SimReport) -> SimReport {
        let makespan_s = self.makespan_s - earlier.makespan_s;
        let span = makespan_s.max(f64::MIN_POSITIVE);
        SimReport {
            makespan_s,
            devices: self
                .devices
                .iter()
                .zip(&earlier.devices)
                .map(|(now, then)| {
                    let busy_s = now.busy_s - then.busy_s;
                    SimUse {
                        backend: now.backend,
                        kernels: now.kernels - then.kernels,
                        busy_s,
                        busy_fraction: busy_s / span,
                    }
                })
                .collect(),
            link_bytes: self
                .link_bytes
                .iter()
                .zip(&earlier.link_bytes)
                .map(|((name, now), (_, then))| (name.clone(), now - then))
                .collect(),
        }
    }
}

/// What each submitted CPU task costs the runtime on a core beyond its
/// kernel: `cores` chains of 200 one-element tasks submitted at once, the
/// median of nine timings × cores / tasks (one timing swings by 3× on a
/// busy machine). `None` where the CPU cannot
/// run them (a simulated machine's clock is not the host's).
pub(super) fn task_overhead(rt: &super::Runtime) -> Option<f64> {
    use crate::kernel::{Kernel, ReadWrite};
    use crate::{Backend, Target};
    if rt.engine().timeline.is_some() {
        return None;
    }
    const STEPS: usize = 200;
    let kernel = Kernel::builder(
        "pel-task-overhead",
        "@group(0) @binding(0) var<storage, read_write> c: array<u32>;\n\
         @compute @workgroup_size(1)\n\
         fn main(@builtin(global_invocation_id) id: vec3<u32>) { c[0] = c[0] + 1u; }\n",
    )
    .cpu::<(ReadWrite<u32>,)>(|args, _: &()| {
        let (c,) = args.split();
        c[0] += 1;
    })
    .build()
    .ok()?;
    let cores = rt.device(Backend::Cpu).ok()?.threads.max(1);
    let chains: Vec<_> = (0..cores).map(|_| rt.zeros::<u32>(1)).collect();
    // Each core runs one chain: a step's time is each task's on its core.
    median_of(9, || {
        let t = std::time::Instant::now();
        for _ in 0..STEPS {
            for c in &chains {
                rt.submit_to(Target::On(Backend::Cpu), &kernel, &[c], &())
                    .ok()?;
            }
        }
        rt.wait_all().ok()?;
        Some(t.elapsed().as_secs_f64() / STEPS as f64)
    })
}

/// The median of `n` measurements, or `None` if one fails.
fn median_of(n: usize, mut measure: impl FnMut() -> Option<f64>) -> Option<f64> {
    let mut xs = (0..n).map(|_| measure()).collect::<Option<Vec<f64>>>()?;
    xs.sort_by(f64::total_cmp);
    Some(xs[n / 2])
}

/// Bytes a second a read hands back at on this host: the median of five
/// reads of an 8 MiB buffer whose host copy is current (after one more,
/// which pays for first touching the memory).
pub(super) fn copy_bandwidth(rt: &super::Runtime) -> Option<f64> {
    if rt.engine().timeline.is_some() {
        return None;
    }
    const BYTES: usize = 8 << 20;
    let buf = rt.buffer(&vec![1u32; BYTES / 4]);
    rt.read(&buf).ok()?;
    median_of(5, || {
        let t = std::time::Instant::now();
        let copy = rt.read(&buf).ok()?;
        let secs = t.elapsed().as_secs_f64().max(1e-9);
        std::hint::black_box(copy);
        Some(BYTES as f64 / secs)
    })
}

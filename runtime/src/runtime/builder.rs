//! The builder: the environment's configuration (read once, see
//! `config.rs`), overridden by what the program asks, opens the devices
//! and loads this machine's performance model.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use crate::buffer::Table;
use crate::call::Engine;
use crate::config::Config;
use crate::device::cpu::CpuDevice;
use crate::device::sim::SimDevice;
use crate::device::timeline::Timeline;
use crate::device::{Device, gpu};
use crate::dispatch::{self, Dispatcher};
use crate::error::Result;
use crate::graph::Scheduler;
use crate::ids::Backend;
use crate::inject::Inject;
use crate::stats::Counters;
use crate::trace::Tracer;

use super::Runtime;

static NEXT_RUNTIME: AtomicU64 = AtomicU64::new(1);

/// Options for [`Runtime`]; see [`Runtime::builder`].
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until .build()"]
pub struct RuntimeBuilder {
    gpu: Option<bool>,
    cpu_threads: Option<usize>,
    calibration_samples: Option<usize>,
    model_file: Option<std::path::PathBuf>,
    persist: Option<bool>,
    backend: Option<Option<Backend>>,
    trace: Option<std::path::PathBuf>,
    inject: Option<Inject>,
    gpu_budget: Option<Option<u64>>,
    simulated: Option<Vec<SimDevice>>,
    simulate: Option<super::simulate::Plan>,
    only_gpus: Option<Vec<usize>>,
}

impl RuntimeBuilder {
    /// Whether to open GPUs at all (default: yes, unless `PEL_GPU=off`).
    pub fn gpu(mut self, enabled: bool) -> Self {
        self.gpu = Some(enabled);
        self
    }

    /// Opens only these of the machine's GPUs, by their index in a runtime
    /// that opens all of them (`gpu0` first); they are numbered again from
    /// `gpu0` in the order found. An index past the GPUs found is ignored.
    /// For comparing device configurations, such as the simulator's
    /// validation does.
    pub fn only_gpus(mut self, indices: impl IntoIterator<Item = usize>) -> Self {
        self.only_gpus = Some(indices.into_iter().collect());
        self
    }

    /// Threads in the CPU pool (default: `PEL_CPU_THREADS`, else one per core).
    pub fn cpu_threads(mut self, threads: usize) -> Self {
        self.cpu_threads = Some(threads.max(1));
        self
    }

    /// Samples each backend needs near a size before the model is trusted
    /// there (default: `PEL_CALIBRATION_SAMPLES`, else 5).
    pub fn calibration_samples(mut self, n: usize) -> Self {
        self.calibration_samples = Some(n.max(1));
        self
    }

    /// Loads the performance model from this file (and saves it there),
    /// instead of the per-machine file under `PEL_MODEL_DIR` or the cache
    /// directory: an application can ship its calibration.
    pub fn model_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.model_file = Some(path.into());
        self
    }

    /// Whether to load and save the performance model at all (default yes).
    pub fn persist_model(mut self, persist: bool) -> Self {
        self.persist = Some(persist);
        self
    }

    /// Forces every call with [`Target::Auto`](crate::Target::Auto) onto `backend` (`None`:
    /// choose). Default: `PEL_BACKEND=cpu|gpu|gpuN|auto`.
    pub fn force_backend(mut self, backend: Option<Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Records a trace of every kernel and transfer and writes it to `path`
    /// (Chrome trace-event JSON) when the runtime drops. Default:
    /// `PEL_TRACE=FILE`.
    pub fn trace(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.trace = Some(path.into());
        self
    }

    /// Faults to inject, for testing recovery (default: `PEL_INJECT`; see
    /// [`Inject`]).
    pub fn inject(mut self, faults: Inject) -> Self {
        self.inject = Some(faults);
        self
    }

    /// A memory budget per GPU, bytes (`None`: the device's own memory).
    /// Default: `PEL_GPU_MEMORY_BUDGET`, e.g. `64MiB`, `1GiB` or bytes.
    pub fn gpu_memory_budget(mut self, bytes: Option<u64>) -> Self {
        self.gpu_budget = Some(bytes);
        self
    }

    /// Runs on these simulated devices (as `gpu0`, `gpu1`, ...) instead of
    /// the machine's GPUs: the dispatcher, buffer manager, task graph and
    /// recovery run for real, kernels compute with their CPU
    /// implementation, and device times come from each device's cost
    /// function (see [`SimDevice`]).
    pub fn simulated(mut self, devices: Vec<SimDevice>) -> Self {
        self.simulated = Some(devices);
        self
    }

    /// Runs on a simulated `machine` (see [`Machine`](crate::Machine)): its
    /// CPU and GPUs on one virtual clock, each kernel timed by its
    /// processor's source (a saved model or a roofline), each copy by its
    /// link. The dispatcher, buffer manager, task graph, lineage and
    /// recovery run for real, and place by the virtual queues; kernels do
    /// not compute unless [`compute`](Self::compute) asks, so a large
    /// simulated run costs host time for scheduling alone. Submitted tasks
    /// run on the submitting thread, so a simulated run is the same every
    /// time. [`Runtime::simulation`](super::Runtime::simulation) reports
    /// the virtual makespan, each device's busy time and each link's bytes;
    /// a trace has virtual timestamps. The model is not saved unless
    /// [`persist_model`](Self::persist_model) asks.
    ///
    /// # Examples
    ///
    /// ```
    /// use pel_runtime::{Machine, Runtime};
    /// let text = r#"{
    ///   "name": "one GPU", "source": "an example",
    ///   "cpu": { "cores": 4, "times": { "roofline": { "flops": 1e11, "bandwidth": 2e10, "latency_s": 1e-6 } } },
    ///   "gpus": [ { "name": "gpu0", "memory_bytes": 8000000000, "link": "pcie",
    ///               "times": { "roofline": { "flops": 1e13, "bandwidth": 5e11, "latency_s": 5e-6 } } } ],
    ///   "links": [ { "name": "pcie", "latency_s": 1e-5, "bandwidth": 2.5e10 } ]
    /// }"#;
    /// let machine = Machine::from_json(text, "example")?;
    /// let rt = Runtime::builder().simulate(machine).build()?;
    /// assert_eq!(rt.gpu_count(), 1);
    /// assert_eq!(rt.simulation().unwrap().makespan_s, 0.0);
    /// # Ok::<(), pel_runtime::Error>(())
    /// ```
    pub fn simulate(mut self, machine: crate::Machine) -> Self {
        let plan = self.simulate.get_or_insert(super::simulate::Plan {
            machine: machine.clone(),
            compute: false,
            losses: Vec::new(),
        });
        plan.machine = machine;
        self
    }

    /// On a simulated machine ([`simulate`](Self::simulate)): whether
    /// kernels compute their results (default no: buffers then hold their
    /// inputs, and what kernels write is left as it was).
    pub fn compute(mut self, compute: bool) -> Self {
        if let Some(plan) = &mut self.simulate {
            plan.compute = compute;
        }
        self
    }

    /// On a simulated machine ([`simulate`](Self::simulate)): GPU `gpu` is
    /// lost at `at` of virtual time. The first kernel it would start from
    /// then on fails with [`Error::DeviceLost`](crate::Error::DeviceLost),
    /// and recovery runs as after a real loss.
    pub fn lose_at(mut self, gpu: usize, at: std::time::Duration) -> Self {
        if let Some(plan) = &mut self.simulate {
            plan.losses.push((gpu, at.as_secs_f64()));
        }
        self
    }

    /// Starts the runtime. Finding no GPU is not an error: everything then
    /// runs on the CPU. A `PEL_INJECT` or `PEL_GPU_MEMORY_BUDGET` that pel
    /// cannot read is, and so is a fault injected on a GPU the runtime did
    /// not find.
    pub fn build(self) -> Result<Runtime> {
        let env = Config::from_env();
        let inject = match self.inject {
            Some(i) => i,
            None => env.inject?,
        };
        let budget = match self.gpu_budget {
            Some(b) => b,
            None => env.gpu_budget?,
        };
        let gpu_enabled = self.gpu.unwrap_or(!env.gpu_off);
        let threads = self.cpu_threads.or(env.cpu_threads);
        let mut cpu = CpuDevice::new(threads);
        let mut shape = None;
        let mut simulated = self.simulated;
        if let Some(plan) = &self.simulate {
            if simulated.is_some() {
                return Err(crate::Error::InvalidInput {
                    kernel: "RuntimeBuilder".to_owned(),
                    arg: "simulate".to_owned(),
                    message:
                        "a runtime runs on simulated devices or on a simulated machine, not both"
                            .to_owned(),
                });
            }
            let opened = plan.open()?;
            cpu = cpu.simulated(opened.cpu_cores, opened.cpu);
            simulated = Some(opened.gpus);
            shape = Some(opened.shape);
        }
        let gpus: Vec<Box<dyn Device>> = if let Some(sims) = &simulated {
            sims.iter()
                .enumerate()
                .map(|(g, s)| s.open(g))
                .collect::<Result<_>>()?
        } else if gpu_enabled {
            // Respects WGPU_BACKEND (e.g. `vulkan`, `gl`) and wgpu's other
            // environment variables.
            let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
            let backends = desc.backends;
            let instance = wgpu::Instance::new(desc);
            let only = self.only_gpus.as_deref();
            gpu::open_all(
                &instance,
                backends,
                budget,
                inject.gpu_oom,
                env.gpu_batch,
                only,
            )
            .into_iter()
            .map(|g| Box::new(g) as Box<dyn Device>)
            .collect()
        } else {
            Vec::new()
        };
        // A fault on a GPU this machine lacks would never fire: a test
        // relying on it would pass without testing anything.
        inject.check_devices(gpus.len())?;
        let n = gpus.len();

        let mut keys = vec![format!(
            "cpu {} ({} threads)",
            cpu.info().name,
            cpu.info().threads
        )];
        keys.extend(gpus.iter().map(|g| {
            let i = g.info();
            format!("{} {} [{}] ({})", i.api, i.name, i.driver, i.kind)
        }));
        let forced = match self.backend {
            Some(b) => b,
            None => env.backend,
        };
        let min_samples = self
            .calibration_samples
            .or(env.calibration_samples)
            .unwrap_or(5);
        let mut dispatcher = Dispatcher::new(keys, min_samples, forced);
        dispatcher.print_decisions(env.explain);
        let persist = self.persist.unwrap_or(shape.is_none());
        let path = self.model_file.or_else(|| {
            dispatch::persist::default_path(env.model_dir.as_deref(), dispatcher.keys())
        });
        if let Some(path) = path.filter(|_| persist) {
            dispatcher.attach(path, true);
        }
        // A bus never measured is measured now, once per machine.
        for (g, gpu) in gpus.iter().enumerate() {
            if !dispatcher.has_bus(g) {
                match gpu.measure_bus() {
                    Ok(samples) => dispatcher.measured_bus(g, &samples),
                    Err(e) => eprintln!("pel: warning: could not measure the bus of gpu{g}: {e}"),
                }
            }
        }
        dispatcher.save();
        let trace_file = self.trace.or(env.trace);
        let mut lanes = vec!["cpu".to_owned()];
        lanes.extend(
            gpus.iter()
                .map(|g| format!("{}: {} ({})", g.info().backend, g.info().name, g.info().api)),
        );
        lanes.push("transfers".to_owned());
        let tracer = Arc::new(Tracer::new(lanes, trace_file.is_some()));
        let timeline = shape.map(|shape| {
            tracer.use_virtual_clock();
            Arc::new(Timeline::new(shape, Arc::clone(&tracer)))
        });
        let mut table = Table::new(n);
        if let Some(t) = &timeline {
            table = table.on_timeline(Arc::clone(t));
        }
        let faults_on = inject.any();
        let id = NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed);
        let engine = Engine {
            id,
            cpu,
            gpus,
            table: Mutex::new(table),
            leases: Condvar::new(),
            counters: Counters::default(),
            dispatcher: Mutex::new(dispatcher),
            tracer,
            timeline,
            trace_file,
            inject: RwLock::new(inject),
            gpu_kernels: AtomicU64::new(0),
            faults_on: AtomicBool::new(faults_on),
            proven: Default::default(),
            queued: Default::default(),
            queued_any: AtomicBool::new(false),
        };
        Ok(Runtime {
            shared: Arc::new(Scheduler::new(engine)),
            user: Some(Arc::new(())),
        })
    }
}

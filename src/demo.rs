//! The demo task graph: four mandelbrot frames (compute-bound), three
//! independent saxpy streams (memory-bound) and a saxpy → saxpy → sum chain,
//! submitted from one thread. `pel trace` records it; the graph benchmark
//! times it with automatic placement against every single device.

use pel_kernels::{Mandelbrot, Saxpy, Sum, mandelbrot::View};
use pel_runtime::{Backend, Buffer, Result, Runtime, Target, TraceEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Where the demo graph's tasks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Placing {
    /// Every task placed by the runtime.
    Auto,
    /// Every task on this backend.
    All(Backend),
    /// The compute-bound tasks on this backend, the rest on the CPU.
    ComputeOn(Backend),
}

impl std::fmt::Display for Placing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placing::Auto => f.write_str("auto"),
            Placing::All(b) => write!(f, "all on {b}"),
            Placing::ComputeOn(b) => write!(f, "images on {b}, the rest on cpu"),
        }
    }
}

/// The demo graph's buffers: made before a run, so a timed run measures the
/// tasks alone (from host-resident inputs to every result on the host).
pub struct DemoGraph {
    /// The kernels, built once (parsing and checking their WGSL is not
    /// part of a run).
    kernels: Option<(Saxpy, Sum, Mandelbrot)>,
    frames: Vec<Buffer<u32>>,
    streams: Vec<(Buffer<f32>, Buffer<f32>)>,
    chain: (Buffer<f32>, Buffer<f32>, Buffer<f32>),
}

/// Image side, pixels (compute-bound part of the demo graph).
const SIDE: usize = 512;
/// Elements of each vector (memory-bound part and chain).
const N: usize = 1 << 21;

impl DemoGraph {
    /// Fresh inputs: four images to render, three independent saxpy
    /// streams, and a chain (saxpy, saxpy, then a multi-pass sum).
    pub fn new(rt: &Runtime, seed: u64) -> DemoGraph {
        let mut rng = StdRng::seed_from_u64(seed);
        let vector = |rng: &mut StdRng| -> Vec<f32> {
            (0..N).map(|_| rng.random_range(-1.0..1.0)).collect()
        };
        DemoGraph {
            kernels: Saxpy::new()
                .and_then(|s| Ok((s, Sum::new()?, Mandelbrot::new()?)))
                .ok(),
            frames: (0..4).map(|_| rt.zeros(SIDE * SIDE)).collect(),
            streams: (0..3)
                .map(|_| (rt.buffer(&vector(&mut rng)), rt.buffer(&vector(&mut rng))))
                .collect(),
            chain: (
                rt.buffer(&vector(&mut rng)),
                rt.buffer(&vector(&mut rng)),
                rt.zeros(1),
            ),
        }
    }

    /// Submits every task (the runtime orders them by what they read and
    /// write), waits for all, and reads every result. Returns the tasks run.
    pub fn run(&self, rt: &Runtime, placing: Placing) -> Result<usize> {
        let built;
        let (saxpy, sum, mandelbrot) = match &self.kernels {
            Some((a, b, c)) => (a, b, c),
            None => {
                built = (Saxpy::new()?, Sum::new()?, Mandelbrot::new()?);
                (&built.0, &built.1, &built.2)
            }
        };
        let (compute, memory) = match placing {
            Placing::Auto => (Target::Auto, Target::Auto),
            Placing::All(b) => (Target::On(b), Target::On(b)),
            Placing::ComputeOn(b) => (Target::On(b), Target::On(Backend::Cpu)),
        };
        let mut tasks = Vec::new();
        let (x, y, total) = &self.chain;
        // The chain first: its later links wait for the earlier ones.
        tasks.push(saxpy.submit(rt, memory, 0.5, x, y)?);
        tasks.push(saxpy.submit(rt, memory, -0.25, y, x)?);
        tasks.push(sum.submit(rt, memory, x, total)?);
        for (i, counts) in self.frames.iter().enumerate() {
            let view = View {
                x0: -2.0 + 0.05 * i as f32,
                ..View::full(SIDE, SIDE)
            };
            let t = mandelbrot.submit(rt, compute, counts, SIDE, SIDE, view, 256)?;
            tasks.push(t);
        }
        for (i, (a, b)) in self.streams.iter().enumerate() {
            tasks.push(saxpy.submit(rt, memory, 1.0 + i as f32, a, b)?);
        }
        for t in &tasks {
            t.wait()?;
        }
        for f in &self.frames {
            rt.read(f)?;
        }
        for (_, b) in &self.streams {
            rt.read(b)?;
        }
        rt.read(total)?;
        Ok(tasks.len())
    }

    /// Runs the graph with automatic placement until a whole run places
    /// nothing to calibrate (at most `limit` runs), so later runs are placed
    /// by the model. Returns the tasks of one run.
    pub fn calibrate(&self, rt: &Runtime, limit: usize) -> Result<usize> {
        let mut tasks = 0;
        for _ in 0..limit {
            let before = rt.stats().calibration_runs;
            tasks = self.run(rt, Placing::Auto)?;
            if rt.stats().calibration_runs == before {
                break;
            }
        }
        Ok(tasks)
    }
}

/// The trace demo: the demo graph, submitted from one thread. `pel trace`
/// runs it with automatic placement; the trace test with the images forced
/// onto a GPU and the rest onto the CPU.
pub fn trace_demo(rt: &Runtime, placing: Placing) -> Result<()> {
    DemoGraph::new(rt, 5).run(rt, placing).map(|_| ())
}

/// `pel trace`: calibrates the demo graph untraced (so placement is the
/// model's, not exploration's), then turns tracing on and runs
/// [`trace_demo`] with automatic placement. The events are then the
/// runtime's: [`Runtime::trace_events`], [`Runtime::write_trace`].
pub fn record_trace(rt: &Runtime) -> Result<()> {
    DemoGraph::new(rt, 3).calibrate(rt, 20)?;
    rt.enable_trace();
    trace_demo(rt, Placing::Auto)
}

/// A CPU-lane event and a GPU-lane event that overlap in time (by their
/// start and end order), for a runtime with `gpus` GPUs (lanes 1..=gpus).
pub fn overlapping(events: &[TraceEvent], gpus: usize) -> Option<(TraceEvent, TraceEvent)> {
    let on_gpu = |e: &&TraceEvent| (1..=gpus as u32).contains(&e.tid);
    for a in events.iter().filter(|e| e.tid == 0) {
        for b in events.iter().filter(on_gpu) {
            if a.ts < b.ts + b.dur && b.ts < a.ts + a.dur {
                return Some((a.clone(), b.clone()));
            }
        }
    }
    None
}

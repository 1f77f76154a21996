//! Task Bench (Slaughter et al., SC'20) as a pel workload: a grid of
//! `width × steps` tasks whose dependencies follow one of eleven patterns
//! ([`Pattern`]), each task a compute-bound kernel of a chosen number of
//! iterations, with a CPU and a WGSL implementation.
//!
//! Each point has two buffers of [`TaskBench::elems`] values, one for even
//! steps and one for odd: the task at `(t, p)` reads the buffers of step
//! `t - 1` its pattern names and writes its own of step `t`. pel's task
//! graph finds every edge from those reads and writes (the write of step
//! `t + 1` waits for the readers of step `t - 1`'s values, too).
//!
//! Per task and element: `k` loads and a mean over the `k` dependencies,
//! then `iterations` steps of `x = a·x + b`; [`flops`] counts them. The
//! peer a user would write with rayon ([`rayon`]) runs each step as one
//! parallel loop over its points.

mod pattern;

use pel_runtime::{
    Backend, Buffer, BufferArg, Kernel, Read, ReadWrite, Result, Runtime, Target, Task,
};
use rayon::prelude::*;

pub use pattern::{Graph, Pattern};

use crate::uniform::wgsl_struct;
use crate::{ensure, u32_len};

wgsl_struct! {
    taskbench_params => Params;
    /// The task kernel's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct TaskParams {
        /// Steps of `x = a·x + b` per element.
        pub iterations: u32,
        /// Elements per task.
        pub n: u32,
        /// The task's point, which seeds a task with no dependencies.
        pub point: u32,
        /// Padding.
        pub _pad0: u32,
    }
}

/// The most dependencies one task may have: pel's CPU signatures take
/// eight arguments, and one is the task's output.
pub const MAX_DEPS: usize = 7;

/// Elements per task by default: one workgroup of the shader.
pub const ELEMS: usize = 64;

/// The iteration's scale and offset: `x` tends to 1 and stays finite.
const A: f32 = 0.999;
const B: f32 = 0.001;

/// The WGSL of the task kernel with `k` dependencies.
pub fn wgsl(k: usize) -> String {
    let mut s = String::from(
        "// Task Bench's compute-bound task: the mean of its dependencies' values\n\
         // (or a seed from its point), then `iterations` steps of x = a*x + b.\n",
    );
    for i in 0..k {
        s += &format!("@group(0) @binding({i}) var<storage, read> in{i}: array<f32>;\n");
    }
    s += &format!("@group(0) @binding({k}) var<storage, read_write> out: array<f32>;\n");
    s += &format!("@group(0) @binding({}) var<uniform> p: Params;\n", k + 1);
    s += "@compute @workgroup_size(64)\n\
          fn main(@builtin(global_invocation_id) id: vec3<u32>,\n\
                  @builtin(num_workgroups) groups: vec3<u32>) {\n\
          \x20   let j = pel_index(id, groups);\n\
          \x20   if j >= p.n { return; }\n";
    if k == 0 {
        s += "    var x = seed(p.point, j);\n";
    } else {
        let sum: Vec<String> = (0..k).map(|i| format!("in{i}[j]")).collect();
        s += &format!(
            "    var x = ({}) * {:?};\n",
            sum.join(" + "),
            1.0 / k as f32
        );
    }
    s += &format!(
        "    for (var i = 0u; i < p.iterations; i++) {{ x = x * {A:?} + {B:?}; }}\n\
         \x20   out[j] = x;\n\
         }}\n\
         fn seed(point: u32, j: u32) -> f32 {{ return f32(point + 1u) * 0.125 + f32(j) * 0.001; }}\n"
    );
    s + taskbench_params!()
}

/// The value a task with no dependencies starts from.
fn seed(point: u32, j: usize) -> f32 {
    (point + 1) as f32 * 0.125 + j as f32 * 0.001
}

/// One task's work on the host: `out` from `inputs` (the serial reference
/// and the CPU implementation are this function).
pub fn task(inputs: &[&[f32]], out: &mut [f32], iterations: u32, point: u32) {
    // A chunk at a time in a local block, written out once: iterating in
    // place would store every step, and neighbouring tasks' outputs may
    // share a cache line.
    const CHUNK: usize = 64;
    let scale = 1.0 / inputs.len().max(1) as f32;
    for (c, out) in out.chunks_mut(CHUNK).enumerate() {
        let base = c * CHUNK;
        let mut x = [0.0f32; CHUNK];
        let x = &mut x[..out.len()];
        if inputs.is_empty() {
            for (j, v) in x.iter_mut().enumerate() {
                *v = seed(point, base + j);
            }
        } else {
            for input in inputs {
                for (v, &i) in x.iter_mut().zip(&input[base..]) {
                    *v += i;
                }
            }
            for v in x.iter_mut() {
                *v *= scale;
            }
        }
        // Elements inside, iterations outside: the loop vectorises.
        for _ in 0..iterations {
            for v in x.iter_mut() {
                *v = *v * A + B;
            }
        }
        out.copy_from_slice(x);
    }
}

/// Floating-point operations of one task with `k` dependencies.
pub fn flops(k: usize, elems: usize, iterations: u32) -> f64 {
    elems as f64 * (k as f64 + 1.0 + 2.0 * iterations as f64)
}

/// The task kernel with `k` dependencies, its CPU side over `k` inputs and
/// the output.
fn build(k: usize) -> Result<Kernel> {
    macro_rules! with_inputs {
        ($($i:ident),*) => {
            Kernel::builder(format!("taskbench_{k}"), wgsl(k))
                .params::<TaskParams>()
                .cpu::<($(with_inputs!(@read $i),)* ReadWrite<f32>,)>(|args, p: &TaskParams| {
                    let ($($i,)* out,) = args.split();
                    task(&[$(&*$i),*], out, p.iterations, p.point);
                })
                .invocations(|p: &TaskParams, _| u64::from(p.n))
                .cost(|p: &TaskParams, lens: &[usize]| {
                    flops(lens.len() - 1, p.n as usize, p.iterations) as u64
                })
                // Each input read once, the output read and written.
                .work(|p: &TaskParams, lens: &[usize]| {
                    let k = lens.len() - 1;
                    (flops(k, p.n as usize, p.iterations), ((k + 2) * p.n as usize * 4) as f64)
                })
                .build()
        };
        (@read $i:ident) => { Read<f32> };
    }
    match k {
        0 => with_inputs!(),
        1 => with_inputs!(a),
        2 => with_inputs!(a, b),
        3 => with_inputs!(a, b, c),
        4 => with_inputs!(a, b, c, d),
        5 => with_inputs!(a, b, c, d, e),
        6 => with_inputs!(a, b, c, d, e, f),
        7 => with_inputs!(a, b, c, d, e, f, g),
        _ => Err(crate::invalid(
            "taskbench",
            "dependencies",
            format!("{k}; at most {MAX_DEPS}"),
        )),
    }
}

/// The Task Bench kernels (one per number of dependencies, 0 to
/// [`MAX_DEPS`]) and the size of each task's values.
pub struct TaskBench {
    kernels: Vec<Kernel>,
    elems: usize,
}

impl TaskBench {
    /// The kernels, for tasks of [`ELEMS`] values.
    pub fn new() -> Result<TaskBench> {
        Ok(TaskBench {
            kernels: (0..=MAX_DEPS).map(build).collect::<Result<_>>()?,
            elems: ELEMS,
        })
    }

    /// With `elems` values per task (at least 1).
    pub fn elems(mut self, elems: usize) -> Result<TaskBench> {
        ensure(elems > 0, "taskbench", "elems", || "0; at least 1".into())?;
        u32_len("taskbench", "elems", elems)?;
        self.elems = elems;
        Ok(self)
    }

    /// Values per task.
    pub fn elems_per_task(&self) -> usize {
        self.elems
    }

    /// The kernel of a task with `k` dependencies.
    pub fn kernel(&self, k: usize) -> Option<&Kernel> {
        self.kernels.get(k)
    }

    /// The kernel and params of the task of point `point` with `deps`
    /// dependencies (at most [`MAX_DEPS`]; a graph's are, once checked),
    /// each of `iterations`.
    pub fn task(&self, deps: usize, point: usize, iterations: u32) -> (&Kernel, TaskParams) {
        let params = TaskParams {
            iterations,
            n: self.elems as u32,
            point: point as u32,
            _pad0: 0,
        };
        (&self.kernels[deps], params)
    }

    /// Submits every task of `graph` at `target`, each of `iterations`, and
    /// returns the buffers of the last step's points (in point order) and
    /// its tasks. Nothing waits: read the buffers, or wait for the tasks.
    pub fn submit(
        &self,
        rt: &Runtime,
        target: Target,
        graph: &Graph,
        iterations: u32,
    ) -> Result<(Vec<Buffer<f32>>, Vec<Task>)> {
        graph.check(MAX_DEPS)?;
        let rows: [Vec<Buffer<f32>>; 2] =
            [0, 1].map(|_| (0..graph.width).map(|_| rt.zeros(self.elems)).collect());
        let mut last = Vec::new();
        for t in 0..graph.steps {
            let (out_row, in_row) = (&rows[t % 2], &rows[(t + 1) % 2]);
            last.clear();
            for p in graph.points(t) {
                let deps = graph.deps(t, p);
                let mut args: Vec<&dyn BufferArg> = deps.iter().map(|&q| &in_row[q] as _).collect();
                args.push(&out_row[p]);
                let (kernel, params) = self.task(deps.len(), p, iterations);
                last.push(rt.submit_to(target, kernel, &args, &params)?);
            }
        }
        Ok((last_row(graph, rows), last))
    }

    /// Runs every task of `graph` at `target` and returns the last step's
    /// values, point by point.
    pub fn run(
        &self,
        rt: &Runtime,
        target: Target,
        graph: &Graph,
        iterations: u32,
    ) -> Result<Vec<Vec<f32>>> {
        let (row, _) = self.submit(rt, target, graph, iterations)?;
        row.iter().map(|b| rt.read(b)).collect()
    }

    /// Runs `graph` at `target` until every task has finished, reading
    /// nothing back: the time of the graph alone.
    pub fn execute(
        &self,
        rt: &Runtime,
        target: Target,
        graph: &Graph,
        iterations: u32,
    ) -> Result<()> {
        let (_row, tasks) = self.submit(rt, target, graph, iterations)?;
        for t in tasks {
            t.wait()?;
        }
        rt.wait_all()
    }
}

/// Where the tasks of a CPU-only Task Bench run go.
pub const CPU: Target = Target::On(Backend::Cpu);

/// The last step's values of `graph`, serially.
pub fn reference(graph: &Graph, elems: usize, iterations: u32) -> Result<Vec<Vec<f32>>> {
    graph.check(usize::MAX)?;
    step_by_step(graph, elems, |row, out| {
        for (p, o, deps) in out {
            let inputs: Vec<&[f32]> = deps.iter().map(|&q| row[q].as_slice()).collect();
            task(&inputs, o, iterations, p as u32);
        }
    })
}

/// The peer a user would write with rayon: each step one parallel loop
/// over its points, reading the step before. Returns the last step's
/// values.
pub fn rayon(graph: &Graph, elems: usize, iterations: u32) -> Result<Vec<Vec<f32>>> {
    graph.check(usize::MAX)?;
    step_by_step(graph, elems, |row, out| {
        out.into_par_iter().for_each(|(p, o, deps)| {
            let inputs: Vec<&[f32]> = deps.iter().map(|&q| row[q].as_slice()).collect();
            task(&inputs, o, iterations, p as u32);
        });
    })
}

/// Each task's point, its output and its dependencies.
type Outs<'a> = Vec<(usize, &'a mut [f32], Vec<usize>)>;

/// Runs the steps with two rows of values, `each` computing one step's
/// points from the row before.
fn step_by_step(
    graph: &Graph,
    elems: usize,
    each: impl Fn(&[Vec<f32>], Outs<'_>),
) -> Result<Vec<Vec<f32>>> {
    let mut rows = [
        vec![vec![0.0f32; elems]; graph.width],
        vec![vec![0.0f32; elems]; graph.width],
    ];
    for t in 0..graph.steps {
        let [a, b] = &mut rows;
        let (before, now) = if t % 2 == 0 { (&*b, a) } else { (&*a, b) };
        let points = graph.points(t);
        let outs: Outs<'_> = now
            .iter_mut()
            .enumerate()
            .filter(|(p, _)| points.contains(p))
            .map(|(p, o)| (p, o.as_mut_slice(), graph.deps(t, p)))
            .collect();
        each(before, outs);
    }
    Ok(last_row(graph, rows))
}

/// The last step's points (in point order) out of the two rows, even
/// steps' and odd steps'.
fn last_row<T>(graph: &Graph, [even, odd]: [Vec<T>; 2]) -> Vec<T> {
    let end = graph.points(graph.steps - 1);
    let row = if graph.steps % 2 == 1 { even } else { odd };
    row.into_iter().skip(end.start).take(end.len()).collect()
}

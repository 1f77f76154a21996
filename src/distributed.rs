//! Programs that run on every rank of an MPI job (the `cluster` feature):
//! what the examples `heat_mpi`, `kmeans_mpi` and `taskbench_mpi` run,
//! and what the cluster's tests and `pel bench cluster` check. Each is
//! called by every rank with the same arguments, and returns on rank 0
//! what the same program on one process would.

use std::ops::Range;

use pel_kernels::heat_block::HeatBlock;
use pel_kernels::kmeans::{BLOCK, CHUNK, FinalizeParams, KMeans, PartialParams, ReduceParams};
use pel_kernels::taskbench::{Graph, MAX_DEPS, TaskBench};
use pel_runtime::cluster::{
    ClusterRuntime, ClusterStats, DistArg, DistBuffer, DistMap, Distribution, Recording,
};
use pel_runtime::{Buffer, BufferArg, Result, Target};

/// What [`heat`] did.
#[derive(Debug, Clone)]
pub struct HeatRun {
    /// The grid after the steps, on rank 0 (`None` elsewhere).
    pub grid: Option<Vec<f32>>,
    /// This rank's counters over the steps alone (not the final gather).
    pub steps: ClusterStats,
    /// Bytes every rank sent during the steps, summed over the job.
    pub bytes_sent: u64,
    /// The halo's bytes a step: two rows for each boundary between two
    /// ranks' blocks.
    pub halo_bytes_per_step: u64,
}

/// One rank's block of rows.
struct Block {
    rows: Range<usize>,
    /// The grid's rows and the next step's, swapping roles each step.
    uv: [DistBuffer<f32>; 2],
    top: DistBuffer<f32>,
    bottom: DistBuffer<f32>,
}

/// `steps` Jacobi steps of 2-D heat diffusion (as
/// [`Heat`](pel_kernels::heat::Heat)) on a `width × height` grid cut into
/// blocks of rows, one a rank ([`Distribution::Block`] over the rows;
/// ranks past the rows get none). `initial(rows)` gives the cells of those
/// rows, on the rank that owns them. Each step, each block's edge rows go
/// to its neighbours (received once, cached for the step), then each rank
/// steps its block at `target`; two steps are recorded and then replayed
/// ([`ClusterRuntime::replay`]). On the CPU the result is bitwise the
/// one-process run's.
pub fn heat(
    cr: &ClusterRuntime,
    target: Target,
    width: usize,
    height: usize,
    alpha: f32,
    steps: usize,
    initial: impl Fn(Range<usize>) -> Vec<f32>,
) -> Result<HeatRun> {
    let map = DistMap::new("grid", height, cr.size(), Distribution::Block)?;
    let hb = HeatBlock::new()?;
    let mut blocks = Vec::new();
    for r in 0..cr.size() {
        for rows in map.owned(r).into_iter().filter(|rows| !rows.is_empty()) {
            let cells = rows.len() * width;
            let i = blocks.len();
            blocks.push(Block {
                uv: [
                    cr.buffer(&format!("u[{i}]"), r, cells, || initial(rows.clone()))?,
                    cr.zeros(&format!("v[{i}]"), r, cells)?,
                ],
                top: cr.zeros(&format!("top[{i}]"), r, width)?,
                bottom: cr.zeros(&format!("bottom[{i}]"), r, width)?,
                rows,
            });
        }
    }
    blocks.sort_by_key(|b| b.rows.start);
    let params: Vec<_> = blocks
        .iter()
        .map(|b| HeatBlock::params(width, height, b.rows.start, b.rows.len(), alpha))
        .collect::<Result<_>>()?;
    let before = cr.stats();
    // One step, from `uv[cur]` into the other.
    let step = |cr: &ClusterRuntime, cur: usize| -> Result<()> {
        if blocks.len() > 1 {
            for (b, p) in blocks.iter().zip(&params) {
                cr.submit_on(
                    None,
                    target,
                    hb.edges_kernel(),
                    &[&b.uv[cur], &b.top, &b.bottom],
                    p,
                )?;
            }
        }
        for (i, (b, p)) in blocks.iter().zip(&params).enumerate() {
            // Where a block has no neighbour its own rows stand in: the
            // grid's edge keeps its values, and they are never read.
            let north = if i > 0 { &blocks[i - 1].bottom } else { &b.top };
            let south = blocks.get(i + 1).map_or(&b.bottom, |n| &n.top);
            let args: [&dyn DistArg; 4] = [&b.uv[cur], north, south, &b.uv[1 - cur]];
            cr.submit_on(None, target, hb.kernel(), &args, p)?;
        }
        Ok(())
    };
    // Two steps bring the grid back to `uv[0]`: they are recorded once and
    // replayed, as a time-stepping program runs its step again.
    let pairs = steps / 2;
    if pairs > 0 {
        let two = cr.record(|cr| {
            step(cr, 0)?;
            step(cr, 1)
        })?;
        for _ in 1..pairs {
            cr.replay(&two)?;
        }
    }
    let cur = steps % 2; // which of `uv` holds the grid
    if cur == 1 {
        step(cr, 0)?;
    }
    let steps_stats = cr.stats().since(&before);
    let bytes_sent = cr.cluster().sum_u64(steps_stats.bytes_sent);
    let mut grid = (cr.rank() == 0).then(|| Vec::with_capacity(width * height));
    for b in &blocks {
        let part = cr.fetch(&b.uv[cur], 0)?;
        if let (Some(g), Some(p)) = (grid.as_mut(), part) {
            g.extend_from_slice(&p);
        }
    }
    let boundaries = blocks.len().saturating_sub(1) as u64;
    Ok(HeatRun {
        grid,
        steps: steps_stats,
        bytes_sent,
        halo_bytes_per_step: boundaries * 2 * (width * std::mem::size_of::<f32>()) as u64,
    })
}

/// What [`kmeans`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansRun {
    /// The k·d centroids, row-major (the same on every rank).
    pub centroids: Vec<f32>,
    /// Assignments made.
    pub iterations: usize,
    /// Whether the last assignment changed no label.
    pub converged: bool,
}

/// Lloyd's k-means (as [`KMeans::fit`] from
/// [`Init::Centroids`](pel_kernels::kmeans::Init)) on `n` points of
/// dimension `d` spread over the ranks in blocks: `points(range)` gives
/// the coordinates of those points, on the rank that holds them. Each
/// iteration each rank assigns its points and sums them per cluster at
/// `target`; one `MPI_Allreduce` adds the sums (and the labels that
/// changed) over the job, and every rank takes the same means. The sums
/// are added in another order than one process's, so centroids agree
/// with [`KMeans::fit`]'s to f32 rounding, not bitwise.
#[allow(clippy::too_many_arguments)]
pub fn kmeans(
    cr: &ClusterRuntime,
    target: Target,
    n: usize,
    d: usize,
    init: &[f32],
    max_iterations: usize,
    points: impl Fn(Range<usize>) -> Vec<f32>,
) -> Result<KMeansRun> {
    let (rt, cluster) = (cr.runtime(), cr.cluster());
    let k = init.len() / d.max(1);
    if d == 0 || k == 0 || init.len() != k * d || n / cr.size() < k {
        return Err(pel_runtime::Error::InvalidInput {
            kernel: "kmeans".to_owned(),
            arg: "init".to_owned(),
            message: format!(
                "{} initial values for d = {d} over {n} points on {} ranks: k·d values with 1 ≤ k ≤ the points of the smallest rank's block ({})",
                init.len(),
                cr.size(),
                n / cr.size()
            ),
        });
    }
    let map = DistMap::new("points", n, cr.size(), Distribution::Block)?;
    let mine: Vec<Range<usize>> = map.owned(cr.rank());
    let local: usize = mine.iter().map(|r| r.len()).sum();
    let coords: Vec<f32> = mine.into_iter().flat_map(&points).collect();
    let km = KMeans::new()?;
    let m = k * (d + 1);
    let pts = rt.buffer(&coords);
    let centroids = rt.buffer(init);
    let labels = rt.buffer(&vec![u32::MAX; local]);
    let changed = rt.zeros::<u32>(1);
    let sums = rt.zeros::<f32>(m);
    // The partial sums' levels: rows of CHUNK points, then rows of those.
    let mut levels: Vec<Buffer<f32>> = Vec::new();
    let mut rows = local.div_ceil(CHUNK);
    if local > 0 {
        levels.push(rt.zeros(rows * m));
        while rows > 1 {
            rows = rows.div_ceil(BLOCK);
            levels.push(rt.zeros(rows * m));
        }
    }
    let (mut iterations, mut converged) = (0, false);
    loop {
        rt.write(&changed, &[0])?;
        if local > 0 {
            km.assign(rt, target, &pts, &centroids, &labels, &changed, d)?;
        }
        iterations += 1;
        cluster.allreduce_sum(rt, &changed)?;
        if rt.read(&changed)?[0] == 0 {
            converged = true;
            break;
        }
        if iterations > max_iterations {
            break;
        }
        // This rank's sums per cluster, in one row of m.
        if local > 0 {
            let mut rows = local.div_ceil(CHUNK) as u32;
            let p = PartialParams {
                n: local as u32,
                d: d as u32,
                k: k as u32,
                m: m as u32,
                chunk: CHUNK as u32,
                groups: rows,
                _pad0: 0,
                _pad1: 0,
            };
            let args: [&dyn BufferArg; 3] = [&pts, &labels, &levels[0]];
            rt.execute(target, km.partial_kernel(), &args, &p)?;
            for pair in levels.windows(2) {
                let out_rows = rows.div_ceil(BLOCK as u32);
                let p = ReduceParams {
                    rows,
                    m: m as u32,
                    out_rows,
                    _pad: 0,
                };
                rt.execute(target, km.reduce_kernel(), &[&pair[0], &pair[1]], &p)?;
                rows = out_rows;
            }
            let last = rt.read(levels.last().expect("a level"))?;
            rt.write(&sums, &last[..m])?;
        } else {
            rt.write(&sums, &vec![0.0; m])?;
        }
        cluster.allreduce_sum(rt, &sums)?;
        let p = FinalizeParams {
            rows: 1,
            d: d as u32,
            k: k as u32,
            m: m as u32,
        };
        rt.execute(target, km.finalize_kernel(), &[&sums, &centroids], &p)?;
    }
    Ok(KMeansRun {
        centroids: rt.read(&centroids)?,
        iterations,
        converged,
    })
}

/// Task Bench's `graph` with every point's values owned by a rank (points
/// in blocks, [`Distribution::Block`]): each task runs on its point's
/// owner at `target`, its dependencies on other ranks sent there. Returns
/// the last step's values on rank 0, point by point.
pub fn taskbench(
    cr: &ClusterRuntime,
    tb: &TaskBench,
    target: Target,
    graph: &Graph,
    iterations: u32,
) -> Result<Option<Vec<Vec<f32>>>> {
    let rows = taskbench_submit(cr, tb, target, graph, iterations)?;
    let mut out = (cr.rank() == 0).then(Vec::new);
    for b in &rows {
        if let (Some(o), Some(v)) = (out.as_mut(), cr.fetch(b, 0)?) {
            o.push(v);
        }
    }
    Ok(out)
}

/// The buffers of a distributed Task Bench graph: two rows of points,
/// each point's owned by a rank ([`Distribution::Block`]). Made once
/// (every rank, the same), run as often as wanted.
pub struct TaskbenchRows {
    rows: [Vec<DistBuffer<f32>>; 2],
    graph: Graph,
    elems: usize,
}

impl TaskbenchRows {
    /// The rows of `graph`, `tb`'s values a point; checked across ranks.
    pub fn new(cr: &ClusterRuntime, tb: &TaskBench, graph: &Graph) -> Result<TaskbenchRows> {
        graph.check(MAX_DEPS)?;
        let map = DistMap::new("points", graph.width, cr.size(), Distribution::Block)?;
        let elems = tb.elems_per_task();
        let mut rows: [Vec<DistBuffer<f32>>; 2] = [Vec::new(), Vec::new()];
        for (side, row) in rows.iter_mut().enumerate() {
            for p in 0..graph.width {
                row.push(cr.zeros(&format!("point{p}.{side}"), map.owner(p), elems)?);
            }
        }
        cr.agree()?;
        Ok(TaskbenchRows {
            rows,
            graph: *graph,
            elems,
        })
    }

    /// Submits every task of the graph, each of `iterations`, at `target`
    /// on its point's owner, and returns the last step's buffers; each
    /// rank's part has been submitted (its tasks may still be queued).
    pub fn submit(
        &self,
        cr: &ClusterRuntime,
        tb: &TaskBench,
        target: Target,
        iterations: u32,
    ) -> Result<&[DistBuffer<f32>]> {
        if tb.elems_per_task() != self.elems {
            return Err(pel_runtime::Error::InvalidInput {
                kernel: "taskbench".to_owned(),
                arg: "tb".to_owned(),
                message: format!(
                    "tasks of {} values on rows made for {}",
                    tb.elems_per_task(),
                    self.elems
                ),
            });
        }
        let graph = &self.graph;
        for t in 0..graph.steps {
            let (out_row, in_row) = (&self.rows[t % 2], &self.rows[(t + 1) % 2]);
            for p in graph.points(t) {
                let deps = graph.deps(t, p);
                let mut args: Vec<&dyn DistArg> = Vec::with_capacity(deps.len() + 1);
                args.extend(deps.iter().map(|&q| &in_row[q] as &dyn DistArg));
                args.push(&out_row[p]);
                let (kernel, params) = tb.task(deps.len(), p, iterations);
                cr.submit_on(None, target, kernel, &args, &params)?;
            }
        }
        Ok(self.last())
    }

    /// The buffers the last step writes.
    pub fn last(&self) -> &[DistBuffer<f32>] {
        &self.rows[self.graph.steps.saturating_sub(1) % 2]
    }

    /// Submits the graph as [`submit`](Self::submit) does, recorded:
    /// [`ClusterRuntime::replay`] submits it again at a fraction of the
    /// cost (the same tasks, of `iterations` each).
    pub fn record(
        &self,
        cr: &ClusterRuntime,
        tb: &TaskBench,
        target: Target,
        iterations: u32,
    ) -> Result<Recording> {
        cr.record(|cr| self.submit(cr, tb, target, iterations).map(drop))
    }
}

/// Submits every task of [`taskbench`] on new rows and returns the last
/// step's buffers without fetching them.
pub fn taskbench_submit(
    cr: &ClusterRuntime,
    tb: &TaskBench,
    target: Target,
    graph: &Graph,
    iterations: u32,
) -> Result<Vec<DistBuffer<f32>>> {
    let rows = TaskbenchRows::new(cr, tb, graph)?;
    Ok(rows.submit(cr, tb, target, iterations)?.to_vec())
}

//! `pel bench cluster`: Task Bench's stencil_1d across the ranks of an MPI
//! job, pel's [`ClusterRuntime`] against the program a user would write
//! with MPI itself (rsmpi: each rank owns a block of points, and each step
//! sends its edge points' values to its neighbours with non-blocking sends,
//! as Task Bench's MPI implementation does), in the same job, interleaved
//! in shuffled rounds. Reports METG(50%) for both (as the taskbench suite
//! defines it, a rank standing for a core) and their ratio, and how long a
//! rank with no part in a task takes to skip it.
//!
//! The job itself is started by the caller under `mpirun`; every rank
//! calls [`rank`], and rank 0 gets the report.

use std::time::Instant;

use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Destination, Source};
use pel::cluster::{ClusterRuntime, DistMap, Distribution};
use pel::kernels::taskbench::{self, CPU, Graph, Pattern, TaskBench, TaskParams};
use pel::{Error, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Seconds of graphs a side each point's rounds aim at.
pub const ROUND_S: f64 = 0.2;

/// Points a rank owns.
pub const POINTS_PER_RANK: usize = 1;

/// The two systems' figures at one point.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Pair {
    /// pel's [`ClusterRuntime`].
    pub pel: Option<f64>,
    /// The rsmpi program.
    pub mpi: Option<f64>,
}

impl Pair {
    fn of([pel, mpi]: [f64; 2]) -> Pair {
        Pair {
            pel: Some(pel),
            mpi: Some(mpi),
        }
    }
}

/// One task size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterPoint {
    /// Iterations per task.
    pub iterations: u32,
    /// Median seconds of the whole graph (rank 0's clock, between barriers).
    pub seconds: Pair,
    /// Time × ranks / tasks, microseconds.
    pub granularity_us: Pair,
    /// FLOP/s over the best either reached.
    pub efficiency: Pair,
}

/// One job's report (what rank 0 returns).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterRun {
    /// Ranks in the job.
    pub ranks: usize,
    /// Points a step.
    pub width: usize,
    /// Steps.
    pub steps: usize,
    /// Values a task.
    pub elems: usize,
    /// Timed rounds a point at the least (after one untimed; more, up to
    /// 40 times as many, to fill about [`ROUND_S`] a side).
    pub reps: usize,
    /// METG(50%), microseconds.
    pub metg_us: Pair,
    /// pel's METG over the rsmpi program's.
    pub ratio: Option<f64>,
    /// Nanoseconds a rank takes to record a task another rank runs (the
    /// slowest rank's mean over a graph of tasks all on rank 0, in its
    /// fastest of three rounds).
    pub prune_ns: f64,
    /// Every measured point.
    pub points: Vec<ClusterPoint>,
}

/// Runs the suite on this rank (every rank of the job calls it with the
/// same arguments); rank 0 gets the report. Checks first that both
/// programs give Task Bench's serial result.
pub fn rank(cr: &ClusterRuntime, quick: bool, reps: usize) -> Result<Option<ClusterRun>> {
    let size = cr.size();
    let width = size * POINTS_PER_RANK;
    let steps = if quick { 16 } else { 64 };
    let top = if quick { 6 } else { 8 };
    let tb = TaskBench::new()?;
    let elems = tb.elems_per_task();
    let graph = Graph::new(Pattern::Stencil1d, width, steps);
    let world = SimpleCommunicator::world();

    // Both agree with the serial reference before either is timed.
    let want = taskbench::reference(&graph, elems, 5)?;
    let got = pel::distributed::taskbench(cr, &tb, CPU, &graph, 5)?;
    if got.is_some_and(|g| g != want) {
        return Err(mismatch("pel"));
    }
    let mine = peer(&world, &graph, elems, 5)?;
    let lo = DistMap::new("points", width, size, Distribution::Block)?.owned(cr.rank());
    let ok = lo
        .iter()
        .flat_map(|r| r.clone())
        .zip(&mine)
        .all(|(p, v)| &want[p] == v);
    if cr.cluster().sum_u64(u64::from(!ok)) != 0 {
        return Err(mismatch("the rsmpi program"));
    }

    let tasks = graph.tasks() as f64;
    let tb_rows = pel::distributed::TaskbenchRows::new(cr, &tb, &graph)?;
    // pel's graph is recorded once for each task size and replayed in the
    // rounds, as a time-stepping program would; a replay gives the same
    // result too.
    let recorded = tb_rows.record(cr, &tb, CPU, 5)?;
    for _ in 0..2 {
        cr.replay(&recorded)?;
    }
    let mut ok = true;
    for (p, b) in tb_rows.last().iter().enumerate() {
        if let Some(v) = cr.fetch(b, 0)? {
            ok &= v == want[p];
        }
    }
    if cr.cluster().sum_u64(u64::from(!ok)) != 0 {
        return Err(mismatch("pel's replayed graph"));
    }
    let mut rows = Vec::new();
    for k in 0..=top {
        let iterations = 4u32.pow(k);
        let recorded = tb_rows.record(cr, &tb, CPU, iterations)?;
        let mut times = [Vec::new(), Vec::new()];
        let mut rng = StdRng::seed_from_u64(k as u64);
        // Round 0 is untimed; from it rank 0 sets how many rounds make
        // about ROUND_S of graphs a side (every rank runs as many).
        let mut rounds = reps;
        let mut round = 0;
        while round <= rounds {
            let mut order = [0usize, 1];
            order.shuffle(&mut rng);
            let mut took = [0.0f64; 2];
            for m in order {
                world.barrier();
                let start = Instant::now();
                if m == 0 {
                    cr.replay(&recorded)?;
                    cr.flush()?;
                } else {
                    peer(&world, &graph, elems, iterations)?;
                }
                world.barrier();
                took[m] = start.elapsed().as_secs_f64();
                if round > 0 {
                    times[m].push(took[m]);
                }
            }
            if round == 0 {
                let want = (ROUND_S / took[0].max(took[1]).max(1e-9)) as u64;
                let decided = cr.cluster().all_gather_u64(want)[0] as usize;
                rounds = decided.clamp(reps, 40 * reps.max(1));
            }
            round += 1;
        }
        let work: f64 = (0..steps)
            .flat_map(|t| graph.points(t).map(move |p| (t, p)))
            .map(|(t, p)| taskbench::flops(graph.deps(t, p).len(), elems, iterations))
            .sum();
        let [pel_s, mpi_s] = times.map(crate::median);
        rows.push((iterations, pel_s, mpi_s, work));
    }
    let prune_ns = prune(cr, &tb)?;
    if cr.rank() != 0 {
        return Ok(None);
    }
    let c = crate::taskbench::curves(&rows, size, tasks);
    let points = c
        .points
        .iter()
        .map(|p| ClusterPoint {
            iterations: p.iterations,
            seconds: Pair::of(p.seconds),
            granularity_us: Pair::of(p.granularity_us),
            efficiency: Pair::of(p.efficiency),
        })
        .collect();
    let metg_us = Pair {
        pel: c.metg[0],
        mpi: c.metg[1],
    };
    Ok(Some(ClusterRun {
        ranks: size,
        width,
        steps,
        elems,
        reps,
        ratio: metg_us.pel.zip(metg_us.mpi).map(|(a, b)| a / b),
        metg_us,
        prune_ns,
        points,
    }))
}

fn mismatch(who: &str) -> Error {
    Error::Internal {
        what: "bench cluster".to_owned(),
        message: format!("{who}'s last step differs from Task Bench's serial reference"),
    }
}

/// Tasks of the pruning measurement.
const PRUNED_TASKS: usize = 20_000;

/// Rounds of the pruning measurement; each rank keeps its fastest (on an
/// oversubscribed machine a rank can lose its core for a whole round).
const PRUNE_ROUNDS: usize = 3;

/// A graph of tasks all on rank 0: the other ranks only record them. The
/// slowest such rank's nanoseconds a task, in its fastest of
/// [`PRUNE_ROUNDS`] rounds (0 on one rank).
fn prune(cr: &ClusterRuntime, tb: &TaskBench) -> Result<f64> {
    let b = cr.zeros::<f32>("prune", 0, tb.elems_per_task())?;
    let params = TaskParams {
        iterations: 0,
        n: tb.elems_per_task() as u32,
        point: 0,
        _pad0: 0,
    };
    let kernel = tb.kernel(0).expect("a kernel of no dependencies");
    cr.agree()?;
    let mut mine = u64::MAX;
    for _ in 0..PRUNE_ROUNDS {
        cr.cluster().barrier();
        let start = Instant::now();
        for _ in 0..PRUNED_TASKS {
            cr.submit_on(None, CPU, kernel, &[&b], &params)?;
        }
        let ns = (start.elapsed().as_secs_f64() * 1e9 / PRUNED_TASKS as f64) as u64;
        mine = mine.min(if cr.rank() == 0 { 0 } else { ns });
        cr.wait_all()?;
    }
    let all = cr.cluster().all_gather_u64(mine);
    Ok(all.into_iter().max().unwrap_or(0) as f64)
}

/// The rsmpi program: this rank's block of points, each step computed
/// after the values of the points next to the block have come from the
/// ranks that own them (non-blocking sends and receives, then a wait).
/// Returns this rank's points' last values, in point order.
pub fn peer(
    world: &SimpleCommunicator,
    graph: &Graph,
    elems: usize,
    iterations: u32,
) -> Result<Vec<Vec<f32>>> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let map = DistMap::new("points", graph.width, size, Distribution::Block)?;
    let range = map.owned(rank).into_iter().next().unwrap_or(0..0);
    let (lo, hi) = (range.start, range.end);
    let mut cur = vec![vec![0.0f32; elems]; hi - lo];
    let mut next = cur.clone();
    let (mut left, mut right) = (vec![0.0f32; elems], vec![0.0f32; elems]);
    // The ranks that own the points just outside the block, if any.
    let left_rank = (lo > 0 && hi > lo).then(|| map.owner(lo - 1) as i32);
    let right_rank = (hi < graph.width && hi > lo).then(|| map.owner(hi) as i32);
    for t in 0..graph.steps {
        if t > 0 {
            mpi::request::scope(|scope| {
                let mut recvs = Vec::new();
                let mut sends = Vec::new();
                if let Some(r) = left_rank {
                    let p = world.process_at_rank(r);
                    recvs.push(p.immediate_receive_into(scope, &mut left[..]));
                    sends.push(p.immediate_send(scope, &cur[0][..]));
                }
                if let Some(r) = right_rank {
                    let p = world.process_at_rank(r);
                    recvs.push(p.immediate_receive_into(scope, &mut right[..]));
                    sends.push(p.immediate_send(scope, &cur[hi - lo - 1][..]));
                }
                for r in recvs {
                    r.wait();
                }
                for s in sends {
                    s.wait();
                }
            });
        }
        for p in graph.points(t).filter(|p| (lo..hi).contains(p)) {
            let deps = graph.deps(t, p);
            let inputs: Vec<&[f32]> = deps
                .iter()
                .map(|&q| {
                    if q + 1 == lo {
                        &left[..]
                    } else if q == hi {
                        &right[..]
                    } else {
                        &cur[q - lo][..]
                    }
                })
                .collect();
            taskbench::task(&inputs, &mut next[p - lo], iterations, p as u32);
        }
        std::mem::swap(&mut cur, &mut next);
    }
    Ok(cur)
}

/// The network between two nodes in the prediction: one NDR InfiniBand
/// port a node (400 Gb/s), with the one-way MPI latency such fabrics
/// publish (about 1.5 µs with a switch hop).
pub const NETWORK: Network = Network {
    latency_s: 1.5e-6,
    bandwidth: 50e9,
    source: "NDR InfiniBand, 400 Gb/s a node (50 GB/s), 1.5 µs one-way MPI latency through a switch",
};

/// A network's figures.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Network {
    /// One-way seconds of a small message.
    pub latency_s: f64,
    /// Bytes a second of a large one, each way.
    pub bandwidth: f64,
    /// Where the figures come from.
    pub source: &'static str,
}

/// The predicted graph: stencil_1d, 1,024 points of 64K values × 32
/// steps, 4,096 iterations a task (the simulator's scale workload, wider).
pub const PREDICTED: crate::simulate::Size = crate::simulate::Size {
    width: 1024,
    steps: 32,
    iterations: 4096,
    elems: 1 << 16,
};

/// Node counts of the prediction.
pub const NODES: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// One node count of the prediction.
#[derive(Debug, Clone, Serialize)]
pub struct NodePoint {
    /// Nodes.
    pub nodes: usize,
    /// One node's share (width / nodes points) on the simulated node.
    pub node_s: f64,
    /// The halo exchanges: a step's latency and bytes, times the steps.
    pub network_s: f64,
    /// Their sum.
    pub makespan_s: f64,
    /// Over one node.
    pub speedup: f64,
}

/// `pel bench cluster`'s report.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// METG(50%) by ranks, microseconds.
    pub metg_us: std::collections::BTreeMap<String, Pair>,
    /// pel's METG over the rsmpi program's, by ranks.
    pub ratio: std::collections::BTreeMap<String, Option<f64>>,
    /// Nanoseconds to skip a task, by ranks.
    pub prune_ns: std::collections::BTreeMap<String, f64>,
    /// Each job's report.
    pub runs: Vec<ClusterRun>,
    /// The node the prediction simulates.
    pub machine: String,
    /// The network between nodes in it.
    pub network: Network,
    /// The predicted graph.
    pub predicted: crate::simulate::Size,
    /// Its makespan on 1 to 64 nodes.
    pub prediction: Vec<NodePoint>,
}

/// The report of the jobs `runs`, with the prediction on nodes of
/// `machine`.
pub fn report(runs: Vec<ClusterRun>, machine: &pel::Machine) -> Result<ClusterReport> {
    let key = |r: &ClusterRun| r.ranks.to_string();
    Ok(ClusterReport {
        metg_us: runs.iter().map(|r| (key(r), r.metg_us)).collect(),
        ratio: runs.iter().map(|r| (key(r), r.ratio)).collect(),
        prune_ns: runs.iter().map(|r| (key(r), r.prune_ns)).collect(),
        machine: machine.name.clone(),
        network: NETWORK,
        predicted: PREDICTED,
        prediction: predict(machine, PREDICTED, &NETWORK)?,
        runs,
    })
}

/// stencil_1d of `size` cut into blocks of points over 1 to 64 nodes of
/// `machine`: each node's block simulated on the node's virtual clock,
/// plus a step's halo exchange (one point's values each way across a
/// boundary, both directions at once) for every step, not overlapped with
/// the computation (an upper bound on the network's cost).
pub fn predict(
    machine: &pel::Machine,
    size: crate::simulate::Size,
    net: &Network,
) -> Result<Vec<NodePoint>> {
    let mut points = Vec::new();
    let mut one = None;
    for nodes in NODES {
        let share = crate::simulate::Size {
            width: size.width.div_ceil(nodes),
            ..size
        };
        let run = crate::simulate::simulate(
            machine,
            crate::simulate::Workload::Pattern(Pattern::Stencil1d),
            share,
            None,
        )?;
        let halo = (size.elems * std::mem::size_of::<f32>()) as f64;
        let network_s = if nodes > 1 {
            size.steps as f64 * (net.latency_s + halo / net.bandwidth)
        } else {
            0.0
        };
        let makespan_s = run.makespan_s + network_s;
        let base = *one.get_or_insert(makespan_s);
        points.push(NodePoint {
            nodes,
            node_s: run.makespan_s,
            network_s,
            makespan_s,
            speedup: base / makespan_s.max(f64::MIN_POSITIVE),
        });
    }
    Ok(points)
}

/// Draws the prediction's speed-up against nodes as an SVG.
pub fn plot_prediction(
    points: &[NodePoint],
    title: &str,
    path: &std::path::Path,
) -> std::io::Result<()> {
    let as_scale: Vec<crate::simulate::ScalePoint> = points
        .iter()
        .map(|p| crate::simulate::ScalePoint {
            workload: "stencil_1d".to_owned(),
            gpus: p.nodes,
            makespan_s: p.makespan_s,
            speedup: p.speedup,
        })
        .collect();
    crate::plot::speedup_plot_axes(
        &as_scale,
        title,
        ("nodes", "predicted speed-up over one node"),
        path,
    )
}

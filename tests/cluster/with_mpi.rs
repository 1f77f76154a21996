//! The cluster's tests: collectives, failures, the examples, caching,
//! recordings and balancing, each on 1, 2 and 4 ranks.

use std::process::Command;

use super::harness::{at_1_2_and_4, child, dies, runtime};
use pel::Error;
use pel::cluster::{Cluster, DistMap, Distribution};

/// Every collective on every rank against what one process computes.
fn collectives() {
    let cluster = Cluster::init().unwrap();
    let (rank, size) = (cluster.rank(), cluster.size());
    let rt = runtime();
    let n = 1000;
    // allreduce: each rank gives rank + 1 (and the index): the sum is
    // known in closed form.
    let x = rt.buffer(
        &(0..n)
            .map(|i| (rank + 1) as f32 + i as f32)
            .collect::<Vec<_>>(),
    );
    cluster.allreduce_sum(&rt, &x).unwrap();
    let want: Vec<f32> = (0..n)
        .map(|i| (size * (size + 1) / 2) as f32 + (size * i) as f32)
        .collect();
    assert_eq!(rt.read(&x).unwrap(), want);
    // broadcast from the last rank.
    let root = size - 1;
    let b = rt.buffer(&vec![rank as u32; n]);
    cluster.broadcast(&rt, &b, root).unwrap();
    assert_eq!(rt.read(&b).unwrap(), vec![root as u32; n]);
    // gather to rank 0, in rank order.
    let g = rt.buffer(&[rank as i32; 3]);
    let got = cluster.gather(&rt, &g, 0).unwrap();
    if rank == 0 {
        let want: Vec<i32> = (0..size as i32).flat_map(|r| [r; 3]).collect();
        assert_eq!(got, Some(want));
    } else {
        assert_eq!(got, None);
    }
    // A root past the job is an error, not a hang.
    assert!(matches!(
        cluster.broadcast(&rt, &b, size),
        Err(Error::Cluster { .. })
    ));
    // Distributions: the same everywhere agrees; one rank's own is
    // refused naming it, on every rank.
    let block = DistMap::new("x", n, size, Distribution::Block).unwrap();
    cluster.agree("x", &block).unwrap();
    if size > 1 {
        let odd = if rank == size - 1 {
            DistMap::new("x", n, size, Distribution::BlockCyclic { block: 1 }).unwrap()
        } else {
            block.clone()
        };
        let err = cluster.agree("x", &odd).unwrap_err();
        assert!(
            matches!(&err, Error::Distribution { rank: r, buffer, .. } if *r == size - 1 && buffer == "x"),
            "{err}"
        );
    }
    cluster.barrier();
    println!("rank {rank} of {size}: collectives ok");
}

#[test]
fn collectives_match_one_process_at_1_2_and_4_ranks() {
    const NAME: &str = "with_mpi::collectives_match_one_process_at_1_2_and_4_ranks";
    match child(NAME) {
        Some(true) => return collectives(),
        Some(false) => return,
        None => {}
    }
    at_1_2_and_4(NAME, "collectives ok");
}

/// Rank 1 panics while rank 0 waits for it.
fn one_rank_panics() {
    let cluster = Cluster::init().unwrap();
    if cluster.rank() == 1 {
        panic!("task `stencil` failed on purpose");
    }
    cluster.barrier();
    unreachable!("rank 0 cannot pass the barrier without rank 1");
}

#[test]
fn a_rank_that_panics_ends_the_job_naming_it() {
    const NAME: &str = "with_mpi::a_rank_that_panics_ends_the_job_naming_it";
    match child(NAME) {
        Some(true) => return one_rank_panics(),
        Some(false) => return,
        None => {}
    }
    let Some((_, stderr)) = dies(NAME) else {
        return;
    };
    assert!(
        stderr.contains("rank 1 of 2 panicked") && stderr.contains("stencil"),
        "{stderr}"
    );
}

use pel::cluster::ClusterRuntime;
use pel::distributed;
use pel::kernels::heat::Heat;
use pel::kernels::kmeans::{Init, KMeans};
use pel::kernels::taskbench::{self, CPU, Graph, Pattern, TaskBench};
use pel::{Backend, Kernel, Read, ReadWrite, Target};

fn cluster_runtime() -> ClusterRuntime {
    ClusterRuntime::new(Cluster::init().unwrap(), runtime()).unwrap()
}

/// heat, k-means and Task Bench over the ranks, each against one
/// process; heat's bytes between ranks against its halo.
fn examples() {
    let cr = cluster_runtime();
    let (rank, size) = (cr.rank(), cr.size());
    // heat: 97 × 61 (a prime of rows: uneven blocks), 25 steps.
    let (w, h, alpha, steps) = (97usize, 61usize, 0.2f32, 25usize);
    let cell = |x: usize, y: usize| ((x * 31 + y * 17) % 101) as f32;
    let rows = |r: std::ops::Range<usize>| -> Vec<f32> {
        r.flat_map(|y| (0..w).map(move |x| cell(x, y))).collect()
    };
    let run = distributed::heat(&cr, CPU, w, h, alpha, steps, rows).unwrap();
    // Every halo row was sent once a step: (ranks - 1) boundaries, a
    // row each way, no more.
    let halo = (size as u64 - 1) * 2 * (w as u64 * 4);
    assert_eq!(run.halo_bytes_per_step, halo);
    assert_eq!(run.bytes_sent, halo * steps as u64, "{run:?}");
    // Each rank steps its own block: 1 task a step alone, 2 with the
    // edges; the rest it only records.
    let per_step = if size > 1 { 2 } else { 1 };
    assert_eq!(run.steps.tasks_run, (per_step * steps) as u64);
    assert_eq!(run.steps.tasks, (per_step * steps * size) as u64);
    // Two steps recorded, replayed in pairs; on more than one rank the
    // first replay finds halos cached that the recording did not.
    let replayed = if size > 1 { 20 } else { 22 };
    assert_eq!(
        run.steps.tasks_replayed,
        (per_step * replayed * size) as u64
    );
    if let Some(grid) = run.grid {
        let rt = cr.runtime();
        let whole = rt.buffer(&rows(0..h));
        Heat::new()
            .unwrap()
            .run(rt, Target::On(Backend::Cpu), &whole, w, h, alpha, steps)
            .unwrap();
        let want = rt.read(&whole).unwrap();
        assert!(
            grid.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "heat on {size} ranks is not bitwise the one-process run"
        );
    }
    // k-means: 4,001 points in four clumps, k = 4.
    let (n, d) = (4001usize, 2usize);
    let points: Vec<f32> = (0..n)
        .flat_map(|i| {
            let (cx, cy) = [(0.2, 0.2), (0.8, 0.2), (0.2, 0.8), (0.8, 0.8)][i % 4];
            let j = (i / 4) as f32;
            [cx + 0.05 * (j * 0.37).sin(), cy + 0.05 * (j * 0.71).cos()]
        })
        .collect();
    let init: Vec<f32> = points[..8].to_vec();
    let fit = distributed::kmeans(&cr, CPU, n, d, &init, 50, |r| {
        points[r.start * d..r.end * d].to_vec()
    })
    .unwrap();
    let one = KMeans::new()
        .unwrap()
        .fit(
            cr.runtime(),
            CPU,
            &points,
            n,
            d,
            4,
            Init::Centroids(&init),
            50,
        )
        .unwrap();
    assert!(fit.converged && one.converged);
    // The sums are added in another order: f32 rounding, 1e-5 here.
    for (a, b) in fit.centroids.iter().zip(&one.centroids) {
        assert!(
            (a - b).abs() <= 1e-5,
            "{:?} vs {:?}",
            fit.centroids,
            one.centroids
        );
    }
    // Task Bench stencil_1d: 7 points (uneven blocks) × 9 steps.
    let tb = TaskBench::new().unwrap();
    let graph = Graph::new(Pattern::Stencil1d, 7, 9);
    let got = distributed::taskbench(&cr, &tb, CPU, &graph, 3).unwrap();
    if let Some(got) = got {
        let want = taskbench::reference(&graph, tb.elems_per_task(), 3).unwrap();
        assert_eq!(got, want);
    }
    cr.wait_all().unwrap();
    println!("rank {rank} of {size}: examples ok");
}

#[test]
fn heat_kmeans_and_taskbench_match_one_process_at_1_2_and_4_ranks() {
    const NAME: &str = "with_mpi::heat_kmeans_and_taskbench_match_one_process_at_1_2_and_4_ranks";
    match child(NAME) {
        Some(true) => return examples(),
        Some(false) => return,
        None => {}
    }
    at_1_2_and_4(NAME, "examples ok");
}

const COPY: &str = r#"
    @group(0) @binding(0) var<storage, read> x: array<f32>;
    @group(0) @binding(1) var<storage, read_write> y: array<f32>;
    @compute @workgroup_size(64)
    fn main(@builtin(global_invocation_id) id: vec3<u32>) {
        if id.x < arrayLength(&y) { y[id.x] = x[id.x] + 1.0; }
    }"#;

fn plus_one() -> Kernel {
    Kernel::builder("plus_one", COPY)
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _: &()| {
            let (x, y) = args.split();
            for (y, x) in y.iter_mut().zip(x) {
                *y = x + 1.0;
            }
        })
        .build()
        .unwrap()
}

/// A remote copy is sent once and cached until its buffer is written;
/// wrong distributions and arguments are typed errors on every rank.
fn caching_and_errors() {
    let cr = cluster_runtime();
    let (rank, size) = (cr.rank(), cr.size());
    let last = size - 1;
    let k = plus_one();
    let x = cr.buffer("x", 0, 256, || vec![1.0f32; 256]).unwrap();
    let ys: Vec<_> = (0..3)
        .map(|i| cr.zeros::<f32>(&format!("y{i}"), last, 256).unwrap())
        .collect();
    let before = cr.stats();
    for y in &ys {
        cr.submit(&k, &[&x, y], &()).unwrap();
    }
    let moved = cr.stats().since(&before);
    let bytes = cr.cluster().sum_u64(moved.bytes_sent);
    // Three readers on the last rank: x went there once (if remote).
    assert_eq!(bytes, if size > 1 { 1024 } else { 0 });
    assert_eq!(x.valid_on(), if size > 1 { vec![0, last] } else { vec![0] });
    // A write on rank 0 makes the cached copy stale: one more send.
    cr.write(&x, || vec![5.0; 256]).unwrap();
    assert_eq!(x.valid_on(), vec![0]);
    assert_eq!(x.version(), 1);
    cr.submit(&k, &[&x, &ys[0]], &()).unwrap();
    let again = cr.cluster().sum_u64(cr.stats().since(&before).bytes_sent);
    assert_eq!(again, if size > 1 { 2048 } else { 0 });
    let got = cr.fetch(&ys[0], 0).unwrap();
    if rank == 0 {
        assert_eq!(got, Some(vec![6.0; 256]));
    } else {
        assert_eq!(got, None);
    }
    // Buffers a map's runs: one a block of 3, dealt in turn.
    let map = DistMap::new("b", 10, size, Distribution::BlockCyclic { block: 3 }).unwrap();
    let bs = cr
        .blocks("b", &map, |r| r.map(|i| i as f32).collect())
        .unwrap();
    let starts: Vec<usize> = bs.iter().map(|(r, _)| r.start).collect();
    if size == 1 {
        assert_eq!(starts, vec![0]);
    } else {
        assert_eq!(starts, vec![0, 3, 6, 9]);
    }
    for (range, b) in &bs {
        assert_eq!((b.owner(), b.len()), (map.owner(range.start), range.len()));
        let got = cr.fetch(b, 0).unwrap();
        if rank == 0 {
            assert_eq!(got, Some(range.clone().map(|i| i as f32).collect()));
        }
    }
    // Errors, the same on every rank, and no hang after them.
    let err = cr.zeros::<f32>("z", size, 4).unwrap_err();
    assert!(
        matches!(&err, Error::Distribution { buffer, rank: r, .. } if buffer == "z" && *r == size),
        "{err}"
    );
    let err = cr.submit(&k, &[&x], &()).unwrap_err();
    assert!(matches!(err, Error::ArgCount { .. }), "{err}");
    // Two ranks that make a buffer differently: refused naming it and
    // the first rank that differs.
    if size > 1 {
        let owner = if rank == last { last } else { 0 };
        let _w = cr.zeros::<f32>("w", owner, 8).unwrap();
        let err = cr.agree().unwrap_err();
        assert!(
            matches!(&err, Error::Distribution { buffer, rank: r, .. } if buffer == "w" && *r == last),
            "{err}"
        );
    }
    cr.wait_all().unwrap();
    println!("rank {rank} of {size}: caching ok");
}

#[test]
fn remote_copies_are_sent_once_and_cached_and_bad_maps_are_errors() {
    const NAME: &str = "with_mpi::remote_copies_are_sent_once_and_cached_and_bad_maps_are_errors";
    match child(NAME) {
        Some(true) => return caching_and_errors(),
        Some(false) => return,
        None => {}
    }
    at_1_2_and_4(NAME, "caching ok");
}

/// Task Bench graphs recorded and replayed: the serial result, and the
/// map, versions and messages that submitting them again leaves.
fn recordings() {
    let cr = cluster_runtime();
    let (rank, size) = (cr.rank(), cr.size());
    let tb = TaskBench::new().unwrap();
    let elems = tb.elems_per_task();
    // An uneven width, an odd number of steps, and a pattern whose
    // sources change step by step.
    for pattern in [Pattern::Stencil1d, Pattern::Fft] {
        let graph = Graph::new(pattern, 2 * size + 1, 9);
        let want = taskbench::reference(&graph, elems, 3).unwrap();
        let rows = distributed::TaskbenchRows::new(&cr, &tb, &graph).unwrap();
        let recorded = rows.record(&cr, &tb, CPU, 3).unwrap();
        assert_eq!(recorded.len(), graph.tasks());
        let check = |what: &str| {
            for (p, b) in rows.last().iter().enumerate() {
                if let Some(v) = cr.fetch(b, 0).unwrap() {
                    assert_eq!(v, want[p], "{pattern:?} {what}, point {p}");
                }
            }
        };
        check("recorded");
        let state = || -> Vec<(u64, Vec<usize>)> {
            let last = rows.last();
            last.iter().map(|b| (b.version(), b.valid_on())).collect()
        };
        // The fetches moved the map: this one submits, and re-plans.
        cr.replay(&recorded).unwrap();
        check("submitted again");
        for _ in 0..2 {
            // Each replay starts from what the last one left.
            let (s0, t0) = (state(), cr.stats());
            cr.replay(&recorded).unwrap();
            let (s1, t1) = (state(), cr.stats());
            rows.submit(&cr, &tb, CPU, 3).unwrap();
            cr.flush().unwrap();
            let (s2, t2) = (state(), cr.stats());
            let (replayed, again) = (t1.since(&t0), t2.since(&t1));
            assert_eq!(replayed.tasks_replayed, graph.tasks() as u64);
            assert_eq!(again.tasks_replayed, 0);
            let replayed = pel::cluster::ClusterStats {
                tasks_replayed: 0,
                ..replayed
            };
            assert_eq!(replayed, again, "{pattern:?}: what moved");
            for ((a, b), c) in s0.iter().zip(&s1).zip(&s2) {
                assert_eq!(b.1, c.1, "{pattern:?}: where the copies are");
                assert_eq!(b.0 - a.0, c.0 - b.0, "{pattern:?}: versions");
            }
            check("replayed");
        }
        // With the rank's runtime tracing, its tasks run as ordinary
        // calls: the replay still does what it recorded.
        cr.runtime().enable_trace();
        let t0 = cr.stats();
        cr.replay(&recorded).unwrap();
        assert_eq!(cr.stats().since(&t0).tasks_replayed, graph.tasks() as u64);
        check("replayed as ordinary calls");
        // A write drops the copy the fetch left on rank 0 (of the last
        // point, on the last rank): the map moved on, so the replay
        // submits as usual. On one rank the map stays as it was.
        cr.write(&rows.last()[2 * size], || vec![7.0; elems])
            .unwrap();
        let t0 = cr.stats();
        cr.replay(&recorded).unwrap();
        let replayed = cr.stats().since(&t0).tasks_replayed;
        assert_eq!(replayed, if size > 1 { 0 } else { graph.tasks() as u64 });
        check("after a write");
    }
    // A recording holds tasks alone, and none inside another.
    let rows =
        distributed::TaskbenchRows::new(&cr, &tb, &Graph::new(Pattern::Stencil1d, 3, 2)).unwrap();
    let err = cr
        .record(|cr| cr.fetch(&rows.last()[0], 0).map(drop))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Cluster { message, .. } if message.contains("fetch")),
        "{err}"
    );
    let err = cr.record(|cr| cr.record(|_| Ok(())).map(drop)).unwrap_err();
    assert!(
        matches!(&err, Error::Cluster { message, .. } if message.contains("inside")),
        "{err}"
    );
    cr.wait_all().unwrap();
    println!("rank {rank} of {size}: recordings ok");
}

#[test]
fn recorded_graphs_replay_what_submitting_them_again_does_at_1_2_and_4_ranks() {
    const NAME: &str =
        "with_mpi::recorded_graphs_replay_what_submitting_them_again_does_at_1_2_and_4_ranks";
    match child(NAME) {
        Some(true) => return recordings(),
        Some(false) => return,
        None => {}
    }
    at_1_2_and_4(NAME, "recordings ok");
}

/// Task Bench across the ranks; rank 1 is killed (SIGKILL) half-way.
fn killed_mid_graph() {
    let cr = cluster_runtime();
    let tb = TaskBench::new().unwrap();
    let graph = Graph::new(Pattern::Stencil1d, 4, 1000);
    let rows = distributed::TaskbenchRows::new(&cr, &tb, &graph).unwrap();
    for round in 0.. {
        if round == 5 && cr.rank() == 1 {
            println!("rank 1: killing itself mid-graph");
            let pid = std::process::id().to_string();
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
        rows.submit(&cr, &tb, CPU, 16).unwrap();
        if round == 20 {
            cr.wait_all().unwrap();
        }
    }
}

#[test]
fn a_rank_killed_mid_graph_ends_the_job_naming_it() {
    const NAME: &str = "with_mpi::a_rank_killed_mid_graph_ends_the_job_naming_it";
    match child(NAME) {
        Some(true) => return killed_mid_graph(),
        Some(false) => return,
        None => {}
    }
    let Some((stdout, stderr)) = dies(NAME) else {
        return;
    };
    assert!(stdout.contains("rank 1: killing itself"), "{stdout}");
    // mpirun names the rank that died.
    assert!(stderr.contains("rank 1"), "{stderr}");
}

/// A task whose kernel panics on rank 1 (pel catches it as an error):
/// the job ends, naming the rank and the task.
fn task_fails() {
    let cr = cluster_runtime();
    let boom = Kernel::builder("boom", COPY)
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|_, _: &()| panic!("boom on purpose"))
        .build()
        .unwrap();
    let k = plus_one();
    let x = cr.buffer("x", 0, 4, || vec![1.0f32; 4]).unwrap();
    let y = cr.zeros::<f32>("y", 1, 4).unwrap();
    let z = cr.zeros::<f32>("z", 0, 4).unwrap();
    cr.submit(&k, &[&x, &y], &()).unwrap();
    cr.submit(&boom, &[&x, &y], &()).unwrap();
    // Rank 0 needs y: it waits for rank 1, which cannot send it.
    cr.submit(&k, &[&y, &z], &()).unwrap();
    cr.wait_all().unwrap();
    unreachable!("rank 0 cannot have y");
}

#[test]
fn a_failed_task_ends_the_job_naming_the_rank_and_task() {
    const NAME: &str = "with_mpi::a_failed_task_ends_the_job_naming_the_rank_and_task";
    match child(NAME) {
        Some(true) => return task_fails(),
        Some(false) => return,
        None => {}
    }
    let Some((_, stderr)) = dies(NAME) else {
        return;
    };
    assert!(
        stderr.contains("rank 1 of 2") && stderr.contains("task 1 (`boom`)"),
        "{stderr}"
    );
}

/// Balancing: every input on rank 0, independent tasks; over a fast
/// network some move to other ranks (every rank choosing alike, or
/// the job would hang), over a slow one none; results exact.
fn balanced() {
    let cr = cluster_runtime();
    let (rank, size) = (cr.rank(), cr.size());
    let k = plus_one();
    let n = 1 << 14;
    let x = cr.buffer("x", 0, n, || vec![1.0f32; n]).unwrap();
    cr.balance(true).unwrap();
    let link = cr.link().unwrap();
    if size > 1 {
        assert!(link.latency_s > 0.0 && link.bandwidth > 0.0, "{link:?}");
    }
    let ys: Vec<_> = (0..24)
        .map(|i| cr.zeros::<f32>(&format!("y{i}"), 0, n).unwrap())
        .collect();
    cr.set_link(pel::cluster::NetLink {
        latency_s: 0.0,
        bandwidth: 1e15,
    });
    let before = cr.stats();
    for y in &ys[..12] {
        cr.submit(&k, &[&x, y], &()).unwrap();
    }
    let fast = cr.stats().since(&before).tasks_run;
    let moved = cr.cluster().sum_u64(if rank == 0 { 0 } else { fast });
    if size > 1 {
        assert!(moved > 0, "no task moved off rank 0 over a free network");
    }
    cr.set_link(pel::cluster::NetLink {
        latency_s: 1.0,
        bandwidth: 1.0,
    });
    let before = cr.stats();
    for y in &ys[12..] {
        cr.submit(&k, &[&x, y], &()).unwrap();
    }
    let slow = cr.stats().since(&before).tasks_run;
    assert_eq!(slow, if rank == 0 { 12 } else { 0 });
    for y in &ys {
        let got = cr.fetch(y, 0).unwrap();
        if rank == 0 {
            assert_eq!(got, Some(vec![2.0; n]));
        }
    }
    cr.balance(false).unwrap();
    assert!(cr.link().is_none());
    cr.wait_all().unwrap();
    println!("rank {rank} of {size}: balance ok ({moved} moved)");
}

#[test]
fn balancing_moves_work_off_a_busy_owner_only_when_the_network_pays() {
    const NAME: &str = "with_mpi::balancing_moves_work_off_a_busy_owner_only_when_the_network_pays";
    match child(NAME) {
        Some(true) => return balanced(),
        Some(false) => return,
        None => {}
    }
    at_1_2_and_4(NAME, "balance ok");
}

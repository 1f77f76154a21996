//! Task Bench's stencil_1d pattern across the ranks of an MPI job: each
//! point's values live on one rank, each task runs where its point lives,
//! and the neighbours' values it reads come from the ranks next to it.
//!
//! ```text
//! cargo build --release --features cluster --example taskbench_mpi
//! mpirun -n 4 --oversubscribe target/release/examples/taskbench_mpi
//! ```
//!
//! Rank 0 checks the last step against Task Bench's serial reference,
//! bitwise (the tasks run on the CPU, with the reference's arithmetic).
//! Then the graph is recorded and replayed, as a time-stepping program
//! would run its step again, and checked the same way.

use pel::Runtime;
use pel::cluster::{Cluster, ClusterRuntime};
use pel::kernels::taskbench::{self, CPU, Graph, Pattern, TaskBench};

fn main() -> anyhow::Result<()> {
    let (width, steps, iterations) = (16usize, 64usize, 256u32);
    let cr = ClusterRuntime::new(Cluster::init()?, Runtime::new()?)?;
    let tb = TaskBench::new()?;
    let graph = Graph::new(Pattern::Stencil1d, width, steps);
    let start = std::time::Instant::now();
    let got = pel::distributed::taskbench(&cr, &tb, CPU, &graph, iterations)?;
    let took = start.elapsed();
    let s = cr.stats();
    println!(
        "rank {} of {}: {} tasks run, {} pruned; {} messages sent, {} received",
        cr.rank(),
        cr.size(),
        s.tasks_run,
        s.tasks_pruned,
        s.messages_sent,
        s.messages_received
    );
    // Recorded once, replayed: the same tasks, without working out again
    // where each runs and what it must receive.
    let rows = pel::distributed::TaskbenchRows::new(&cr, &tb, &graph)?;
    let recording = rows.record(&cr, &tb, CPU, iterations)?;
    let replays = 3;
    let start = std::time::Instant::now();
    for _ in 0..replays {
        cr.replay(&recording)?;
    }
    cr.flush()?;
    let replayed = start.elapsed() / replays;
    let mut last = Vec::new();
    for b in rows.last() {
        last.extend(cr.fetch(b, 0)?);
    }
    cr.wait_all()?;
    let Some(got) = got else {
        return Ok(());
    };
    let want = taskbench::reference(&graph, tb.elems_per_task(), iterations)?;
    anyhow::ensure!(
        got == want,
        "taskbench_mpi's last step differs from the serial reference"
    );
    anyhow::ensure!(
        last == want,
        "taskbench_mpi's replayed graph differs from the serial reference"
    );
    println!(
        "taskbench_mpi: stencil_1d, {width} points × {steps} steps on {} ranks in {:.1} ms ({:.1} ms a replay); equal to the one-process reference",
        cr.size(),
        took.as_secs_f64() * 1e3,
        replayed.as_secs_f64() * 1e3
    );
    Ok(())
}

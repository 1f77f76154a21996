//! Heat diffusion on a plate cut into blocks of rows, one a rank of an MPI
//! job; each step, each rank's edge rows go to its neighbours.
//!
//! ```text
//! cargo build --release --features cluster --example heat_mpi
//! mpirun -n 4 --oversubscribe target/release/examples/heat_mpi [-- --auto]
//! ```
//!
//! Rank 0 then steps the whole plate alone with pel's `Heat` kernel and
//! checks the two agree bitwise. The blocks run on the CPU, where the
//! arithmetic is the same term for term; with `--auto` pel places each
//! block among its rank's devices, and a GPU may fuse multiply-adds, so
//! the check allows 1e-4 there.

use pel::cluster::{Cluster, ClusterRuntime};
use pel::kernels::heat::Heat;
use pel::{Backend, Runtime, Target};

fn main() -> anyhow::Result<()> {
    let auto = std::env::args().any(|a| a == "--auto");
    let (width, height, alpha, steps) = (512usize, 384usize, 0.24f32, 400usize);
    // A hot disc and a hot bar on a cold plate.
    let cell = |x: usize, y: usize| {
        let hot = (x as f64 - 200.0).hypot(y as f64 - 150.0) < 60.0
            || ((60..450).contains(&x) && (300..312).contains(&y));
        if hot { 100.0f32 } else { 0.0 }
    };
    let rows = |r: std::ops::Range<usize>| -> Vec<f32> {
        r.flat_map(|y| (0..width).map(move |x| cell(x, y)))
            .collect()
    };

    let cr = ClusterRuntime::new(Cluster::init()?, Runtime::new()?)?;
    let target = if auto {
        Target::Auto
    } else {
        Target::On(Backend::Cpu)
    };
    let start = std::time::Instant::now();
    let run = pel::distributed::heat(&cr, target, width, height, alpha, steps, rows)?;
    let took = start.elapsed();
    let s = &run.steps;
    println!(
        "rank {} of {}: {} tasks run, {} pruned, {} replayed; sent {} messages ({} bytes), received {} ({} bytes)",
        cr.rank(),
        cr.size(),
        s.tasks_run,
        s.tasks_pruned,
        s.tasks_replayed,
        s.messages_sent,
        s.bytes_sent,
        s.messages_received,
        s.bytes_received
    );
    cr.wait_all()?;
    let Some(grid) = run.grid else {
        return Ok(());
    };

    // The same plate on one process, whole.
    let rt = cr.runtime();
    let whole = rt.buffer(&rows(0..height));
    Heat::new()?.run(
        rt,
        Target::On(Backend::Cpu),
        &whole,
        width,
        height,
        alpha,
        steps,
    )?;
    let want = rt.read(&whole)?;
    let worst = grid
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let bitwise = grid
        .iter()
        .zip(&want)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    println!(
        "{steps} steps of {width}×{height} on {} ranks in {:.1} ms; halo {} bytes a step, {} sent in all ({} expected)",
        cr.size(),
        took.as_secs_f64() * 1e3,
        run.halo_bytes_per_step,
        run.bytes_sent,
        run.halo_bytes_per_step * steps as u64
    );
    if bitwise {
        println!("heat_mpi: bitwise equal to the one-process run");
    } else {
        anyhow::ensure!(
            auto && worst <= 1e-4,
            "heat_mpi differs from the one-process run by {worst}"
        );
        println!("heat_mpi: within {worst:e} of the one-process run (placed by pel)");
    }
    anyhow::ensure!(
        run.bytes_sent == run.halo_bytes_per_step * steps as u64,
        "sent {} bytes; the halo is {} a step",
        run.bytes_sent,
        run.halo_bytes_per_step
    );
    Ok(())
}

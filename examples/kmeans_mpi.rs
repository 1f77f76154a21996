//! k-means over points spread across the ranks of an MPI job: each rank
//! assigns and sums its own points, and one allreduce an iteration adds
//! the sums.
//!
//! ```text
//! cargo build --release --features cluster --example kmeans_mpi
//! mpirun -n 4 --oversubscribe target/release/examples/kmeans_mpi
//! ```
//!
//! Rank 0 then fits the same points from the same start alone, with pel's
//! `KMeans::fit`, and checks the centroids agree within 1e-4 (the sums are
//! added in another order; the points lie in the unit square).

mod common;

use pel::cluster::{Cluster, ClusterRuntime};
use pel::kernels::kmeans::KMeans;
use pel::{Runtime, Target};

/// The centroids' agreement with one process, absolute.
const TOLERANCE: f32 = 1e-4;

fn main() -> anyhow::Result<()> {
    let (n, d, k) = (60_000usize, 2usize, 6usize);
    // Six blobs in the unit square; every rank makes the same points.
    let points = common::blob_points(n, 3);
    // The start: one point of each blob.
    let init: Vec<f32> = (0..k)
        .flat_map(|c| [points[2 * c], points[2 * c + 1]])
        .collect();

    let cr = ClusterRuntime::new(Cluster::init()?, Runtime::new()?)?;
    let start = std::time::Instant::now();
    let fit = pel::distributed::kmeans(&cr, Target::Auto, n, d, &init, 100, |r| {
        points[r.start * d..r.end * d].to_vec()
    })?;
    let took = start.elapsed();
    cr.wait_all()?;
    if cr.rank() != 0 {
        return Ok(());
    }
    let one = KMeans::new()?.fit(
        cr.runtime(),
        Target::Auto,
        &points,
        n,
        d,
        k,
        pel::kernels::kmeans::Init::Centroids(&init),
        100,
    )?;
    let worst = fit
        .centroids
        .iter()
        .zip(&one.centroids)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "{n} points, k = {k}, on {} ranks: {} after {} assignments in {:.1} ms",
        cr.size(),
        if fit.converged {
            "converged"
        } else {
            "stopped at the cap"
        },
        fit.iterations,
        took.as_secs_f64() * 1e3
    );
    for c in fit.centroids.chunks_exact(d) {
        println!("  centroid ({:.4}, {:.4})", c[0], c[1]);
    }
    anyhow::ensure!(
        worst <= TOLERANCE,
        "kmeans_mpi's centroids differ from one process's by {worst}"
    );
    println!(
        "kmeans_mpi: centroids within {worst:e} of the one-process fit (tolerance {TOLERANCE:e})"
    );
    Ok(())
}

//! Cluster 2-D points with k-means and draw them, coloured by cluster, as a
//! PNG.
//!
//! ```text
//! cargo run --release --example kmeans [-- --out kmeans.png]
//! ```
//!
//! The points come from six Gaussian blobs; k-means (k-means++ start, then
//! assignment and centroid update until no label changes) runs where pel
//! expects it to finish first. Centroids are drawn as black crosses.

mod common;

use pel::kernels::kmeans::{Init, KMeans};
use pel::{Runtime, Target};

fn main() -> anyhow::Result<()> {
    let out = common::out_path("kmeans.png");
    let (n, k, side) = (60_000usize, 6usize, 640usize);

    // Six blobs of different spreads in the unit square.
    let points = common::blob_points(n, 3);

    // k-means finds a local optimum that depends on its start: as usual,
    // run it from a few k-means++ starts and keep the tightest clustering
    // (the least sum of squared distances to the centroids).
    let rt = Runtime::new()?;
    let kmeans = KMeans::new()?;
    let start = std::time::Instant::now();
    let mut best: Option<(f64, pel::kernels::kmeans::KMeansResult)> = None;
    for seed in 1..=5 {
        let fit = kmeans.fit(&rt, Target::Auto, &points, n, 2, k, Init::Seed(seed), 100)?;
        let inertia: f64 = points
            .chunks_exact(2)
            .zip(&fit.labels)
            .map(|(p, &l)| {
                let c = &fit.centroids[2 * l as usize..2 * l as usize + 2];
                ((p[0] - c[0]) as f64).powi(2) + ((p[1] - c[1]) as f64).powi(2)
            })
            .sum();
        if best.as_ref().is_none_or(|(b, _)| inertia < *b) {
            best = Some((inertia, fit));
        }
    }
    let elapsed = start.elapsed();
    let (inertia, fit) = best.expect("five runs");

    // White canvas, points coloured by cluster, centroids as crosses.
    let mut rgb = vec![255u8; side * side * 3];
    let mut plot = |x: f32, y: f32, colour: [u8; 3]| {
        let (px, py) = (
            (x * side as f32) as isize,
            ((1.0 - y) * side as f32) as isize,
        );
        if (0..side as isize).contains(&px) && (0..side as isize).contains(&py) {
            let i = (py as usize * side + px as usize) * 3;
            rgb[i..i + 3].copy_from_slice(&colour);
        }
    };
    for (p, &label) in points.chunks_exact(2).zip(&fit.labels) {
        plot(p[0], p[1], common::category_colour(label as usize));
    }
    for c in fit.centroids.chunks_exact(2) {
        for t in -8..=8 {
            let d = t as f32 / side as f32;
            for w in [-1.0, 0.0, 1.0] {
                let e = w / side as f32;
                plot(c[0] + d, c[1] + e, [0, 0, 0]);
                plot(c[0] + e, c[1] + d, [0, 0, 0]);
            }
        }
    }
    common::write_png(&out, side, side, &rgb)?;

    let mut sizes = vec![0usize; k];
    for &l in &fit.labels {
        sizes[l as usize] += 1;
    }
    println!(
        "{n} points, k = {k}, best of 5 starts (sum of squares {inertia:.2}): {} after {} iterations; 5 fits in {:.1} ms",
        if fit.converged {
            "converged"
        } else {
            "stopped at the cap"
        },
        fit.iterations,
        elapsed.as_secs_f64() * 1e3
    );
    for (i, c) in fit.centroids.chunks_exact(2).enumerate() {
        println!(
            "  cluster {i}: centroid ({:.3}, {:.3}), {} points",
            c[0], c[1], sizes[i]
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}

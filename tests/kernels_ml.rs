//! The machine-learning sample kernels (softmax, layer-norm, k-means)
//! against their serial references, on the CPU and on every GPU, at awkward
//! shapes; each also once past 65,535 workgroups (on the CPU and the first
//! GPU only: software GL runs that many workgroups too slowly). Then k-means
//! `fit` end to end, and the typed errors of bad input. Inputs are seeded
//! random values; outputs start poisoned. The tolerances are stated in each
//! kernel's trial (see pel-kernels).

mod common;

use pel::kernels::kmeans::{self, Init, KMeans};
use pel::kernels::layernorm::LayerNorm;
use pel::kernels::samples;
use pel::kernels::softmax::Softmax;
use pel::{Backend, Error, Result, Target};

/// rows×cols shapes: empty both ways, one element, one row just over a
/// workgroup (a prime), primes, a wide matrix, and 70,000 short rows (many
/// to a workgroup).
const ROW_SHAPES: [(usize, usize); 7] = [
    (0, 5),
    (3, 0),
    (1, 1),
    (1, 257),
    (61, 67),
    (200, 1000),
    (70_000, 3),
];

/// Rows of more than 128 columns take a workgroup each: 65,537 of them is
/// past the 65,535-per-dimension limit, so the launch is folded into 2-D
/// (8.5 M elements, 34 MB a buffer).
const FOLDED_ROWS: (usize, usize) = (65_537, 129);

/// (n, d, k): one point; one past an assignment workgroup (64 points); 2-D
/// points; one past a chunk of partial sums (1,024 points); more centroid
/// values than one 1,024-value tile (centroids straddle tiles) and more
/// partial sums per chunk than a workgroup has invocations; a centroid
/// longer than a tile; a prime count of 4-D points over 98 chunks.
const KMEANS_SHAPES: [(usize, usize, usize); 7] = [
    (1, 3, 1),
    (65, 2, 3),
    (1000, 2, 5),
    (1025, 3, 4),
    (3001, 7, 300),
    (50, 1500, 3),
    (100_003, 4, 16),
];

/// Points of 64 per workgroup: 65,625 workgroups, folded into 2-D; 4,102
/// chunks of partial sums, so the update's middle pass runs too.
const FOLDED_KMEANS: (usize, usize, usize) = (4_200_000, 1, 3);

cpu_and_gpu_tests! {
    "softmax", softmax_cpu, softmax_gpu, &ROW_SHAPES, samples::softmax::trial;
    "layernorm", layernorm_cpu, layernorm_gpu, &ROW_SHAPES, samples::layernorm::trial;
    "kmeans", kmeans_cpu, kmeans_gpu, &KMEANS_SHAPES, samples::kmeans::trial;
}

shape_tests! {
    softmax_folded_launch: "softmax", &[FOLDED_ROWS], samples::softmax::trial, common::cpu_and_first_gpu;
    layernorm_folded_launch: "layernorm", &[FOLDED_ROWS], samples::layernorm::trial, common::cpu_and_first_gpu;
    kmeans_folded_launch: "kmeans", &[FOLDED_KMEANS], samples::kmeans::trial, common::cpu_and_first_gpu;
}

/// `n` points of dimension `d` in `k` well-separated blobs.
fn blobs(n: usize, d: usize, k: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| {
            let c = (i * 7919) % k;
            (0..d).map(move |j| {
                let centre = 50.0 * ((c * (j + 3)) % 11) as f32 + 25.0 * c as f32;
                let noise = (((i * 31 + j * 17) % 101) as f32 - 50.0) / 25.0;
                centre + noise
            })
        })
        .collect()
}

/// Asserts that a fit is a fixed point of Lloyd's iteration: every label
/// names a nearest centroid (up to f32 rounding) and every centroid is the
/// mean of its points.
fn assert_fixed_point(name: &str, points: &[f32], d: usize, fit: &kmeans::KMeansResult) {
    let (_, nearest) = kmeans::reference_assign(points, &fit.centroids, d);
    for (i, (&label, x)) in fit.labels.iter().zip(points.chunks_exact(d)).enumerate() {
        let c = &fit.centroids[label as usize * d..(label as usize + 1) * d];
        let dist: f64 = x
            .iter()
            .zip(c)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum();
        assert!(
            dist <= nearest[i] * (1.0 + (d as f64 + 3.0) * f32::EPSILON as f64) + 1e-30,
            "{name}: point {i} is labelled {label} at distance {dist}, but the nearest is at {}",
            nearest[i]
        );
    }
    let (means, _) = kmeans::reference_update(points, &fit.labels, &fit.centroids, d);
    for (i, (&got, want)) in fit.centroids.iter().zip(means).enumerate() {
        assert!(
            (got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{name}: centroid value {i} is {got}, but its points' mean is {want}"
        );
    }
}

#[test]
fn kmeans_fit_converges_to_a_fixed_point_everywhere() {
    let rt = common::rt();
    let (n, d, k) = (20_000, 3, 6);
    let points = blobs(n, d, k);
    let mut backends = vec![Backend::Cpu];
    backends.extend(common::gpus(
        rt,
        "kmeans_fit_converges_to_a_fixed_point_everywhere",
    ));
    let km = KMeans::new().expect("kmeans builds");
    for b in backends {
        let fit = km
            .fit(rt, Target::On(b), &points, n, d, k, Init::Seed(3), 50)
            .unwrap_or_else(|e| panic!("fit on {b}: {e}"));
        assert!(
            fit.converged,
            "fit on {b} did not converge in 50 iterations"
        );
        assert!(fit.iterations >= 1);
        assert_eq!((fit.labels.len(), fit.centroids.len()), (n, k * d));
        assert_fixed_point(&format!("fit on {b}"), &points, d, &fit);
        // Well-separated blobs: every cluster found, one per blob.
        let mut sizes = vec![0; k];
        for &l in &fit.labels {
            sizes[l as usize] += 1;
        }
        assert!(sizes.iter().all(|&s| s > 0), "fit on {b}: sizes {sizes:?}");
    }
}

#[test]
fn kmeans_fit_from_given_centroids_and_no_iterations() {
    let rt = common::rt();
    let points = [0.0f32, 0.0, 1.0, 1.0, 9.0, 9.0, 10.0, 10.0, 0.5, 0.5];
    let init = [0.0f32, 0.0, 10.0, 10.0];
    let km = KMeans::new().expect("kmeans builds");
    // No update: the labels of the initial centroids; the midpoint (0.5,
    // 0.5) is nearer (0, 0).
    let fit = |iterations| {
        let init = Init::Centroids(&init);
        let on = Target::On(Backend::Cpu);
        km.fit(rt, on, &points, 5, 2, 2, init, iterations)
            .expect("fit")
    };
    let fit0 = fit(0);
    assert_eq!(fit0.labels, vec![0, 0, 1, 1, 0]);
    assert_eq!(fit0.centroids, init.to_vec());
    assert_eq!((fit0.iterations, fit0.converged), (0, false));
    // To convergence: the means of the two pairs (and the midpoint).
    let fit10 = fit(10);
    assert!(fit10.converged);
    assert_eq!(fit10.labels, vec![0, 0, 1, 1, 0]);
    assert_eq!(fit10.centroids, vec![0.5, 0.5, 9.5, 9.5]);
}

#[test]
fn kmeans_ties_go_to_the_lowest_centroid() {
    let rt = common::rt();
    // The point 1.0 is exactly between 0.0 and 2.0; 5.0 nearest to the
    // duplicated centroid 5.0 (indices 2 and 3).
    let points = [1.0f32, 5.0, 0.0, 2.0];
    let init = [0.0f32, 2.0, 5.0, 5.0];
    let km = KMeans::new().expect("kmeans builds");
    let mut backends = vec![Backend::Cpu];
    backends.extend(common::gpus(rt, "kmeans_ties_go_to_the_lowest_centroid"));
    for b in backends {
        let fit = km
            .fit(
                rt,
                Target::On(b),
                &points,
                4,
                1,
                4,
                Init::Centroids(&init),
                0,
            )
            .expect("fit");
        assert_eq!(fit.labels, vec![0, 2, 0, 1], "on {b}");
    }
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T>, arg: &str, says: &str) {
    match r {
        Err(Error::InvalidInput {
            arg: got, message, ..
        }) => {
            assert_eq!(got, arg, "{message}");
            assert!(message.contains(says), "{message:?} should say {says:?}");
        }
        other => panic!("expected InvalidInput for {arg}, got {other:?}"),
    }
}

#[test]
fn softmax_and_layernorm_refuse_mismatched_shapes() {
    let rt = common::rt();
    let x = rt.buffer(&[1.0f32; 12]);
    let y = rt.zeros::<f32>(12);
    let short = rt.zeros::<f32>(11);
    let sm = Softmax::new().expect("softmax builds");
    let t = Target::On(Backend::Cpu);
    assert_invalid(sm.run(rt, t, &x, &y, 5, 3), "x", "5×3");
    assert_invalid(sm.run(rt, t, &x, &short, 3, 4), "y", "has 11");
    assert_invalid(sm.submit(rt, t, &short, &y, 3, 4), "x", "needs 12");
    assert_invalid(sm.run(rt, t, &x, &y, usize::MAX, 2), "x", "matrix");

    let ln = LayerNorm::new().expect("layernorm builds");
    let (g3, g4) = (rt.buffer(&[1.0f32; 3]), rt.buffer(&[1.0f32; 4]));
    let b4 = rt.buffer(&[0.0f32; 4]);
    assert_invalid(
        ln.run(rt, t, &x, &g3, &b4, &y, 3, 4, 1e-5),
        "gamma",
        "4 columns",
    );
    assert_invalid(ln.run(rt, t, &x, &g4, &g3, &y, 3, 4, 1e-5), "beta", "has 3");
    assert_invalid(
        ln.run(rt, t, &x, &g4, &b4, &short, 3, 4, 1e-5),
        "y",
        "has 11",
    );
    assert_invalid(ln.run(rt, t, &x, &g4, &b4, &y, 4, 4, 1e-5), "x", "4×4");
    assert_invalid(ln.run(rt, t, &x, &g4, &b4, &y, 3, 4, -1.0), "eps", "-1");
    assert_invalid(
        ln.submit(rt, t, &x, &g4, &b4, &y, 3, 4, f32::NAN),
        "eps",
        "NaN",
    );
    // The right shapes run.
    sm.run(rt, t, &x, &y, 3, 4).expect("a 3×4 softmax runs");
    ln.run(rt, t, &x, &g4, &b4, &y, 3, 4, 1e-5)
        .expect("a 3×4 layer norm runs");
}

#[test]
fn kmeans_refuses_bad_input() {
    let rt = common::rt();
    let km = KMeans::new().expect("kmeans builds");
    let t = Target::On(Backend::Cpu);
    let points = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
    let fit = |points: &[f32], n, d, k, init| km.fit(rt, t, points, n, d, k, init, 10);
    assert_invalid(fit(&points, 3, 2, 0, Init::Seed(1)), "k", "k is 0");
    assert_invalid(fit(&points, 3, 2, 4, Init::Seed(1)), "k", "only 3 points");
    assert_invalid(fit(&points, 6, 0, 1, Init::Seed(1)), "d", "d is 0");
    assert_invalid(
        fit(&points, 4, 2, 1, Init::Seed(1)),
        "points",
        "need 8 values",
    );
    let mut nan = points;
    nan[3] = f32::NAN;
    assert_invalid(
        fit(&nan, 3, 2, 1, Init::Seed(1)),
        "points",
        "points[3] is NaN",
    );
    nan[3] = f32::INFINITY;
    assert_invalid(
        fit(&nan, 3, 2, 1, Init::Seed(1)),
        "points",
        "points[3] is inf",
    );
    let init = [0.0f32, f32::NAN];
    assert_invalid(
        fit(&points, 3, 2, 1, Init::Centroids(&init)),
        "init",
        "init[1]",
    );
    assert_invalid(
        fit(&points, 3, 2, 2, Init::Centroids(&init)),
        "init",
        "need 4 values",
    );

    let x = rt.buffer(&points);
    let labels = rt.zeros::<u32>(3);
    let changed = rt.zeros::<u32>(1);
    let c2 = rt.buffer(&[0.0f32, 1.0, 2.0, 3.0]);
    let c3 = rt.buffer(&[0.0f32, 1.0, 2.0]);
    assert_invalid(
        km.assign(rt, t, &x, &c2, &labels, &labels, 2),
        "changed",
        "exactly 1",
    );
    assert_invalid(
        km.assign(rt, t, &x, &c3, &labels, &changed, 2),
        "centroids",
        "whole number",
    );
    assert_invalid(
        km.assign(rt, t, &x, &c2, &labels, &changed, 3),
        "centroids",
        "whole number",
    );
    assert_invalid(km.update(rt, t, &x, &labels, &c2, 0), "d", "d is 0");
    let four = rt.zeros::<u32>(4);
    assert_invalid(km.update(rt, t, &x, &four, &c2, 2), "points", "4 points");
    let none = rt.zeros::<f32>(0);
    assert_invalid(km.update(rt, t, &x, &labels, &none, 2), "k", "k is 0");
    // The right shapes run.
    km.assign(rt, t, &x, &c2, &labels, &changed, 2)
        .expect("assign runs");
    km.update(rt, t, &x, &labels, &c2, 2).expect("update runs");
    assert_eq!(rt.read(&labels).expect("read"), vec![0, 1, 1]);
    assert_eq!(rt.read(&c2).expect("read"), vec![0.0, 1.0, 3.0, 4.0]);
}

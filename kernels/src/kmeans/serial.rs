//! The serial side of k-means: k-means++ seeding (used by every backend's
//! [`fit`](super::KMeans::fit)) and the f64 references the checks compare
//! with.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

/// Squared distance in f64.
pub(crate) fn dist64(x: &[f32], c: &[f32]) -> f64 {
    x.iter()
        .zip(c)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum()
}

/// k-means++ seeding (Arthur and Vassilvitskii, 2007): k of the n points of
/// `points`, the first uniformly at random, each next one with probability
/// proportional to its squared distance from the nearest chosen so far (or
/// uniformly, once every point coincides with a chosen one).
pub(crate) fn kmeans_plus_plus(points: &[f32], d: usize, k: usize, seed: u64) -> Vec<f32> {
    let n = points.len() / d;
    let mut rng = StdRng::seed_from_u64(seed);
    let point = |i: usize| &points[i * d..(i + 1) * d];
    let first = rng.random_range(0..n);
    let mut centroids = point(first).to_vec();
    let mut nearest: Vec<f64> = points
        .par_chunks(d)
        .map(|x| dist64(x, point(first)))
        .collect();
    for _ in 1..k {
        let total: f64 = nearest.iter().sum();
        let pick = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            let mut pick = None;
            for (i, &w) in nearest.iter().enumerate() {
                if w > 0.0 {
                    pick = Some(i);
                    if target < w {
                        break;
                    }
                    target -= w;
                }
            }
            pick.unwrap_or(0)
        } else {
            rng.random_range(0..n)
        };
        let chosen = point(pick);
        centroids.extend_from_slice(chosen);
        nearest
            .par_iter_mut()
            .zip(points.par_chunks(d))
            .for_each(|(w, x)| *w = w.min(dist64(x, chosen)));
    }
    centroids
}

/// The serial reference assignment in f64: each point's nearest centroid
/// (ties to the lowest index) and its squared distance.
pub fn reference_assign(points: &[f32], centroids: &[f32], d: usize) -> (Vec<u32>, Vec<f64>) {
    points
        .chunks_exact(d.max(1))
        .map(|x| {
            let mut best = (0u32, f64::INFINITY);
            for (c, centroid) in centroids.chunks_exact(d.max(1)).enumerate() {
                let s = dist64(x, centroid);
                if c == 0 || s < best.1 {
                    best = (c as u32, s);
                }
            }
            best
        })
        .unzip()
}

/// The serial reference update in f64: each centroid the mean of the points
/// `labels` gives it, or unchanged with none; a label of k or more counts for
/// no cluster. Also returns each cluster's count.
pub fn reference_update(
    points: &[f32],
    labels: &[u32],
    centroids: &[f32],
    d: usize,
) -> (Vec<f64>, Vec<usize>) {
    let k = centroids.len() / d.max(1);
    let mut sums = vec![0.0f64; k * d];
    let mut counts = vec![0usize; k];
    for (&c, x) in labels.iter().zip(points.chunks_exact(d.max(1))) {
        let c = c as usize;
        if c < k {
            counts[c] += 1;
            for (s, &v) in sums[c * d..(c + 1) * d].iter_mut().zip(x) {
                *s += v as f64;
            }
        }
    }
    for (c, &count) in counts.iter().enumerate() {
        for j in 0..d {
            let i = c * d + j;
            sums[i] = if count > 0 {
                sums[i] / count as f64
            } else {
                centroids[i] as f64
            };
        }
    }
    (sums, counts)
}

/// The serial reference of one iteration in f64: the labels of
/// [`reference_assign`], then the centroids of [`reference_update`].
pub fn reference(points: &[f32], centroids: &[f32], d: usize) -> (Vec<u32>, Vec<f64>) {
    let (labels, _) = reference_assign(points, centroids, d);
    let (centroids, _) = reference_update(points, &labels, centroids, d);
    (labels, centroids)
}

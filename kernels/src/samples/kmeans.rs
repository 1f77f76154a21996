//! The kmeans sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::kmeans`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;
use std::time::Duration;

use super::verify::{self, Check, Trial, Work};
use crate::kmeans::*;
use crate::launch::Execute;

/// Whether a computed label `got` is as good as the nearest centroid `want`
/// up to f32 rounding: its distance within `(d + 3)·ε` of the nearest's.
/// Each distance is a sum of d positive squares of rounded differences, off
/// by at most `(d + 2)·ε/2` relatively, so two centroids closer than that
/// may come out either way (and a GPU may fuse the multiply-adds).
pub(crate) fn near_tie(x: &[f32], centroids: &[f32], d: usize, got: u32, want_dist: f64) -> bool {
    let Some(c) = centroids.chunks_exact(d).nth(got as usize) else {
        return false;
    };
    let got_dist = dist64(x, c);
    let slack =
        (d as f64 + 3.0) * f32::EPSILON as f64 * got_dist + d as f64 * f32::MIN_POSITIVE as f64;
    got_dist - want_dist <= slack
}

/// One k-means iteration (assignment, then update) on seeded random data:
/// n points of dimension d around k random centres in [-20, 20)ᵈ, spread
/// ±4 in each coordinate; k-means++ initial centroids, except that the last
/// of k ≥ 2 is moved far away (10³ in every coordinate) so that its cluster
/// is empty and must keep it. Labels start poisoned (0xDEADBEEF), so every
/// one changes; the centroids start as the initial ones.
///
/// Tolerance: labels exact, except a point whose label's distance is within
/// `(d + 3)·ε` of its nearest centroid's (a near-tie that f32 rounding may
/// decide either way; excused and counted, on the CPU too); the change
/// count exactly n. Centroids are compared with the f64 mean of the labels
/// computed: each coordinate within `(min(count, 1024) + ⌈n/1024⌉ + 2)·ε`
/// times its cluster's mean |coordinate| (the worst case of the chunked
/// f32 sums, then the division); an empty cluster's centroid unchanged.
pub struct KMeansTrial {
    kmeans: KMeans,
    dims: Dims,
    xs: Vec<f32>,
    init: Vec<f32>,
    points: Buffer<f32>,
    centroids: Buffer<f32>,
    labels: Buffer<u32>,
    changed: Buffer<u32>,
    got_labels: Vec<u32>,
    got_centroids: Vec<f32>,
    got_changed: Option<u32>,
}

/// Prepares one k-means iteration over `n` points of dimension `d` with `k`
/// clusters (see [`KMeansTrial`]).
pub fn trial(rt: &Runtime, (n, d, k): (usize, usize, usize), seed: u64) -> Result<KMeansTrial> {
    let dims = Dims::new(n.saturating_mul(d), n, d, k)?;
    let centres = verify::random_f32(seed, k * d, -20.0, 20.0);
    let mut rng = verify::rng(seed);
    let mut xs = Vec::with_capacity(n * d);
    for _ in 0..n {
        let c = rng.random_range(0..k);
        xs.extend(
            centres[c * d..(c + 1) * d]
                .iter()
                .map(|&v| v + rng.random_range(-4.0f32..4.0)),
        );
    }
    let mut init = kmeans_plus_plus(&xs, d, k, seed + 1);
    if k >= 2 {
        init[(k - 1) * d..].fill(1e3);
    }
    Ok(KMeansTrial {
        kmeans: KMeans::new()?,
        dims,
        points: rt.buffer(&xs),
        centroids: rt.buffer(&init),
        labels: rt.zeros(n),
        changed: rt.zeros(1),
        xs,
        init,
        got_labels: Vec::new(),
        got_centroids: Vec::new(),
        got_changed: None,
    })
}

impl Trial for KMeansTrial {
    fn shape(&self) -> String {
        let Dims { n, d, k } = self.dims;
        format!("n={n} d={d} k={k}")
    }
    fn work(&self) -> Work {
        let Dims { n, d, k } = self.dims;
        Work::per(n, (3 * k * d + d + 1) as f64, (8 * d + 12) as f64)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.points, &self.xs)?;
        rt.write(&self.centroids, &self.init)?;
        rt.write(&self.labels, &vec![0xDEAD_BEEF; self.dims.n])?;
        rt.write(&self.changed, &[0])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let l = &mut Execute::new(rt, target);
        let d = self.dims.d;
        let (points, labels, centroids) = (&self.points, &self.labels, &self.centroids);
        self.kmeans
            .launch_assign(l, points, centroids, labels, &self.changed, d)?;
        let info = self.kmeans.launch_update(l, points, labels, centroids, d)?;
        rt.read_to_vec(&self.labels, &mut self.got_labels)?;
        rt.read_to_vec(&self.centroids, &mut self.got_centroids)?;
        self.got_changed = rt.read(&self.changed)?.first().copied();
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let Dims { n, d, k } = self.dims;
        let (xs, init) = (&self.xs, &self.init);
        let (want_labels, want_dist) = reference_assign(xs, init, d);

        // Labels: exact but for near-ties.
        let (mut mismatches, mut excused) = (0, 0);
        let mut first_bad = None;
        for (i, (&got, &want)) in self.got_labels.iter().zip(&want_labels).enumerate() {
            if got == want {
                continue;
            }
            if near_tie(&xs[i * d..(i + 1) * d], init, d, got, want_dist[i]) {
                excused += 1;
            } else {
                mismatches += 1;
                first_bad.get_or_insert((i, got as f64, want as f64));
            }
        }
        mismatches += n.abs_diff(self.got_labels.len());
        if self.got_changed != Some(n as u32) {
            mismatches += 1;
            let got = self.got_changed.map_or(f64::NAN, |c| c as f64);
            first_bad.get_or_insert((n, got, n as f64));
        }

        // Centroids: the f64 means of the labels computed.
        let (want, counts) = reference_update(xs, &self.got_labels, init, d);
        let mut magnitude = vec![0.0f64; k * d];
        for (&c, x) in self.got_labels.iter().zip(xs.chunks_exact(d)) {
            if (c as usize) < k {
                for (m, &v) in magnitude[c as usize * d..].iter_mut().zip(x) {
                    *m += (v as f64).abs();
                }
            }
        }
        let depth = n.div_ceil(CHUNK) as f64 + 2.0;
        let cmp = verify::compare(
            self.got_centroids.iter().map(|&v| v as f64),
            want.iter().copied(),
            |i| {
                let count = counts[i / d];
                if count == 0 {
                    return 0.0;
                }
                let mean_abs = magnitude[i] / count as f64;
                (count.min(CHUNK) as f64 + depth) * f32::EPSILON as f64 * mean_abs
                    + f32::MIN_POSITIVE as f64
            },
        );
        mismatches += cmp.mismatches + (k * d).abs_diff(self.got_centroids.len());
        if let Some((i, got, want)) = cmp.first_bad {
            first_bad.get_or_insert((n + 1 + i, got, want));
        }
        Check {
            shape: self.shape(),
            backend,
            elapsed: Duration::ZERO,
            compared: want_labels.len() + 1 + cmp.compared,
            mismatches,
            excused,
            allowed_mismatches: 0,
            worst: cmp.worst,
            first_bad,
            tolerance: "labels exact but near-ties (within (d+3)·ε), change count n; centroids within (min(count,1024)+⌈n/1024⌉+2)·ε·mean|x|",
            placement: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::verify::cpu_runtime as cpu;

    #[test]
    fn near_ties_are_within_rounding_only() {
        // 0 is 1 from the first centroid and 1.00000012 (one f32 ulp more)
        // from the second: f32 rounding may pick either.
        let centroids = [1.0f32, -1.000_000_1, 1.5];
        assert!(near_tie(&[0.0], &centroids, 1, 1, 1.0));
        assert!(!near_tie(&[0.0], &centroids, 1, 2, 1.0));
        assert!(!near_tie(&[0.0], &centroids, 1, 3, 1.0), "no such centroid");
    }

    #[test]
    fn the_check_catches_wrong_labels_counts_and_centroids() {
        let rt = cpu();
        let mut t = trial(&rt, (500, 3, 4), 3).expect("trial");
        let check = verify::run_check(&mut t, &rt, Target::On(Backend::Cpu)).expect("runs");
        assert!(check.verified(), "{check}");
        assert_eq!(check.excused, 0);

        // A label naming a far centroid.
        let right = t.got_labels[7];
        t.got_labels[7] = (right + 1) % 3;
        let check = t.verify(Backend::Cpu);
        assert!(
            !check.verified() && check.first_bad.map(|b| b.0) == Some(7),
            "{check}"
        );
        t.got_labels[7] = right;

        t.got_changed = Some(499);
        assert!(!t.verify(Backend::Cpu).verified());
        t.got_changed = Some(500);

        t.got_centroids[4] += 1e-3;
        let check = t.verify(Backend::Cpu);
        assert_eq!(
            (check.mismatches, check.first_bad.map(|b| b.0)),
            (1, Some(501 + 4))
        );
        t.got_centroids[4] -= 1e-3;

        // The last centroid was moved away: its cluster is empty and kept.
        assert_eq!(t.got_centroids[9..], [1e3; 3]);
        assert!(t.verify(Backend::Cpu).verified());
    }
}

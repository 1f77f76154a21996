//! kmeans: Lloyd's k-means on n points of dimension d (f32, row-major) with
//! k clusters. Each iteration (1) assigns every point to its nearest
//! centroid by squared Euclidean distance, ties to the lowest index, and (2)
//! moves every centroid to the mean of its points; a cluster left empty
//! keeps its centroid. [`KMeans::fit`] iterates until no label changes.
//!
//! Per point and iteration: `3·k·d` floating-point operations to assign
//! (a subtraction, a multiply and an add per coordinate and centroid) and
//! `d + 1` to update; `8·d + 12` bytes moved (the point read by both steps,
//! its label read and written by the assignment and read by the update).
//! Compute-bound once `k` passes a few.
//!
//! The assignment runs one invocation per point, the centroids staged
//! through workgroup memory; it counts the points whose label changed (one
//! atomic per workgroup). WGSL has no f32 atomics, so the update is a
//! reduction without them: each workgroup sums a chunk of 1,024 points per
//! cluster into a row of partial sums, middle passes add those rows 256 at a
//! time while more than 256 are left, and a last pass adds the rest and
//! divides. The CPU does the same with rayon: chunks of points to assign in
//! parallel (distances to all k centroids as one vectorisable loop per
//! coordinate), one partial row per chunk, then the same adds.

use pel_runtime::{Buffer, BufferArg, Kernel, Read, ReadWrite, Result, Runtime, Target};
use rayon::prelude::*;

use crate::launch::{Execute, Launch, builder, run_and_submit};
use crate::{ensure, expect_one, invalid, u32_len};

mod serial;
mod shader;
pub(crate) use serial::{dist64, kmeans_plus_plus};
pub use serial::{reference, reference_assign, reference_update};
pub use shader::{AssignParams, FinalizeParams, PartialParams, ReduceParams, WGSL};

/// Points one row of partial sums covers (one workgroup of the first pass).
pub const CHUNK: usize = 1024;

/// Rows of partial sums one middle pass adds into one, and the most the
/// last pass adds.
pub const BLOCK: usize = 256;

/// Points per rayon task of the CPU assignment.
const POINTS_PER_TASK: usize = 1024;

/// A label no centroid has: what [`KMeans::fit`] starts from.
const NO_LABEL: u32 = u32::MAX;

/// Where [`KMeans::fit`] starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init<'a> {
    /// k-means++ seeding from this seed: the first centroid a random point,
    /// each next one a point drawn with probability proportional to its
    /// squared distance from the nearest centroid so far.
    Seed(u64),
    /// These k·d coordinates, row-major.
    Centroids(&'a [f32]),
}

/// What [`KMeans::fit`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansResult {
    /// Each point's cluster: the index of its nearest centroid in
    /// `centroids` (ties to the lowest).
    pub labels: Vec<u32>,
    /// k·d coordinates, row-major.
    pub centroids: Vec<f32>,
    /// Centroid updates made.
    pub iterations: usize,
    /// Whether the last assignment changed no label (otherwise the
    /// iteration cap stopped it).
    pub converged: bool,
}

/// A checked problem shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub(crate) n: usize,
    pub(crate) d: usize,
    pub(crate) k: usize,
}

impl Dims {
    /// Checks n points of dimension d in `points` values, and k clusters.
    pub(crate) fn new(points: usize, n: usize, d: usize, k: usize) -> Result<Dims> {
        if d == 0 {
            return Err(invalid(
                "kmeans",
                "d",
                "d is 0; points need at least one coordinate".to_owned(),
            ));
        }
        if k == 0 {
            return Err(invalid(
                "kmeans",
                "k",
                "k is 0; ask for at least one cluster".to_owned(),
            ));
        }
        if k > n {
            return Err(invalid(
                "kmeans",
                "k",
                format!("k is {k} but there are only {n} points; k may be at most n"),
            ));
        }
        if n.checked_mul(d) != Some(points) {
            return Err(invalid(
                "kmeans",
                "points",
                format!(
                    "{n} points of dimension {d} need {} values, but points has {points}",
                    n as u128 * d as u128
                ),
            ));
        }
        u32_len("kmeans", "points", points)?;
        // k ≤ n, so k·d ≤ n·d and fits too; the partial sums need k·(d + 1)
        // per chunk of points.
        let m = k as u128 * (d as u128 + 1);
        let partial = m * n.div_ceil(CHUNK) as u128;
        if partial > u32::MAX as u128 {
            return Err(invalid(
                "kmeans",
                "k",
                format!(
                    "{k} clusters of dimension {d} over {n} points need {partial} partial sums; a shader can index at most {}",
                    u32::MAX
                ),
            ));
        }
        Ok(Dims { n, d, k })
    }

    /// Values per row of partial sums.
    fn m(&self) -> usize {
        self.k * (self.d + 1)
    }

    /// Rows of partial sums: chunks of points.
    fn groups(&self) -> usize {
        self.n.div_ceil(CHUNK)
    }
}

/// One call's buffers and their checked shape.
struct Data<'a> {
    points: &'a Buffer<f32>,
    centroids: &'a Buffer<f32>,
    labels: &'a Buffer<u32>,
    dims: Dims,
}

impl<'a> Data<'a> {
    /// The buffers of an assignment or update call: n from `labels`, k
    /// from `centroids`, checked against `points`.
    fn new(
        points: &'a Buffer<f32>,
        centroids: &'a Buffer<f32>,
        labels: &'a Buffer<u32>,
        d: usize,
    ) -> Result<Self> {
        let whole = d == 0 || centroids.len().is_multiple_of(d);
        ensure(whole, "kmeans", "centroids", || {
            format!(
                "centroids has {} values, not a whole number of {d}-dimensional centroids",
                centroids.len()
            )
        })?;
        let k = centroids.len().checked_div(d).unwrap_or(0);
        let dims = Dims::new(points.len(), labels.len(), d, k)?;
        Ok(Data {
            points,
            centroids,
            labels,
            dims,
        })
    }
}

/// The k-means kernels: the assignment and the update's three passes.
#[derive(Debug, Clone)]
pub struct KMeans {
    assign: Kernel,
    partial: Kernel,
    reduce: Kernel,
    finalize: Kernel,
}

/// Labels a chunk of points and returns how many labels changed. `ct` is
/// the centroids transposed (d×k), so the distances to all k centroids grow
/// together, one vectorisable loop per coordinate; each distance is summed
/// over the coordinates in order, as in the shader.
fn assign_chunk(points: &[f32], ct: &[f32], k: usize, labels: &mut [u32], dist: &mut [f32]) -> u64 {
    let d = ct.len() / k;
    let mut moved = 0;
    for (label, x) in labels.iter_mut().zip(points.chunks_exact(d)) {
        dist.fill(0.0);
        for (&xj, cj) in x.iter().zip(ct.chunks_exact(k)) {
            for (s, &c) in dist.iter_mut().zip(cj) {
                let t = xj - c;
                *s += t * t;
            }
        }
        let (mut best, mut best_dist) = (0, dist[0]);
        for (c, &s) in dist.iter().enumerate().skip(1) {
            if s < best_dist {
                best = c;
                best_dist = s;
            }
        }
        if *label != best as u32 {
            *label = best as u32;
            moved += 1;
        }
    }
    moved
}

impl KMeans {
    /// Builds the kernels.
    pub fn new() -> Result<Self> {
        let assign =
            builder::<AssignParams, (Read<f32>, Read<f32>, ReadWrite<u32>, ReadWrite<u32>)>(
                "kmeans_assign",
                WGSL,
                |(points, centroids, labels, changed), p| {
                    let (n, d, k) = (p.n as usize, p.d as usize, p.k as usize);
                    if n == 0 || d == 0 || k == 0 {
                        return;
                    }
                    let mut ct = vec![0.0f32; d * k];
                    for (c, centroid) in centroids[..k * d].chunks_exact(d).enumerate() {
                        for (j, &v) in centroid.iter().enumerate() {
                            ct[j * k + c] = v;
                        }
                    }
                    let moved: u64 = labels[..n]
                        .par_chunks_mut(POINTS_PER_TASK)
                        .zip(points[..n * d].par_chunks(POINTS_PER_TASK * d))
                        .map_init(
                            || vec![0.0f32; k],
                            |dist, (labels, points)| assign_chunk(points, &ct, k, labels, dist),
                        )
                        .sum();
                    // Fewer than 2³² points, so the count fits; the sum over
                    // iterations wraps, as the shader's atomic does.
                    changed[0] = changed[0].wrapping_add(moved as u32);
                },
            )
            .entry("assign")
            .invocations(|p, _| p.n as u64)
            .cost(|p, _| p.n as u64 * p.k as u64 * p.d as u64)
            .build()?;

        let partial = builder::<PartialParams, (Read<f32>, Read<u32>, ReadWrite<f32>)>(
            "kmeans_partial",
            WGSL,
            |(points, labels, partial), p| {
                let (n, d, k, m) = (p.n as usize, p.d as usize, p.k as usize, p.m as usize);
                let chunk = p.chunk as usize;
                if m == 0 || chunk == 0 {
                    return;
                }
                partial[..p.groups as usize * m]
                    .par_chunks_mut(m)
                    .enumerate()
                    .for_each(|(g, row)| {
                        row.fill(0.0);
                        let lo = (g * chunk).min(n);
                        let hi = (lo + chunk).min(n);
                        for (&c, x) in labels[lo..hi]
                            .iter()
                            .zip(points[lo * d..hi * d].chunks_exact(d))
                        {
                            // A label that names no cluster counts for none,
                            // as in the shader.
                            let c = c as usize;
                            if c < k {
                                let sums = &mut row[c * (d + 1)..(c + 1) * (d + 1)];
                                for (s, &v) in sums.iter_mut().zip(x) {
                                    *s += v;
                                }
                                sums[d] += 1.0;
                            }
                        }
                    });
            },
        )
        .entry("partial_sums")
        .workgroups(|p, _| p.groups as u64)
        .cost(|p, _| p.n as u64 * (p.d as u64 + 1))
        .build()?;

        let reduce = builder::<ReduceParams, (Read<f32>, ReadWrite<f32>)>(
            "kmeans_reduce",
            WGSL,
            |(partial, out), p| {
                let (rows, m) = (p.rows as usize, p.m as usize);
                if m == 0 {
                    return;
                }
                out[..p.out_rows as usize * m]
                    .par_chunks_mut(m)
                    .enumerate()
                    .for_each(|(b, sums)| {
                        sums.fill(0.0);
                        let end = ((b + 1) * BLOCK).min(rows);
                        for row in partial[b * BLOCK * m..end * m].chunks_exact(m) {
                            for (s, &v) in sums.iter_mut().zip(row) {
                                *s += v;
                            }
                        }
                    });
            },
        )
        .entry("reduce")
        .invocations(|p, _| p.out_rows as u64 * p.m as u64)
        .cost(|p, _| p.rows as u64 * p.m as u64)
        .build()?;

        let finalize = builder::<FinalizeParams, (Read<f32>, ReadWrite<f32>)>(
            "kmeans_finalize",
            WGSL,
            |(partial, centroids), p| {
                let (rows, d, m) = (p.rows as usize, p.d as usize, p.m as usize);
                if m == 0 || d == 0 {
                    return;
                }
                // At most 256 rows of k·(d + 1) values: less work than a
                // rayon task is worth.
                let mut sums = vec![0.0f32; m];
                for row in partial[..rows * m].chunks_exact(m) {
                    for (s, &v) in sums.iter_mut().zip(row) {
                        *s += v;
                    }
                }
                for (centroid, cluster) in
                    centroids.chunks_exact_mut(d).zip(sums.chunks_exact(d + 1))
                {
                    let count = cluster[d];
                    if count > 0.0 {
                        for (c, &s) in centroid.iter_mut().zip(cluster) {
                            *c = s / count;
                        }
                    }
                }
            },
        )
        .entry("finalize")
        .invocations(|p, _| p.k as u64 * p.d as u64)
        .cost(|p, _| p.rows as u64 * p.m as u64)
        .build()?;

        Ok(KMeans {
            assign,
            partial,
            reduce,
            finalize,
        })
    }

    /// The assignment kernel.
    pub fn assign_kernel(&self) -> &Kernel {
        &self.assign
    }

    /// The update's first kernel: partial sums per chunk of points.
    pub fn partial_kernel(&self) -> &Kernel {
        &self.partial
    }

    /// The update's middle kernel: adds rows of partial sums.
    pub fn reduce_kernel(&self) -> &Kernel {
        &self.reduce
    }

    /// The update's last kernel: the means.
    pub fn finalize_kernel(&self) -> &Kernel {
        &self.finalize
    }

    run_and_submit! {
        /// Labels each of the `labels.len()` points of dimension `d` in `points`
        /// with the index of its nearest centroid in `centroids` (k·d values),
        /// ties to the lowest, and adds the number of labels that changed to
        /// `changed` (one element; the sum wraps at 2³²).
        ///
        /// Errors: `d` of 0; `centroids` not k·d values with 1 ≤ k ≤ n;
        /// `points` not n·d values; `changed` not one element. The buffers'
        /// values are not scanned: a NaN coordinate gives an unspecified label.
        assign,
        /// Submits the assignment of [`assign`](Self::assign) and returns its
        /// task at once.
        submit_assign = launch_assign(
            points: &Buffer<f32>,
            centroids: &Buffer<f32>,
            labels: &Buffer<u32>,
            changed: &Buffer<u32>,
            d: usize,
        );

        /// Moves each centroid in `centroids` (k·d values) to the mean of the
        /// points of dimension `d` that `labels` gives it; a centroid with no
        /// points stays. A label of k or more counts for no cluster. Every pass
        /// runs at `target`, the partial sums staying where they are computed.
        ///
        /// Errors: as for [`assign`](Self::assign), `changed` aside.
        update,
        /// Submits the passes of [`update`](Self::update) and returns the last
        /// one's task at once.
        submit_update = launch_update(
            points: &Buffer<f32>,
            labels: &Buffer<u32>,
            centroids: &Buffer<f32>,
            d: usize,
        );
    }

    /// Launches the assignment (see [`assign`](Self::assign)).
    pub(crate) fn launch_assign<L: Launch>(
        &self,
        l: &mut L,
        points: &Buffer<f32>,
        centroids: &Buffer<f32>,
        labels: &Buffer<u32>,
        changed: &Buffer<u32>,
        d: usize,
    ) -> Result<L::Out> {
        let data = Data::new(points, centroids, labels, d)?;
        expect_one("kmeans", "changed", changed.len())?;
        self.assign_data(l, &data, changed)
    }

    fn assign_data<L: Launch>(
        &self,
        l: &mut L,
        data: &Data,
        changed: &Buffer<u32>,
    ) -> Result<L::Out> {
        let dims = data.dims;
        let p = AssignParams {
            n: dims.n as u32,
            d: dims.d as u32,
            k: dims.k as u32,
            _pad: 0,
        };
        let args: [&dyn BufferArg; 4] = [data.points, data.centroids, data.labels, changed];
        l.launch(&self.assign, &args, &p)
    }

    /// Launches the passes of an update (see [`update`](Self::update)).
    pub(crate) fn launch_update<L: Launch>(
        &self,
        l: &mut L,
        points: &Buffer<f32>,
        labels: &Buffer<u32>,
        centroids: &Buffer<f32>,
        d: usize,
    ) -> Result<L::Out> {
        let data = Data::new(points, centroids, labels, d)?;
        let scratch = Self::scratch(l.rt(), data.dims);
        self.update_data(l, &data, &scratch)
    }

    /// The buffers of partial sums an update of this shape fills: the first
    /// pass's rows, then each middle pass's.
    fn scratch(rt: &Runtime, dims: Dims) -> Vec<Buffer<f32>> {
        let mut rows = dims.groups();
        let mut levels = vec![rt.zeros(rows * dims.m())];
        while rows > BLOCK {
            rows = rows.div_ceil(BLOCK);
            levels.push(rt.zeros(rows * dims.m()));
        }
        levels
    }

    fn update_data<L: Launch>(
        &self,
        l: &mut L,
        data: &Data,
        scratch: &[Buffer<f32>],
    ) -> Result<L::Out> {
        let dims = data.dims;
        let (d, k, m) = (dims.d as u32, dims.k as u32, dims.m() as u32);
        let mut rows = dims.groups() as u32;
        let partial = PartialParams {
            n: dims.n as u32,
            d,
            k,
            m,
            chunk: CHUNK as u32,
            groups: rows,
            _pad0: 0,
            _pad1: 0,
        };
        let args: [&dyn BufferArg; 3] = [data.points, data.labels, &scratch[0]];
        l.launch(&self.partial, &args, &partial)?;
        for pair in scratch.windows(2) {
            let out_rows = rows.div_ceil(BLOCK as u32);
            let p = ReduceParams {
                rows,
                m,
                out_rows,
                _pad: 0,
            };
            l.launch(&self.reduce, &[&pair[0], &pair[1]], &p)?;
            rows = out_rows;
        }
        let last = &scratch[scratch.len() - 1];
        let p = FinalizeParams { rows, d, k, m };
        l.launch(&self.finalize, &[last, data.centroids], &p)
    }

    /// Runs k-means on `n` points of dimension `d` (`points`, row-major,
    /// n·d values) with `k` clusters, from `init`, until an assignment
    /// changes no label or `max_iterations` updates have been made. The
    /// labels returned are always those of the centroids returned. Every
    /// kernel runs at `target`; the data stay on the device between
    /// iterations, and only the count of changed labels comes back to the
    /// host each time.
    ///
    /// Errors: `k` of 0 or more than `n`, `d` of 0, `points.len() != n·d`,
    /// initial centroids of the wrong length, or a NaN or infinity in the
    /// points or the initial centroids.
    ///
    /// # Examples
    ///
    /// ```
    /// use pel_kernels::kmeans::{Init, KMeans};
    /// use pel_runtime::{Runtime, Target};
    ///
    /// let rt = Runtime::builder().gpu(false).persist_model(false).build()?;
    /// // Two clumps on a line.
    /// let points = [0.0f32, 0.1, 0.2, 10.0, 10.1, 10.2];
    /// let fit = KMeans::new()?.fit(&rt, Target::Auto, &points, 6, 1, 2, Init::Seed(7), 20)?;
    /// assert!(fit.converged);
    /// assert_eq!(fit.labels[0], fit.labels[2]);
    /// assert_ne!(fit.labels[0], fit.labels[3]);
    /// # Ok::<(), pel_runtime::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        &self,
        rt: &Runtime,
        target: Target,
        points: &[f32],
        n: usize,
        d: usize,
        k: usize,
        init: Init<'_>,
        max_iterations: usize,
    ) -> Result<KMeansResult> {
        let dims = Dims::new(points.len(), n, d, k)?;
        finite("points", points)?;
        let start = match init {
            Init::Seed(seed) => kmeans_plus_plus(points, d, k, seed),
            Init::Centroids(c) => {
                if c.len() != k * d {
                    return Err(invalid(
                        "kmeans",
                        "init",
                        format!(
                            "{k} centroids of dimension {d} need {} values, but init has {}",
                            k * d,
                            c.len()
                        ),
                    ));
                }
                finite("init", c)?;
                c.to_vec()
            }
        };
        let x = rt.buffer(points);
        let centroids = rt.buffer(&start);
        let labels = rt.buffer(&vec![NO_LABEL; n]);
        let changed = rt.buffer(&[0u32]);
        let scratch = Self::scratch(rt, dims);
        let data = Data {
            points: &x,
            centroids: &centroids,
            labels: &labels,
            dims,
        };
        let l = &mut Execute::new(rt, target);
        let (mut counted, mut iterations) = (0u32, 0);
        let converged = loop {
            self.assign_data(l, &data, &changed)?;
            let now = rt.read(&changed)?[0];
            let moved = now.wrapping_sub(counted);
            counted = now;
            if moved == 0 {
                break true;
            }
            if iterations == max_iterations {
                break false;
            }
            self.update_data(l, &data, &scratch)?;
            iterations += 1;
        };
        Ok(KMeansResult {
            labels: rt.read(&labels)?,
            centroids: rt.read(&centroids)?,
            iterations,
            converged,
        })
    }
}

/// An error naming the first value of `values` that is NaN or infinite.
fn finite(arg: &str, values: &[f32]) -> Result<()> {
    match values.par_iter().position_first(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(invalid(
            "kmeans",
            arg,
            format!(
                "{arg}[{i}] is {}; k-means needs finite coordinates",
                values[i]
            ),
        )),
    }
}

// k-means, one iteration in four entry points, run by the host in order:
//
// `assign`: each of n points (d f32 coordinates, row-major) gets the label of
// its nearest centroid (k of them, row-major), by squared Euclidean distance
// summed over the coordinates in order; ties go to the lowest index. One
// invocation per point. The workgroup stages the centroids through workgroup
// memory a tile of 1,024 values at a time, so each is read from global memory
// once per 64 points; a centroid may straddle two tiles, its distance carried
// across. Every point whose label changes adds one to `changed[0]`: counted
// in workgroup memory, then one global atomic per workgroup. The host reads
// the count before and after to know whether the iteration moved anything.
//
// `partial` (the update's first pass): each workgroup sums the points of one
// chunk of `chunk` consecutive points per cluster. Its output row holds, for
// each cluster c, the d coordinate sums then the count (as f32, exact below
// 2²⁴): m = k·(d + 1) values at partial[group·m + c·(d + 1) + j]. WGSL has no
// f32 atomics, so no invocation adds into a shared total. Instead each
// invocation owns one output value and scans the chunk's labels, staged 256
// at a time through workgroup memory (a coalesced load, then broadcast
// reads), adding the coordinate of every point of its cluster. When m < 256,
// the workgroup splits into 256/m lanes that scan interleaved points, and the
// lanes' sums are added at the end; when m > 256, the outputs are taken 256
// at a time.
//
// `reduce` (middle passes, only while more than 256 rows of partial sums are
// left): adds `rows` rows of `m` values in blocks of 256 rows, so `out` has
// ceil(rows / 256) rows.
//
// `finalize` (the last pass): adds the (at most 256) rows of partial sums and
// writes each centroid as the mean of its points; a cluster with no points
// keeps its centroid. The count is the row's value after the cluster's d
// sums.
//
// `reduce` and `finalize` take one invocation per output value, walking its
// column down the rows: neighbouring invocations read neighbouring values
// (coalesced). pel folds launches of more than 65,535 workgroups into 2-D, so
// indices are rebuilt from both dimensions of the grid.
//
// Each entry point has its own uniform block and binds only what it uses;
// `points` (assign, partial) and `rows` (reduce, finalize) are shared.

@group(0) @binding(0) var<storage, read> points: array<f32>;

// ---- assign

// `AssignParams` is declared once, in Rust (`AssignParams` in kernels/src/kmeans/mod.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(1) var<storage, read> centroids: array<f32>;
@group(0) @binding(2) var<storage, read_write> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> changed: array<atomic<u32>>;
@group(0) @binding(4) var<uniform> ap: AssignParams;

const ASSIGN_WG: u32 = 64u;
const TILE: u32 = 1024u;

var<workgroup> tile: array<f32, 1024>;
var<workgroup> group_changed: atomic<u32>;

@compute @workgroup_size(64)
fn assign(@builtin(local_invocation_index) lid: u32,
          @builtin(global_invocation_id) id: vec3<u32>,
          @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    let live = i < ap.n;
    let base = i * ap.d;
    let total = ap.k * ap.d;

    var best = 0u;
    var best_dist = 0.0;
    var dist = 0.0;
    var c = 0u;  // the centroid being measured
    var j = 0u;  // its coordinate
    // The loop bound is uniform, so every invocation reaches each barrier.
    for (var t0 = 0u; t0 < total; t0 = t0 + TILE) {
        let len = min(TILE, total - t0);
        for (var s = lid; s < len; s = s + ASSIGN_WG) {
            tile[s] = centroids[t0 + s];
        }
        workgroupBarrier();
        if live {
            for (var q = 0u; q < len; q = q + 1u) {
                let diff = points[base + j] - tile[q];
                dist = dist + diff * diff;
                j = j + 1u;
                if j == ap.d {
                    if c == 0u || dist < best_dist {
                        best = c;
                        best_dist = dist;
                    }
                    c = c + 1u;
                    j = 0u;
                    dist = 0.0;
                }
            }
        }
        // The tile is read by everyone before it is overwritten.
        workgroupBarrier();
    }

    if live && labels[i] != best {
        labels[i] = best;
        atomicAdd(&group_changed, 1u);
    }
    workgroupBarrier();
    if lid == 0u {
        let moved = atomicLoad(&group_changed);
        if moved > 0u {
            atomicAdd(&changed[0], moved);
        }
    }
}

// ---- partial

// `PartialParams` is declared once, in Rust (`PartialParams` in kernels/src/kmeans/mod.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(5) var<storage, read> point_labels: array<u32>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
@group(0) @binding(7) var<uniform> pp: PartialParams;

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;

var<workgroup> staged: array<u32, 256>;
var<workgroup> lane_sums: array<f32, 256>;

@compute @workgroup_size(256)
fn partial_sums(@builtin(local_invocation_index) lid: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) groups: vec3<u32>) {
    let group = pel_workgroup_index(wid, groups);
    // Uniform across the workgroup: the whole group leaves together.
    if group >= pp.groups {
        return;
    }
    let first = group * pp.chunk;
    let last = min(first + pp.chunk, pp.n);
    let dd = pp.d + 1u;
    // `width` outputs at a time, each scanned by `lanes` invocations.
    let width = min(pp.m, WG);
    let lanes = WG / width;
    let lane = lid / width;
    let slot = lid % width;

    for (var o0 = 0u; o0 < pp.m; o0 = o0 + width) {
        let o = o0 + slot;
        let scans = lane < lanes && o < pp.m;
        let c = o / dd;
        let j = o % dd;
        var acc = 0.0;
        for (var t0 = first; t0 < last; t0 = t0 + WG) {
            let i = t0 + lid;
            var label = NONE;
            if i < last {
                label = point_labels[i];
            }
            staged[lid] = label;
            workgroupBarrier();
            if scans {
                let count = min(WG, last - t0);
                for (var q = lane; q < count; q = q + lanes) {
                    if staged[q] == c {
                        if j < pp.d {
                            acc = acc + points[(t0 + q) * pp.d + j];
                        } else {
                            acc = acc + 1.0;
                        }
                    }
                }
            }
            // The labels are read by everyone before they are overwritten.
            workgroupBarrier();
        }
        lane_sums[lid] = acc;
        workgroupBarrier();
        if lane == 0u && o < pp.m {
            var s = acc;
            for (var l = 1u; l < lanes; l = l + 1u) {
                s = s + lane_sums[l * width + slot];
            }
            partial[group * pp.m + o] = s;
        }
        workgroupBarrier();
    }
}

// ---- reduce and finalize: rows of partial sums in

@group(0) @binding(8) var<storage, read> rows: array<f32>;

// Column `col` of rows r0..r1 of `rows` (m values each), added in order.
fn column_sum(r0: u32, r1: u32, m: u32, col: u32) -> f32 {
    var s = 0.0;
    for (var r = r0; r < r1; r = r + 1u) {
        s = s + rows[r * m + col];
    }
    return s;
}

// `ReduceParams` is declared once, in Rust (`ReduceParams` in kernels/src/kmeans/mod.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(9) var<storage, read_write> out: array<f32>;
@group(0) @binding(10) var<uniform> rp: ReduceParams;

const BLOCK: u32 = 256u;

@compute @workgroup_size(256)
fn reduce(@builtin(global_invocation_id) id: vec3<u32>,
          @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i >= rp.out_rows * rp.m {
        return;
    }
    let b = i / rp.m;
    let end = min((b + 1u) * BLOCK, rp.rows);
    out[i] = column_sum(b * BLOCK, end, rp.m, i % rp.m);
}

// `FinalizeParams` is declared once, in Rust (`FinalizeParams` in kernels/src/kmeans/mod.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(11) var<storage, read_write> new_centroids: array<f32>;
@group(0) @binding(12) var<uniform> fp: FinalizeParams;

@compute @workgroup_size(256)
fn finalize(@builtin(global_invocation_id) id: vec3<u32>,
            @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i >= fp.k * fp.d {
        return;
    }
    let c = i / fp.d;
    let row = c * (fp.d + 1u);
    let count = column_sum(0u, fp.rows, fp.m, row + fp.d);
    if count > 0.0 {
        new_centroids[i] = column_sum(0u, fp.rows, fp.m, row + i % fp.d) / count;
    }
}

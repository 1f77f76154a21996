// k-means, assignment: each of n points (d f32 coordinates, row-major) gets
// the label of its nearest centroid (k of them, row-major), by squared
// Euclidean distance summed over the coordinates in order; ties go to the
// lowest index. One invocation per point. The workgroup stages the
// centroids through workgroup memory a tile of 1,024 values at a time, so
// each is read from global memory once per 64 points; a centroid may
// straddle two tiles, its distance carried across.
//
// Every point whose label changes adds one to `changed[0]`: counted in
// workgroup memory, then one global atomic per workgroup. The host reads the
// count before and after to know whether the iteration moved anything.
//
// pel folds launches of more than 65,535 workgroups into 2-D, so the point's
// index is rebuilt from both dimensions of the grid.

struct Params {
    n: u32,
    d: u32,
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> points: array<f32>;
@group(0) @binding(1) var<storage, read> centroids: array<f32>;
@group(0) @binding(2) var<storage, read_write> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> changed: array<atomic<u32>>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;
const TILE: u32 = 1024u;

var<workgroup> tile: array<f32, 1024>;
var<workgroup> group_changed: atomic<u32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    let live = i < p.n;
    let base = i * p.d;
    let total = p.k * p.d;

    var best = 0u;
    var best_dist = 0.0;
    var dist = 0.0;
    var c = 0u;  // the centroid being measured
    var j = 0u;  // its coordinate
    // The loop bound is uniform, so every invocation reaches each barrier.
    for (var t0 = 0u; t0 < total; t0 = t0 + TILE) {
        let len = min(TILE, total - t0);
        for (var s = lid; s < len; s = s + WG) {
            tile[s] = centroids[t0 + s];
        }
        workgroupBarrier();
        if live {
            for (var q = 0u; q < len; q = q + 1u) {
                let diff = points[base + j] - tile[q];
                dist = dist + diff * diff;
                j = j + 1u;
                if j == p.d {
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

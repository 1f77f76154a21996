// k-means, update, last pass: adds the (at most 256) rows of partial sums
// and writes each centroid as the mean of its points; a cluster with no
// points keeps its centroid. One invocation per centroid coordinate; the
// count is the row's value after the cluster's d sums. Neighbouring
// invocations read neighbouring values (coalesced).

struct Params {
    // Rows of `partial`.
    rows: u32,
    d: u32,
    k: u32,
    // Values per row: k·(d + 1).
    m: u32,
}

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> centroids: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i >= p.k * p.d {
        return;
    }
    let c = i / p.d;
    let at = c * (p.d + 1u) + i % p.d;
    let count_at = c * (p.d + 1u) + p.d;
    var s = 0.0;
    var count = 0.0;
    for (var r = 0u; r < p.rows; r = r + 1u) {
        s = s + partial[r * p.m + at];
        count = count + partial[r * p.m + count_at];
    }
    if count > 0.0 {
        centroids[i] = s / count;
    }
}

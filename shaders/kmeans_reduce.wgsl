// k-means, update, middle pass (only when there are more than 256 rows of
// partial sums): adds `rows` rows of `m` values in blocks of 256 rows, so
// `out` has ceil(rows / 256) rows. One invocation per output value: it walks
// its column down the block, and neighbouring invocations read neighbouring
// columns (coalesced).
//
// pel folds launches of more than 65,535 workgroups into 2-D, so the
// invocation's index is rebuilt from both dimensions of the grid.

struct Params {
    // Rows of `partial`.
    rows: u32,
    // Values per row.
    m: u32,
    // Rows of `out`: ceil(rows / 256).
    out_rows: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;
const BLOCK: u32 = 256u;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i >= p.out_rows * p.m {
        return;
    }
    let b = i / p.m;
    let col = i % p.m;
    let end = min((b + 1u) * BLOCK, p.rows);
    var s = 0.0;
    for (var r = b * BLOCK; r < end; r = r + 1u) {
        s = s + partial[r * p.m + col];
    }
    out[i] = s;
}

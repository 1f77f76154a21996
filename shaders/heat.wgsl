// heat, one Jacobi step of 2-D heat diffusion on a width×height grid:
//   v = u + α·(u_n + u_s + u_e + u_w − 4u)  for interior cells,
//   v = u                                    for boundary cells (fixed values).
// The host alternates two buffers, one step per launch, and never reads
// back between steps.
//
// `main`: each invocation updates a column of 8 cells of a 64×8 tile,
// walking down it with the cells above, at and below in registers: each
// cell is loaded from global memory once, as it enters the window, and its
// east and west neighbours, in the same cache lines as the cells of the
// neighbouring invocations, come from the cache. Consecutive invocations
// take consecutive columns, so every row's loads and stores are coalesced.
// A 5-point stencil reuses each value only five times, which the L1 cache
// serves as well as workgroup memory would, without a barrier per tile.
// Tiles are numbered linearly (pel folds more than 65,535 of them into 2-D).
//
// `copy`: v = u, one invocation per cell (for an odd number of steps, the
// result is copied back into the caller's buffer).

// `Params` is declared once, in Rust (`HeatParams` in kernels/src/heat.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read_write> v: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const TILE_W: u32 = 64u;
const ROWS: u32 = 8u;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let tile = pel_workgroup_index(wid, groups);
    if tile >= p.tiles {
        return;
    }
    let x = (tile % p.tiles_x) * TILE_W + lid;
    let y0 = (tile / p.tiles_x) * ROWS;
    if x >= p.width {
        return;
    }
    let y1 = min(y0 + ROWS, p.height);
    let inner_x = x > 0u && x + 1u < p.width;
    // The row above y0 (clamped: row 0 is boundary and never reads it).
    var north = u[(max(y0, 1u) - 1u) * p.width + x];
    var here = u[y0 * p.width + x];
    for (var y = y0; y < y1; y = y + 1u) {
        let row = y * p.width;
        let south = u[min(y + 1u, p.height - 1u) * p.width + x];
        var out = here;
        if inner_x && y > 0u && y + 1u < p.height {
            let ns = north + south;
            let ew = u[row + x + 1u] + u[row + x - 1u];
            out = here + p.alpha * ((ns + ew) - 4.0 * here);
        }
        v[row + x] = out;
        north = here;
        here = south;
    }
}

@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i < p.width * p.height {
        v[i] = u[i];
    }
}

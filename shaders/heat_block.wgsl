// heat_block: one Jacobi step of 2-D heat diffusion on a block of rows of a
// larger grid, the rows just above and below the block given apart (a
// rank's halo, received from its neighbours):
//   v = u + α·(u_n + u_s + u_e + u_w − 4u)  for interior cells of the grid,
//   v = u                                    on the grid's boundary.
// The block holds rows row0 .. row0 + rows of a width × height grid;
// `north` is row row0 − 1 and `south` row row0 + rows (ignored where the
// block touches the grid's edge). One invocation a cell; the neighbours in
// the same row and the rows above and below come from the cache.
//
// `edges`: copies the block's first row into `top` and its last into
// `bottom`, the halos its neighbours need.
//
// `Params` is declared once, in Rust (`HeatBlockParams` in
// kernels/src/heat_block.rs), and appended to this source.

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> north: array<f32>;
@group(0) @binding(2) var<storage, read> south: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i >= p.width * p.rows {
        return;
    }
    let x = i % p.width;
    let y = i / p.width;
    let gy = p.row0 + y;
    let m = u[i];
    if x == 0u || x + 1u == p.width || gy == 0u || gy + 1u == p.height {
        v[i] = m;
        return;
    }
    var n: f32;
    if y == 0u {
        n = north[x];
    } else {
        n = u[i - p.width];
    }
    var s: f32;
    if y + 1u == p.rows {
        s = south[x];
    } else {
        s = u[i + p.width];
    }
    let we = u[i - 1u];
    let ea = u[i + 1u];
    v[i] = m + p.alpha * (((n + s) + (ea + we)) - 4.0 * m);
}

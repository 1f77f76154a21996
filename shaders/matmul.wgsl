// matmul: C (m×n) = A (m×k) · B (k×n), all row-major f32.
//
// One workgroup of 16×16 invocations computes a 64×64 tile of C; each
// invocation keeps a 4×4 block of C in registers. A and B are staged through
// workgroup memory 16 values of k at a time, so every value loaded from
// global memory is used 64 times. Tiles are numbered linearly (pel folds more
// than 65,535 of them into 2-D); edges are padded with zeros, so any m, n, k
// works.

// `Params` is declared once, in Rust (`MatmulParams` in kernels/src/matmul.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const TILE: u32 = 64u;  // C tile edge
const BK: u32 = 16u;    // k step
const TM: u32 = 4u;     // C block edge per invocation

// As[kk][r] and Bs[kk][c]: k-major so the inner loop reads contiguous values.
var<workgroup> As: array<f32, 1024>;
var<workgroup> Bs: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let tile = wid.x + wid.y * groups.x;
    // Uniform across the workgroup: the whole group leaves together.
    if tile >= p.tiles {
        return;
    }
    let row0 = (tile / p.tiles_n) * TILE;
    let col0 = (tile % p.tiles_n) * TILE;

    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.k; k0 = k0 + BK) {
        // 256 invocations load 64×16 values of A and 16×64 of B, 4 each.
        for (var l = 0u; l < 4u; l = l + 1u) {
            let idx = li + l * 256u;
            let ar = idx / BK;
            let ak = idx % BK;
            let gr = row0 + ar;
            let gk = k0 + ak;
            var av = 0.0;
            if gr < p.m && gk < p.k {
                av = a[gr * p.k + gk];
            }
            As[ak * TILE + ar] = av;

            let bk = idx / TILE;
            let bc = idx % TILE;
            let gkb = k0 + bk;
            let gc = col0 + bc;
            var bv = 0.0;
            if gkb < p.k && gc < p.n {
                bv = b[gkb * p.n + gc];
            }
            Bs[bk * TILE + bc] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var i = 0u; i < TM; i = i + 1u) {
                ar[i] = As[kk * TILE + lid.y * TM + i];
                br[i] = Bs[kk * TILE + lid.x * TM + i];
            }
            for (var i = 0u; i < TM; i = i + 1u) {
                for (var j = 0u; j < TM; j = j + 1u) {
                    acc[i * TM + j] = fma(ar[i], br[j], acc[i * TM + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TM; i = i + 1u) {
        let r = row0 + lid.y * TM + i;
        for (var j = 0u; j < TM; j = j + 1u) {
            let col = col0 + lid.x * TM + j;
            if r < p.m && col < p.n {
                c[r * p.n + col] = acc[i * TM + j];
            }
        }
    }
}

// matmul, register-blocked: C (m×n) = A (m×k) · B (k×n), all row-major f32.
//
// No workgroup memory and no barriers: each invocation computes 8×8 values
// of C (rows and columns strided by 8) straight from A and B, in registers
// (written out, not in arrays, so that no compiler keeps them in memory).
// An 8×8 workgroup covers a 64×64 tile. On devices where barriers are dear
// (a CPU running the shader, as llvmpipe does) this beats the tiled shader,
// which stages A and B through workgroup memory; on a real GPU the tiled
// one reuses each loaded value more and usually wins. Tiles are numbered
// linearly (pel folds more than 65,535 into 2-D); any m, n, k works.
// Neighbouring invocations read neighbouring values of B and write
// neighbouring values of C: vector loads and stores where invocations run
// as SIMD lanes.
//
// `Params` is declared once, in Rust
// (`MatmulParams` in kernels/src/matmul.rs), and appended by pel-kernels. Its
// `tiles_n` and `tiles` count the tiled shader's tiles; this one counts its own.

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const ROWS: u32 = 64u; // C tile rows
const COLS: u32 = 64u; // C tile columns

@compute @workgroup_size(8, 8)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let tiles_n = (p.n + COLS - 1u) / COLS;
    let tiles = ((p.m + ROWS - 1u) / ROWS) * tiles_n;
    let tile = wid.x + wid.y * groups.x;
    if tile >= tiles {
        return;
    }
    let r0 = (tile / tiles_n) * ROWS + lid.y;
    let c0 = (tile % tiles_n) * COLS + lid.x;
    // Rows and columns past the edge read row or column 0 (in bounds) and
    // are not written.
    let ra0 = select(0u, r0 + 0u, r0 + 0u < p.m) * p.k;
    let ra1 = select(0u, r0 + 8u, r0 + 8u < p.m) * p.k;
    let ra2 = select(0u, r0 + 16u, r0 + 16u < p.m) * p.k;
    let ra3 = select(0u, r0 + 24u, r0 + 24u < p.m) * p.k;
    let ra4 = select(0u, r0 + 32u, r0 + 32u < p.m) * p.k;
    let ra5 = select(0u, r0 + 40u, r0 + 40u < p.m) * p.k;
    let ra6 = select(0u, r0 + 48u, r0 + 48u < p.m) * p.k;
    let ra7 = select(0u, r0 + 56u, r0 + 56u < p.m) * p.k;
    let cb0 = select(0u, c0 + 0u, c0 + 0u < p.n);
    let cb1 = select(0u, c0 + 8u, c0 + 8u < p.n);
    let cb2 = select(0u, c0 + 16u, c0 + 16u < p.n);
    let cb3 = select(0u, c0 + 24u, c0 + 24u < p.n);
    let cb4 = select(0u, c0 + 32u, c0 + 32u < p.n);
    let cb5 = select(0u, c0 + 40u, c0 + 40u < p.n);
    let cb6 = select(0u, c0 + 48u, c0 + 48u < p.n);
    let cb7 = select(0u, c0 + 56u, c0 + 56u < p.n);
    var s00 = 0.0; var s01 = 0.0; var s02 = 0.0; var s03 = 0.0; var s04 = 0.0; var s05 = 0.0; var s06 = 0.0; var s07 = 0.0;
    var s10 = 0.0; var s11 = 0.0; var s12 = 0.0; var s13 = 0.0; var s14 = 0.0; var s15 = 0.0; var s16 = 0.0; var s17 = 0.0;
    var s20 = 0.0; var s21 = 0.0; var s22 = 0.0; var s23 = 0.0; var s24 = 0.0; var s25 = 0.0; var s26 = 0.0; var s27 = 0.0;
    var s30 = 0.0; var s31 = 0.0; var s32 = 0.0; var s33 = 0.0; var s34 = 0.0; var s35 = 0.0; var s36 = 0.0; var s37 = 0.0;
    var s40 = 0.0; var s41 = 0.0; var s42 = 0.0; var s43 = 0.0; var s44 = 0.0; var s45 = 0.0; var s46 = 0.0; var s47 = 0.0;
    var s50 = 0.0; var s51 = 0.0; var s52 = 0.0; var s53 = 0.0; var s54 = 0.0; var s55 = 0.0; var s56 = 0.0; var s57 = 0.0;
    var s60 = 0.0; var s61 = 0.0; var s62 = 0.0; var s63 = 0.0; var s64 = 0.0; var s65 = 0.0; var s66 = 0.0; var s67 = 0.0;
    var s70 = 0.0; var s71 = 0.0; var s72 = 0.0; var s73 = 0.0; var s74 = 0.0; var s75 = 0.0; var s76 = 0.0; var s77 = 0.0;
    for (var k = 0u; k < p.k; k = k + 1u) {
        let bk = k * p.n;
        let a0 = a[ra0 + k];
        let a1 = a[ra1 + k];
        let a2 = a[ra2 + k];
        let a3 = a[ra3 + k];
        let a4 = a[ra4 + k];
        let a5 = a[ra5 + k];
        let a6 = a[ra6 + k];
        let a7 = a[ra7 + k];
        let b0 = b[bk + cb0];
        let b1 = b[bk + cb1];
        let b2 = b[bk + cb2];
        let b3 = b[bk + cb3];
        let b4 = b[bk + cb4];
        let b5 = b[bk + cb5];
        let b6 = b[bk + cb6];
        let b7 = b[bk + cb7];
        s00 = fma(a0, b0, s00); s01 = fma(a0, b1, s01); s02 = fma(a0, b2, s02); s03 = fma(a0, b3, s03); s04 = fma(a0, b4, s04); s05 = fma(a0, b5, s05); s06 = fma(a0, b6, s06); s07 = fma(a0, b7, s07);
        s10 = fma(a1, b0, s10); s11 = fma(a1, b1, s11); s12 = fma(a1, b2, s12); s13 = fma(a1, b3, s13); s14 = fma(a1, b4, s14); s15 = fma(a1, b5, s15); s16 = fma(a1, b6, s16); s17 = fma(a1, b7, s17);
        s20 = fma(a2, b0, s20); s21 = fma(a2, b1, s21); s22 = fma(a2, b2, s22); s23 = fma(a2, b3, s23); s24 = fma(a2, b4, s24); s25 = fma(a2, b5, s25); s26 = fma(a2, b6, s26); s27 = fma(a2, b7, s27);
        s30 = fma(a3, b0, s30); s31 = fma(a3, b1, s31); s32 = fma(a3, b2, s32); s33 = fma(a3, b3, s33); s34 = fma(a3, b4, s34); s35 = fma(a3, b5, s35); s36 = fma(a3, b6, s36); s37 = fma(a3, b7, s37);
        s40 = fma(a4, b0, s40); s41 = fma(a4, b1, s41); s42 = fma(a4, b2, s42); s43 = fma(a4, b3, s43); s44 = fma(a4, b4, s44); s45 = fma(a4, b5, s45); s46 = fma(a4, b6, s46); s47 = fma(a4, b7, s47);
        s50 = fma(a5, b0, s50); s51 = fma(a5, b1, s51); s52 = fma(a5, b2, s52); s53 = fma(a5, b3, s53); s54 = fma(a5, b4, s54); s55 = fma(a5, b5, s55); s56 = fma(a5, b6, s56); s57 = fma(a5, b7, s57);
        s60 = fma(a6, b0, s60); s61 = fma(a6, b1, s61); s62 = fma(a6, b2, s62); s63 = fma(a6, b3, s63); s64 = fma(a6, b4, s64); s65 = fma(a6, b5, s65); s66 = fma(a6, b6, s66); s67 = fma(a6, b7, s67);
        s70 = fma(a7, b0, s70); s71 = fma(a7, b1, s71); s72 = fma(a7, b2, s72); s73 = fma(a7, b3, s73); s74 = fma(a7, b4, s74); s75 = fma(a7, b5, s75); s76 = fma(a7, b6, s76); s77 = fma(a7, b7, s77);
    }
    let w0 = r0 + 0u;
    if w0 < p.m {
        if c0 + 0u < p.n { c[w0 * p.n + c0 + 0u] = s00; }
        if c0 + 8u < p.n { c[w0 * p.n + c0 + 8u] = s01; }
        if c0 + 16u < p.n { c[w0 * p.n + c0 + 16u] = s02; }
        if c0 + 24u < p.n { c[w0 * p.n + c0 + 24u] = s03; }
        if c0 + 32u < p.n { c[w0 * p.n + c0 + 32u] = s04; }
        if c0 + 40u < p.n { c[w0 * p.n + c0 + 40u] = s05; }
        if c0 + 48u < p.n { c[w0 * p.n + c0 + 48u] = s06; }
        if c0 + 56u < p.n { c[w0 * p.n + c0 + 56u] = s07; }
    }
    let w1 = r0 + 8u;
    if w1 < p.m {
        if c0 + 0u < p.n { c[w1 * p.n + c0 + 0u] = s10; }
        if c0 + 8u < p.n { c[w1 * p.n + c0 + 8u] = s11; }
        if c0 + 16u < p.n { c[w1 * p.n + c0 + 16u] = s12; }
        if c0 + 24u < p.n { c[w1 * p.n + c0 + 24u] = s13; }
        if c0 + 32u < p.n { c[w1 * p.n + c0 + 32u] = s14; }
        if c0 + 40u < p.n { c[w1 * p.n + c0 + 40u] = s15; }
        if c0 + 48u < p.n { c[w1 * p.n + c0 + 48u] = s16; }
        if c0 + 56u < p.n { c[w1 * p.n + c0 + 56u] = s17; }
    }
    let w2 = r0 + 16u;
    if w2 < p.m {
        if c0 + 0u < p.n { c[w2 * p.n + c0 + 0u] = s20; }
        if c0 + 8u < p.n { c[w2 * p.n + c0 + 8u] = s21; }
        if c0 + 16u < p.n { c[w2 * p.n + c0 + 16u] = s22; }
        if c0 + 24u < p.n { c[w2 * p.n + c0 + 24u] = s23; }
        if c0 + 32u < p.n { c[w2 * p.n + c0 + 32u] = s24; }
        if c0 + 40u < p.n { c[w2 * p.n + c0 + 40u] = s25; }
        if c0 + 48u < p.n { c[w2 * p.n + c0 + 48u] = s26; }
        if c0 + 56u < p.n { c[w2 * p.n + c0 + 56u] = s27; }
    }
    let w3 = r0 + 24u;
    if w3 < p.m {
        if c0 + 0u < p.n { c[w3 * p.n + c0 + 0u] = s30; }
        if c0 + 8u < p.n { c[w3 * p.n + c0 + 8u] = s31; }
        if c0 + 16u < p.n { c[w3 * p.n + c0 + 16u] = s32; }
        if c0 + 24u < p.n { c[w3 * p.n + c0 + 24u] = s33; }
        if c0 + 32u < p.n { c[w3 * p.n + c0 + 32u] = s34; }
        if c0 + 40u < p.n { c[w3 * p.n + c0 + 40u] = s35; }
        if c0 + 48u < p.n { c[w3 * p.n + c0 + 48u] = s36; }
        if c0 + 56u < p.n { c[w3 * p.n + c0 + 56u] = s37; }
    }
    let w4 = r0 + 32u;
    if w4 < p.m {
        if c0 + 0u < p.n { c[w4 * p.n + c0 + 0u] = s40; }
        if c0 + 8u < p.n { c[w4 * p.n + c0 + 8u] = s41; }
        if c0 + 16u < p.n { c[w4 * p.n + c0 + 16u] = s42; }
        if c0 + 24u < p.n { c[w4 * p.n + c0 + 24u] = s43; }
        if c0 + 32u < p.n { c[w4 * p.n + c0 + 32u] = s44; }
        if c0 + 40u < p.n { c[w4 * p.n + c0 + 40u] = s45; }
        if c0 + 48u < p.n { c[w4 * p.n + c0 + 48u] = s46; }
        if c0 + 56u < p.n { c[w4 * p.n + c0 + 56u] = s47; }
    }
    let w5 = r0 + 40u;
    if w5 < p.m {
        if c0 + 0u < p.n { c[w5 * p.n + c0 + 0u] = s50; }
        if c0 + 8u < p.n { c[w5 * p.n + c0 + 8u] = s51; }
        if c0 + 16u < p.n { c[w5 * p.n + c0 + 16u] = s52; }
        if c0 + 24u < p.n { c[w5 * p.n + c0 + 24u] = s53; }
        if c0 + 32u < p.n { c[w5 * p.n + c0 + 32u] = s54; }
        if c0 + 40u < p.n { c[w5 * p.n + c0 + 40u] = s55; }
        if c0 + 48u < p.n { c[w5 * p.n + c0 + 48u] = s56; }
        if c0 + 56u < p.n { c[w5 * p.n + c0 + 56u] = s57; }
    }
    let w6 = r0 + 48u;
    if w6 < p.m {
        if c0 + 0u < p.n { c[w6 * p.n + c0 + 0u] = s60; }
        if c0 + 8u < p.n { c[w6 * p.n + c0 + 8u] = s61; }
        if c0 + 16u < p.n { c[w6 * p.n + c0 + 16u] = s62; }
        if c0 + 24u < p.n { c[w6 * p.n + c0 + 24u] = s63; }
        if c0 + 32u < p.n { c[w6 * p.n + c0 + 32u] = s64; }
        if c0 + 40u < p.n { c[w6 * p.n + c0 + 40u] = s65; }
        if c0 + 48u < p.n { c[w6 * p.n + c0 + 48u] = s66; }
        if c0 + 56u < p.n { c[w6 * p.n + c0 + 56u] = s67; }
    }
    let w7 = r0 + 56u;
    if w7 < p.m {
        if c0 + 0u < p.n { c[w7 * p.n + c0 + 0u] = s70; }
        if c0 + 8u < p.n { c[w7 * p.n + c0 + 8u] = s71; }
        if c0 + 16u < p.n { c[w7 * p.n + c0 + 16u] = s72; }
        if c0 + 24u < p.n { c[w7 * p.n + c0 + 24u] = s73; }
        if c0 + 32u < p.n { c[w7 * p.n + c0 + 32u] = s74; }
        if c0 + 40u < p.n { c[w7 * p.n + c0 + 40u] = s75; }
        if c0 + 48u < p.n { c[w7 * p.n + c0 + 48u] = s76; }
        if c0 + 56u < p.n { c[w7 * p.n + c0 + 56u] = s77; }
    }
}

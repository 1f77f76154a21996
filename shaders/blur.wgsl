// blur: dst = w ⋆ src, a (2r+1)×(2r+1) cross-correlation of a width×height
// f32 image with clamp-to-edge borders:
//   dst[y][x] = Σ w[dy+r][dx+r] · src[clamp(y+dy)][clamp(x+dx)],  dy, dx ∈ [-r, r].
//
// One workgroup of 16×16 invocations computes a 16×16 tile of dst. It first
// stages the tile plus an r-pixel halo (clamped at the image's edges) and
// the weights in workgroup memory, consecutive invocations reading
// consecutive pixels of a row; every staged pixel is then read by up to
// (2r+1)² invocations from workgroup memory. Each invocation sums each row
// of the kernel, then the rows (the order the CPU implementation uses too).
// Tiles are numbered linearly (pel folds more than 65,535 of them into 2-D).

// `Params` is declared once, in Rust (`BlurParams` in kernels/src/blur.rs),
// and appended to this source by pel-kernels.

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const TILE: u32 = 16u;
const MAX_RADIUS: u32 = 8u;
// Row stride of the staged tile: TILE + 2·MAX_RADIUS.
const SPAN: u32 = 32u;

var<workgroup> staged: array<f32, 1024>;  // SPAN²
var<workgroup> w: array<f32, 289>;        // (2·MAX_RADIUS + 1)²

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let tile = pel_workgroup_index(wid, groups);
    // Uniform across the workgroup: the whole group leaves together.
    if tile >= p.tiles {
        return;
    }
    let x0 = (tile % p.tiles_x) * TILE;
    let y0 = (tile / p.tiles_x) * TILE;
    let r = p.radius;
    let side = 2u * r + 1u;
    let span = TILE + 2u * r;

    // Staged pixel (tx, ty) is src at (x0 + tx - r, y0 + ty - r), clamped.
    for (var i = li; i < span * span; i = i + 256u) {
        let ty = i / span;
        let tx = i % span;
        let gx = min(max(x0 + tx, r) - r, p.width - 1u);
        let gy = min(max(y0 + ty, r) - r, p.height - 1u);
        staged[ty * SPAN + tx] = src[gy * p.width + gx];
    }
    for (var i = li; i < side * side; i = i + 256u) {
        w[i] = weights[i];
    }
    workgroupBarrier();

    let x = x0 + lid.x;
    let y = y0 + lid.y;
    if x < p.width && y < p.height {
        var acc = 0.0;
        for (var ky = 0u; ky < side; ky = ky + 1u) {
            let base = (lid.y + ky) * SPAN + lid.x;
            var row = 0.0;
            for (var kx = 0u; kx < side; kx = kx + 1u) {
                row = fma(w[ky * side + kx], staged[base + kx], row);
            }
            acc = acc + row;
        }
        dst[y * p.width + x] = acc;
    }
}
